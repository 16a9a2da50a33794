//! A token you already have (a static value or an environment variable) on a plain hyper
//! client: the smallest useful setup.
//!
//! ```sh
//! API_URL=https://api.example.com/v1/things API_TOKEN=... cargo run -p examples --bin static_token
//! ```
//!
//! `EnvToken` reads `API_TOKEN` when the cache asks, so a rotated value is picked up after
//! the next 401. Without `API_URL`, the example starts the testkit's mock servers on
//! 127.0.0.1, gets one token from the mock authorization server and uses it as a static token.

use std::error::Error;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::source::{EnvToken, StaticToken};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer, SharedSource, TokenCache, TokenSource};
use tower_bearer_oauth2::ClientCredentials;
use tower_bearer_testkit::{ApiServer, AuthServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // Keep the mock servers alive until the end of `main` when they are used.
    let mut _servers = None;
    let (api_url, source) = match std::env::var("API_URL") {
        Ok(url) => (url, SharedSource::new(EnvToken::new("API_TOKEN"))),
        Err(_) => {
            println!("API_URL is not set: using the testkit's mock API on 127.0.0.1.");
            let auth = AuthServer::start().await?;
            let api = ApiServer::start(&auth).await?;
            let token = ClientCredentials::builder(
                auth.token_url(),
                AuthServer::DEFAULT_CLIENT_ID,
                AuthServer::DEFAULT_CLIENT_SECRET,
            )
            .build()?
            .fetch()
            .await?;
            let url = api.url();
            _servers = Some((auth, api));
            (url, SharedSource::new(StaticToken::from_token(token)))
        }
    };

    // This is the part to copy: a cache over the source, the auth layer, the retry layer.
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(TokenCache::new(source)))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let request = Request::get(&api_url).body(Full::default())?;
    let response = client.oneshot(request).await?;
    println!("GET {api_url} -> {}", response.status());
    Ok(())
}
