//! A service that calls an API with OAuth 2.0 client credentials, configured from the
//! environment as a twelve-factor service would be:
//!
//! | variable        |          | meaning                                   |
//! |-----------------|----------|-------------------------------------------|
//! | `TOKEN_URL`     | required | the authorization server's token endpoint |
//! | `CLIENT_ID`     | required | this service's client id                  |
//! | `CLIENT_SECRET` | required | its secret                                |
//! | `SCOPE`         | optional | space-separated scopes to ask for         |
//! | `API_URL`       | required | the URL to call                           |
//! | `REQUESTS`      | optional | how many calls to make (default 1)        |
//!
//! It prints each response's status and how many token requests were made. To try it
//! without an authorization server of your own, start the testkit's mock servers in one
//! terminal and paste the variables they print into another:
//!
//! ```sh
//! cargo run -p examples --bin testkit_servers
//! # in a second terminal, after the `export` lines it printed:
//! REQUESTS=5 cargo run -p examples --bin client_credentials
//! ```
//!
//! An `http://` token URL is accepted only for loopback hosts.

use std::error::Error;
use std::process::ExitCode;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
use tower_bearer_oauth2::ClientCredentials;

/// The settings, read from the environment.
struct Settings {
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    api_url: String,
    requests: u32,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let required = |name: &str| match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(format!(
                "{name} is not set; see the table at the top of this example"
            )),
        };
        let requests = match std::env::var("REQUESTS") {
            Err(_) => 1,
            Ok(value) => value.trim().parse().map_err(|_| {
                format!("REQUESTS must be a whole number of calls, like 10 (got {value:?})")
            })?,
        };
        Ok(Settings {
            token_url: required("TOKEN_URL")?,
            client_id: required("CLIENT_ID")?,
            client_secret: required("CLIENT_SECRET")?,
            scope: std::env::var("SCOPE").ok().filter(|s| !s.trim().is_empty()),
            api_url: required("API_URL")?,
            requests,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("configuration error: {message}");
            return ExitCode::from(2);
        }
    };
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut source = ClientCredentials::builder(
        settings.token_url,
        settings.client_id,
        settings.client_secret,
    );
    if let Some(scope) = settings.scope {
        source = source.scope(scope);
    }
    let cache = TokenCache::new(source.build()?);
    let mut client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    for number in 1..=settings.requests {
        let request = Request::get(&settings.api_url).body(Full::default())?;
        let response = client.ready().await?.call(request).await?;
        println!("request {number}: {}", response.status());
    }
    println!("token requests made: {}", cache.stats().fetches);
    Ok(())
}
