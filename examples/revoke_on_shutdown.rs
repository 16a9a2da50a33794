//! Revoking the access token when the service stops (RFC 7009), so a token that outlives
//! the process cannot be replayed from a log, a core dump or a captured request.
//!
//! `Drop` cannot make a network call, so shutdown is explicit: after the last request,
//! `ClientCredentials::revoke_cached(&cache)` revokes the cached token at the revocation
//! endpoint and drops it from the cache.
//!
//! | variable         |          | meaning                                               |
//! |------------------|----------|-------------------------------------------------------|
//! | `TOKEN_URL`      | optional | the token endpoint; without it, mock servers are used |
//! | `REVOCATION_URL` | with `TOKEN_URL` | the revocation endpoint                       |
//! | `CLIENT_ID`, `CLIENT_SECRET` | with `TOKEN_URL` | the client's credentials          |
//! | `API_URL`        | with `TOKEN_URL` | the URL to call                               |
//! | `RUN_FOR_SECS`   | optional | how long to serve before stopping (default 2); Ctrl-C stops it sooner |
//!
//! ```sh
//! cargo run -p examples --bin revoke_on_shutdown
//! ```
//!
//! Against the mock servers it also shows the point of it: after shutdown, the API
//! rejects the revoked token.

use std::env;
use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use secrecy::ExposeSecret;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_testkit::{ApiServer, AuthServer};

mod https_client;
mod report;

type BoxError = Box<dyn Error + Send + Sync>;

/// The mock servers, when no `TOKEN_URL` is given; kept alive until the end.
struct Mocks {
    auth: AuthServer,
    api: ApiServer,
}

#[tokio::main]
async fn main() -> ExitCode {
    report::exit_code(run().await)
}

async fn run() -> Result<(), BoxError> {
    let (source, api_url, mocks) = settings().await?;
    let run_for = match env::var("RUN_FOR_SECS") {
        Ok(secs) => Duration::from_secs(
            secs.parse()
                .map_err(|_| format!("RUN_FOR_SECS must be a whole number, got {secs:?}"))?,
        ),
        Err(_) => Duration::from_secs(2),
    };

    let cache = TokenCache::new(source.clone());
    let http = https_client::https_client()?;
    let mut client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(http.clone());

    // Serve: one call every 200 ms until the time is up or Ctrl-C.
    println!("serving for {} s (Ctrl-C stops sooner)", run_for.as_secs());
    let stop = tokio::time::sleep(run_for);
    tokio::pin!(stop);
    let mut calls = 0u32;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let request = Request::get(api_url.clone()).body(Full::default())?;
                let response = client.ready().await?.call(request).await?;
                calls += 1;
                response.into_body().collect().await?;
            }
        }
    }
    println!(
        "{calls} calls with {} token request(s)",
        cache.stats().fetches
    );

    // Shutdown: revoke what the cache holds.
    let last_token = cache.cached();
    match source.revoke_cached(&cache).await {
        Ok(true) => println!("shutdown: revoked the cached access token"),
        Ok(false) => println!("shutdown: no token to revoke"),
        Err(error) => println!("shutdown: could not revoke the access token: {error}"),
    }

    if let (Some(mocks), Some(token)) = (mocks, last_token) {
        println!(
            "mock authorization server: {} revocation request(s), {} token(s) revoked",
            mocks.auth.revocation_requests(),
            mocks.auth.tokens_revoked()
        );
        // Replaying the old token by hand, as someone who found it in a log would.
        let replay = Request::get(api_url)
            .header(
                AUTHORIZATION,
                format!("Bearer {}", token.secret().expose_secret()),
            )
            .body(Full::default())?;
        let status = http.clone().oneshot(replay).await?.status();
        println!("the revoked token replayed at the API: {status}");
        if status != StatusCode::UNAUTHORIZED {
            return Err(format!("expected 401 for a revoked token, got {status}").into());
        }
        drop(mocks.api);
    }
    Ok(())
}

/// The source and API URL from the environment, or from mock servers started here.
async fn settings() -> Result<(ClientCredentials, Uri, Option<Mocks>), BoxError> {
    if let Ok(token_url) = env::var("TOKEN_URL") {
        let need =
            |name: &str| env::var(name).map_err(|_| format!("with TOKEN_URL set, set {name} too"));
        let endpoint = Endpoint::builder(token_url)
            .revocation_url(need("REVOCATION_URL")?)
            .build()?;
        let client = ClientAuth::secret_basic(need("CLIENT_ID")?, need("CLIENT_SECRET")?)?;
        let source = ClientCredentials::builder(endpoint, client).build()?;
        let api_url = need("API_URL")?.parse()?;
        return Ok((source, api_url, None));
    }
    let auth = AuthServer::builder().start().await?;
    let api = ApiServer::start(&auth).await?;
    println!(
        "TOKEN_URL is not set: started mock servers at {} and {}",
        auth.url(),
        api.url()
    );
    let endpoint = Endpoint::builder(auth.token_url())
        .revocation_url(auth.revocation_url())
        .build()?;
    let client = ClientAuth::secret_basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    let source = ClientCredentials::builder(endpoint, client).build()?;
    let api_url = format!("{}/orders", api.url()).parse()?;
    Ok((source, api_url, Some(Mocks { auth, api })))
}
