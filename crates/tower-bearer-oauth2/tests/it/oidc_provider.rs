//! Runs the interop authorization server (`interop/oidc-provider/server.mjs`, the
//! `oidc-provider` npm package) as a child process on a free loopback port.
//!
//! [`OidcProvider::start`] panics, saying what is missing and how to install it, when `node`
//! or the server's npm packages are missing: a test that cannot run must not pass.
//! `cargo xtask test` installs both.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// How long the server may take to print its `LISTENING` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The line prefix `server.mjs` prints once it accepts connections.
const LISTENING: &str = "LISTENING ";

/// A static client registered in `server.mjs`.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    /// The client id.
    pub id: &'static str,
    /// The client secret.
    pub secret: &'static str,
}

impl Client {
    /// An RFC 6749 section 2.3.1 `Authorization` header value for this client.
    pub fn basic_authorization(&self) -> String {
        let encode =
            |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
        let joined: String = [encode(self.id), encode(self.secret)].join(":");
        format!("Basic {}", STANDARD.encode(joined))
    }
}

/// Registered with `client_secret_basic`.
pub const BASIC: Client = Client {
    id: "interop-basic",
    secret: "interop-basic-secret",
};

/// Registered with `client_secret_post`.
pub const POST: Client = Client {
    id: "interop-post",
    secret: "interop-post-secret",
};

/// Registered with `client_secret_basic`; every visible ASCII character that RFC 6749's
/// form-urlencoding step exists for is in the id and the secret.
pub const ODD: Client = Client {
    id: "id: with%odd+chars &=",
    secret: "s3cr:et%+ s&=",
};

/// Allowed the `refresh_token` grant; its refresh tokens come from
/// [`OidcProvider::seed_refresh_token_url`].
pub const REFRESH: Client = Client {
    id: "interop-refresh",
    secret: "interop-refresh-secret",
};

/// Registered with `client_secret_basic` and `dpop_bound_access_tokens`: no token without a
/// DPoP proof.
pub const DPOP: Client = Client {
    id: "interop-dpop",
    secret: "interop-dpop-secret",
};

/// As [`DPOP`], and its proofs at the token endpoint must carry a server nonce.
pub const DPOP_NONCE: Client = Client {
    id: "interop-dpop-nonce",
    secret: "interop-dpop-nonce-secret",
};

/// A public client (no secret) with `dpop_bound_access_tokens`, allowed the `refresh_token`
/// grant; [`OidcProvider::seed_bound_refresh_token_url`] mints its DPoP-bound refresh
/// tokens.
pub const DPOP_REFRESH_ID: &str = "interop-dpop-refresh";

/// The resource indicator for which the server issues JWT access tokens.
pub const RESOURCE: &str = "https://api.interop.test/";

/// What `server.mjs` needs to serve HTTPS: its certificate and key, and the CA whose client
/// certificates it trusts for `tls_client_auth` (all PEM).
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub client_ca_pem: String,
}

/// A running interop server. Dropping it kills the process.
#[derive(Debug)]
pub struct OidcProvider {
    child: Child,
    // Held open: the server exits when it closes (`--exit-on-stdin-close`), so it does not
    // outlive a test process that dies without running `Drop`.
    _stdin: ChildStdin,
    issuer: String,
}

impl OidcProvider {
    /// Starts a server for the test `test`.
    ///
    /// # Panics
    ///
    /// When the server cannot run here (the message says what is missing and how to get
    /// it), or when it is installed but fails to start.
    pub fn start(test: &str) -> OidcProvider {
        Self::start_with_clients(test, &[])
    }

    /// Like [`start`](Self::start), with more clients registered for this run
    /// (`INTEROP_EXTRA_CLIENTS`: client metadata objects with RFC 7591 names).
    pub fn start_with_clients(test: &str, extra_clients: &[serde_json::Value]) -> OidcProvider {
        Self::start_with(test, extra_clients, None)
    }

    /// Like [`start_with_clients`](Self::start_with_clients), serving HTTPS with `tls` and
    /// asking each client for a certificate, with oidc-provider's mutual-TLS client
    /// authentication (RFC 8705) enabled.
    pub fn start_https(
        test: &str,
        extra_clients: &[serde_json::Value],
        tls: &ServerTls,
    ) -> OidcProvider {
        Self::start_with(test, extra_clients, Some(tls))
    }

    fn start_with(
        test: &str,
        extra_clients: &[serde_json::Value],
        tls: Option<&ServerTls>,
    ) -> OidcProvider {
        let dir = interop_dir();
        if let Err(reason) = check_prerequisites(&dir) {
            panic!(
                "{test} needs the interop server, but {reason}; `cargo xtask test` installs \
                 what it needs"
            );
        }
        let extra = serde_json::Value::from(extra_clients.to_vec()).to_string();
        spawn(&dir, &extra, tls).unwrap_or_else(|error| panic!("{test}: {error}"))
    }

    /// The issuer, `http://127.0.0.1:PORT` (`https://` from [`start_https`](Self::start_https)),
    /// without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// The token introspection endpoint (RFC 7662).
    pub fn introspection_url(&self) -> String {
        format!("{}/token/introspection", self.issuer)
    }

    /// The test-only path of `server.mjs` that mints a refresh token for [`REFRESH`], as
    /// if its user had signed in (`POST`; answers `{"refresh_token": "..."}`).
    pub fn seed_refresh_token_url(&self) -> String {
        format!(
            "{}/interop/seed-refresh-token?client_id={}",
            self.issuer, REFRESH.id
        )
    }

    /// Like [`seed_refresh_token_url`](Self::seed_refresh_token_url), for
    /// [`DPOP_REFRESH_ID`] and a refresh token bound to the DPoP key whose thumbprint is
    /// `jkt`.
    pub fn seed_bound_refresh_token_url(&self, jkt: &str) -> String {
        format!(
            "{}/interop/seed-refresh-token?client_id={DPOP_REFRESH_ID}&jkt={jkt}",
            self.issuer
        )
    }

    /// The token revocation endpoint (RFC 7009).
    pub fn revocation_url(&self) -> String {
        format!("{}/token/revocation", self.issuer)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/oidc-provider");
    dir.canonicalize().unwrap_or(dir)
}

fn check_prerequisites(dir: &std::path::Path) -> Result<(), String> {
    match Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) if output.status.success() => {}
        Ok(output) => return Err(format!("`node --version` failed: {}", output.status)),
        Err(error) => {
            return Err(format!(
                "`node` cannot be run ({error}); install Node.js 20 or later (Debian package: \
                 nodejs)"
            ))
        }
    }
    if !dir.join("node_modules/oidc-provider").is_dir() {
        return Err(format!(
            "{} has no node_modules/oidc-provider; run `npm ci` there",
            dir.display()
        ));
    }
    Ok(())
}

fn spawn(
    dir: &std::path::Path,
    extra_clients: &str,
    tls: Option<&ServerTls>,
) -> Result<OidcProvider, String> {
    let mut command = Command::new("node");
    command
        .args(["server.mjs", "--port", "0", "--exit-on-stdin-close"])
        .env("INTEROP_EXTRA_CLIENTS", extra_clients);
    if let Some(tls) = tls {
        command
            .env("INTEROP_TLS_CERT", &tls.certificate_pem)
            .env("INTEROP_TLS_KEY", &tls.private_key_pem)
            .env("INTEROP_TLS_CA", &tls.client_ca_pem);
    }
    let mut child = command
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| {
            format!(
                "cannot start `node server.mjs` in {}: {error}",
                dir.display()
            )
        })?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");

    // Kept for the failure message; drained all along so the server never blocks on a full
    // pipe.
    let log = Arc::new(Mutex::new(String::new()));
    let stderr_log = Arc::clone(&log);
    let stderr_reader = thread::spawn(move || {
        let mut buffer = [0; 4096];
        while let Ok(read @ 1..) = stderr.read(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..read]);
            stderr_log.lock().unwrap().push_str(&text);
        }
    });

    let (issuer_sender, issuer_receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut sender = Some(issuer_sender);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(issuer) = line.strip_prefix(LISTENING) {
                if let Some(sender) = sender.take() {
                    let _ = sender.send(issuer.trim().to_owned());
                }
            }
        }
    });

    match issuer_receiver.recv_timeout(STARTUP_TIMEOUT) {
        Ok(issuer) => Ok(OidcProvider {
            child,
            _stdin: stdin,
            issuer,
        }),
        Err(error) => {
            let reason = match error {
                mpsc::RecvTimeoutError::Timeout => format!("nothing within {STARTUP_TIMEOUT:?}"),
                mpsc::RecvTimeoutError::Disconnected => "its stdout closed first".to_owned(),
            };
            // Harmless if it already exited; either way `wait` reaps it and says how it ended.
            let _ = child.kill();
            let status = child
                .wait()
                .map_or_else(|error| error.to_string(), |status| status.to_string());
            drop(stdin);
            let _ = stderr_reader.join();
            let stderr = log.lock().unwrap().clone();
            Err(format!(
                "the interop server did not print `{LISTENING}URL` ({reason}; {status}); \
                 its stderr:\n{stderr}"
            ))
        }
    }
}
