//! gRPC's way of refusing a token, `200` with `grpc-status: 16` in a trailers-only
//! response, at the service level (the tonic tests in the examples crate run it over a real
//! HTTP/2 connection).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode, Version};
use tower::util::BoxCloneService;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
use tower_bearer_test_support::NumberedSource;

/// `token-1`, `token-2`, ... one per fetch.
fn numbered_tokens() -> (TokenCache, NumberedSource) {
    let numbered = NumberedSource::new();
    (TokenCache::new(numbered.clone()), numbered)
}

type GrpcApi = BoxCloneService<Request<String>, Response<()>, Infallible>;

/// A gRPC server's answer to every token `accepts` refuses: HTTP 200, trailers-only, with
/// `grpc-status` and whatever extra headers are given. Records the tokens it saw.
fn grpc_api(
    accepts: impl Fn(&str) -> bool + Clone + Send + 'static,
    status: &'static str,
    extra: Option<(&'static str, &'static str)>,
) -> (GrpcApi, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = {
        let seen = Arc::clone(&seen);
        service_fn(move |request: Request<String>| {
            let token = request.headers()[AUTHORIZATION]
                .to_str()
                .unwrap()
                .trim_start_matches("Bearer ")
                .to_owned();
            let accepted = accepts(&token);
            seen.lock().unwrap().push(token);
            // A server answers in the request's protocol, as hyper does.
            let version = request.version();
            async move {
                let mut response = Response::new(());
                *response.version_mut() = version;
                response
                    .headers_mut()
                    .insert("content-type", "application/grpc".parse().unwrap());
                if !accepted {
                    response
                        .headers_mut()
                        .insert("grpc-status", status.parse().unwrap());
                    response
                        .headers_mut()
                        .insert("grpc-message", "token rejected".parse().unwrap());
                    if let Some((name, value)) = extra {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    (BoxCloneService::new(api), seen)
}

fn grpc_call() -> Request<String> {
    Request::builder()
        .version(Version::HTTP_2)
        .uri("http://127.0.0.1:50051/pkg.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .body(String::from("\0\0\0\0\0"))
        .unwrap()
}

fn grpc_status<B>(response: &Response<B>) -> Option<&str> {
    response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn unauthenticated_invalidates_the_token_and_replays_once_with_a_new_one() {
    let (cache, numbered) = numbered_tokens();
    let (api, seen) = grpc_api(|token| token != "token-1", "16", None);
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(api);
    let response = client.clone().oneshot(grpc_call()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(grpc_status(&response), None, "the replay succeeded");
    assert_eq!(*seen.lock().unwrap(), ["token-1", "token-2"]);
    assert_eq!(numbered.fetches(), 2);

    // The next call goes out with the new token at once.
    client.oneshot(grpc_call()).await.unwrap();
    assert_eq!(seen.lock().unwrap().last().unwrap(), "token-2");
    assert_eq!(numbered.fetches(), 2);
}

#[tokio::test]
async fn a_token_that_stays_unauthenticated_is_returned_after_exactly_one_replay() {
    let (cache, _numbered) = numbered_tokens();
    let (api, seen) = grpc_api(|_| false, "16", None);
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache))
        .service(api);
    let response = client.oneshot(grpc_call()).await.unwrap();
    assert_eq!(grpc_status(&response), Some("16"));
    assert_eq!(seen.lock().unwrap().len(), 2, "the call and one replay");
}

#[tokio::test]
async fn other_grpc_statuses_and_insufficient_scope_are_returned_untouched() {
    for (status, extra) in [
        ("7", None),  // PERMISSION_DENIED
        ("14", None), // UNAVAILABLE
        (
            "16",
            Some((
                WWW_AUTHENTICATE.as_str(),
                r#"Bearer error="insufficient_scope""#,
            )),
        ),
    ] {
        let (cache, numbered) = numbered_tokens();
        let (api, seen) = grpc_api(|_| false, status, extra);
        let client = ServiceBuilder::new()
            .layer(RetryOn401Layer::new())
            .layer(BearerAuthLayer::new(cache.clone()))
            .service(api);
        let response = client.oneshot(grpc_call()).await.unwrap();
        assert_eq!(grpc_status(&response), Some(status));
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "grpc-status {status} {extra:?}"
        );
        assert_eq!(numbered.fetches(), 1);
        assert!(cache.cached().is_some(), "the token was not invalidated");
    }
}

/// gRPC is HTTP/2 only: an HTTP/1.1 response is judged by its status code alone, so plain
/// HTTP traffic never pays for reading `grpc-status`.
#[tokio::test]
async fn grpc_status_on_an_http1_request_is_not_a_rejection() {
    let (cache, numbered) = numbered_tokens();
    let (api, seen) = grpc_api(|_| false, "16", None);
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache))
        .service(api);
    let mut call = grpc_call();
    *call.version_mut() = Version::HTTP_11;
    client.oneshot(call).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(numbered.fetches(), 1);
}

/// The first call of a cold cache waits for the fetch; its rejection is read the same way.
#[tokio::test]
async fn a_rejection_of_a_freshly_fetched_token_on_the_first_call_is_replayed() {
    let (cache, numbered) = numbered_tokens();
    let (api, seen) = grpc_api(|token| token == "token-2", "16", None);
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::collected(1024))
        .layer(BearerAuthLayer::new(cache))
        .service(service_fn(move |request: Request<_>| {
            let (parts, body) = request.into_parts();
            let mut api = api.clone();
            async move {
                let body = http_body_util::BodyExt::collect(body).await.unwrap();
                let body = String::from_utf8(body.to_bytes().to_vec()).unwrap();
                api.call(Request::from_parts(parts, body)).await
            }
        }));
    let call = grpc_call().map(|body| http_body_util::Full::new(bytes::Bytes::from(body)));
    let response = client.oneshot(call).await.unwrap();
    assert_eq!(grpc_status(&response), None);
    assert_eq!(*seen.lock().unwrap(), ["token-1", "token-2"]);
    assert_eq!(numbered.fetches(), 2);
}
