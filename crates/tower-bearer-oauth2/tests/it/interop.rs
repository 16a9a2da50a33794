//! `ClientCredentials`, `RefreshToken`, revocation, discovery and DPoP (RFC 9449) against a
//! real, independent authorization server: the `oidc-provider` npm package, run by
//! `interop/oidc-provider/server.mjs` on a free loopback port (one server per test).
//!
//! Each test fails, saying what is missing and how to install it, when `node` or the
//! server's npm packages are missing. Tokens are checked with the server itself
//! (introspection, RFC 7662), not with our own parsing.

use std::error::Error as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::task::JoinSet;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_bearer::dpop::DpopKey;
use tower_bearer::{
    BearerAuthLayer, BoxError, CacheConfig, FetchError, RetryOn401Layer, TokenCache, TokenSource,
    TokenType,
};
use tower_bearer_oauth2::{
    AuthMethod, ClientAuth, ClientCredentials, ClientCredentialsBuilder, Discovery, Endpoint,
    EndpointBuilder, HttpClient, OAuthError, RefreshToken, RefreshTokenBuilder, RetryPolicy,
    TokenParams,
};
use tower_bearer_testkit::{http_client, DpopOptions, DpopProofVerifier};

use crate::oidc_provider::{
    Client, OidcProvider, BASIC, DPOP, DPOP_NONCE, DPOP_REFRESH_ID, ODD, POST, REFRESH, RESOURCE,
};

type TestResult = Result<(), BoxError>;

const SCOPES: &str = "api:read api:write";

/// The server's token and revocation endpoints.
fn endpoint_for(server: &OidcProvider) -> EndpointBuilder {
    Endpoint::builder(server.token_url()).revocation_url(server.revocation_url())
}

/// `client` authenticating with `client_secret_basic`.
fn basic(client: Client) -> ClientAuth {
    ClientAuth::secret_basic(client.id, client.secret).expect("a valid client")
}

/// `client` authenticating with `client_secret_post`.
fn post(client: Client) -> ClientAuth {
    ClientAuth::secret_post(client.id, client.secret).expect("a valid client")
}

/// A source for `client` over the server's endpoints.
fn source_as(server: &OidcProvider, client: ClientAuth) -> ClientCredentialsBuilder {
    let endpoint = endpoint_for(server).build().expect("a valid endpoint");
    ClientCredentials::builder(endpoint, client)
}

fn source_for(server: &OidcProvider, client: Client) -> ClientCredentialsBuilder {
    source_as(server, basic(client))
}

/// Counts the token requests a source sends.
#[derive(Clone, Default)]
struct RequestCounter(Arc<AtomicUsize>);

impl RequestCounter {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// The server's endpoints, reached through a plain HTTP client that counts requests.
    fn endpoint(&self, server: &OidcProvider) -> Result<Endpoint, BoxError> {
        Ok(endpoint_for(server)
            .http_client(self.http_client())
            .build()?)
    }

    /// A plain HTTP client that counts the requests it sends.
    fn http_client(&self) -> HttpClient {
        let counter = Arc::clone(&self.0);
        let client = http_client();
        let counting = service_fn(move |request: Request<Full<Bytes>>| {
            counter.fetch_add(1, Ordering::SeqCst);
            client.request(request)
        });
        HttpClient::from_service(counting)
    }
}

/// Asks the server about `token` (RFC 7662), authenticating as [`BASIC`].
async fn introspect(server: &OidcProvider, token: &str) -> Result<Value, BoxError> {
    introspect_at(&server.introspection_url(), token).await
}

async fn introspect_at(introspection_url: &str, token: &str) -> Result<Value, BoxError> {
    let body = post_form(introspection_url, token).await?;
    Ok(serde_json::from_slice(&body)?)
}

/// Revokes `token` at the server (RFC 7009), authenticating as [`BASIC`].
async fn revoke(server: &OidcProvider, token: &str) -> Result<(), BoxError> {
    post_form(&server.revocation_url(), token).await?;
    Ok(())
}

/// POSTs `token=...` as [`BASIC`] and returns the body of the `200 OK` answer.
async fn post_form(url: &str, token: &str) -> Result<Bytes, BoxError> {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    let request = Request::post(url)
        .header("authorization", BASIC.basic_authorization())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from(body))?;
    let response = http_client().request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK {
        return Err(format!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(body)
}

fn oauth_error(error: &FetchError) -> &OAuthError {
    error
        .source()
        .and_then(|source| source.downcast_ref::<OAuthError>())
        .unwrap_or_else(|| panic!("no OAuthError source: {error:?}"))
}

/// Every way an error can be printed: its `Display`, `Debug` and those of its sources.
fn printed(error: &FetchError) -> String {
    let mut printed = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        printed.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    printed
}

fn decode_jwt_part(part: &str) -> Result<Value, BoxError> {
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?)
}

#[tokio::test]
async fn client_secret_basic_token_is_active_at_introspection() -> TestResult {
    let server = OidcProvider::start("client_secret_basic_token_is_active_at_introspection");
    let source = source_for(&server, BASIC).build()?;
    assert_eq!(source.client_auth().method(), AuthMethod::ClientSecretBasic);
    let token = source.fetch().await?;

    assert!(token.header_value().to_str()?.starts_with("Bearer "));
    let lifetime =
        token.expires_at().expect("the server sends expires_in") - tokio::time::Instant::now();
    assert!(
        lifetime <= Duration::from_secs(300) && lifetime > Duration::from_secs(240),
        "{lifetime:?}"
    );

    let introspection = introspect(&server, token.secret().expose_secret()).await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["client_id"], BASIC.id, "{introspection}");
    assert_eq!(introspection["iss"], server.issuer(), "{introspection}");
    Ok(())
}

#[tokio::test]
async fn client_secret_post_token_is_active_at_introspection() -> TestResult {
    let server = OidcProvider::start("client_secret_post_token_is_active_at_introspection");
    let token = source_as(&server, post(POST)).build()?.fetch().await?;

    let introspection = introspect(&server, token.secret().expose_secret()).await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["client_id"], POST.id, "{introspection}");
    Ok(())
}

#[tokio::test]
async fn requested_scopes_are_granted() -> TestResult {
    let server = OidcProvider::start("requested_scopes_are_granted");
    for (requested, client) in [
        (SCOPES, basic(BASIC)),
        ("api:read", basic(BASIC)),
        ("api:write", post(POST)),
    ] {
        let method = client.method();
        let token = source_as(&server, client)
            .params(TokenParams::new().scope(requested))
            .build()?
            .fetch()
            .await?;
        assert_eq!(token.scope(), Some(requested), "{method}");
        let introspection = introspect(&server, token.secret().expose_secret()).await?;
        assert_eq!(introspection["active"], true, "{introspection}");
        assert_eq!(introspection["scope"], requested, "{introspection}");
    }
    Ok(())
}

#[tokio::test]
async fn odd_characters_in_id_and_secret_authenticate_with_basic_and_post() -> TestResult {
    let server =
        OidcProvider::start("odd_characters_in_id_and_secret_authenticate_with_basic_and_post");
    // oidc-provider lets a client registered for Basic use the form body too.
    for client in [basic(ODD), post(ODD)] {
        let method = client.method();
        let token = source_as(&server, client)
            .params(TokenParams::new().scope(SCOPES))
            .build()?
            .fetch()
            .await
            .map_err(|error| format!("{method}: {error}"))?;
        let introspection = introspect(&server, token.secret().expose_secret()).await?;
        assert_eq!(introspection["active"], true, "{method}: {introspection}");
        assert_eq!(
            introspection["client_id"], ODD.id,
            "{method}: {introspection}"
        );
    }

    // The control: the same credentials without the form-urlencoding step (a common bug)
    // are refused, so the success above really depends on RFC 6749 section 2.3.1.
    let raw = STANDARD.encode(format!("{}:{}", ODD.id, ODD.secret));
    let request = Request::post(server.token_url())
        .header("authorization", format!("Basic {raw}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from("grant_type=client_credentials"))?;
    let response = http_client().request(request).await?;
    assert!(response.status().is_client_error(), "{}", response.status());
    Ok(())
}

#[tokio::test]
async fn non_ascii_basic_credentials_are_a_permanent_invalid_request() -> TestResult {
    let server = OidcProvider::start("non_ascii_basic_credentials_are_a_permanent_invalid_request");
    // RFC 6749 Appendix A allows only %x20-7E in a client id or secret, and this server
    // holds Basic credentials to that: what it says must reach the caller as permanent.
    let secret = "sé cr:et%+";
    let error = source_as(&server, ClientAuth::secret_basic("ünïcode id: %+", secret)?)
        .build()?
        .fetch()
        .await
        .expect_err("non-ASCII Basic credentials are refused");
    assert!(error.is_permanent(), "{error}");
    let oauth = oauth_error(&error);
    assert!(oauth.is_invalid_request(), "{oauth}");
    assert_eq!(oauth.status(), StatusCode::BAD_REQUEST);
    assert!(!printed(&error).contains(secret));
    Ok(())
}

#[tokio::test]
async fn wrong_secret_is_a_permanent_invalid_client_error_without_the_secret() -> TestResult {
    let server =
        OidcProvider::start("wrong_secret_is_a_permanent_invalid_client_error_without_the_secret");
    let wrong_secret = "wr0ng-interop-s3cret";
    for (client, auth) in [
        (BASIC, ClientAuth::secret_basic(BASIC.id, wrong_secret)?),
        (POST, ClientAuth::secret_post(POST.id, wrong_secret)?),
    ] {
        let method = auth.method();
        let error = source_as(&server, auth)
            .build()?
            .fetch()
            .await
            .expect_err("a wrong secret is refused");
        assert!(error.is_permanent(), "{method}: {error}");
        let oauth = oauth_error(&error);
        assert!(oauth.is_invalid_client(), "{method}: {oauth}");
        assert_eq!(oauth.status(), StatusCode::UNAUTHORIZED, "{method}");
        let printed = printed(&error);
        assert!(!printed.contains(wrong_secret), "{method}: {printed}");
        assert!(
            printed.contains(client.id),
            "{method}: names the client: {printed}"
        );
    }

    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_sends_one_request_for_a_burst_of_callers_with_a_wrong_secret() -> TestResult {
    let server =
        OidcProvider::start("cache_sends_one_request_for_a_burst_of_callers_with_a_wrong_secret");
    let counter = RequestCounter::default();
    let wrong = ClientAuth::secret_basic(BASIC.id, "wr0ng-interop-s3cret")?;
    let source = ClientCredentials::builder(counter.endpoint(&server)?, wrong).build()?;
    // Remembered long enough that the second round cannot outlive it on a slow machine.
    let config = CacheConfig::new().permanent_error_ttl(Duration::from_secs(600));
    let cache = TokenCache::with_config(source, config);

    let mut callers = JoinSet::new();
    for _ in 0..20 {
        let cache = cache.clone();
        callers.spawn(async move { cache.token().await });
    }
    while let Some(result) = callers.join_next().await {
        let error = result?.expect_err("a wrong secret is refused");
        assert!(error.is_permanent(), "{error}");
        assert!(oauth_error(&error).is_invalid_client(), "{error}");
    }
    let error = cache.token().await.expect_err("still refused");
    assert!(oauth_error(&error).is_invalid_client(), "{error}");
    assert_eq!(counter.count(), 1, "one token request for every caller");
    Ok(())
}

#[tokio::test]
async fn resource_indicator_yields_a_jwt_for_that_audience() -> TestResult {
    let server = OidcProvider::start("resource_indicator_yields_a_jwt_for_that_audience");
    let token = source_for(&server, BASIC)
        .params(TokenParams::new().scope(SCOPES).resource(RESOURCE))
        .build()?
        .fetch()
        .await?;
    let jwt = token.secret().expose_secret();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS in compact form");
    assert!(parts.iter().all(|part| !part.is_empty()));

    let header = decode_jwt_part(parts[0])?;
    assert_eq!(header["typ"], "at+jwt", "RFC 9068: {header}");
    assert_eq!(header["alg"], "RS256", "{header}");
    let claims = decode_jwt_part(parts[1])?;
    assert_eq!(claims["aud"], RESOURCE, "{claims}");
    assert_eq!(claims["iss"], server.issuer(), "{claims}");
    assert_eq!(claims["client_id"], BASIC.id, "{claims}");
    assert_eq!(claims["scope"], SCOPES, "{claims}");
    assert_eq!(token.scope(), Some(SCOPES));
    Ok(())
}

#[tokio::test]
async fn unknown_resource_is_a_permanent_invalid_target() -> TestResult {
    let server = OidcProvider::start("unknown_resource_is_a_permanent_invalid_target");
    let error = source_for(&server, BASIC)
        .params(TokenParams::new().resource("https://unknown.interop.test/"))
        .build()?
        .fetch()
        .await
        .expect_err("the server knows no such resource");
    assert!(error.is_permanent(), "{error}");
    assert_eq!(oauth_error(&error).error(), "invalid_target", "{error}");
    assert!(!printed(&error).contains(BASIC.secret));
    Ok(())
}

#[tokio::test]
async fn revoked_token_is_no_longer_active() -> TestResult {
    let server = OidcProvider::start("revoked_token_is_no_longer_active");
    let token = source_for(&server, BASIC).build()?.fetch().await?;
    let value = token.secret().expose_secret();

    revoke(&server, value).await?;
    let introspection = introspect(&server, value).await?;
    assert_eq!(introspection["active"], false, "{introspection}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stack_makes_one_token_request_for_many_concurrent_calls() -> TestResult {
    let server =
        OidcProvider::start("full_stack_makes_one_token_request_for_many_concurrent_calls");
    let counter = RequestCounter::default();
    let source = ClientCredentials::builder(counter.endpoint(&server)?, basic(BASIC))
        .params(TokenParams::new().scope(SCOPES))
        .build()?;
    let cache = TokenCache::new(source);

    // The API: records the Authorization header of every call.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = {
        let seen = Arc::clone(&seen);
        service_fn(move |request: Request<String>| {
            let seen = Arc::clone(&seen);
            async move {
                let header = request
                    .headers()
                    .get("authorization")
                    .map(|value| value.to_str().unwrap_or_default().to_owned());
                seen.lock().unwrap().push(header);
                Ok::<_, std::convert::Infallible>(Response::new(String::new()))
            }
        })
    };
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(api);

    let calls = 50;
    let mut callers = JoinSet::new();
    for _ in 0..calls {
        let client = client.clone();
        callers.spawn(async move {
            let request = Request::get("http://127.0.0.1/api").body(String::new())?;
            client.oneshot(request).await
        });
    }
    while let Some(result) = callers.join_next().await {
        result?.map_err(|error| format!("a call failed: {error}"))?;
    }

    assert_eq!(counter.count(), 1, "one token request for {calls} calls");
    assert_eq!(cache.stats().fetches, 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), calls);
    let first = seen[0].clone().expect("every call carries a token");
    assert!(seen
        .iter()
        .all(|header| header.as_deref() == Some(first.as_str())));

    let token = first.strip_prefix("Bearer ").expect("a bearer token");
    let introspection = introspect(&server, token).await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["scope"], SCOPES, "{introspection}");
    Ok(())
}

#[tokio::test]
async fn revoked_token_is_replaced_after_the_api_answers_401() -> TestResult {
    let server = OidcProvider::start("revoked_token_is_replaced_after_the_api_answers_401");
    let counter = RequestCounter::default();
    let cache = TokenCache::new(
        ClientCredentials::builder(counter.endpoint(&server)?, basic(BASIC)).build()?,
    );

    // An API that checks each token with the authorization server, as a resource server
    // using introspection does, and records the tokens it was shown.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = {
        let seen = Arc::clone(&seen);
        let introspection_url = server.introspection_url();
        service_fn(move |request: Request<String>| {
            let seen = Arc::clone(&seen);
            let introspection_url = introspection_url.clone();
            async move {
                let token = request
                    .headers()
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .unwrap_or_default()
                    .to_owned();
                let active = introspect_at(&introspection_url, &token).await?["active"] == true;
                seen.lock().unwrap().push(token);
                let mut response = Response::new(String::new());
                if !active {
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                    response.headers_mut().insert(
                        "www-authenticate",
                        http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                    );
                }
                Ok::<_, BoxError>(response)
            }
        })
    };
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(api);
    let call = || async {
        let request = Request::get("http://127.0.0.1/api").body(String::new())?;
        client.clone().oneshot(request).await
    };

    assert_eq!(call().await?.status(), StatusCode::OK);
    let first = seen.lock().unwrap()[0].clone();
    revoke(&server, &first).await?;
    assert_eq!(
        call().await?.status(),
        StatusCode::OK,
        "replayed with a new token"
    );

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        3,
        "the first call, the rejected one and its replay"
    );
    assert_eq!(seen[1], first);
    assert_ne!(seen[2], first);
    assert_eq!(counter.count(), 2, "one token request after the 401");
    Ok(())
}

#[tokio::test]
async fn revoke_cached_token_then_introspection_says_inactive() -> TestResult {
    let server = OidcProvider::start("revoke_cached_token_then_introspection_says_inactive");
    for client in [basic(BASIC), post(POST)] {
        let method = client.method();
        let source = source_as(&server, client).build()?;
        let cache = TokenCache::new(source.clone());
        let token = cache.token().await?;
        let value = token.secret().expose_secret();
        let introspection = introspect(&server, value).await?;
        assert_eq!(introspection["active"], true, "{method}: {introspection}");

        assert!(source.revoke_cached(&cache).await?, "{method}");
        assert!(cache.cached().is_none(), "{method}");
        let introspection = introspect(&server, value).await?;
        assert_eq!(introspection["active"], false, "{method}: {introspection}");

        // Revoking it again is still a success (RFC 7009 section 2.2).
        source.revoke(&token).await?;
    }
    Ok(())
}

#[tokio::test]
async fn revocation_with_a_wrong_secret_is_invalid_client() -> TestResult {
    let server = OidcProvider::start("revocation_with_a_wrong_secret_is_invalid_client");
    let token = source_for(&server, BASIC).build()?.fetch().await?;
    let wrong = source_as(
        &server,
        ClientAuth::secret_basic(BASIC.id, "wr0ng-interop-s3cret")?,
    )
    .build()?;
    let error = wrong.revoke(&token).await.expect_err("a wrong secret");
    assert!(!error.is_transient(), "{error}");
    let oauth = error.oauth_error().expect("an OAuth error response");
    assert!(oauth.is_invalid_client(), "{oauth}");
    assert!(!format!("{error} {error:?}").contains("wr0ng-interop-s3cret"));
    let introspection = introspect(&server, token.secret().expose_secret()).await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    Ok(())
}

#[tokio::test]
async fn discovery_from_the_issuer_then_a_token_and_its_revocation() -> TestResult {
    let server = OidcProvider::start("discovery_from_the_issuer_then_a_token_and_its_revocation");
    let metadata = Discovery::new().fetch(server.issuer()).await?;
    assert_eq!(metadata.issuer(), server.issuer());
    assert_eq!(metadata.token_endpoint(), server.token_url());
    assert_eq!(
        metadata.revocation_endpoint(),
        Some(server.revocation_url().as_str())
    );
    assert_eq!(
        metadata.introspection_endpoint(),
        Some(server.introspection_url().as_str())
    );
    for method in ["client_secret_basic", "client_secret_post"] {
        assert!(
            metadata
                .token_endpoint_auth_methods_supported()
                .iter()
                .any(|supported| supported == method),
            "{method}: {metadata:?}"
        );
    }

    let client = metadata.client_secret_auth(BASIC.id, BASIC.secret)?;
    let source = ClientCredentials::builder(metadata.endpoint().build()?, client)
        .params(TokenParams::new().scope(SCOPES))
        .build()?;
    assert_eq!(source.client_auth().method(), AuthMethod::ClientSecretBasic);
    let token = source.fetch().await?;
    let value = token.secret().expose_secret();
    let introspection_url = metadata.introspection_endpoint().expect("advertised");
    let introspection = introspect_at(introspection_url, value).await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["scope"], SCOPES, "{introspection}");

    source.revoke(&token).await?;
    let introspection = introspect_at(introspection_url, value).await?;
    assert_eq!(introspection["active"], false, "{introspection}");
    Ok(())
}

#[tokio::test]
async fn discovery_refuses_an_issuer_spelled_differently() -> TestResult {
    let server = OidcProvider::start("discovery_refuses_an_issuer_spelled_differently");
    let error = Discovery::new()
        .fetch(&format!("{}/", server.issuer()))
        .await
        .expect_err("the trailing slash makes another issuer");
    assert!(
        error.is_issuer_mismatch() || error.is_not_found(),
        "{error}"
    );
    Ok(())
}

/// A refresh token for [`REFRESH`], from the interop server's test-only seeding path.
async fn seed_refresh_token(server: &OidcProvider) -> Result<String, BoxError> {
    seed_refresh_token_at(&server.seed_refresh_token_url()).await
}

/// A refresh token from the interop server's test-only seeding path at `url`.
async fn seed_refresh_token_at(url: &str) -> Result<String, BoxError> {
    let request = Request::post(url).body(Full::default())?;
    let response = http_client().request(request).await?;
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
    if status != StatusCode::OK {
        return Err(format!("seeding a refresh token failed: {status} {body}").into());
    }
    Ok(body["refresh_token"]
        .as_str()
        .ok_or("no refresh_token in the seeding answer")?
        .to_owned())
}

fn refresh_source(server: &OidcProvider, refresh_token: &str) -> RefreshTokenBuilder {
    let endpoint = endpoint_for(server).build().expect("a valid endpoint");
    RefreshToken::builder(endpoint, basic(REFRESH), refresh_token)
}

#[tokio::test]
async fn refresh_rotates_and_the_rotated_away_refresh_token_is_inactive() -> TestResult {
    let server =
        OidcProvider::start("refresh_rotates_and_the_rotated_away_refresh_token_is_inactive");
    let seeded = seed_refresh_token(&server).await?;
    let rotations = Arc::new(Mutex::new(Vec::new()));
    let hook_seen = Arc::clone(&rotations);
    let source = refresh_source(&server, &seeded)
        .on_rotate(move |new| {
            hook_seen
                .lock()
                .unwrap()
                .push(new.expose_secret().to_owned())
        })
        .build()?;

    let mut presented = seeded;
    for round in 1..=2 {
        let token = source.fetch().await?;
        assert_eq!(token.scope(), Some(SCOPES), "round {round}");
        let introspection = introspect(&server, token.secret().expose_secret()).await?;
        assert_eq!(
            introspection["active"], true,
            "round {round}: {introspection}"
        );
        assert_eq!(introspection["client_id"], REFRESH.id, "{introspection}");

        let current = source.refresh_token().expose_secret().to_owned();
        assert_ne!(current, presented, "round {round}: rotated");
        assert_eq!(
            rotations.lock().unwrap().len(),
            round,
            "one hook call per rotation"
        );
        assert_eq!(rotations.lock().unwrap().last(), Some(&current));
        let old = introspect(&server, &presented).await?;
        assert_eq!(old["active"], false, "round {round}: {old}");
        let new = introspect(&server, &current).await?;
        assert_eq!(new["active"], true, "round {round}: {new}");
        assert_eq!(new["client_id"], REFRESH.id, "{new}");
        presented = current;
    }
    Ok(())
}

#[tokio::test]
async fn replaying_a_rotated_away_refresh_token_revokes_the_grant() -> TestResult {
    let server = OidcProvider::start("replaying_a_rotated_away_refresh_token_revokes_the_grant");
    // What a client that retried a refresh whose answer it lost would do: the server takes
    // it as theft (reuse detection) and revokes the grant. This is why RefreshToken does not
    // retry such failures by default.
    let seeded = seed_refresh_token(&server).await?;
    let source = refresh_source(&server, &seeded).build()?;
    source.fetch().await?;

    let replay = refresh_source(&server, &seeded)
        .build()?
        .fetch()
        .await
        .expect_err("a rotated-away refresh token");
    assert!(replay.is_permanent(), "{replay}");
    assert!(oauth_error(&replay).is_invalid_grant(), "{replay}");
    assert!(!printed(&replay).contains(&seeded));

    let error = source.fetch().await.expect_err("the grant was revoked");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    assert!(!printed(&error).contains(source.refresh_token().expose_secret()));
    Ok(())
}

#[tokio::test]
async fn revoked_refresh_token_is_inactive_and_refresh_fails_with_invalid_grant() -> TestResult {
    let server = OidcProvider::start(
        "revoked_refresh_token_is_inactive_and_refresh_fails_with_invalid_grant",
    );
    let metadata = Discovery::new().fetch(server.issuer()).await?;
    let seeded = seed_refresh_token(&server).await?;
    let client = metadata.client_secret_auth(REFRESH.id, REFRESH.secret)?;
    let source = RefreshToken::builder(metadata.endpoint().build()?, client, seeded).build()?;
    let cache = TokenCache::new(source.clone());
    let token = cache.token().await?;
    let current = source.refresh_token().expose_secret().to_owned();

    source.revoke_refresh_token().await?;
    let introspection = introspect(&server, &current).await?;
    assert_eq!(introspection["active"], false, "{introspection}");
    // RFC 7009 section 2.1: revoking the refresh token revokes the grant's access tokens.
    let introspection = introspect(&server, token.secret().expose_secret()).await?;
    assert_eq!(introspection["active"], false, "{introspection}");

    let error = source.fetch().await.expect_err("revoked");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    Ok(())
}

#[tokio::test]
async fn private_key_jwt_with_rs256_and_es256_gets_tokens_and_revokes_them() -> TestResult {
    use tower_bearer_oauth2::PrivateKey;
    use tower_bearer_testkit::TestKey;

    let keys = [
        ("interop-jwt-rs256", TestKey::rs256()),
        ("interop-jwt-es256", TestKey::es256()),
    ];
    let clients: Vec<Value> = keys
        .iter()
        .map(|(id, key)| {
            serde_json::json!({
                "client_id": id,
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": key.algorithm(),
                "jwks": { "keys": [key.public_jwk()] },
            })
        })
        .collect();
    let server = OidcProvider::start_with_clients(
        "private_key_jwt_with_rs256_and_es256_gets_tokens_and_revokes_them",
        &clients,
    );
    for (id, key) in &keys {
        let private = match key.algorithm() {
            "RS256" => PrivateKey::rs256_from_pem(key.pkcs8_pem())?,
            _ => PrivateKey::es256_from_pem(key.pkcs8_pem())?,
        }
        .key_id(key.key_id());
        for audience in [None, Some(server.issuer().to_owned())] {
            let mut endpoint = endpoint_for(&server);
            if let Some(audience) = &audience {
                endpoint = endpoint.assertion_audience(audience.as_str());
            }
            let client = ClientAuth::private_key_jwt(*id, private.clone())?;
            let source = ClientCredentials::builder(endpoint.build()?, client)
                .params(TokenParams::new().scope(SCOPES))
                .build()?;
            let token = source
                .fetch()
                .await
                .map_err(|error| format!("{id} (aud {audience:?}): {error}"))?;
            let value = token.secret().expose_secret();
            let introspection = introspect(&server, value).await?;
            assert_eq!(introspection["active"], true, "{id}: {introspection}");
            assert_eq!(introspection["client_id"], *id, "{introspection}");
            assert_eq!(introspection["scope"], SCOPES, "{introspection}");

            source.revoke(&token).await?;
            let introspection = introspect(&server, value).await?;
            assert_eq!(introspection["active"], false, "{id}: {introspection}");
        }
    }

    // The ES256 client, signing with a key the server does not know.
    let stranger = PrivateKey::es256_from_pem(TestKey::es256().pkcs8_pem())?;
    let error = source_as(&server, ClientAuth::private_key_jwt(keys[1].0, stranger)?)
        .build()?
        .fetch()
        .await
        .expect_err("an unregistered key");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_client(), "{error}");
    Ok(())
}

/// Introspection's word on a DPoP-bound access token: active, of type DPoP, bound to `key`.
async fn assert_bound_at_introspection(
    server: &OidcProvider,
    token: &tower_bearer::Token,
    key: &DpopKey,
) -> TestResult {
    assert_eq!(token.token_type(), &TokenType::DPoP);
    assert_eq!(
        token.dpop_key().map(DpopKey::thumbprint),
        Some(key.thumbprint())
    );
    let introspection = introspect(server, token.secret().expose_secret()).await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["token_type"], "DPoP", "{introspection}");
    assert_eq!(
        introspection["cnf"]["jkt"],
        key.thumbprint(),
        "{}: {introspection}",
        key.algorithm()
    );
    Ok(())
}

#[tokio::test]
async fn dpop_client_credentials_token_is_bound_to_the_key_at_introspection() -> TestResult {
    let server =
        OidcProvider::start("dpop_client_credentials_token_is_bound_to_the_key_at_introspection");
    for key in [DpopKey::generate_es256()?, DpopKey::generate_ed25519()?] {
        let counter = RequestCounter::default();
        let client = basic(DPOP).dpop(key.clone());
        let source = ClientCredentials::builder(counter.endpoint(&server)?, client)
            .params(TokenParams::new().scope(SCOPES))
            .build()?;
        let token = source.fetch().await?;
        assert_bound_at_introspection(&server, &token, &key).await?;
        assert_eq!(counter.count(), 1, "{}: no nonce required", key.algorithm());
    }

    // The client is registered for DPoP-bound tokens only: without a key it gets none.
    let error = source_for(&server, DPOP)
        .build()?
        .fetch()
        .await
        .expect_err("no proof");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    Ok(())
}

#[tokio::test]
async fn dpop_nonce_required_at_the_token_endpoint_costs_one_retry() -> TestResult {
    let server = OidcProvider::start("dpop_nonce_required_at_the_token_endpoint_costs_one_retry");
    let key = DpopKey::generate_es256()?;
    let counter = RequestCounter::default();
    // One attempt per fetch: the nonce retry is not one of the policy's.
    let endpoint = endpoint_for(&server)
        .retry(RetryPolicy::none())
        .http_client(counter.http_client())
        .build()?;
    let source =
        ClientCredentials::builder(endpoint, basic(DPOP_NONCE).dpop(key.clone())).build()?;
    let token_url: http::Uri = server.token_url().parse()?;

    let token = source.fetch().await?;
    assert_bound_at_introspection(&server, &token, &key).await?;
    assert_eq!(
        counter.count(),
        2,
        "use_dpop_nonce, then the retry with the nonce"
    );
    assert!(key.nonce_for(&token_url).is_some(), "the nonce is kept");

    let token = source.fetch().await?;
    assert_bound_at_introspection(&server, &token, &key).await?;
    assert_eq!(counter.count(), 3, "the kept nonce is sent at once");
    Ok(())
}

#[tokio::test]
async fn dpop_refresh_keeps_the_binding_and_another_key_is_refused() -> TestResult {
    let server = OidcProvider::start("dpop_refresh_keeps_the_binding_and_another_key_is_refused");
    let key = DpopKey::generate_ed25519()?;
    let seeded =
        seed_refresh_token_at(&server.seed_bound_refresh_token_url(key.thumbprint())).await?;
    let client = || ClientAuth::public(DPOP_REFRESH_ID);
    let endpoint = || endpoint_for(&server).build();
    let source =
        RefreshToken::builder(endpoint()?, client().dpop(key.clone()), seeded.as_str()).build()?;

    let mut presented = seeded;
    for round in 1..=2 {
        let token = source.fetch().await?;
        assert_bound_at_introspection(&server, &token, &key).await?;
        let current = source.refresh_token().expose_secret().to_owned();
        assert_ne!(current, presented, "round {round}: rotated");
        let introspection = introspect(&server, &current).await?;
        assert_eq!(
            introspection["active"], true,
            "round {round}: {introspection}"
        );
        assert_eq!(
            introspection["cnf"]["jkt"],
            key.thumbprint(),
            "round {round}: the rotated refresh token stays bound: {introspection}"
        );
        presented = current;
    }

    let other = DpopKey::generate_es256()?;
    let error = RefreshToken::builder(endpoint()?, client().dpop(other), presented.as_str())
        .build()?
        .fetch()
        .await
        .expect_err("a refresh token bound to another key");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    assert!(!printed(&error).contains(&presented));
    // The refusal did not use the refresh token up.
    let token = source.fetch().await?;
    assert_bound_at_introspection(&server, &token, &key).await?;
    Ok(())
}

/// A resource server of the test's own on 127.0.0.1: it takes `Authorization: DPoP
/// <token>`, asks the interop server about the token (introspection), and checks the
/// request's proof with the test kit's verifier against the token's `cnf.jkt` (RFC 9449
/// section 7). 200 when all holds, 401 with a `DPoP` challenge otherwise.
async fn start_resource_server(server: &OidcProvider) -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let verifier = Arc::new(DpopProofVerifier::new(DpopOptions::new()));
    let introspection_url = server.introspection_url();
    let own_origin = origin.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let verifier = Arc::clone(&verifier);
            let introspection_url = introspection_url.clone();
            let origin = own_origin.clone();
            let handler =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let verifier = Arc::clone(&verifier);
                    let introspection_url = introspection_url.clone();
                    let uri = format!("{origin}{}", request.uri().path());
                    async move {
                        let refusal =
                            check_dpop_request(&verifier, &introspection_url, &uri, &request).await;
                        let mut response = Response::new(Full::new(Bytes::new()));
                        if let Err(error) = refusal {
                            *response.status_mut() = StatusCode::UNAUTHORIZED;
                            let challenge = format!(r#"DPoP error="{error}", algs="ES256 EdDSA""#);
                            response.headers_mut().insert(
                                "www-authenticate",
                                challenge.parse().expect("visible ASCII"),
                            );
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, handler)
                    .await;
            });
        }
    });
    Ok(origin)
}

/// What the resource server checks; the OAuth error code of the first check that fails.
async fn check_dpop_request<B>(
    verifier: &DpopProofVerifier,
    introspection_url: &str,
    uri: &str,
    request: &Request<B>,
) -> Result<(), &'static str> {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("DPoP "))
        .ok_or("invalid_token")?;
    let introspection = introspect_at(introspection_url, token)
        .await
        .map_err(|_| "invalid_token")?;
    let bound_to = introspection["cnf"]["jkt"].as_str();
    if introspection["active"] != true || bound_to.is_none() {
        return Err("invalid_token");
    }
    let proof_key = verifier
        .verify(request.method(), uri, request.headers(), Some(token))
        .map_err(|_| "invalid_dpop_proof")?;
    if Some(proof_key.as_str()) != bound_to {
        return Err("invalid_dpop_proof");
    }
    Ok(())
}

#[tokio::test]
async fn dpop_bound_token_is_accepted_with_its_proof_and_refused_without() -> TestResult {
    let server =
        OidcProvider::start("dpop_bound_token_is_accepted_with_its_proof_and_refused_without");
    let key = DpopKey::generate_es256()?;
    let token = source_as(&server, basic(DPOP).dpop(key.clone()))
        .build()?
        .fetch()
        .await?;
    let token = token.secret().expose_secret();
    let api = start_resource_server(&server).await?;
    let uri: http::Uri = format!("{api}/orders?page=2").parse()?;
    let call = |proof: Option<http::HeaderValue>| {
        let uri = uri.clone();
        async move {
            let mut request = Request::get(uri).header("authorization", format!("DPoP {token}"));
            if let Some(proof) = proof {
                request = request.header("dpop", proof);
            }
            let response = http_client()
                .request(request.body(Full::<Bytes>::default())?)
                .await?;
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            Ok::<_, BoxError>((response.status(), challenge))
        }
    };

    let proof = key.proof(&http::Method::GET, &uri, Some(token), None)?;
    assert_eq!(
        call(Some(proof)).await?,
        (StatusCode::OK, None),
        "with its proof"
    );

    let (status, challenge) = call(None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "without a proof");
    let challenge = challenge.expect("a DPoP challenge");
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");

    // A proof with another key, or for another token, does not do either.
    let stranger = DpopKey::generate_es256()?;
    let proof = stranger.proof(&http::Method::GET, &uri, Some(token), None)?;
    assert_eq!(
        call(Some(proof)).await?.0,
        StatusCode::UNAUTHORIZED,
        "another key"
    );
    let proof = key.proof(&http::Method::GET, &uri, Some("another-token"), None)?;
    assert_eq!(
        call(Some(proof)).await?.0,
        StatusCode::UNAUTHORIZED,
        "another token"
    );
    Ok(())
}
