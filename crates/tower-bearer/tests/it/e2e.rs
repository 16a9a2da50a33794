//! The whole client stack against the testkit's authorization server and API, over real
//! sockets on 127.0.0.1: the counts the core promises.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use http_body_util::Full;
use tokio::sync::Barrier;

use http::StatusCode;
use tokio::task::JoinSet;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_bearer::retry::{ReplayBody, ReplayPolicy};
use tower_bearer::{BearerAuthLayer, CacheConfig, FetchError, RetryOn401Layer, TokenCache};
use tower_bearer_testkit::{ApiServer, AuthServer, Fault, StreamingBody};

use crate::support::{capped_client, client, current_token, get, oauth_source};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const INVALID_TOKEN: &str = r#"Bearer realm="testkit", error="invalid_token""#;

async fn servers() -> std::io::Result<(AuthServer, ApiServer)> {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    Ok((auth, api))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_cold_callers_cause_one_token_request() -> TestResult {
    let (auth, api) = servers().await?;
    // A slow token endpoint, so the callers really pile up behind the one fetch.
    auth.fail_next(1, Fault::Delay(Duration::from_millis(300)));
    let cache = TokenCache::new(oauth_source(&auth));
    let client = client(&cache, 256);

    let mut calls = JoinSet::new();
    for _ in 0..10_000 {
        let call = client.clone().oneshot(get(&api.url()));
        calls.spawn(call);
    }
    let mut ok = 0;
    while let Some(result) = calls.join_next().await {
        assert_eq!(result??.status(), StatusCode::OK);
        ok += 1;
    }
    assert_eq!(ok, 10_000);
    assert_eq!(
        auth.token_requests(),
        1,
        "one token request for 10,000 callers"
    );
    assert_eq!(api.authorized(), 10_000);
    assert_eq!(cache.stats().fetches, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_401s_cause_one_refresh() -> TestResult {
    let (auth, api) = servers().await?;
    let cache = TokenCache::new(oauth_source(&auth));
    let warm_up = client(&cache, 1).oneshot(get(&api.url())).await?;
    assert_eq!(warm_up.status(), 200);
    let revoked = current_token(&cache);
    auth.revoke(&revoked);

    // Requests carrying the revoked token wait at a gate until all 100 are in hand, so the
    // API really answers 100 concurrent requests with 401; replays pass straight through.
    let gate = Arc::new(Barrier::new(100));
    let stale = HeaderValue::from_str(&format!("Bearer {revoked}"))?;
    let network = capped_client::<Full<Bytes>>(100);
    let gated = service_fn(move |request: Request<Full<Bytes>>| {
        let (gate, stale, network) = (Arc::clone(&gate), stale.clone(), network.clone());
        async move {
            if request.headers().get(AUTHORIZATION) == Some(&stale) {
                gate.wait().await;
            }
            network.oneshot(request).await
        }
    });
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(gated);

    let mut calls = JoinSet::new();
    for _ in 0..100 {
        calls.spawn(client.clone().oneshot(get(&api.url())));
    }
    while let Some(result) = calls.join_next().await {
        assert_eq!(result??.status(), StatusCode::OK, "every request succeeds");
    }
    assert_eq!(api.rejected(), 100, "100 concurrent 401s for one token");
    assert_eq!(
        auth.token_requests(),
        2,
        "the first fetch and exactly one refresh"
    );
    assert_eq!(
        api.authorized(),
        101,
        "each call authorized once, after one replay"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_401_goes_back_to_the_caller() -> TestResult {
    let (auth, api) = servers().await?;
    let cache = TokenCache::new(oauth_source(&auth));
    let client = client(&cache, 4);

    api.respond_next(2, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    let response = client.oneshot(get(&api.url())).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], INVALID_TOKEN);
    assert_eq!(api.requests(), 2, "sent, replayed once, never a third time");
    assert_eq!(auth.token_requests(), 2, "one new token for the replay");
    Ok(())
}

#[tokio::test]
async fn insufficient_scope_and_403_are_not_retried() -> TestResult {
    let (auth, api) = servers().await?;
    let cache = TokenCache::new(oauth_source(&auth));
    let mut client = client(&cache, 4);

    // The testkit API wants the `admin` scope under /admin; our token does not have it.
    let response = client
        .ready()
        .await?
        .call(get(&format!("{}/admin", api.url())))
        .await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // A 401 that says the scope is the problem: a new token would not help.
    let challenge = r#"Bearer error="insufficient_scope", scope="admin""#;
    api.respond_next(1, StatusCode::UNAUTHORIZED, Some(challenge));
    let response = client.ready().await?.call(get(&api.url())).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(api.requests(), 2, "no replays");
    assert_eq!(auth.token_requests(), 1, "no refreshes");
    Ok(())
}

#[tokio::test]
async fn a_401_without_a_challenge_is_retried() -> TestResult {
    let (auth, api) = servers().await?;
    let cache = TokenCache::new(oauth_source(&auth));
    let client = client(&cache, 4);

    api.respond_next(1, StatusCode::UNAUTHORIZED, None);
    let response = client.oneshot(get(&api.url())).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!((api.requests(), auth.token_requests()), (2, 2));
    Ok(())
}

#[tokio::test]
async fn a_401_for_the_callers_own_authorization_is_not_retried() -> TestResult {
    let (auth, api) = servers().await?;
    let cache = TokenCache::new(oauth_source(&auth));
    let mut cloned = client(&cache, 4);
    let mut buffered = ServiceBuilder::new()
        .layer(RetryOn401Layer::buffered(64))
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(capped_client(4));

    // The API answers 401 `invalid_token` to a token it did not issue.
    let mut own = get(&api.url());
    own.headers_mut()
        .insert(http::header::AUTHORIZATION, "Bearer not-ours".parse()?);
    let response = cloned.ready().await?.call(own).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let mut own = post(&api.url(), &["body"]);
    own.headers_mut()
        .insert(http::header::AUTHORIZATION, "Bearer not-ours".parse()?);
    let response = buffered.ready().await?.call(own).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.requests(), 2, "neither replayed");
    assert_eq!(
        auth.token_requests(),
        0,
        "no token was needed or invalidated"
    );
    Ok(())
}

fn post(url: &str, chunks: &[&'static str]) -> http::Request<StreamingBody> {
    http::Request::post(url)
        .body(StreamingBody::from_static(chunks))
        .expect("a valid URL")
}

#[tokio::test]
async fn streaming_bodies_are_replayed_only_under_the_limit() -> TestResult {
    let (auth, api) = servers().await?;
    let buffered_client = |cache: &TokenCache| {
        ServiceBuilder::new()
            .layer(RetryOn401Layer::buffered(16))
            .layer(BearerAuthLayer::new(cache.clone()))
            .service(capped_client(4))
    };

    // 11 bytes: recorded while sent, replayed after the 401.
    let mut client = buffered_client(&TokenCache::new(oauth_source(&auth)));
    api.respond_next(1, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    let response = client
        .ready()
        .await?
        .call(post(&api.url(), &["hello ", "world"]))
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api.last_body().as_deref(), Some(&b"hello world"[..]));
    assert_eq!((api.requests(), auth.token_requests()), (2, 2));

    // 24 bytes: over the limit, so the 401 comes back as the server sent it.
    let mut client = buffered_client(&TokenCache::new(oauth_source(&auth)));
    api.respond_next(1, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    let response = client
        .ready()
        .await?
        .call(post(&api.url(), &["twelve bytes", " and twelve"]))
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], INVALID_TOKEN);
    assert_eq!(
        (api.requests(), auth.token_requests()),
        (3, 3),
        "not replayed"
    );
    // The rejected token was still invalidated: the next call fetches a new one.
    let response = client.ready().await?.call(post(&api.url(), &["x"])).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(auth.token_requests(), 4);
    Ok(())
}

/// `RetryOn401Layer::collected` reads a ready body in `call`. A body that is always ready but
/// whose frames are empty never passes the byte limit: it must stop at the frame limit (1024
/// by default), not poll on for as long as the body goes on.
#[tokio::test]
async fn collecting_a_body_in_call_is_bounded_in_frames() -> TestResult {
    let (auth, api) = servers().await?;
    let mut client = ServiceBuilder::new()
        .layer(RetryOn401Layer::collected(1024))
        .layer(BearerAuthLayer::new(TokenCache::new(oauth_source(&auth))))
        .service(capped_client(4));

    let body = StreamingBody::empty_frames_then(100_000, &["hello"]);
    let polls = body.polls();
    let request = Request::post(api.url()).body(body)?;
    let response = client.ready().await?.call(request);
    assert!(
        polls.get() <= 1025,
        "call() polled the body {} times; at most 1024 frames and one past them",
        polls.get()
    );
    let response = response.await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        api.last_body().as_deref(),
        Some(&b"hello"[..]),
        "sent whole"
    );
    Ok(())
}

/// Past the frame limit a body is sent and not kept for a replay, as past the byte limit:
/// the 401 is returned as the server sent it, with `collected` and `buffered` alike.
#[tokio::test]
async fn a_body_past_the_frame_limit_is_not_replayed() -> TestResult {
    let (auth, api) = servers().await?;
    replayed_only_within_the_frame_limit(&auth, &api, RetryOn401Layer::collected(1024)).await?;
    replayed_only_within_the_frame_limit(&auth, &api, RetryOn401Layer::buffered(1024)).await
}

async fn replayed_only_within_the_frame_limit<P>(
    auth: &AuthServer,
    api: &ApiServer,
    layer: RetryOn401Layer<P>,
) -> TestResult
where
    P: ReplayPolicy<StreamingBody, Body = ReplayBody<StreamingBody>> + Clone + std::fmt::Debug,
{
    let post = |empty_frames| {
        let body = StreamingBody::empty_frames_then(empty_frames, &["hello"]);
        Request::post(api.url()).body(body)
    };
    // A cache of its own each time, so no token is held back as a recent replacement.
    let client = |cache: &TokenCache| {
        ServiceBuilder::new()
            .layer(layer.clone())
            .layer(BearerAuthLayer::new(cache.clone()))
            .service(capped_client(4))
    };
    let name = format!("{layer:?}");

    // 1023 empty frames and the data: within the limit, replayed.
    let requests = api.requests();
    api.respond_next(1, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    let cache = TokenCache::new(oauth_source(auth));
    let response = client(&cache).oneshot(post(1023)?).await?;
    assert_eq!(response.status(), StatusCode::OK, "{name}");
    assert_eq!(api.requests(), requests + 2, "{name}: replayed");

    // 2000 empty frames and the data: past the limit, not replayed.
    let requests = api.requests();
    api.respond_next(1, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    let cache = TokenCache::new(oauth_source(auth));
    let response = client(&cache).oneshot(post(2000)?).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
    assert_eq!(response.headers()["www-authenticate"], INVALID_TOKEN);
    assert_eq!(api.requests(), requests + 1, "{name}: not replayed");
    assert_eq!(api.last_body().as_deref(), Some(&b"hello"[..]), "{name}");
    // The rejected token was still invalidated: the next call fetches a new one.
    assert!(cache.cached().is_none(), "{name}: invalidated");
    Ok(())
}

// Paused time: the cache, the server's token lifetime and the loop below all run on the
// tokio clock, so each call lands where the schedule says, however loaded the machine is.
#[tokio::test(start_paused = true)]
async fn authorization_server_down_while_the_token_is_valid_fails_nothing() -> TestResult {
    let auth = AuthServer::builder()
        .token_lifetime(Duration::from_secs(4))
        .start()
        .await?;
    let api = ApiServer::start(&auth).await?;
    // A 4 s token: refresh due after 2 s (the window is capped at half the lifetime),
    // expired for us at 3.5 s (0.5 s skew).
    let config = CacheConfig::new()
        .expiry_skew(Duration::from_millis(500))
        .refresh_window(Duration::from_secs(2), 0.5)
        .refresh_jitter(0.0)
        .backoff(Duration::from_millis(200), Duration::from_millis(400));
    let cache = TokenCache::with_config(oauth_source(&auth), config);
    let mut client = client(&cache, 8);
    assert_eq!(
        client.ready().await?.call(get(&api.url())).await?.status(),
        200
    );

    auth.fail_always(Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    // Calls for 3.1 s: fresh, then refresh-due while the server is down, but still valid.
    let mut failed = 0;
    let mut calls = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(3100);
    while tokio::time::Instant::now() < until {
        let response = client.ready().await?.call(get(&api.url())).await;
        calls += 1;
        if !matches!(&response, Ok(r) if r.status() == StatusCode::OK) {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{calls} calls, {} refresh attempts",
        auth.token_requests() - 1
    );
    assert!(calls > 20, "{calls} calls made");
    assert_eq!(failed, 0, "0 of {calls} calls failed");
    let attempts = auth.token_requests() - 1;
    // Refreshing from 2 s with 100-400 ms waits between attempts: a handful, not a storm.
    assert!(attempts >= 1, "the refresh was attempted");
    assert!(attempts <= 12, "{attempts} refresh attempts in about 1.1 s");
    assert_eq!(cache.stats().waits, 1, "only the first call waited");

    // Past expiry with the server still down: a clear, typed error, without waiting.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let started = tokio::time::Instant::now();
    let error = client
        .ready()
        .await?
        .call(get(&api.url()))
        .await
        .unwrap_err();
    let fetch_error = error.downcast_ref::<FetchError>().expect("a FetchError");
    assert!(fetch_error.is_transient(), "{fetch_error}");
    assert!(
        fetch_error.to_string().contains("503"),
        "says what went wrong: {fetch_error}"
    );
    // On the paused clock a request takes no time, so any wait (a request timeout, a
    // backoff sat out) would show here.
    assert_eq!(started.elapsed(), Duration::ZERO, "the error came at once");
    Ok(())
}

#[tokio::test]
async fn two_hundred_bare_401s_cost_a_few_token_requests_and_service_resumes() -> TestResult {
    let (auth, api) = servers().await?;
    let cache = TokenCache::new(oauth_source(&auth));
    let mut client = client(&cache, 4);

    // An API that rejects every token without saying why (a wrong audience, say).
    api.respond_next(200, StatusCode::UNAUTHORIZED, None);
    let mut statuses = Vec::new();
    while api.requests() < 200 {
        let response = client.ready().await?.call(get(&api.url())).await?;
        statuses.push(response.status());
    }
    let (calls, tokens) = (statuses.len() as u64, auth.token_requests());
    eprintln!("200 API requests answered 401: {calls} calls, {tokens} token requests");
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    assert!(tokens < 10, "{tokens} token requests");
    // A replay happens only when it carries another token.
    assert!(
        api.requests() - calls < tokens,
        "{} replays",
        api.requests() - calls
    );

    // The API accepts tokens again: the next call goes through, with no one stepping in.
    let response = client.ready().await?.call(get(&api.url())).await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn the_auth_layer_alone_stops_sending_a_revoked_token() -> TestResult {
    let (auth, api) = servers().await?;
    let cache = TokenCache::new(oauth_source(&auth));
    let mut client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(capped_client(4));
    let call = |client: &mut tower_bearer::BearerAuth<_>| client.call(get(&api.url()));
    assert_eq!(call(client.ready().await?).await?.status(), StatusCode::OK);
    let first = current_token(&cache);

    auth.revoke(&first);
    let response = call(client.ready().await?).await?;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "no retry layer"
    );
    assert!(
        cache.cached().is_none(),
        "the rejected token was invalidated"
    );
    assert_eq!(call(client.ready().await?).await?.status(), StatusCode::OK);
    assert_ne!(current_token(&cache), first);
    assert_eq!(auth.token_requests(), 2);
    Ok(())
}
