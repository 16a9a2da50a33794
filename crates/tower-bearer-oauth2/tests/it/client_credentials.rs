//! `ClientCredentials` against the testkit's mock authorization server, over real loopback
//! sockets with the default hyper client.

use std::error::Error as _;
use std::time::Duration;

use http::StatusCode;
use secrecy::ExposeSecret;
use tower_bearer::{FetchError, TokenCache, TokenSource};
use tower_bearer_oauth2::{
    ClientAuth, ClientCredentials, ClientCredentialsBuilder, Endpoint, EndpointBuilder, HttpClient,
    OAuthError, RetryPolicy, TokenParams,
};
use tower_bearer_testkit::{capture_tracing, AuthServer, ClientAuthMethod, Fault};

use crate::support::{assert_each_cause_once, default_client, endpoint_error};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const SPECIAL_ID: &str = "my client:1";
const SPECIAL_SECRET: &str = "p@ss:w%rd+ ü";

/// The server's endpoint with one request per fetch: these tests check what a single
/// answer becomes; `retries.rs` covers retries.
fn endpoint_for(server: &AuthServer) -> EndpointBuilder {
    Endpoint::builder(server.token_url()).retry(RetryPolicy::none())
}

/// A source for the server's default client, over [`endpoint_for`].
fn source_for(server: &AuthServer) -> ClientCredentialsBuilder {
    let endpoint = endpoint_for(server).build().expect("a valid endpoint");
    ClientCredentials::builder(endpoint, default_client())
}

fn oauth_error(error: &FetchError) -> &OAuthError {
    error
        .source()
        .and_then(|source| source.downcast_ref::<OAuthError>())
        .unwrap_or_else(|| panic!("no OAuthError source: {error:?}"))
}

#[tokio::test]
async fn basic_auth_gets_a_token() -> TestResult {
    let server = AuthServer::start().await?;
    let token = source_for(&server).build()?.fetch().await?;

    assert!(server.is_valid(token.secret().expose_secret()));
    assert!(token.header_value().to_str()?.starts_with("Bearer "));
    let lifetime = token.expires_at().expect("expires_in is sent") - tokio::time::Instant::now();
    assert!(lifetime > Duration::from_secs(3590) && lifetime <= Duration::from_secs(3600));

    let request = server.last_request().expect("a token request");
    assert_eq!(request.grant_type, "client_credentials");
    assert_eq!(request.client_id.as_deref(), Some("client"));
    assert_eq!(request.auth_method, ClientAuthMethod::Basic);
    assert_eq!(request.scope, None);
    assert_eq!(server.token_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn post_auth_gets_a_token() -> TestResult {
    let server = AuthServer::start().await?;
    let client = ClientAuth::secret_post(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    let token = ClientCredentials::builder(endpoint_for(&server).build()?, client)
        .build()?
        .fetch()
        .await?;

    assert!(server.is_valid(token.secret().expose_secret()));
    let request = server.last_request().expect("a token request");
    assert_eq!(request.auth_method, ClientAuthMethod::Post);
    assert_eq!(request.client_id.as_deref(), Some("client"));
    assert_eq!(
        request.param("client_secret"),
        None,
        "the kit never keeps it"
    );
    Ok(())
}

#[tokio::test]
async fn special_characters_in_id_and_secret_work_with_both_methods() -> TestResult {
    let server = AuthServer::builder()
        .client(SPECIAL_ID, SPECIAL_SECRET)
        .start()
        .await?;
    for (client, seen) in [
        (
            ClientAuth::secret_basic(SPECIAL_ID, SPECIAL_SECRET)?,
            ClientAuthMethod::Basic,
        ),
        (
            ClientAuth::secret_post(SPECIAL_ID, SPECIAL_SECRET)?,
            ClientAuthMethod::Post,
        ),
    ] {
        let method = client.method();
        let source = ClientCredentials::builder(endpoint_for(&server).build()?, client).build()?;
        let token = source
            .fetch()
            .await
            .map_err(|error| format!("{method}: {error}"))?;
        assert!(server.is_valid(token.secret().expose_secret()));
        let request = server.last_request().expect("a token request");
        assert_eq!(request.auth_method, seen);
        assert_eq!(request.client_id.as_deref(), Some(SPECIAL_ID));
    }
    Ok(())
}

#[tokio::test]
async fn scope_audience_resource_and_params_are_sent() -> TestResult {
    let server = AuthServer::start().await?;
    // One `resource`: RFC 8707 allows several, but the mock server refuses any repeated
    // parameter; the unit tests check that repeated ones are all sent.
    let token = source_for(&server)
        .params(
            TokenParams::new()
                .scopes(["orders:read", "orders:write"])
                .audience("https://api.example.com")
                .resource("https://api.example.com/orders")
                .param("tenant", "acme & co"),
        )
        .build()?
        .fetch()
        .await?;
    assert_eq!(token.scope(), Some("orders:read orders:write"));

    let request = server.last_request().expect("a token request");
    assert_eq!(request.scope.as_deref(), Some("orders:read orders:write"));
    assert_eq!(request.param("audience"), Some("https://api.example.com"));
    assert_eq!(
        request.param("resource"),
        Some("https://api.example.com/orders")
    );
    assert_eq!(request.param("tenant"), Some("acme & co"));
    let names: Vec<&str> = request
        .params
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        names,
        ["grant_type", "scope", "audience", "resource", "tenant"]
    );
    Ok(())
}

#[tokio::test]
async fn token_lifetime_comes_from_expires_in() -> TestResult {
    let server = AuthServer::builder()
        .token_lifetime(Duration::from_secs(90))
        .start()
        .await?;
    let token = source_for(&server).build()?.fetch().await?;
    let lifetime = token.expires_at().expect("expires_in is sent") - tokio::time::Instant::now();
    assert!(lifetime > Duration::from_secs(85) && lifetime <= Duration::from_secs(90));
    Ok(())
}

#[tokio::test]
async fn wrong_secret_is_a_permanent_invalid_client() -> TestResult {
    let server = AuthServer::start().await?;
    for client in [
        ClientAuth::secret_basic("client", "not-the-s3cr3t")?,
        ClientAuth::secret_post("client", "not-the-s3cr3t")?,
    ] {
        let source = ClientCredentials::builder(endpoint_for(&server).build()?, client).build()?;
        let error = source.fetch().await.expect_err("wrong secret");
        assert!(error.is_permanent(), "{error}");
        let oauth = oauth_error(&error);
        assert!(oauth.is_invalid_client(), "{oauth}");
        assert_eq!(oauth.status(), StatusCode::UNAUTHORIZED);
        assert!(!oauth.is_transient());
        let printed = format!("{error} / {error:?}");
        assert!(!printed.contains("not-the-s3cr3t"), "{printed}");
        assert!(
            printed.contains("check the client id and secret"),
            "{printed}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn refused_scope_is_a_permanent_invalid_scope() -> TestResult {
    let server = AuthServer::builder().scope_allowed("read").start().await?;
    let error = source_for(&server)
        .params(TokenParams::new().scope("read admin"))
        .build()?
        .fetch()
        .await
        .expect_err("admin is not allowed");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_scope());
    assert!(error.to_string().contains("`read admin`"), "{error}");
    Ok(())
}

#[tokio::test]
async fn injected_oauth_errors_keep_their_code() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server).build()?;
    server.fail_next(
        1,
        Fault::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
    );
    let error = source.fetch().await.expect_err("injected");
    assert!(error.is_permanent());
    assert!(oauth_error(&error).is_invalid_grant());

    server.fail_next(
        1,
        Fault::oauth_error(StatusCode::BAD_REQUEST, "temporarily_unavailable"),
    );
    let error = source.fetch().await.expect_err("injected");
    assert!(error.is_transient(), "{error}");
    assert!(oauth_error(&error).is_transient());

    // Faults were used up: the next request succeeds.
    source.fetch().await?;
    Ok(())
}

#[tokio::test]
async fn unavailable_with_retry_after_is_transient() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server).build()?;

    server.fail_next(
        1,
        Fault::StatusRetryAfter(StatusCode::SERVICE_UNAVAILABLE, 7),
    );
    let error = source.fetch().await.expect_err("503");
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(
        endpoint_error(&error).status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );

    server.fail_next(1, Fault::StatusRetryAfter(StatusCode::TOO_MANY_REQUESTS, 3));
    let error = source.fetch().await.expect_err("429");
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    assert!(error.to_string().contains("rate limiting"), "{error}");

    server.fail_next(1, Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let error = source.fetch().await.expect_err("500");
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.retry_after(), None);
    assert!(endpoint_error(&error).is_unexpected_status());

    source.fetch().await?;
    Ok(())
}

#[tokio::test]
async fn bad_json_is_transient() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_always(Fault::BadJson);
    let source = source_for(&server).build()?;
    let error = source.fetch().await.expect_err("bad JSON");
    assert!(error.is_transient(), "{error}");
    let endpoint = endpoint_error(&error);
    assert!(endpoint.is_invalid_response());
    assert_eq!(endpoint.status(), Some(StatusCode::OK));

    server.heal();
    source.fetch().await?;
    Ok(())
}

#[tokio::test]
async fn dropped_connection_is_transient() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(1, Fault::DropConnection);
    let source = source_for(&server).build()?;
    let error = source.fetch().await.expect_err("dropped");
    assert!(error.is_transient(), "{error}");
    assert!(endpoint_error(&error).is_transport());
    assert!(
        error
            .to_string()
            .contains("cannot reach the token endpoint"),
        "{error}"
    );

    source.fetch().await?;
    Ok(())
}

// Paused time: the server's delay and the client's timeout both run on the tokio clock, so
// the wait is exactly the timeout, however loaded the machine is.
#[tokio::test(start_paused = true)]
async fn timeout_is_honoured() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(1, Fault::Delay(Duration::from_secs(5)));
    let endpoint = endpoint_for(&server)
        .timeout(Duration::from_millis(200))
        .build()?;
    let source = ClientCredentials::builder(endpoint, default_client()).build()?;

    let started = tokio::time::Instant::now();
    let error = source.fetch().await.expect_err("too slow");
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert!(error.is_transient(), "{error}");
    assert!(endpoint_error(&error).is_timeout());
    assert!(error.to_string().contains("timed out"), "{error}");
    let chain = assert_each_cause_once(&error);
    assert_eq!(chain.matches("200ms").count(), 1, "{chain}");
    Ok(())
}

#[tokio::test]
async fn http_to_a_remote_host_is_refused() {
    let error = Endpoint::builder("http://auth.example.com/token")
        .build()
        .expect_err("plain http to a remote host");
    assert!(error.is_insecure_http(), "{error}");
}

#[tokio::test]
async fn tracing_never_shows_the_secret_or_the_token() -> TestResult {
    const SECRET: &str = "tr4cing-s3cr3t";
    let server = AuthServer::builder()
        .client("client", SECRET)
        .start()
        .await?;
    let logs = capture_tracing();

    // A failing fetch: the server rejects a wrong secret (and the wrong secret is a secret too).
    let endpoint = Endpoint::builder(server.token_url()).build()?;
    let wrong = ClientAuth::secret_basic("client", "wr0ng-s3cr3t")?;
    let wrong = ClientCredentials::builder(endpoint.clone(), wrong).build()?;
    let error = wrong.fetch().await.expect_err("wrong secret");
    tracing::warn!(error = %error, detail = ?error, "the test logs the error as an app would");

    // A succeeding fetch through the cache, which logs too.
    let source =
        ClientCredentials::builder(endpoint, ClientAuth::secret_post("client", SECRET)?).build()?;
    let cache = TokenCache::new(source);
    let token = cache.token().await?;
    let access_token = token.secret().expose_secret().to_owned();
    tracing::info!(token = ?token, "the test logs the token as an app would");

    let contents = logs.contents();
    assert!(
        contents.contains("requesting a token"),
        "nothing captured: {contents}"
    );
    for secret in [SECRET, "wr0ng-s3cr3t", access_token.as_str()] {
        assert!(
            !contents.contains(secret),
            "`{secret}` in logs:\n{contents}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_cache_in_front_fetches_once() -> TestResult {
    let server = AuthServer::start().await?;
    let cache = TokenCache::new(source_for(&server).build()?);
    let first = cache.token().await?;
    let second = cache.token().await?;
    assert!(first.same_as(&second));
    assert_eq!(server.token_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn a_custom_http_client_is_used() -> TestResult {
    let server = AuthServer::start().await?;
    let endpoint = endpoint_for(&server)
        .http_client(HttpClient::from_service(tower_bearer_testkit::http_client()))
        .build()?;
    let source = ClientCredentials::builder(endpoint, default_client()).build()?;
    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    Ok(())
}

#[tokio::test]
async fn a_post_client_is_never_tried_with_another_method() -> TestResult {
    let server = AuthServer::builder()
        .client_auth_methods(&[ClientAuthMethod::Basic])
        .start()
        .await?;
    let endpoint = endpoint_for(&server).build()?;
    let client = ClientAuth::secret_post(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    let source = ClientCredentials::builder(endpoint, client).build()?;
    let error = source.fetch().await.unwrap_err();
    assert!(oauth_error(&error).is_invalid_client(), "{error}");
    assert_eq!(server.token_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn each_fetch_is_a_span_with_grant_host_and_outcome_and_no_secret() -> TestResult {
    let logs = capture_tracing();
    let server = AuthServer::start().await?;
    let cache = TokenCache::new(source_for(&server).build()?);
    let token = cache.token().await?;
    let logs = logs.contents();
    assert!(logs.contains("token_fetch"), "{logs}");
    assert!(
        logs.contains(r#"token_request{grant_type="client_credentials" host="127.0.0.1"}"#),
        "{logs}"
    );
    assert!(!logs.contains(token.secret().expose_secret()), "{logs}");
    Ok(())
}
