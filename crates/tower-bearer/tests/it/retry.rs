//! What `RetryOn401` replays: the request as the caller sent it, with a new token. When it
//! replays and when it does not is tested where it meets the auth layer and the wire
//! (`auth.rs`, `e2e.rs`, `grpc.rs`, `redirects.rs`).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
use tower_bearer_test_support::NumberedSource;

/// A value a caller hangs on a request for the services below (a trace context, say).
#[derive(Clone, Debug, PartialEq)]
struct TraceId(u64);

/// What the API saw of one request.
#[derive(Debug)]
struct Seen {
    method: Method,
    uri: Uri,
    version: Version,
    /// Every header but `Authorization`, in the order the map yields them.
    headers: Vec<(String, String)>,
    token: String,
    trace: Option<TraceId>,
    body: String,
}

impl Seen {
    fn of(request: &Request<String>) -> Self {
        let headers = request
            .headers()
            .iter()
            .filter(|(name, _)| *name != AUTHORIZATION)
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        Seen {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers,
            token: request.headers()[AUTHORIZATION]
                .to_str()
                .unwrap()
                .to_owned(),
            trace: request.extensions().get::<TraceId>().cloned(),
            body: request.body().clone(),
        }
    }
}

#[tokio::test]
async fn a_replay_carries_the_method_uri_version_every_header_in_order_and_the_extensions() {
    // `token-1`, then `token-2`: the API rejects the first.
    let numbered = NumberedSource::new();
    let source = numbered.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = {
        let seen = Arc::clone(&seen);
        service_fn(move |request: Request<String>| {
            let request = Seen::of(&request);
            let mut response = Response::new(());
            if request.token == "Bearer token-1" {
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            seen.lock().unwrap().push(request);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(TokenCache::new(source)))
        .service(api);

    let request = Request::builder()
        .method(Method::PUT)
        .uri("https://api.example.test/v1/items/7?version=3")
        .version(Version::HTTP_2)
        .header("x-a", "first")
        .header("accept", "application/json")
        .header("x-a", "second")
        .header("x-b", "only")
        .header("x-a", "third")
        .extension(TraceId(42))
        .body("payload".to_owned())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the replay was accepted");

    let seen = seen.lock().unwrap();
    let [first, replay] = &seen[..] else {
        panic!("expected the request and one replay, got {seen:#?}");
    };
    assert_eq!(first.token, "Bearer token-1");
    assert_eq!(
        replay.token, "Bearer token-2",
        "the replay has the new token"
    );
    let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    // A header map yields a name's values together, in the order they were added.
    let sent = vec![
        pair("x-a", "first"),
        pair("x-a", "second"),
        pair("x-a", "third"),
        pair("accept", "application/json"),
        pair("x-b", "only"),
    ];
    for request in [first, replay] {
        assert_eq!(request.method, Method::PUT);
        assert_eq!(request.uri, "https://api.example.test/v1/items/7?version=3");
        assert_eq!(request.version, Version::HTTP_2);
        assert_eq!(request.headers, sent);
        assert_eq!(request.trace, Some(TraceId(42)));
        assert_eq!(request.body, "payload");
    }
    assert_eq!(numbered.fetches(), 2);
}
