//! `ClientAuth::secret_auto` against the testkit's mock authorization server: Basic first,
//! post once after a 400 or 401 `invalid_client`, what worked shared by every clone, under
//! concurrency, faults and DPoP nonces; counted per request and method on the server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::service_fn;
use tower_bearer::dpop::DpopKey;
use tower_bearer::{BoxError, FetchError, TokenCache, TokenSource};
use tower_bearer_oauth2::{
    AuthMethod, ClientAuth, ClientCredentials, Endpoint, EndpointBuilder, HttpClient, RetryPolicy,
};
use tower_bearer_testkit::{
    http_client, AuthServer, ClientAuthMethod, DpopNoncePolicy, DpopOptions, Fault,
};

use crate::support::{oauth_error, TestResult};

/// The server's endpoint with one request per fetch, so each count is one fetch's.
fn endpoint_for(server: &AuthServer) -> EndpointBuilder {
    Endpoint::builder(server.token_url()).retry(RetryPolicy::none())
}

/// The default client with `secret_auto` and `secret`.
fn auto_client(secret: &str) -> ClientAuth {
    ClientAuth::secret_auto(AuthServer::DEFAULT_CLIENT_ID, secret).expect("id and secret")
}

/// A source for the default client with `secret_auto`, against `server`.
fn auto_source(server: &AuthServer, secret: &str) -> ClientCredentials {
    let endpoint = endpoint_for(server).build().expect("a valid endpoint");
    ClientCredentials::builder(endpoint, auto_client(secret))
        .build()
        .expect("a valid source")
}

/// How many requests to `/token` sent the client secret, Basic or post.
fn secret_sends(server: &AuthServer) -> usize {
    server
        .token_auth_methods()
        .iter()
        .filter(|method| matches!(method, ClientAuthMethod::Basic | ClientAuthMethod::Post))
        .count()
}

fn count(server: &AuthServer, method: ClientAuthMethod) -> usize {
    server
        .token_auth_methods()
        .iter()
        .filter(|sent| **sent == method)
        .count()
}

#[tokio::test]
async fn auto_detect_tries_post_once_after_basic_is_refused_and_remembers() -> TestResult {
    let server = AuthServer::builder()
        .client_auth_methods(&[ClientAuthMethod::Post])
        .start()
        .await?;
    let source = auto_source(&server, AuthServer::DEFAULT_CLIENT_SECRET);
    source.fetch().await?;
    assert_eq!(server.token_requests(), 2, "Basic refused, then post");
    assert_eq!(
        server.last_request().unwrap().auth_method,
        ClientAuthMethod::Post
    );
    // Remembered, by the source and the clones that share its client: no more Basic.
    for _ in 0..3 {
        source.clone().fetch().await?;
    }
    assert_eq!(server.token_requests(), 5);
    assert_eq!(
        source.client_auth().method(),
        tower_bearer_oauth2::AuthMethod::ClientSecretPost
    );
    Ok(())
}

#[tokio::test]
async fn auto_detect_keeps_basic_when_the_server_takes_it() -> TestResult {
    let server = AuthServer::start().await?;
    let source = auto_source(&server, AuthServer::DEFAULT_CLIENT_SECRET);
    source.fetch().await?;
    source.fetch().await?;
    assert_eq!(server.token_requests(), 2, "one request per fetch");
    assert_eq!(
        server.last_request().unwrap().auth_method,
        ClientAuthMethod::Basic
    );
    Ok(())
}

#[tokio::test]
async fn auto_detect_with_a_wrong_secret_costs_one_extra_request_and_stays_invalid_client(
) -> TestResult {
    let server = AuthServer::start().await?;
    let source = auto_source(&server, "wrong-secret");
    let error = source.fetch().await.unwrap_err();
    assert!(
        error.is_permanent() && oauth_error(&error).is_invalid_client(),
        "{error}"
    );
    assert_eq!(
        server.token_requests(),
        2,
        "Basic, then post once; no third method"
    );
    // Nothing worked, so nothing is remembered; through a cache the permanent error is
    // remembered instead, so a burst of callers costs no more.
    let cache = TokenCache::new(source);
    for _ in 0..10 {
        assert!(cache.token().await.is_err());
    }
    assert_eq!(server.token_requests(), 4);
    Ok(())
}

/// How many sources share one `secret_auto` client in the cold-start test.
const SOURCES: usize = 12;

/// What [`cold_start_gate`] has seen go by.
#[derive(Clone, Copy, Debug, Default)]
struct GateSeen {
    /// Answers refusing a Basic request with 401.
    basic_refused: usize,
    /// Whether any token was issued.
    issued: bool,
}

/// An HTTP client that makes the cold-start race certain, without timing: it holds every
/// 401 answer to a Basic request until `sources` of them have arrived, so every source
/// sent Basic before any could learn post; then it lets the first one through, and the
/// others only once a token has been issued, so they read their refusal after that source
/// learned post.
fn cold_start_gate(sources: usize) -> HttpClient {
    let seen = Arc::new(watch::Sender::new(GateSeen::default()));
    let client = http_client();
    let gate = service_fn(move |request: Request<Full<Bytes>>| {
        let (seen, client) = (Arc::clone(&seen), client.clone());
        async move {
            let sent_basic = request
                .headers()
                .get(AUTHORIZATION)
                .is_some_and(|value| value.as_bytes().starts_with(b"Basic "));
            let response = client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            if parts.status == StatusCode::OK {
                seen.send_modify(|seen| seen.issued = true);
            }
            if sent_basic && parts.status == StatusCode::UNAUTHORIZED {
                let mut first = false;
                seen.send_modify(|seen| {
                    first = seen.basic_refused == 0;
                    seen.basic_refused += 1;
                });
                seen.subscribe()
                    .wait_for(|seen| seen.basic_refused >= sources && (first || seen.issued))
                    .await?;
            }
            Ok::<_, BoxError>(Response::from_parts(parts, Full::new(body)))
        }
    });
    HttpClient::from_service(gate)
}

#[tokio::test]
async fn concurrent_sources_at_a_cold_start_all_get_a_token_with_at_most_two_secret_sends_each(
) -> TestResult {
    let server = AuthServer::builder()
        .client_auth_methods(&[ClientAuthMethod::Post])
        .start()
        .await?;
    let endpoint = endpoint_for(&server)
        .http_client(cold_start_gate(SOURCES))
        .build()?;
    let client = auto_client(AuthServer::DEFAULT_CLIENT_SECRET);
    let mut fetches = JoinSet::new();
    for _ in 0..SOURCES {
        let source = ClientCredentials::builder(endpoint.clone(), client.clone()).build()?;
        fetches.spawn(async move { source.fetch().await });
    }
    // Bounded: the gate opens by itself once a token is issued, or this fails.
    let results = tokio::time::timeout(Duration::from_secs(60), fetches.join_all())
        .await
        .expect("every fetch ends");
    let failed: Vec<&FetchError> = results
        .iter()
        .filter_map(|result| result.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {SOURCES} failed: {failed:?}",
        failed.len()
    );

    // Measured: each source sent Basic once (refused) and post once (issued), 24 in all.
    assert_eq!(count(&server, ClientAuthMethod::Basic), SOURCES);
    assert_eq!(count(&server, ClientAuthMethod::Post), SOURCES);
    assert_eq!(
        server.token_requests(),
        2 * SOURCES as u64,
        "at most 2 per source"
    );
    assert_eq!(secret_sends(&server), 2 * SOURCES);
    assert_eq!(client.method(), AuthMethod::ClientSecretPost);

    // What was learned is shared: another source on the same client sends post at once.
    let late = ClientCredentials::builder(endpoint, client).build()?;
    late.fetch().await?;
    assert_eq!(server.token_requests(), 2 * SOURCES as u64 + 1);
    assert_eq!(
        server.token_auth_methods().last(),
        Some(&ClientAuthMethod::Post)
    );
    Ok(())
}

#[tokio::test]
async fn only_a_400_or_401_invalid_client_switches_to_post_never_a_5xx() -> TestResult {
    // A server that takes both methods, behind something that answers 5xx with a body
    // that happens to say `invalid_client`.
    let server = AuthServer::start().await?;
    let source = auto_source(&server, AuthServer::DEFAULT_CLIENT_SECRET);
    for status in [StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE] {
        server.fail_next(1, Fault::oauth_error(status, "invalid_client"));
        let error = source.fetch().await.expect_err("the injected answer");
        assert!(oauth_error(&error).is_invalid_client(), "{error}");
        assert_eq!(source.client_auth().method(), AuthMethod::ClientSecretBasic);
    }
    assert_eq!(
        server.token_auth_methods(),
        [ClientAuthMethod::Basic, ClientAuthMethod::Basic],
        "no post after a 5xx"
    );
    source.fetch().await?;
    assert_eq!(
        server.last_request().unwrap().auth_method,
        ClientAuthMethod::Basic,
        "the next request still uses Basic"
    );
    assert_eq!(server.token_requests(), 3);

    // The same body with 400 is the server refusing Basic (RFC 6749 section 5.2): post
    // once, and remembered.
    let server = AuthServer::start().await?;
    let source = auto_source(&server, AuthServer::DEFAULT_CLIENT_SECRET);
    server.fail_next(
        1,
        Fault::oauth_error(StatusCode::BAD_REQUEST, "invalid_client"),
    );
    source.fetch().await?;
    assert_eq!(
        server.token_auth_methods(),
        [ClientAuthMethod::Basic, ClientAuthMethod::Post]
    );
    assert_eq!(source.client_auth().method(), AuthMethod::ClientSecretPost);
    Ok(())
}

/// A post-only server that requires DPoP nonces as `policy` says.
async fn post_only_nonce_server(policy: DpopNoncePolicy) -> std::io::Result<AuthServer> {
    AuthServer::builder()
        .client_auth_methods(&[ClientAuthMethod::Post])
        .dpop(DpopOptions::new().require_nonce(policy))
        .start()
        .await
}

/// A source for the default client authenticating as `client` with a new DPoP key, with
/// the default retry policy: nothing here is retried by it, and it must not multiply.
fn dpop_source(server: &AuthServer, client: ClientAuth) -> ClientCredentials {
    let key = DpopKey::generate_es256().expect("a new key");
    let endpoint = Endpoint::builder(server.token_url())
        .build()
        .expect("a valid endpoint");
    ClientCredentials::builder(endpoint, client.dpop(key))
        .build()
        .expect("a valid source")
}

#[tokio::test]
async fn with_dpop_nonces_auto_detect_sends_the_secret_at_most_once_more_than_basic() -> TestResult
{
    let basic = ClientAuth::secret_basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    for (policy, auto_gets_a_token) in [
        // One nonce for good: the post request reuses the one the Basic requests learned.
        (DpopNoncePolicy::new(), true),
        // Each nonce is good for one accepted proof and no longer: the refused Basic
        // request used it up, the server sent no new one with its 401, so the post request
        // is refused for its nonce, and the attempt's one nonce replay is spent.
        (
            DpopNoncePolicy::new()
                .rotate_after_uses(1)
                .previous_accepted_for(Duration::ZERO),
            false,
        ),
    ] {
        let server = post_only_nonce_server(policy.clone()).await?;
        let error = dpop_source(&server, basic.clone()).fetch().await;
        assert!(oauth_error(&error.unwrap_err()).is_invalid_client());
        let basic_sends = secret_sends(&server);
        assert_eq!(basic_sends, 2, "no nonce, then the nonce; refused");

        let server = post_only_nonce_server(policy).await?;
        let source = dpop_source(&server, auto_client(AuthServer::DEFAULT_CLIENT_SECRET));
        let fetched = source.fetch().await;
        let auto_sends = secret_sends(&server);
        assert!(
            auto_sends <= basic_sends + 1,
            "secret_auto sent the secret {auto_sends} times, secret_basic {basic_sends}: \
             {:?}",
            server.token_auth_methods()
        );
        assert_eq!(
            server.token_auth_methods(),
            [
                ClientAuthMethod::Basic,
                ClientAuthMethod::Basic,
                ClientAuthMethod::Post
            ],
            "Basic without a nonce, Basic with it, then post once"
        );
        assert_eq!(fetched.is_ok(), auto_gets_a_token, "{fetched:?}");
        if let Err(error) = fetched {
            // The nonce it was refused for is kept, so the next fetch can do better.
            assert!(error.is_transient(), "{error}");
            assert!(oauth_error(&error).is_use_dpop_nonce(), "{error}");
            let next = source.fetch().await;
            assert!(next.is_ok(), "{next:?}");
            // Basic with the kept nonce, which it uses up; post, refused for the nonce and
            // replayed once with the new one: within the same bound of 3.
            assert_eq!(
                server.token_auth_methods()[auto_sends..],
                [
                    ClientAuthMethod::Basic,
                    ClientAuthMethod::Post,
                    ClientAuthMethod::Post
                ]
            );
        }
        // Learned: one request with post from now on.
        let before = secret_sends(&server);
        source.fetch().await?;
        assert_eq!(secret_sends(&server) - before, 1);
        assert_eq!(
            server.token_auth_methods().last(),
            Some(&ClientAuthMethod::Post)
        );
    }
    Ok(())
}
