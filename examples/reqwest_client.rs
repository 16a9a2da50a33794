//! reqwest with tower-bearer's token cache, through reqwest-middleware: the client-credentials
//! grant from `tower-bearer-oauth2`, the cache, and `BearerAuthMiddleware`. The part to copy
//! is the `ClientBuilder` in `run`.
//!
//! ```sh
//! cargo run -p examples --bin reqwest_client
//! ```
//!
//! It starts the testkit's mock authorization server and API on 127.0.0.1, calls the API,
//! has the server revoke the token so the next call is rejected and replayed once with a new
//! one, then shows the typed error a wrong client secret gives. It exits when done.

use std::error::Error;
use std::process::ExitCode;

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use secrecy::ExposeSecret;
use tower_bearer::TokenCache;
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_reqwest::{fetch_error, BearerAuthMiddleware};
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
    let url = format!("{}/orders", api.url());

    let cache = TokenCache::new(credentials(&auth, AuthServer::DEFAULT_CLIENT_SECRET)?);
    let client = reqwest_client(cache.clone(), &api)?;

    let response = client.get(&url).send().await?;
    println!("first call: {}", response.status());

    // The server forgets the token: the next call gets a 401, and the middleware replays it
    // once with a new token.
    if let Some(token) = cache.cached() {
        auth.revoke(token.secret().expose_secret());
    }
    let response = client.get(&url).send().await?;
    println!(
        "after revocation: {} ({} token requests, {} API requests)",
        response.status(),
        auth.token_requests(),
        api.requests()
    );

    // A wrong secret: no token, so no request is sent, and the error says why.
    let wrong = TokenCache::new(credentials(&auth, "not-the-secret")?);
    let requests_before = api.requests();
    match reqwest_client(wrong, &api)?.get(&url).send().await {
        Ok(response) => return Err(format!("expected an error, got {}", response.status()).into()),
        Err(error) => match fetch_error(&error) {
            Some(fetch) => println!(
                "wrong secret: {fetch} (permanent: {}, requests sent: {})",
                fetch.is_permanent(),
                api.requests() - requests_before
            ),
            None => return Err(error.into()),
        },
    }
    Ok(())
}

/// The client a user builds: the token goes to the API's origin only.
fn reqwest_client(cache: TokenCache, api: &ApiServer) -> Result<ClientWithMiddleware, BoxError> {
    let auth = BearerAuthMiddleware::new(cache).allow_origins([api.url()])?;
    Ok(ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build())
}

fn credentials(auth: &AuthServer, secret: &str) -> Result<ClientCredentials, BoxError> {
    let endpoint = Endpoint::builder(auth.token_url()).build()?;
    let client = ClientAuth::secret_basic(AuthServer::DEFAULT_CLIENT_ID, secret)?;
    Ok(ClientCredentials::builder(endpoint, client).build()?)
}
