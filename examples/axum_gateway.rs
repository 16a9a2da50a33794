//! axum: a service whose handlers call a downstream API through one shared client in
//! `State`, with tokens from one cache. The part to copy is `Gateway::new` and the error
//! mapping in `examples/gateway.rs`.
//!
//! ```sh
//! cargo run -p examples --bin axum_gateway
//! ```
//!
//! It starts the testkit's mock authorization server and API and the gateway on
//! 127.0.0.1, asks the gateway for an order, has the authorization server revoke the token
//! (the gateway's client replays once with a new one), then shows the gateway's answer when
//! it cannot get a token (503) and when the API is down (502). It exits when done.

use std::error::Error;
use std::process::ExitCode;

use examples::gateway::Gateway;
use tower_bearer::TokenCache;
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_testkit::{ApiServer, AuthServer};

mod report;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    report::exit_code(run().await)
}

async fn run() -> Result<(), BoxError> {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let cache = TokenCache::new(credentials(&auth, AuthServer::DEFAULT_CLIENT_SECRET)?);
    let gateway = serve(Gateway::new(cache, &api.url())?).await?;
    let browser = reqwest::Client::new();

    let get = |url: String| {
        let browser = browser.clone();
        async move {
            let response = browser.get(url).send().await?;
            let status = response.status();
            Ok::<_, BoxError>((status, response.text().await?))
        }
    };

    let (status, body) = get(format!("{gateway}/orders/7")).await?;
    println!("order 7: {status} {}", body.trim());

    auth.revoke_all();
    let (status, _) = get(format!("{gateway}/orders/8")).await?;
    println!(
        "after revocation: {status} ({} token requests, {} API requests)",
        auth.token_requests(),
        api.requests()
    );

    // A gateway whose client cannot get a token: 503, and the API never sees the request.
    let wrong = TokenCache::new(credentials(&auth, "not-the-secret")?);
    let broken = serve(Gateway::new(wrong, &api.url())?).await?;
    let (status, body) = get(format!("{broken}/orders/7")).await?;
    println!("without a token: {status} {}", body.trim());

    // The API goes away: 502.
    api.shutdown().await;
    let (status, body) = get(format!("{gateway}/orders/7")).await?;
    println!("API down: {status} {}", body.trim());
    Ok(())
}

/// Serves the gateway on an ephemeral port of 127.0.0.1; returns its base URL.
async fn serve(gateway: Gateway) -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, gateway.router()).await });
    Ok(url)
}

fn credentials(auth: &AuthServer, secret: &str) -> Result<ClientCredentials, BoxError> {
    let endpoint = Endpoint::builder(auth.token_url()).build()?;
    let client = ClientAuth::secret_basic(AuthServer::DEFAULT_CLIENT_ID, secret)?;
    Ok(ClientCredentials::builder(endpoint, client).build()?)
}
