//! DPoP-bound tokens through the auth and retry layers, against the test kit's API, which
//! verifies every proof (signature, `htm`, `htu`, `iat`, `jti`, `ath`, nonce, key binding).

use http::StatusCode;
use tower::{Service, ServiceExt};
use tower_bearer::dpop::DpopKey;
use tower_bearer::{ExposeSecret, TokenCache};
use tower_bearer_test_support::dpop_client_credentials_source;
use tower_bearer_testkit::{capture_tracing, ApiRefusal, ApiServer, AuthServer, DpopOptions};

use crate::support::{client, get};

async fn servers(api_options: DpopOptions) -> (AuthServer, ApiServer) {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::builder(&auth)
        .dpop(api_options)
        .start()
        .await
        .unwrap();
    (auth, api)
}

fn dpop_cache(auth: &AuthServer, key: &DpopKey) -> TokenCache {
    TokenCache::new(dpop_client_credentials_source(auth, key.clone()))
}

#[tokio::test]
async fn each_request_carries_a_proof_for_its_method_uri_and_token() {
    for key in [
        DpopKey::generate_es256().unwrap(),
        DpopKey::generate_ed25519().unwrap(),
    ] {
        let (auth, api) = servers(DpopOptions::new().require_proof(true)).await;
        let cache = dpop_cache(&auth, &key);
        let mut client = client(&cache, 8);
        for path in ["/orders", "/orders/7?expand=lines", "/invoices"] {
            let url = format!("{}{path}", api.url());
            let response = client.ready().await.unwrap().call(get(&url)).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{path}: {:?}",
                api.refusals()
            );
        }
        let token = cache.cached().unwrap();
        assert_eq!(
            auth.token_jkt(token.secret().expose_secret()).as_deref(),
            Some(key.thumbprint())
        );
        assert_eq!(api.dpop_requests(), 3);
        assert_eq!(auth.token_requests(), 1);
    }
}

#[tokio::test]
async fn a_resource_server_nonce_costs_one_replay_and_is_remembered() {
    let (auth, api) = servers(DpopOptions::strict()).await;
    let key = DpopKey::generate_es256().unwrap();
    let cache = dpop_cache(&auth, &key);
    let mut client = client(&cache, 8);
    let url = format!("{}/orders", api.url());

    let response = client.ready().await.unwrap().call(get(&url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{:?}", api.refusals());
    assert_eq!(
        api.requests(),
        2,
        "the first proof had no nonce; the replay had it"
    );
    assert!(
        matches!(api.refusals()[..], [ApiRefusal::Proof(problem)] if problem.is_nonce_problem())
    );
    assert_eq!(
        auth.token_requests(),
        1,
        "a nonce is not a reason for a new token"
    );

    client.ready().await.unwrap().call(get(&url)).await.unwrap();
    assert_eq!(
        api.requests(),
        3,
        "the remembered nonce went with the next proof"
    );

    // The server rotates its nonce and still accepts the previous one for a moment: the
    // request goes through, and the new nonce comes back in `DPoP-Nonce` for the next proof.
    let rotated = api.rotate_dpop_nonce().unwrap();
    let response = client.ready().await.unwrap().call(get(&url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api.requests(), 4);
    let uri: http::Uri = url.parse().unwrap();
    assert_eq!(key.nonce_for(&uri).as_deref(), Some(rotated.as_str()));
}

/// A server that wants a new nonce whatever it is sent (a fault): one replay, then its
/// answer comes back. Nothing loops.
#[tokio::test]
async fn a_server_that_wants_a_new_nonce_every_time_gets_exactly_one_replay() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tower::ServiceBuilder;
    use tower_bearer::{BearerAuthLayer, RetryOn401Layer};

    let auth = AuthServer::start().await.unwrap();
    let key = DpopKey::generate_es256().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let api = {
        let calls = Arc::clone(&calls);
        tower::service_fn(move |request: http::Request<String>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            assert!(
                request.headers().contains_key("dpop"),
                "every request has a proof"
            );
            async move {
                let response = http::Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header(
                        "www-authenticate",
                        r#"DPoP error="use_dpop_nonce", algs="ES256""#,
                    )
                    .header("dpop-nonce", format!("nonce-{n}"))
                    .body(())
                    .unwrap();
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(dpop_cache(&auth, &key)))
        .service(api);
    let request = http::Request::get("https://api.example.com/orders")
        .body(String::new())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the request and one replay"
    );
    assert_eq!(
        auth.token_requests(),
        1,
        "asking for a nonce does not cost the token"
    );
}

#[tokio::test]
async fn a_revoked_dpop_token_is_replaced_and_the_request_replayed_once() {
    let (auth, api) = servers(DpopOptions::new().require_proof(true)).await;
    let key = DpopKey::generate_es256().unwrap();
    let cache = dpop_cache(&auth, &key);
    let mut client = client(&cache, 8);
    let url = format!("{}/orders", api.url());
    client.ready().await.unwrap().call(get(&url)).await.unwrap();

    auth.revoke_all();
    let response = client.ready().await.unwrap().call(get(&url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(auth.token_requests(), 2);
    assert_eq!(api.requests(), 3);
    assert!(
        matches!(api.refusals()[..], [ApiRefusal::RevokedToken]),
        "{:?}",
        api.refusals()
    );
}

#[tokio::test]
async fn a_request_without_an_origin_is_refused_before_it_is_sent() {
    let (auth, api) = servers(DpopOptions::new()).await;
    let key = DpopKey::generate_es256().unwrap();
    let cache = dpop_cache(&auth, &key);
    let error = client(&cache, 8).oneshot(get("/orders")).await.unwrap_err();
    let error = error
        .downcast_ref::<tower_bearer::dpop::DpopError>()
        .expect("a typed DPoP error");
    assert!(error.to_string().contains("absolute"), "{error}");
    assert_eq!(api.requests(), 0);
}

#[tokio::test]
async fn neither_the_proof_nor_the_token_is_logged() {
    let (auth, api) = servers(DpopOptions::strict()).await;
    let key = DpopKey::generate_es256().unwrap();
    let cache = dpop_cache(&auth, &key);
    let mut client = client(&cache, 8);
    let url = format!("{}/orders", api.url());
    let logs = capture_tracing();
    client.ready().await.unwrap().call(get(&url)).await.unwrap();
    let token = cache.cached().unwrap();
    let token = token.secret().expose_secret();
    let text = logs.contents();
    assert!(
        text.contains("DPoP") || !text.is_empty(),
        "something was logged"
    );
    assert!(!text.contains(token), "{text}");
    assert!(!text.contains("eyJ"), "no JWS in the logs: {text}");
    assert!(!format!("{key:?}").contains("eyJ"));
}

/// 500 cold calls at an API that wants nonces cost 500 requests and one `use_dpop_nonce`
/// replay: one fetch for the token, and while the origin's first response is out the
/// others wait for its nonce. (Before the gate this test counted 1,000 requests: each
/// call learnt the nonce from its own 401.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_at_a_nonce_requiring_api_costs_one_nonce_replay() {
    const CALLS: u64 = 500;
    let (auth, api) = servers(DpopOptions::strict()).await;
    let key = DpopKey::generate_es256().unwrap();
    let client = client(&dpop_cache(&auth, &key), 64);
    let url = format!("{}/orders", api.url());
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..CALLS {
        calls.spawn(client.clone().oneshot(get(&url)));
    }
    while let Some(call) = calls.join_next().await {
        assert_eq!(call.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(auth.token_requests(), 1);
    assert_eq!(
        api.requests(),
        CALLS + 1,
        "one nonce replay ({} refusals)",
        api.refusals().len()
    );
}

/// A cache of one DPoP-bound token that needs no server, and a client whose first call to
/// the API never answers (until dropped) and whose others answer 200 without a nonce.
fn gated_client(
    key: &DpopKey,
) -> (
    impl Service<
            http::Request<String>,
            Response = http::Response<()>,
            Error = tower_bearer::BoxError,
            Future: Send,
        > + Clone,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tower::ServiceBuilder;
    use tower_bearer::{BearerAuthLayer, RetryOn401Layer, Token, TokenType};

    let key = key.clone();
    let cache = TokenCache::new(tower_bearer::source::from_fn(move || {
        let token = Token::builder("dpop-bound")
            .token_type(TokenType::DPoP)
            .dpop_key(key.clone())
            .build();
        async move { token.map_err(|e| tower_bearer::FetchError::permanent(e.to_string())) }
    }));
    let calls = Arc::new(AtomicU64::new(0));
    let api = {
        let calls = Arc::clone(&calls);
        tower::service_fn(move |_: http::Request<String>| {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(()))
            }
        })
    };
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache))
        .service(api);
    (client, calls)
}

fn api_request() -> http::Request<String> {
    http::Request::get("https://api.example.com/orders")
        .body(String::new())
        .unwrap()
}

/// The origin's first request is abandoned before its answer: the requests waiting for its
/// nonce go on at once (one of them becomes the first), rather than wait for ever.
///
/// Paused time: the sleep ends only once the runtime is idle, so the second request has
/// reached its wait by then; and "at once" is zero time on the tokio clock, where waiting
/// out the 2 s bound would show as 2 s.
#[tokio::test(start_paused = true)]
async fn an_abandoned_first_request_lets_the_waiting_ones_go() {
    use std::time::Duration;
    let key = DpopKey::generate_es256().unwrap();
    let (client, calls) = gated_client(&key);
    let first = tokio::spawn(client.clone().oneshot(api_request()));
    while calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let second = tokio::spawn(client.clone().oneshot(api_request()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the second request waits for the first one's answer"
    );
    first.abort();
    let abandoned = tokio::time::Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the waiting request went on")
        .unwrap()
        .unwrap();
    assert_eq!(
        abandoned.elapsed(),
        Duration::ZERO,
        "it went on when the first was abandoned, not after the 2 s bound"
    );
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// The origin's first answer is slow to come (a long-running call): the others wait for
/// its nonce a bounded time, then go without it.
#[tokio::test(start_paused = true)]
async fn a_slow_first_answer_holds_the_others_two_seconds_at_most() {
    use std::time::Duration;
    let key = DpopKey::generate_es256().unwrap();
    let (client, calls) = gated_client(&key);
    let _first = tokio::spawn(client.clone().oneshot(api_request()));
    while calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let started = tokio::time::Instant::now();
    let response = client.oneshot(api_request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}
