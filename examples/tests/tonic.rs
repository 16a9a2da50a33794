//! tonic over a real HTTP/2 connection on 127.0.0.1: the stack `tonic_client` shows, against
//! a gRPC server whose interceptor checks tokens with the test kit's authorization server.

use std::sync::Arc;
use std::time::Duration;

use examples::greeter::{GreeterClient, GreeterServer, HelloRequest};
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceBuilder;
use tower_bearer::auth::RelativeUri;
use tower_bearer::{BearerAuthLayer, CacheConfig, FetchError, RetryOn401Layer, TokenCache};
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_testkit::AuthServer;
use tower_bearer_tonic::{authorize, fetch_error, Authorized};

struct Setup {
    auth: Arc<AuthServer>,
    server: GreeterServer,
    channel: Channel,
}

async fn setup() -> Setup {
    let auth = Arc::new(AuthServer::start().await.unwrap());
    let server = GreeterServer::start(Arc::clone(&auth)).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    Setup {
        auth,
        server,
        channel,
    }
}

fn source(auth: &AuthServer, secret: &str) -> ClientCredentials {
    let endpoint = Endpoint::builder(auth.token_url()).build().unwrap();
    let client = ClientAuth::secret_basic(AuthServer::DEFAULT_CLIENT_ID, secret).unwrap();
    ClientCredentials::builder(endpoint, client)
        .build()
        .unwrap()
}

fn cache(auth: &AuthServer, secret: &str) -> TokenCache {
    TokenCache::new(source(auth, secret))
}

/// The channel the README and `tonic_client` show: `tower_bearer_tonic::authorize`.
fn authorized(channel: Channel, cache: TokenCache) -> GreeterClient<Authorized<Channel>> {
    GreeterClient::new(authorize(channel, cache))
}

/// The `FetchError` behind a status, if the call failed for want of a token.
fn source_of<E: std::error::Error + 'static>(status: &tonic::Status) -> Option<&E> {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        source = error.source();
    }
    None
}

fn hello() -> HelloRequest {
    HelloRequest {
        name: "test".into(),
    }
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the call finished within 20 s")
}

#[tokio::test]
async fn a_revoked_token_is_replaced_and_the_call_replayed_once() {
    let Setup {
        auth,
        server,
        channel,
    } = setup().await;
    let cache = cache(&auth, AuthServer::DEFAULT_CLIENT_SECRET);
    let mut client = authorized(channel, cache.clone());

    let reply = within(client.say_hello(hello())).await.unwrap();
    assert_eq!(reply.get_ref().message, "Hello, test!");
    assert_eq!(auth.token_requests(), 1);

    auth.revoke_all();
    let reply = within(client.say_hello(hello())).await.unwrap();
    assert_eq!(reply.get_ref().message, "Hello, test!");
    assert_eq!(auth.token_requests(), 2, "one new token");
    let seen = server.seen();
    assert_eq!(seen.refused, 1);
    assert_eq!(seen.answered, 2);
    assert_eq!(seen.tokens.len(), 3, "two calls, one replay");
    assert_ne!(
        seen.tokens[1], seen.tokens[2],
        "the replay carried a new token"
    );
}

#[tokio::test]
async fn a_token_that_stays_refused_returns_unauthenticated_after_exactly_one_replay() {
    let Setup {
        auth,
        server,
        channel,
    } = setup().await;
    let mut client = authorized(channel, cache(&auth, AuthServer::DEFAULT_CLIENT_SECRET));
    server.refuse_all(true);
    let status = within(client.say_hello(hello())).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let seen = server.seen();
    assert_eq!(seen.tokens.len(), 2, "the call and one replay: {seen:?}");
    assert_eq!(seen.refused, 2);
    assert_eq!(seen.answered, 0);
    assert_eq!(auth.token_requests(), 2);
}

/// The server refuses before it reads the request message, so a replay that relied on
/// recording the body as it went out would often find nothing recorded over HTTP/2. With
/// `collected` every one of these replays.
#[tokio::test]
async fn every_call_refused_before_its_body_was_read_is_replayed() {
    const CALLS: usize = 30;
    let Setup {
        auth,
        server,
        channel,
    } = setup().await;
    // Revocations in quick succession look like an API that refuses every token, which the
    // cache answers by holding new tokens back for its backoff; a short backoff, and calls
    // spaced past it, keep this test about bodies.
    let config = CacheConfig::new().backoff(Duration::from_millis(10), Duration::from_millis(40));
    let cache = TokenCache::with_config(source(&auth, AuthServer::DEFAULT_CLIENT_SECRET), config);
    let mut client = authorized(channel, cache);
    within(client.say_hello(hello())).await.unwrap();
    for call in 0..CALLS {
        tokio::time::sleep(Duration::from_millis(50)).await;
        auth.revoke_all();
        let request = HelloRequest {
            name: format!("call {call} with a body of some length"),
        };
        let reply = within(client.say_hello(request))
            .await
            .unwrap_or_else(|status| panic!("call {call}: {status:?}"));
        assert_eq!(
            reply.get_ref().message,
            format!("Hello, call {call} with a body of some length!")
        );
    }
    let seen = server.seen();
    assert_eq!(seen.refused, CALLS);
    assert_eq!(seen.answered, CALLS + 1);
    assert_eq!(auth.token_requests() as usize, CALLS + 1);
}

#[tokio::test]
async fn concurrent_calls_on_a_cold_cache_share_one_token_request() {
    let Setup {
        auth,
        server: _server,
        channel,
    } = setup().await;
    let client = authorized(channel, cache(&auth, AuthServer::DEFAULT_CLIENT_SECRET));
    let calls = (0..100).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move { client.say_hello(hello()).await })
    });
    for call in futures_join(calls).await {
        call.unwrap().unwrap();
    }
    assert_eq!(auth.token_requests(), 1);
}

async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut results = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        results.push(within(handle).await);
    }
    results
}

#[tokio::test]
async fn a_wrong_secret_fails_the_call_unauthenticated_with_the_fetch_error_as_its_source() {
    let Setup {
        auth,
        server,
        channel,
    } = setup().await;
    let mut client = authorized(channel, cache(&auth, "not-the-secret"));
    let status = within(client.say_hello(hello())).await.unwrap_err();
    // Permanent: the call cannot succeed until someone fixes the credentials.
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let fetch = fetch_error(&status).expect("the FetchError is in the chain");
    assert!(fetch.is_permanent(), "{fetch}");
    assert_eq!(status.message(), fetch.to_string());
    assert!(source_of::<FetchError>(&status).is_some());
    assert!(!format!("{status:?}").contains("not-the-secret"));
    assert!(server.seen().tokens.is_empty(), "no call was sent");
}

/// tonic's clients send path-only URIs. Under an allow-list that is a loud error, and
/// `with_origin` is the fix the error names.
#[tokio::test]
async fn an_allow_list_needs_the_clients_origin_and_says_so() {
    let Setup {
        auth,
        server,
        channel,
    } = setup().await;
    let stack = || {
        ServiceBuilder::new()
            .layer(RetryOn401Layer::collected(64 * 1024).map_body(Body::new))
            .layer(
                BearerAuthLayer::new(cache(&auth, AuthServer::DEFAULT_CLIENT_SECRET))
                    .allow_origins([server.url()])
                    .unwrap(),
            )
            .service(channel.clone())
    };

    let status = within(GreeterClient::new(stack()).say_hello(hello()))
        .await
        .unwrap_err();
    let error = source_of::<RelativeUri>(&status).expect("a RelativeUri error");
    assert_eq!(error.path(), "/greeter.Greeter/SayHello");
    assert!(status.message().contains("with_origin"), "{status:?}");
    assert!(server.seen().tokens.is_empty(), "nothing was sent");

    let origin = server.url().parse().unwrap();
    let reply = within(GreeterClient::with_origin(stack(), origin).say_hello(hello()))
        .await
        .unwrap();
    assert_eq!(reply.get_ref().message, "Hello, test!");
}

/// The authorization server is down: the fetch fails transiently, and the call fails with
/// `UNAVAILABLE` (gRPC's "try again later"), not `UNKNOWN`.
#[tokio::test]
async fn a_call_that_gets_no_token_for_now_fails_unavailable() {
    let Setup {
        auth,
        server,
        channel,
    } = setup().await;
    auth.fail_always(tower_bearer_testkit::Fault::Status(
        http::StatusCode::SERVICE_UNAVAILABLE,
    ));
    let mut client = authorized(channel, cache(&auth, AuthServer::DEFAULT_CLIENT_SECRET));
    let status = within(client.say_hello(hello())).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let fetch = fetch_error(&status).expect("the FetchError is in the chain");
    assert!(fetch.is_transient(), "{fetch}");
    assert!(server.seen().tokens.is_empty(), "no call was sent");

    // Once the server is back (and the cache's backoff has passed), calls go through.
    auth.heal();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match within(client.say_hello(hello())).await {
            Ok(reply) => break assert_eq!(reply.get_ref().message, "Hello, test!"),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                assert!(std::time::Instant::now() < deadline, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
}
