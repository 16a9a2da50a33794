//! Preparing a machine for the whole suite: Redis from the system packages, the interop
//! server's npm packages from their lock file. Only what is missing is installed.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Each Redis binary the suites run, with the Debian package that ships it.
const REDIS_BINARIES: [(&str, &str); 3] = [
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("redis-sentinel", "redis-sentinel"),
];

/// Where the Redis harness looks for a binary instead of the `PATH`, when set
/// (`tower_bearer_testkit`, feature `redis`).
const REDIS_OVERRIDES: [(&str, &str); 2] = [
    ("redis-server", "TOWER_BEARER_REDIS_SERVER"),
    ("redis-cli", "TOWER_BEARER_REDIS_CLI"),
];

/// The interop server's directory, relative to the workspace root.
const INTEROP_DIR: &str = "interop/oidc-provider";

/// `server.mjs` and its pinned oidc-provider need this Node.js major version or later.
const NODE_MAJOR: u32 = 20;

/// Prepares both components and says, one line each, what was found or done. When either
/// cannot be prepared, the error names everything missing and how to install it.
pub(crate) fn everything(root: &Path) -> Result<Vec<String>, String> {
    let mut prepared = Vec::new();
    let mut problems = Vec::new();
    for outcome in [redis(), interop_server(&root.join(INTEROP_DIR))] {
        match outcome {
            Ok(line) => prepared.push(line),
            Err(problem) => problems.push(format!("- {problem}")),
        }
    }
    if problems.is_empty() {
        Ok(prepared)
    } else {
        Err(problems.join("\n"))
    }
}

fn redis() -> Result<String, String> {
    let names: Vec<&str> = REDIS_BINARIES.iter().map(|(binary, _)| *binary).collect();
    let missing: Vec<(&str, &str)> = REDIS_BINARIES
        .into_iter()
        .filter(|(binary, _)| redis_binary(binary).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(format!(
            "Redis: {} already installed ({})",
            names.join(", "),
            redis_version()
        ));
    }
    let binaries: Vec<&str> = missing.iter().map(|(binary, _)| *binary).collect();
    let packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
    let how = format!("apt-get install {}", packages.join(" "));
    let Some(sudo) = can_install_packages() else {
        return Err(format!(
            "{} missing (Debian packages: {}). Install them with `sudo {how}` (on other \
             systems, Redis 7 or later provides redis-server, redis-cli and redis-sentinel), \
             then run `cargo xtask test` again. They could not be installed here: that needs \
             apt-get, and root or passwordless sudo.{}",
            binaries.join(", "),
            packages.join(" "),
            broken_overrides(),
        ));
    };
    println!("installing {} with apt-get", packages.join(" "));
    let apt = |args: &[&str]| {
        let mut command = Command::new(if sudo { "sudo" } else { "apt-get" });
        if sudo {
            command.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        }
        let status = command
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(args)
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("`apt-get {}` failed ({status})", args.join(" "))),
            Err(error) => Err(format!(
                "`apt-get {}` could not run: {error}",
                args.join(" ")
            )),
        }
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend(&packages);
    apt(&install)?;
    let still_missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|binary| redis_binary(binary).is_none())
        .collect();
    if !still_missing.is_empty() {
        return Err(format!(
            "`{how}` succeeded but {} still cannot be found on the PATH.{}",
            still_missing.join(", "),
            broken_overrides(),
        ));
    }
    Ok(format!(
        "Redis: installed {} with apt-get ({})",
        packages.join(", "),
        redis_version()
    ))
}

/// A sentence for each override variable that names no file, or nothing.
fn broken_overrides() -> String {
    REDIS_OVERRIDES
        .iter()
        .filter_map(|(_, variable)| Some((variable, env::var_os(variable)?)))
        .filter(|(_, path)| !Path::new(path).is_file())
        .map(|(variable, path)| {
            format!(
                " {variable} is set to {}, which is not a file.",
                path.to_string_lossy()
            )
        })
        .collect()
}

/// The binary the Redis harness would run: its override variable's path, else the `PATH`'s.
fn redis_binary(binary: &str) -> Option<PathBuf> {
    let overridden = REDIS_OVERRIDES
        .iter()
        .find(|(name, _)| *name == binary)
        .and_then(|(_, variable)| env::var_os(variable));
    match overridden {
        Some(path) => Some(PathBuf::from(path)).filter(|path| path.is_file()),
        None => on_path(binary),
    }
}

fn on_path(binary: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// `v=7.0.15` from `redis-server --version`.
fn redis_version() -> String {
    let server = redis_binary("redis-server").unwrap_or_else(|| "redis-server".into());
    output_of(Command::new(server).arg("--version"))
        .and_then(|text| {
            text.split_whitespace()
                .find(|word| word.starts_with("v="))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "version unknown".to_owned())
}

/// Whether packages can be installed without asking anybody: `Some(false)` as root,
/// `Some(true)` through passwordless sudo, `None` when not at all (or there is no apt-get).
fn can_install_packages() -> Option<bool> {
    on_path("apt-get")?;
    if output_of(Command::new("id").arg("-u")).as_deref() == Some("0") {
        return Some(false);
    }
    let sudo_works = Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    sudo_works.then_some(true)
}

fn interop_server(dir: &Path) -> Result<String, String> {
    let lock = dir.join("package-lock.json");
    if !lock.is_file() {
        return Err(format!(
            "{} is missing: is this a whole checkout?",
            lock.display()
        ));
    }
    let node = output_of(Command::new("node").arg("--version")).ok_or_else(|| {
        format!(
            "`node` cannot be run: install Node.js {NODE_MAJOR} or later with npm (the \
             interop suite runs the oidc-provider server); then run `cargo xtask test` again"
        )
    })?;
    let major: Option<u32> = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok());
    if major.is_none_or(|major| major < NODE_MAJOR) {
        return Err(format!(
            "Node.js {node} is too old for the interop server: install Node.js {NODE_MAJOR} or later"
        ));
    }

    // npm writes node_modules/.package-lock.json last, so it dates the installed tree.
    let installed = dir.join("node_modules/.package-lock.json");
    let reason = match (modified(&installed), modified(&lock)) {
        (None, _) => "node_modules was missing",
        (Some(installed), Some(locked)) if installed < locked => {
            "the lock file is newer than node_modules"
        }
        _ => {
            return Ok(format!(
                "interop server: npm packages already installed (Node.js {node})"
            ))
        }
    };
    println!("running `npm ci` in {INTEROP_DIR} ({reason})");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .map_err(|error| format!("`npm` cannot be run ({error}): install npm with Node.js"))?;
    if !status.success() {
        return Err(format!("`npm ci` in {INTEROP_DIR} failed ({status})"));
    }
    Ok(format!(
        "interop server: ran `npm ci` in {INTEROP_DIR} because {reason} (Node.js {node})"
    ))
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

/// The command's trimmed stdout, if it ran and succeeded.
fn output_of(command: &mut Command) -> Option<String> {
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
