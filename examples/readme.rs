//! The README's code blocks, each inside a function that gives it what the README's text
//! around it says it has (a source, a cache, an HTTP client), so that they compile with the
//! crates as they are. `tests/readme.rs` checks that every Rust block of the README is here,
//! line for line between `README begin` and `README end`: a README block that changes
//! without this file, or one that stops compiling, fails the suite.
//!
//! Nothing here runs; the examples that run are the binaries beside this file.

#![allow(dead_code, unused_variables, unused_imports, unused_mut)]

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::transport::Channel;
use tower::util::BoxCloneSyncService;
use tower_bearer::source::oauth2_crate;
use tower_bearer::store::{StoreKey, StoreSource};
use tower_bearer::BoxError;
use tower_bearer_oauth2::RefreshToken;
use tower_bearer_redis::RedisStore;
use tower_bearer_tonic::Authorized;

use crate::greeter::GreeterClient;

/// What the README's hyper snippets wrap: hyper-util's client.
type HyperClient = Client<HttpConnector, Full<Bytes>>;

/// "Use it": client credentials, the two layers, any inner service.
#[rustfmt::skip]
fn use_it(hyper_client: HyperClient) -> Result<(), BoxError> {
    // README begin
    use tower::ServiceBuilder;
    use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
    use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, TokenParams};

    // Where and how to reach the server: built once, shared (with its connection pool) by
    // every source on it.
    let endpoint = Endpoint::builder("https://auth.example.com/oauth2/token").build()?;
    // Who we are and how we prove it.
    let client = ClientAuth::secret_basic("billing-service", std::env::var("BILLING_CLIENT_SECRET")?)?;
    let source = ClientCredentials::builder(endpoint, client)
        .params(TokenParams::new().scope("invoices:read"))
        .build()?;

    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())                       // outside: replays a rejected call once
        .layer(BearerAuthLayer::new(TokenCache::new(source))) // inside: adds the header, drops rejected tokens
        .service(hyper_client);                               // any Service<http::Request<B>>
    // README end
    Ok(())
}

/// "reqwest".
#[rustfmt::skip]
async fn reqwest(source: tower_bearer::source::StaticToken) -> Result<(), BoxError> {
    use tower_bearer::TokenCache;
    // README begin
    use reqwest_middleware::ClientBuilder;
    use tower_bearer_reqwest::{fetch_error, BearerAuthMiddleware};

    let auth = BearerAuthMiddleware::new(TokenCache::new(source))
        .allow_origins(["https://api.example.com"])?;
    let client = ClientBuilder::new(reqwest::Client::new()).with(auth).build();
    match client.get("https://api.example.com/v1/invoices").send().await {
        Ok(response) => println!("{}", response.status()),
        // No token, so the request was not sent: the cache's error, typed.
        Err(error) => match fetch_error(&error) {
            Some(fetch) if fetch.is_permanent() => eprintln!("fix the credentials: {fetch}"),
            _ => eprintln!("{error}"),
        },
    }
    // README end
    Ok(())
}

/// "gRPC with tonic".
#[rustfmt::skip]
async fn tonic(cache: tower_bearer::TokenCache) -> Result<(), BoxError> {
    // README begin
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect().await?;
    let mut client: GreeterClient<Authorized<Channel>> =
        GreeterClient::new(tower_bearer_tonic::authorize(channel, cache));
    // README end
    Ok(())
}

/// The handlers' state in the README's axum snippet.
#[derive(Clone)]
struct Gateway {
    client: BoxCloneSyncService<
        http::Request<Full<Bytes>>,
        http::Response<hyper::body::Incoming>,
        BoxError,
    >,
    api: String,
}

/// The handler the README's axum snippet routes to (`examples/gateway.rs` has a real one).
#[rustfmt::skip]
async fn order(State(gateway): State<Gateway>, Path(id): Path<String>) -> String {
    id
}

/// "axum".
#[rustfmt::skip]
fn axum(cache: tower_bearer::TokenCache, api: &str) -> Result<Router, BoxError> {
    use tower::ServiceBuilder;
    use tower_bearer::{BearerAuthLayer, RetryOn401Layer};
    // README begin
    // Built once; axum clones it into every handler through `State`.
    let client = ServiceBuilder::new()
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(10)))
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache).allow_origins([api])?)
        .service(Client::builder(TokioExecutor::new()).build_http());
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .with_state(Gateway { client: BoxCloneSyncService::new(client), api: api.into() });
    // README end
    Ok(app)
}

/// An `oauth2` client with its token URL set, as the README's snippet takes it.
type BasicClient = oauth2::basic::BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

/// "The `oauth2` crate".
#[rustfmt::skip]
fn oauth2_crate_bridge<C, F>(client: BasicClient, http_client: C) -> impl tower_bearer::TokenSource
where
    C: Fn(oauth2::HttpRequest) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<oauth2::HttpResponse, std::io::Error>> + Send + 'static,
{
    // README begin
    let source = tower_bearer::source::from_fn(move || {
        let client = client.clone(); // an oauth2::basic::BasicClient with its token URL set
        let http_client = http_client.clone(); // anything oauth2 sends with (an AsyncHttpClient)
        async move {
            let response = client
                .exchange_client_credentials()
                .request_async(&http_client)
                .await
                .map_err(oauth2_crate::fetch_error)?;
            oauth2_crate::token(&response)
        }
    });
    // README end
    source
}

/// "DPoP: tokens bound to a key".
#[rustfmt::skip]
fn dpop(
    endpoint: tower_bearer_oauth2::Endpoint,
    secret: String,
    hyper_client: HyperClient,
) -> Result<(), BoxError> {
    use tower::ServiceBuilder;
    use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
    use tower_bearer_oauth2::{ClientAuth, ClientCredentials};
    // README begin
    use tower_bearer::dpop::DpopKey;

    // ES256 (or `generate_ed25519`, or `from_pkcs8_pem` for a key from your secret store).
    let key = DpopKey::generate_es256()?;
    let client = ClientAuth::secret_basic("billing-service", secret)?.dpop(key);
    let source = ClientCredentials::builder(endpoint, client).build()?;
    // The same two layers as for bearer tokens (or, for reqwest, the same middleware).
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(TokenCache::new(source)))
        .service(hyper_client);
    // README end
    Ok(())
}

/// "A fleet sharing one token".
#[rustfmt::skip]
fn fleet(source: tower_bearer_oauth2::ClientCredentials, key: [u8; 32]) -> Result<(), BoxError> {
    use tower_bearer::TokenCache;
    // README begin
    let store = RedisStore::builder("rediss://redis.internal:6380").encryption_key("k1", key).build()?;
    let token_key = source.store_key(); // a hash of token URL, client id, scope: never the secret
    let cache = TokenCache::new(StoreSource::new(source, store, token_key));
    // README end
    Ok(())
}

/// "A fleet sharing one token": the refresh token shared by every replica.
#[rustfmt::skip]
fn shared_refresh(
    endpoint: tower_bearer_oauth2::Endpoint,
    client: tower_bearer_oauth2::ClientAuth,
    configured_refresh_token: String,
    token_url: &str,
    client_id: &str,
    key: [u8; 32],
) -> Result<(), BoxError> {
    use tower_bearer::TokenCache;
    // README begin
    let store = RedisStore::builder("rediss://redis.internal:6380").encryption_key("k1", key).build()?;
    let grant = StoreKey::builder(token_url, client_id).param("grant", "reporting-bot").build();
    let refresh = RefreshToken::builder(endpoint, client, configured_refresh_token)
        .share_through(store.clone(), grant.clone())
        .build()?;
    let cache = TokenCache::new(StoreSource::new(refresh, store, grant));
    // README end
    Ok(())
}
