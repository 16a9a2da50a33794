//! Revocation (RFC 7009) against the testkit's mock authorization server, over real
//! loopback sockets with the default hyper client.

use std::error::Error as _;

use http::StatusCode;
use secrecy::ExposeSecret;
use tower_bearer::{TokenCache, TokenSource};
use tower_bearer_oauth2::{
    BuildError, ClientAuth, ClientCredentials, Endpoint, EndpointBuilder, RetryPolicy,
};
use tower_bearer_testkit::{capture_tracing, AuthServer, ClientAuthMethod, Fault};

use crate::support::default_client;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The server's token and revocation endpoints.
fn endpoint_for(server: &AuthServer) -> EndpointBuilder {
    Endpoint::builder(server.token_url()).revocation_url(server.revocation_url())
}

/// A source for the server's default client, over [`endpoint_for`].
fn source_for(server: &AuthServer) -> Result<ClientCredentials, BuildError> {
    ClientCredentials::builder(endpoint_for(server).build()?, default_client()).build()
}

#[tokio::test]
async fn revoked_access_token_is_no_longer_valid() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server)?;
    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));

    source.revoke(&token).await?;

    assert!(!server.is_valid(token.secret().expose_secret()));
    assert_eq!(
        (server.revocation_requests(), server.tokens_revoked()),
        (1, 1)
    );
    let request = server.last_request().expect("the revocation request");
    assert_eq!(request.auth_method, ClientAuthMethod::Basic);
    assert_eq!(request.client_id.as_deref(), Some("client"));
    assert_eq!(request.param("token"), Some(token.secret().expose_secret()));
    assert_eq!(request.param("token_type_hint"), Some("access_token"));
    assert_eq!(request.param("grant_type"), None);
    Ok(())
}

#[tokio::test]
async fn revocation_uses_the_sources_client_authentication() -> TestResult {
    let server = AuthServer::builder()
        .client_auth_methods(&[ClientAuthMethod::Post])
        .start()
        .await?;
    let client = ClientAuth::secret_post(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    let source = ClientCredentials::builder(endpoint_for(&server).build()?, client).build()?;
    let token = source.fetch().await?;
    source.revoke(&token).await?;
    assert!(!server.is_valid(token.secret().expose_secret()));
    let request = server.last_request().expect("the revocation request");
    assert_eq!(request.auth_method, ClientAuthMethod::Post);
    Ok(())
}

#[tokio::test]
async fn revoking_an_unknown_or_revoked_token_succeeds() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server)?;
    let token = source.fetch().await?;
    source.revoke(&token).await?;
    // RFC 7009 section 2.2: the server answers 200 for a token that is already invalid.
    source.revoke(&token).await?;
    assert_eq!(
        (server.revocation_requests(), server.tokens_revoked()),
        (2, 1)
    );
    Ok(())
}

#[tokio::test]
async fn revoke_cached_revokes_the_cached_token_and_drops_it() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server)?;
    let cache = TokenCache::new(source.clone());
    let token = cache.token().await?;

    assert!(source.revoke_cached(&cache).await?, "a token was cached");
    assert!(!server.is_valid(token.secret().expose_secret()));
    assert!(cache.cached().is_none(), "the revoked token is not served");

    // Nothing cached: nothing sent.
    assert!(!source.revoke_cached(&cache).await?);
    assert_eq!(server.revocation_requests(), 1);

    // The cache still works after it: a new token is fetched.
    let next = cache.token().await?;
    assert!(!next.same_as(&token));
    assert!(server.is_valid(next.secret().expose_secret()));
    Ok(())
}

#[tokio::test]
async fn revoke_without_a_revocation_url_is_not_configured_and_sends_nothing() -> TestResult {
    let server = AuthServer::start().await?;
    let endpoint = Endpoint::builder(server.token_url()).build()?;
    let source = ClientCredentials::builder(endpoint, default_client()).build()?;
    assert_eq!(source.revocation_url(), None);
    let token = source.fetch().await?;
    let error = source.revoke(&token).await.expect_err("no endpoint");
    assert!(error.is_not_configured(), "{error}");
    assert!(error.to_string().contains("revocation_url"), "{error}");
    assert_eq!(server.revocation_requests(), 0);
    assert!(server.is_valid(token.secret().expose_secret()));
    Ok(())
}

#[tokio::test]
async fn revocation_retries_a_503_and_succeeds() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server)?;
    let token = source.fetch().await?;
    server.fail_next(1, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));

    source.revoke(&token).await?;
    assert_eq!(server.revocation_requests(), 2, "one 503, one success");
    assert!(!server.is_valid(token.secret().expose_secret()));
    Ok(())
}

#[tokio::test]
async fn revocation_gives_up_on_503s_with_a_transient_error() -> TestResult {
    let server = AuthServer::start().await?;
    let endpoint = endpoint_for(&server)
        .retry(RetryPolicy::new().max_attempts(2))
        .build()?;
    let source = ClientCredentials::builder(endpoint, default_client()).build()?;
    let token = source.fetch().await?;
    server.fail_always(Fault::StatusRetryAfter(StatusCode::SERVICE_UNAVAILABLE, 0));

    let error = source.revoke(&token).await.expect_err("always 503");
    assert!(error.is_transient(), "{error}");
    assert!(!error.is_not_configured());
    assert!(error.to_string().contains("revocation endpoint"), "{error}");
    assert_eq!(server.revocation_requests(), 2);
    assert!(server.is_valid(token.secret().expose_secret()));
    Ok(())
}

/// Revocation reads an error answer as the token request does: 408 is retried, and the
/// codes that need a fix are not, whatever the status.
#[tokio::test]
async fn revocation_retries_as_token_requests_do() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server)?;
    let token = source.fetch().await?;
    server.fail_next(1, Fault::Status(StatusCode::REQUEST_TIMEOUT));
    source.revoke(&token).await?;
    assert_eq!(server.revocation_requests(), 2, "one 408, one success");

    let token = source.fetch().await?;
    for (status, code) in [
        (StatusCode::SERVICE_UNAVAILABLE, "invalid_client"),
        (StatusCode::TOO_MANY_REQUESTS, "unauthorized_client"),
    ] {
        server.fail_always(Fault::oauth_error(status, code));
        let before = server.revocation_requests();
        let error = source.revoke(&token).await.expect_err(code);
        assert_eq!(server.revocation_requests() - before, 1, "{status} {code}");
        assert_eq!(error.oauth_error().map(|oauth| oauth.error()), Some(code));
    }
    server.heal();
    Ok(())
}

#[tokio::test]
async fn wrong_secret_at_revocation_is_permanent_and_never_printed() -> TestResult {
    let server = AuthServer::start().await?;
    let token = source_for(&server)?.fetch().await?;
    let wrong = ClientAuth::secret_basic(AuthServer::DEFAULT_CLIENT_ID, "wr0ng-s3cret")?;
    let wrong = ClientCredentials::builder(endpoint_for(&server).build()?, wrong).build()?;

    let capture = capture_tracing();
    let error = wrong.revoke(&token).await.expect_err("wrong secret");
    assert!(!error.is_transient(), "{error}");
    let oauth = error.oauth_error().expect("an OAuth error response");
    assert!(oauth.is_invalid_client(), "{oauth}");
    assert_eq!(server.revocation_requests(), 1, "not retried");
    let printed = format!(
        "{error} {error:?} {:?} {}",
        error.source(),
        capture.contents()
    );
    assert!(!printed.contains("wr0ng-s3cret"), "{printed}");
    assert!(
        !printed.contains(token.secret().expose_secret()),
        "{printed}"
    );
    assert!(server.is_valid(token.secret().expose_secret()));
    Ok(())
}

#[tokio::test]
async fn insecure_revocation_url_is_refused_at_build() {
    let error = Endpoint::builder("https://auth.example.com/token")
        .revocation_url("http://auth.example.com/revoke")
        .build()
        .expect_err("plain http to a remote host");
    assert!(error.is_insecure_http(), "{error}");
    assert!(error.to_string().contains("revocation URL"), "{error}");
}
