//! DPoP (RFC 9449): tokens bound to a key the client holds, with a proof on every request.
//! The part to copy is `client` below: a key on the `ClientAuth`, and the usual two layers.
//!
//! ```sh
//! cargo run -p examples --bin dpop_client
//! ```
//!
//! It starts the testkit's mock authorization server and API on 127.0.0.1, both verifying
//! DPoP proofs for real and both requiring server nonces, then calls the API a few times.
//! The first token request and the first API request are each answered `use_dpop_nonce`
//! and retried once with the server's nonce; after that, every proof carries the latest
//! one. It shows the token bound to the key's thumbprint, then that a stolen copy of the
//! token is useless without the key. Then it does the same through reqwest
//! (`BearerAuthMiddleware`, the same authorizer as the layers), with a key of its own. It
//! exits when done.

use std::error::Error;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::ExposeSecret;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::dpop::DpopKey;
use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_reqwest::BearerAuthMiddleware;
use tower_bearer_testkit::{ApiServer, AuthServer, DpopNoncePolicy, DpopOptions};

mod report;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    report::exit_code(run().await)
}

async fn run() -> Result<(), BoxError> {
    let nonces = || {
        DpopOptions::new()
            .require_proof(true)
            .require_nonce(DpopNoncePolicy::new())
    };
    let auth = AuthServer::builder().dpop(nonces()).start().await?;
    let api = ApiServer::builder(&auth).dpop(nonces()).start().await?;

    // ES256, generated here; in production, load one with `DpopKey::from_pkcs8_pem`.
    let key = DpopKey::generate_es256()?;
    println!("key: {} {}", key.algorithm(), key.thumbprint());
    let cache = TokenCache::new(source(&auth, key.clone())?);
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    for path in ["/orders", "/orders/7", "/invoices"] {
        let request = http::Request::get(format!("{}{path}", api.url())).body(Full::default())?;
        let response = client.clone().oneshot(request).await?;
        println!("GET {path}: {}", response.status());
    }
    let token = cache.cached().ok_or("no token cached")?;
    let bound_to = auth.token_jkt(token.secret().expose_secret());
    println!(
        "token: {} bound to {} ({} token requests, {} API requests for 3 calls)",
        token.token_type(),
        bound_to.as_deref().unwrap_or("nothing"),
        auth.token_requests(),
        api.requests()
    );

    // A copy of the token, sent by someone without the key: refused.
    let stolen = http::Request::get(format!("{}/orders", api.url()))
        .header(
            "authorization",
            format!("Bearer {}", token.secret().expose_secret()),
        )
        .body(Full::<Bytes>::default())?;
    let response = Client::builder(TokioExecutor::new())
        .build_http()
        .request(stolen)
        .await?;
    println!("the same token without its key: {}", response.status());

    // reqwest: the middleware drives the same authorizer, so it sends the same proofs and
    // learns the same nonces. Another key, so its first requests show the nonce round trips.
    let key = DpopKey::generate_ed25519()?;
    let cache = TokenCache::new(source(&auth, key)?);
    let reqwest = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(cache.clone()))
        .build();
    let (tokens_before, api_before) = (auth.token_requests(), api.requests());
    for path in ["/orders", "/orders/7", "/invoices"] {
        let response = reqwest.get(format!("{}{path}", api.url())).send().await?;
        println!("reqwest GET {path}: {}", response.status());
    }
    println!(
        "reqwest: {} token requests, {} API requests for 3 calls",
        auth.token_requests() - tokens_before,
        api.requests() - api_before
    );
    Ok(())
}

/// Client credentials whose client holds `key`: every token request carries a proof.
fn source(auth: &AuthServer, key: DpopKey) -> Result<ClientCredentials, BoxError> {
    let endpoint = Endpoint::builder(auth.token_url()).build()?;
    let client = ClientAuth::secret_basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?
    .dpop(key);
    Ok(ClientCredentials::builder(endpoint, client).build()?)
}
