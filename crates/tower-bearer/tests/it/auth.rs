//! `BearerAuth` at the poll level and over an in-process service.

use std::convert::Infallible;

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use tokio_test_shim::assert_pending;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};
use tower_bearer::source::{from_fn, StaticToken};
use tower_bearer::{BearerAuthLayer, FetchError, Token, TokenCache};
use tower_bearer_test_support::NumberedSource;

mod tokio_test_shim {
    macro_rules! assert_pending {
        ($e:expr) => {
            assert!($e.is_pending(), "expected Poll::Pending")
        };
    }
    pub(crate) use assert_pending;
}

/// Echoes the Authorization header it received.
fn echo() -> impl Service<
    Request<()>,
    Response = Response<Option<HeaderValue>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|request: Request<()>| async move {
        Ok::<_, Infallible>(Response::new(request.headers().get(AUTHORIZATION).cloned()))
    })
}

#[tokio::test]
async fn attaches_a_sensitive_bearer_header() {
    let cache = TokenCache::new(StaticToken::new("abc").unwrap());
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(cache))
        .service(echo());
    let response = client.oneshot(Request::new(())).await.unwrap();
    let header = response.into_body().unwrap();
    assert_eq!(header, "Bearer abc");
    assert!(header.is_sensitive());
}

#[tokio::test]
async fn leaves_the_callers_authorization_alone() {
    let cache = TokenCache::new(StaticToken::new("abc").unwrap());
    let client = BearerAuthLayer::new(cache.clone()).layer(echo());
    let request = Request::builder()
        .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.into_body().unwrap(), "Basic dXNlcjpwYXNz");
    assert_eq!(cache.stats().fetches, 0, "no token was needed");
}

#[tokio::test]
async fn leaves_every_value_of_the_callers_authorization_in_order() {
    let cache = TokenCache::new(StaticToken::new("abc").unwrap());
    let all_values = service_fn(|request: Request<()>| async move {
        let values: Vec<String> = request
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect();
        Ok::<_, Infallible>(Response::new(values))
    });
    let mut client = BearerAuthLayer::new(cache.clone()).layer(all_values);
    // Warm the cache, so the request takes the fresh-token path.
    cache.token().await.unwrap();
    let request = Request::builder()
        .header(AUTHORIZATION, "Basic Zmlyc3Q=")
        .header(AUTHORIZATION, "Basic c2Vjb25k")
        .header("x-other", "1")
        .body(())
        .unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.into_body(), ["Basic Zmlyc3Q=", "Basic c2Vjb25k"]);
}

#[tokio::test]
async fn leaves_the_callers_authorization_alone_among_many_headers() {
    // Small header maps are scanned, large ones hashed: check both sides of the switch.
    let cache = TokenCache::new(StaticToken::new("abc").unwrap());
    for others in [0, 1, 15, 16, 17, 40] {
        let mut client = BearerAuthLayer::new(cache.clone()).layer(echo());
        let mut with_own = Request::builder();
        let mut without = Request::builder();
        for i in 0..others {
            with_own = with_own.header(format!("x-extra-{i}"), "1");
            without = without.header(format!("x-extra-{i}"), "1");
        }
        let with_own = with_own
            .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
            .body(())
            .unwrap();
        let response = client.ready().await.unwrap().call(with_own).await.unwrap();
        assert_eq!(
            response.into_body().unwrap(),
            "Basic dXNlcjpwYXNz",
            "{others}"
        );
        let response = client
            .ready()
            .await
            .unwrap()
            .call(without.body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.into_body().unwrap(), "Bearer abc", "{others}");
    }
}

#[tokio::test]
async fn origin_allow_list_keeps_the_token_at_home() {
    let cache = TokenCache::new(StaticToken::new("abc").unwrap());
    let layer = BearerAuthLayer::new(cache)
        .allow_origins(["https://api.example.com", "http://127.0.0.1:8080"])
        .unwrap();
    let mut client = layer.layer(echo());
    for (uri, expected) in [
        ("https://api.example.com/v1/items", Some("Bearer abc")),
        ("http://127.0.0.1:8080/", Some("Bearer abc")),
        ("https://api.example.com.evil.test/", None),
        ("http://api.example.com/", None),
    ] {
        let request = Request::builder().uri(uri).body(()).unwrap();
        let response = client.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(
            response.into_body().as_ref().map(|h| h.to_str().unwrap()),
            expected,
            "{uri}"
        );
    }
    let error = BearerAuthLayer::new(TokenCache::new(StaticToken::new("t").unwrap()))
        .allow_origins(["api.example.com"])
        .unwrap_err();
    assert!(error.to_string().contains("no scheme"), "{error}");
}

/// tonic sends path-only URIs: with an allow-list they are an error, not a request quietly
/// sent without its token.
#[tokio::test]
async fn a_relative_uri_under_an_allow_list_is_an_error_that_says_what_to_do() {
    let cache = TokenCache::new(StaticToken::new("abc").unwrap());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = {
        let sent = std::sync::Arc::clone(&sent);
        service_fn(move |_: Request<()>| {
            sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(())) }
        })
    };
    let client = BearerAuthLayer::new(cache.clone())
        .allow_origins(["http://127.0.0.1:8080"])
        .unwrap()
        .layer(inner);
    let request = Request::builder()
        .uri("/pkg.Greeter/SayHello?secret=1")
        .body(())
        .unwrap();
    let error = client.clone().oneshot(request).await.unwrap_err();
    let error = error
        .downcast_ref::<tower_bearer::auth::RelativeUri>()
        .expect("a typed error");
    assert_eq!(error.path(), "/pkg.Greeter/SayHello");
    let message = error.to_string();
    assert!(message.contains("with_origin"), "{message}");
    assert!(
        !message.contains("secret"),
        "no query in the error: {message}"
    );
    assert_eq!(
        sent.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "not sent"
    );
    assert_eq!(cache.stats().fetches, 0);

    // The caller's own credentials go through: they are not the allow-list's business.
    let own = Request::builder()
        .uri("/pkg.Greeter/SayHello")
        .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(())
        .unwrap();
    client.oneshot(own).await.unwrap();
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_token_error_means_the_request_is_not_sent() {
    let cache = TokenCache::new(from_fn(|| async {
        Err::<Token, _>(FetchError::permanent("the client secret is wrong"))
    }));
    let (service, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
    let client = BearerAuthLayer::new(cache).layer(service);
    handle.allow(1);
    let error = client.oneshot(Request::new(())).await.unwrap_err();
    let fetch_error = error
        .downcast_ref::<FetchError>()
        .expect("a FetchError, typed");
    assert!(fetch_error.is_permanent());
    // Every handle to the inner service is gone and it never saw a request.
    assert!(
        handle.next_request().await.is_none(),
        "nothing reached the inner service"
    );
}

/// Polls `future` to its end, then once more: the second poll must be an error, not a panic
/// nor a second request.
async fn poll_past_completion<F, T>(future: F) -> (Result<T, tower::BoxError>, tower::BoxError)
where
    F: std::future::Future<Output = Result<T, tower::BoxError>>,
{
    let mut future = std::pin::pin!(future);
    let first = std::future::poll_fn(|cx| future.as_mut().poll(cx)).await;
    let again = std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx))).await;
    let std::task::Poll::Ready(Err(again)) = again else {
        panic!("a second poll is an error at once");
    };
    (first, again)
}

#[tokio::test]
async fn a_slow_path_future_polled_after_completion_is_an_error() {
    // Waiting for a token, then sent.
    let cache = TokenCache::new(NumberedSource::named("tok"));
    let mut client = BearerAuthLayer::new(cache.clone()).layer(echo());
    let future = client.ready().await.unwrap().call(Request::new(()));
    let (first, again) = poll_past_completion(future).await;
    assert_eq!(first.unwrap().into_body().unwrap(), "Bearer tok-1");
    assert!(
        again.to_string().contains("polled after it completed"),
        "{again}"
    );
    assert_eq!(cache.stats().fetches, 1);

    // Refused: the token could not be had.
    let cache = TokenCache::new(from_fn(|| async {
        Err::<Token, _>(FetchError::permanent("the client secret is wrong"))
    }));
    let mut client = BearerAuthLayer::new(cache).layer(echo());
    let future = client.ready().await.unwrap().call(Request::new(()));
    let (first, again) = poll_past_completion(future).await;
    assert!(first.unwrap_err().downcast_ref::<FetchError>().is_some());
    assert!(
        again.to_string().contains("polled after it completed"),
        "{again}"
    );
}

#[tokio::test]
async fn poll_ready_is_the_inner_services() {
    let cache = TokenCache::new(StaticToken::new("abc").unwrap());
    let (service, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
    let mut client = tower_test::mock::Spawn::new(BearerAuthLayer::new(cache).layer(service));

    handle.allow(0);
    assert_pending!(client.poll_ready());
    handle.allow(1);
    assert!(client.poll_ready().is_ready());

    // Cold cache: the call waits for the fetch, then calls the service that was readied.
    let response = tokio::spawn(client.call(Request::new(())));
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request.headers()[AUTHORIZATION], "Bearer abc");
    send.send_response(Response::new(()));
    response.await.unwrap().unwrap();
}

#[tokio::test]
async fn inner_errors_pass_through_boxed() {
    let cache = TokenCache::new(StaticToken::new("abc").unwrap());
    let failing = service_fn(|_: Request<()>| async {
        Err::<Response<()>, _>(std::io::Error::other("connection reset"))
    });
    let error = BearerAuthLayer::new(cache)
        .layer(failing)
        .oneshot(Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(
        error.downcast_ref::<std::io::Error>().unwrap().to_string(),
        "connection reset"
    );
}

#[tokio::test]
async fn a_late_401_for_an_older_token_leaves_the_newer_one_alone() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tokio::sync::Notify;
    use tower_bearer::RetryOn401Layer;

    let numbered = NumberedSource::new();
    let source = numbered.clone();
    let cache = TokenCache::new(source);
    let first = cache.token().await.unwrap();

    // The API holds the request with token-1 until told, then rejects it; it accepts others.
    let release = Arc::new(Notify::new());
    let held = Arc::new(AtomicU64::new(0));
    let api = {
        let (release, held) = (Arc::clone(&release), Arc::clone(&held));
        service_fn(move |request: Request<String>| {
            let (release, held) = (Arc::clone(&release), Arc::clone(&held));
            async move {
                let mut response = Response::new(());
                if request.headers()[AUTHORIZATION] == "Bearer token-1" {
                    held.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
                    response.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                    );
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(api);
    let call = tokio::spawn(client.oneshot(Request::new(String::new())));
    while held.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // Meanwhile the cache moves on to token-2, as a background refresh would.
    assert!(cache.invalidate(&first));
    let second = cache.token().await.unwrap();
    release.notify_one();

    let response = call.await.unwrap().unwrap();
    assert_eq!(
        response.status(),
        http::StatusCode::OK,
        "replayed with token-2"
    );
    assert_eq!(numbered.fetches(), 2, "token-2 was not invalidated");
    assert!(cache.cached().unwrap().same_as(&second));
}

/// `judging_api` rejects, with a bare 401, every token `accepts` says no to.
fn judging_api(
    accepts: impl Fn(&str) -> bool + Clone + Send + 'static,
) -> impl Service<Request<String>, Response = Response<()>, Error = Infallible, Future = impl Send> + Clone
{
    service_fn(move |request: Request<String>| {
        let accepted = request.headers()[AUTHORIZATION]
            .to_str()
            .is_ok_and(|value| accepts(value.trim_start_matches("Bearer ")));
        async move {
            let mut response = Response::new(());
            if !accepted {
                *response.status_mut() = http::StatusCode::UNAUTHORIZED;
            }
            Ok::<_, Infallible>(response)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn tokens_rejected_right_after_a_fetch_back_off_and_service_resumes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tower_bearer::RetryOn401Layer;

    let numbered = NumberedSource::new();
    let source = numbered.clone();
    let accepting = Arc::new(AtomicBool::new(false));
    let api = {
        let accepting = Arc::clone(&accepting);
        judging_api(move |_| accepting.load(Ordering::SeqCst))
    };
    let mut client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(TokenCache::new(source)))
        .service(api);

    // 30 s of an API that rejects every token, a request every 10 ms: 3,000 requests.
    for _ in 0..3000 {
        let response = client
            .ready()
            .await
            .unwrap()
            .call(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Holds of about 1, 2, 4, 8, 16 s (the fetch backoff): a handful of token requests.
    let during = numbered.fetches();
    assert!((3..=8).contains(&during), "{during} token requests in 30 s");

    accepting.store(true, Ordering::SeqCst);
    let response = client
        .ready()
        .await
        .unwrap()
        .call(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(numbered.fetches(), during, "the held token is used");
}

#[tokio::test(start_paused = true)]
async fn a_held_token_that_stays_rejected_is_replaced_once_its_hold_passes() {
    use std::time::Duration;
    use tower_bearer::RetryOn401Layer;

    // The API rejects token-1 and token-2 (both revoked) and accepts any later one.
    let numbered = NumberedSource::new();
    let source = numbered.clone();
    let api = judging_api(|token| token != "token-1" && token != "token-2");
    let cache = TokenCache::new(source);
    let mut client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(api);
    let mut call = || {
        let future = client.call(Request::new(String::new()));
        async move { future.await.unwrap().status() }
    };

    // token-1 is rejected, the replay with token-2 too: the 401 comes back.
    assert_eq!(call().await, http::StatusCode::UNAUTHORIZED);
    assert_eq!(numbered.fetches(), 2);
    // Right after, token-2 is kept: no token request per 401.
    for _ in 0..10 {
        assert_eq!(call().await, http::StatusCode::UNAUTHORIZED);
    }
    assert_eq!(numbered.fetches(), 2);
    // Once its hold (at most the first backoff, 1 s) has passed, the next 401 replaces it.
    tokio::time::sleep(Duration::from_millis(1001)).await;
    assert_eq!(call().await, http::StatusCode::OK);
    assert_eq!(numbered.fetches(), 3);
}
