//! Every example that needs nothing but this machine runs to its end and says what it
//! showed: the examples are part of the suite, not prose that can rot.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tower_bearer_testkit::{ApiServer, AuthServer};

/// Runs an example binary with these environment variables; fails after 60 s.
fn run(binary: &str, env: &[(&str, String)]) -> Output {
    let mut command = Command::new(binary);
    // Only what the test sets: none of the examples' settings leak in from the caller's
    // environment.
    for variable in [
        "TOKEN_URL",
        "CLIENT_ID",
        "CLIENT_SECRET",
        "CLIENT_AUTH",
        "SCOPE",
        "API_URL",
        "API_TOKEN",
        "REQUESTS",
        "REDIS_URL",
        "TOKEN_STORE_KEY",
    ] {
        command.env_remove(variable);
    }
    let mut child = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{binary} ran for more than 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn succeeds(binary: &str, env: &[(&str, String)], expected: &[&str]) {
    let output = run(binary, env);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{binary} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    for line in expected {
        assert!(
            stdout.contains(line),
            "{binary} did not print {line:?}:\n{stdout}"
        );
    }
}

#[test]
fn demo() {
    succeeds(env!("CARGO_BIN_EXE_demo"), &[], &[]);
}

#[test]
fn reqwest_client() {
    succeeds(
        env!("CARGO_BIN_EXE_reqwest_client"),
        &[],
        &[
            "first call: 200 OK",
            "after revocation: 200 OK",
            "permanent: true, requests sent: 0",
        ],
    );
}

#[test]
fn tonic_client() {
    succeeds(
        env!("CARGO_BIN_EXE_tonic_client"),
        &[],
        &[
            "first call: Hello, tonic!",
            "after revocation: Hello, tonic! (2 token requests, 1 call refused, 2 answered)",
            "permanent: true, calls sent: 0",
        ],
    );
}

#[test]
fn axum_gateway() {
    succeeds(
        env!("CARGO_BIN_EXE_axum_gateway"),
        &[],
        &[
            "order 7: 200 OK hello",
            "after revocation: 200 OK",
            "without a token: 503",
            "API down: 502",
        ],
    );
}

#[test]
fn dpop_client() {
    succeeds(
        env!("CARGO_BIN_EXE_dpop_client"),
        &[],
        &[
            "GET /orders: 200 OK",
            "GET /invoices: 200 OK",
            "(2 token requests, 4 API requests for 3 calls)",
            "the same token without its key: 401 Unauthorized",
            "reqwest GET /invoices: 200 OK",
            "reqwest: 2 token requests, 4 API requests for 3 calls",
        ],
    );
}

/// The store examples start their own redis-server (`cargo xtask test` installs it).
#[test]
fn store_examples() {
    succeeds(
        env!("CARGO_BIN_EXE_shared_store"),
        &[],
        &["three replicas, 1 token request(s)"],
    );
    succeeds(
        env!("CARGO_BIN_EXE_shared_refresh"),
        &[],
        &[
            "the new grant's refresh token was seeded",
            "the grant is valid: no refresh token was presented twice",
        ],
    );
}

#[test]
fn examples_that_use_only_the_mock_servers() {
    for binary in [
        env!("CARGO_BIN_EXE_static_token"),
        env!("CARGO_BIN_EXE_discovery"),
        env!("CARGO_BIN_EXE_health"),
        env!("CARGO_BIN_EXE_revoke_on_shutdown"),
    ] {
        succeeds(binary, &[], &[]);
    }
}

/// The twelve-factor example against the mock servers, configured as its docs say.
#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_from_the_environment() {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    let env = [
        ("TOKEN_URL", auth.token_url()),
        ("CLIENT_ID", AuthServer::DEFAULT_CLIENT_ID.to_owned()),
        (
            "CLIENT_SECRET",
            AuthServer::DEFAULT_CLIENT_SECRET.to_owned(),
        ),
        ("API_URL", api.url()),
        ("REQUESTS", "5".to_owned()),
    ];
    let output =
        tokio::task::spawn_blocking(move || run(env!("CARGO_BIN_EXE_client_credentials"), &env))
            .await
            .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(auth.token_requests(), 1, "five calls, one token");
    assert_eq!(api.authorized(), 5);

    let missing = run(env!("CARGO_BIN_EXE_client_credentials"), &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("TOKEN_URL"));
}
