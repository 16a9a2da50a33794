//! Project tasks, run as `cargo xtask TASK` (the alias is in `.cargo/config.toml`).
//!
//! `cargo xtask test [CARGO TEST ARGS] [-- TEST BINARY ARGS]` prepares what the test suites
//! need on this machine (Redis, the interop server), runs `cargo test --workspace`, and
//! prints what was set up, what ran and how long it took. It exits non-zero when anything
//! failed or nothing ran. A test whose component is missing fails under any runner; the
//! xtask is how to get the components.

mod prepare;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask test [CARGO TEST ARGS] [-- TEST BINARY ARGS]

Installs what the test suites need when it is missing (the interop server's npm packages
from their lock file; redis-server, redis-cli and redis-sentinel from the system packages),
runs `cargo test --workspace`, and prints a summary.

examples:
  cargo xtask test
  cargo xtask test -- --nocapture
  cargo xtask test interop
  cargo xtask test -p tower-bearer-test-support";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("test") => test(args.collect()),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("xtask: unknown task `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn test(args: Vec<String>) -> ExitCode {
    let started = Instant::now();
    let root = workspace_root();

    step("preparing what the suites need");
    let prepared = match prepare::everything(&root) {
        Ok(prepared) => prepared,
        Err(problems) => {
            eprintln!("\nxtask: the whole suite cannot run on this machine yet:\n{problems}");
            return ExitCode::FAILURE;
        }
    };
    let prepare_time = started.elapsed();

    let cargo_args = cargo_test_args(args);
    let shown = format!("cargo {}", cargo_args.join(" "));
    step(&shown);
    let run = match report::run(&root, &cargo_args) {
        Ok(run) => run,
        Err(error) => {
            eprintln!("xtask: could not run `{shown}`: {error}");
            return ExitCode::FAILURE;
        }
    };

    step("summary");
    println!("set up:");
    for line in &prepared {
        println!("  {line}");
    }
    println!("ran: {shown}");
    run.print();
    let total = started.elapsed();
    println!(
        "took {} (preparing {}, building and testing {})",
        human(total),
        human(prepare_time),
        human(total - prepare_time),
    );
    if run.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `test --workspace --no-fail-fast` and the caller's arguments. `--workspace` is left out
/// when the caller chose packages; `--no-fail-fast` runs every binary so the summary is whole.
fn cargo_test_args(args: Vec<String>) -> Vec<String> {
    let ours = args.iter().take_while(|arg| *arg != "--");
    let mut chose_packages = false;
    let mut chose_fail_fast = false;
    for arg in ours {
        chose_packages |= arg.starts_with("-p") || arg.starts_with("--package");
        chose_fail_fast |= arg == "--no-fail-fast";
    }
    let mut cargo_args = vec!["test".to_owned()];
    if !chose_packages {
        cargo_args.push("--workspace".to_owned());
    }
    if !chose_fail_fast {
        cargo_args.push("--no-fail-fast".to_owned());
    }
    cargo_args.extend(args);
    cargo_args
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ lives in the workspace root")
        .to_path_buf()
}

fn step(what: &str) {
    println!("\n==> {what}");
}

/// `850ms`, `12.3s`, `4m 05s`.
fn human(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 1.0 {
        format!("{}ms", duration.as_millis())
    } else if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn the_whole_workspace_runs_unless_packages_are_chosen() {
        assert_eq!(
            cargo_test_args(strings(&["--", "--nocapture"])),
            strings(&["test", "--workspace", "--no-fail-fast", "--", "--nocapture"]),
        );
        assert_eq!(
            cargo_test_args(strings(&["-p", "tower-bearer", "cache"])),
            strings(&["test", "--no-fail-fast", "-p", "tower-bearer", "cache"]),
        );
        // After `--` the arguments belong to the test binaries.
        assert_eq!(
            cargo_test_args(strings(&["--", "-p"])),
            strings(&["test", "--workspace", "--no-fail-fast", "--", "-p"]),
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human(Duration::from_secs(245)), "4m 05s");
    }
}
