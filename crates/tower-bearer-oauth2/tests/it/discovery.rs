//! Discovery (RFC 8414) against the testkit's mock authorization server, over real loopback
//! sockets with the default hyper client.

use std::time::Duration;

use secrecy::ExposeSecret;
use tower_bearer::TokenSource;
use tower_bearer_oauth2::{
    AuthMethod, ClientCredentials, Discovery, Endpoint, HttpClient, HttpSettings, RetryPolicy,
    TokenParams,
};
use tower_bearer_testkit::{AuthServer, ClientAuthMethod, Fault};

use crate::support::{default_client, endpoint_error, error_chain};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn metadata_from_the_issuer_builds_a_working_source() -> TestResult {
    let server = AuthServer::start().await?;
    let metadata = Discovery::new()
        .http_client(HttpClient::new()?)
        .fetch(&server.url())
        .await?;
    assert_eq!(metadata.issuer(), server.url());
    assert_eq!(metadata.token_endpoint(), server.token_url());
    assert_eq!(
        metadata.revocation_endpoint(),
        Some(server.revocation_url().as_str())
    );
    assert_eq!(server.metadata_requests(), 1);

    let client = metadata.client_secret_auth(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    // The endpoint goes over the client discovery used.
    let endpoint = metadata.endpoint().build()?;
    let source = ClientCredentials::builder(endpoint, client).build()?;
    assert_eq!(source.client_auth().method(), AuthMethod::ClientSecretBasic);
    assert_eq!(
        source.revocation_url().map(ToString::to_string),
        Some(server.revocation_url())
    );
    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    source.revoke(&token).await?;
    assert!(!server.is_valid(token.secret().expose_secret()));
    Ok(())
}

#[tokio::test]
async fn the_auth_method_the_server_lists_is_picked() -> TestResult {
    let server = AuthServer::builder()
        .client_auth_methods(&[ClientAuthMethod::Post])
        .start()
        .await?;
    let metadata = Discovery::new().fetch(&server.url()).await?;
    assert_eq!(
        metadata.token_endpoint_auth_methods_supported(),
        ["client_secret_post"]
    );
    let client = metadata.client_secret_auth(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    let source = ClientCredentials::builder(metadata.endpoint().build()?, client).build()?;
    assert_eq!(source.client_auth().method(), AuthMethod::ClientSecretPost);
    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    assert_eq!(
        server.last_request().map(|request| request.auth_method),
        Some(ClientAuthMethod::Post)
    );
    Ok(())
}

#[tokio::test]
async fn an_issuer_with_another_name_is_refused() -> TestResult {
    let server = AuthServer::start().await?;
    // Same server, other spelling: `localhost` is not the `127.0.0.1` it names itself.
    let issuer = format!("http://localhost:{}", server.addr().port());
    let error = Discovery::new()
        .fetch(&issuer)
        .await
        .expect_err("issuer mismatch");
    assert!(error.is_issuer_mismatch(), "{error}");
    assert_eq!(server.metadata_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_issuer_is_transient() -> TestResult {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    let error = Discovery::new()
        .fetch(&format!("http://127.0.0.1:{port}"))
        .await
        .expect_err("nothing listens there");
    assert!(error.is_transient(), "{error}");
    Ok(())
}

// Paused time, as in `client_credentials::timeout_is_honoured`: the server's delay and the
// client's timeout both run on the tokio clock, so the wait is exactly the timeout.
#[tokio::test(start_paused = true)]
async fn the_endpoint_of_the_metadata_keeps_the_discovery_timeout() -> TestResult {
    let server = AuthServer::start().await?;
    let metadata = Discovery::new()
        .http_settings(HttpSettings::new().timeout(Duration::from_millis(200)))
        .fetch(&server.url())
        .await?;
    let endpoint = metadata.endpoint().retry(RetryPolicy::none()).build()?;
    let source = ClientCredentials::builder(endpoint, default_client()).build()?;
    server.fail_next(1, Fault::Delay(Duration::from_secs(5)));

    let started = tokio::time::Instant::now();
    let error = source.fetch().await.expect_err("slower than the timeout");
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert!(endpoint_error(&error).is_timeout(), "{error}");
    let chain = error_chain(&error);
    assert!(chain.contains("200ms"), "{chain}");
    Ok(())
}

#[tokio::test]
async fn the_endpoint_of_the_metadata_keeps_the_discovery_size_limit() -> TestResult {
    let server = AuthServer::start().await?;
    // Room for the metadata document, not for a token response that echoes a long scope.
    let limit = 2048;
    let metadata = Discovery::new()
        .http_settings(HttpSettings::new().max_response_size(limit))
        .fetch(&server.url())
        .await?;
    let long_scope = vec!["orders:read"; 400].join(" ");
    assert!(long_scope.len() > 2 * limit);
    let source = ClientCredentials::builder(metadata.endpoint().build()?, default_client())
        .params(TokenParams::new().scope(long_scope.clone()))
        .build()?;
    let error = source.fetch().await.expect_err("larger than the limit");
    assert!(endpoint_error(&error).is_too_large(), "{error}");
    let chain = error_chain(&error);
    assert!(chain.contains("2048"), "{chain}");

    // The same request with the endpoint's own default limit.
    let endpoint = metadata
        .endpoint()
        .max_response_size(Endpoint::DEFAULT_MAX_RESPONSE_SIZE)
        .build()?;
    let source = ClientCredentials::builder(endpoint, default_client())
        .params(TokenParams::new().scope(long_scope))
        .build()?;
    source.fetch().await?;
    Ok(())
}
