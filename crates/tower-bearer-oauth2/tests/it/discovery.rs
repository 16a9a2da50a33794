//! Discovery (RFC 8414) against the testkit's mock authorization server, over real loopback
//! sockets with the default hyper client.

use secrecy::ExposeSecret;
use tower_bearer::TokenSource;
use tower_bearer_oauth2::{AuthMethod, ClientCredentials, Discovery, HttpClient};
use tower_bearer_testkit::{AuthServer, ClientAuthMethod};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn metadata_from_the_issuer_builds_a_working_source() -> TestResult {
    let server = AuthServer::start().await?;
    // One HTTP client for the metadata and the tokens.
    let http = HttpClient::new()?;
    let metadata = Discovery::new()
        .http_client(http.clone())
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
    let endpoint = metadata.endpoint().http_client(http).build()?;
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
