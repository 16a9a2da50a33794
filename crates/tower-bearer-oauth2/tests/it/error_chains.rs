//! Each error says what happened at its own level and what to do; the cause is in
//! `source()` and nowhere else, so a chain printer (anyhow's `{:#}`, eyre, `tracing`'s
//! error fields) shows every cause exactly once.

use std::time::Duration;

use http::StatusCode;
use tower_bearer::TokenSource as _;
use tower_bearer_oauth2::{
    BuildError, ClientCredentials, Discovery, Endpoint, EndpointBuilder, RetryPolicy, TokenParams,
};
use tower_bearer_testkit::{AuthServer, Fault};

use crate::support::{assert_each_cause_once, default_client, TestResult};

/// A loopback port nothing listens on.
fn closed_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The endpoint at `token_url`, with one request per fetch.
fn endpoint(token_url: String) -> EndpointBuilder {
    Endpoint::builder(token_url).retry(RetryPolicy::none())
}

/// A source for the mock server's default client, over `endpoint` and asking for `params`.
fn source(endpoint: EndpointBuilder, params: TokenParams) -> Result<ClientCredentials, BuildError> {
    ClientCredentials::builder(endpoint.build()?, default_client())
        .params(params)
        .build()
}

#[tokio::test]
async fn connection_refused_prints_the_os_error_once() -> TestResult {
    let port = closed_port()?;
    let error = source(
        endpoint(format!("http://127.0.0.1:{port}/token")),
        TokenParams::new(),
    )?
    .fetch()
    .await
    .expect_err("nothing listens there");
    let chain = assert_each_cause_once(&error);
    assert!(
        chain.starts_with("cannot reach the token endpoint"),
        "{chain}"
    );
    assert!(chain.contains("it will be asked again"), "{chain}");
    assert_eq!(chain.matches("refused").count(), 1, "{chain}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_timeout_prints_the_limit_once() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_always(Fault::Delay(Duration::from_secs(600)));
    let error = source(
        endpoint(server.token_url()).timeout(Duration::from_secs(3)),
        TokenParams::new(),
    )?
    .fetch()
    .await
    .expect_err("too slow");
    let chain = assert_each_cause_once(&error);
    assert_eq!(chain.matches("3s").count(), 1, "{chain}");
    assert!(chain.contains("raise `timeout`"), "{chain}");
    Ok(())
}

#[tokio::test]
async fn an_oauth_error_response_prints_code_and_description_once() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_always(Fault::oauth_error(StatusCode::BAD_REQUEST, "invalid_scope"));
    let error = source(
        endpoint(server.token_url()),
        TokenParams::new().scope("admin"),
    )?
    .fetch()
    .await
    .expect_err("refused");
    let chain = assert_each_cause_once(&error);
    for once in ["invalid_scope", "injected fault", "HTTP 400"] {
        assert_eq!(chain.matches(once).count(), 1, "{once}: {chain}");
    }
    assert!(
        chain.contains("request only scopes the client is allowed"),
        "{chain}"
    );
    Ok(())
}

#[tokio::test]
async fn a_malformed_json_response_prints_the_parse_error_once() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_always(Fault::BadJson);
    let error = source(endpoint(server.token_url()), TokenParams::new())?
        .fetch()
        .await
        .expect_err("not JSON");
    let chain = assert_each_cause_once(&error);
    assert_eq!(chain.matches("not JSON").count(), 1, "{chain}");
    assert_eq!(chain.matches("line 1 column").count(), 1, "{chain}");
    assert!(
        chain.contains("check that the URL is the token endpoint"),
        "{chain}"
    );
    Ok(())
}

#[tokio::test]
async fn a_discovery_failure_prints_each_cause_once() -> TestResult {
    let port = closed_port()?;
    let error = Discovery::new()
        .fetch(&format!("http://127.0.0.1:{port}"))
        .await
        .expect_err("nothing listens there");
    let chain = assert_each_cause_once(&error);
    assert!(
        chain.starts_with("cannot reach http://127.0.0.1:"),
        "{chain}"
    );
    assert_eq!(chain.matches("refused").count(), 1, "{chain}");

    let error = Discovery::new()
        .fetch("https://auth.example.com/te nant")
        .await
        .expect_err("not a URL");
    assert!(error.is_invalid_issuer(), "{error}");
    let chain = assert_each_cause_once(&error);
    assert_eq!(chain.matches("te nant").count(), 1, "{chain}");
    assert!(chain.contains("give an absolute URL"), "{chain}");
    Ok(())
}
