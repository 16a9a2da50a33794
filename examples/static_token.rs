//! A token you already have, from an environment variable or a fixed value, on hyper-util's
//! client: the smallest useful setup. The part to copy is the `ServiceBuilder` in `main`.
//!
//! With your own API and token:
//!
//! ```sh
//! API_URL=https://api.example.com/v1/orders API_TOKEN=... cargo run -p examples --bin static_token
//! ```
//!
//! `EnvToken` reads `API_TOKEN` when the cache first asks for a token, and a missing or empty
//! variable is an error that names it; the token itself is never printed.
//!
//! Without `API_TOKEN` there is nothing to set up: the example starts the testkit's mock
//! authorization server and mock API on 127.0.0.1, gets one token from the former and sends
//! it to the latter as a `StaticToken`:
//!
//! ```sh
//! cargo run -p examples --bin static_token
//! ```

use std::error::Error;
use std::process::ExitCode;

use http::Request;
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::source::{EnvToken, StaticToken};
use tower_bearer::{BearerAuthLayer, TokenCache, TokenSource};
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_testkit::{ApiServer, AuthServer};

mod https_client;
mod report;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    report::exit_code(run().await)
}

async fn run() -> Result<(), BoxError> {
    let (cache, api_url, _mock_servers) = match std::env::var_os("API_TOKEN") {
        Some(_) => {
            let api_url = std::env::var("API_URL")
                .map_err(|_| "API_TOKEN is set, so set API_URL to the URL to call as well")?;
            (TokenCache::new(EnvToken::new("API_TOKEN")), api_url, None)
        }
        None => {
            println!(
                "API_TOKEN is not set: calling the testkit's mock API on 127.0.0.1 with a \
                 token from its mock authorization server, as a StaticToken."
            );
            let auth = AuthServer::start().await?;
            let api = ApiServer::start(&auth).await?;
            let endpoint = Endpoint::builder(auth.token_url()).build()?;
            let client = ClientAuth::secret_basic(
                AuthServer::DEFAULT_CLIENT_ID,
                AuthServer::DEFAULT_CLIENT_SECRET,
            )?;
            let token = ClientCredentials::builder(endpoint, client)
                .build()?
                .fetch()
                .await?;
            let api_url = format!("{}/orders", api.url());
            let cache = TokenCache::new(StaticToken::from_token(token));
            (cache, api_url, Some((auth, api)))
        }
    };

    // The setup: a token cache over the source, the auth layer, your HTTP client. For a
    // token that rotates (`FileToken`, OAuth 2.0), put `RetryOn401Layer` above the auth layer.
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(cache))
        .service(https_client::https_client()?);

    let request = Request::get(&api_url).body(Full::default())?;
    let response = client.oneshot(request).await?;
    println!("GET {api_url} -> {}", response.status());
    Ok(())
}
