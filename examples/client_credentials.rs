//! A service that calls an API with tokens from the OAuth 2.0 client credentials grant,
//! configured from its environment as a twelve-factor service is:
//!
//! | variable        |          | meaning                                               |
//! |-----------------|----------|-------------------------------------------------------|
//! | `TOKEN_URL`     | required | the authorization server's token endpoint             |
//! | `CLIENT_ID`     | required | this service's client id                              |
//! | `CLIENT_SECRET` | required | its client secret                                     |
//! | `CLIENT_AUTH`   | optional | how to send it: `client_secret_basic` (the default),  |
//! |                 |          | `client_secret_post`, or `auto` (Basic, and post once |
//! |                 |          | if the server answers `invalid_client`; remembered)   |
//! | `SCOPE`         | optional | the scope to ask for, space-separated                 |
//! | `API_URL`       | required | the URL to call                                       |
//! | `REQUESTS`      | optional | how many calls to make, one after another (default 1) |
//!
//! It prints each response's status and, at the end, how many token requests it made: one
//! for any number of calls while the token lasts. A missing or malformed setting stops it
//! before any request with exit status 2 and a message naming the variable; a call that
//! gets no response makes the exit status 1.
//!
//! `TOKEN_URL` must be `https://`, except for a loopback host, where `http://` is accepted.
//!
//! To try it without an authorization server of your own, start the testkit's mock servers
//! in one terminal and paste the `export` lines they print into a second one:
//!
//! ```sh
//! cargo run -p examples --bin testkit_servers      # terminal 1
//! REQUESTS=5 cargo run -p examples --bin client_credentials   # terminal 2
//! ```

use std::env::{self, VarError};
use std::error::Error;
use std::fmt;
use std::process::ExitCode;

use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
use tower_bearer_oauth2::{BuildError, ClientAuth, ClientCredentials, Endpoint, TokenParams};

mod https_client;

type BoxError = Box<dyn Error + Send + Sync>;

/// Exit status for a setting that is missing or wrong.
const BAD_SETTINGS: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(BAD_SETTINGS);
        }
    };
    match run(settings).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Makes the calls; `Ok(false)` if any of them got no response.
async fn run(settings: Settings) -> Result<bool, BoxError> {
    let cache = TokenCache::new(settings.source);
    let mut client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(https_client::https_client()?);

    let mut all_answered = true;
    for number in 1..=settings.requests {
        let request = Request::get(settings.api_url.clone()).body(Full::default())?;
        match client.ready().await?.call(request).await {
            Ok(response) => {
                println!("request {number}: {}", response.status());
                // Read to the end, so the connection can be reused.
                response.into_body().collect().await?;
            }
            Err(error) => {
                all_answered = false;
                println!("request {number}: failed: {error}");
                for cause in std::iter::successors(error.source(), |&cause| cause.source()) {
                    println!("  caused by: {cause}");
                }
            }
        }
    }
    println!("token requests made: {}", cache.stats().fetches);
    Ok(all_answered)
}

/// What the environment says, checked.
struct Settings {
    source: ClientCredentials,
    api_url: Uri,
    requests: u32,
}

impl Settings {
    fn from_env() -> Result<Settings, SettingsError> {
        let token_url = required("TOKEN_URL", "the authorization server's token endpoint")?;
        let client_id = required("CLIENT_ID", "this service's client id")?;
        let client_secret = required("CLIENT_SECRET", "this service's client secret")?;
        let method = auth_method()?;
        let scope = optional("SCOPE")?;
        let api_url = required("API_URL", "the URL of the API to call")?;
        let api_url = api_url
            .parse::<Uri>()
            .ok()
            .filter(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
            })
            .ok_or_else(|| {
                SettingsError(format!(
                    "API_URL must be an absolute http:// or https:// URL, got {api_url:?}"
                ))
            })?;
        let requests = requests()?;

        let mut params = TokenParams::new();
        if let Some(scope) = scope {
            params = params.scope(scope);
        }
        // Checks the token URL (https, or http to loopback), the id, secret and scope.
        let source =
            build_source(token_url, client_id, client_secret, method, params).map_err(|error| {
                let variable = if error.is_invalid_url() || error.is_insecure_http() {
                    "TOKEN_URL"
                } else if error.is_invalid_credentials() {
                    "CLIENT_ID or CLIENT_SECRET"
                } else if error.is_invalid_parameter() {
                    "SCOPE"
                } else {
                    "the client credentials settings"
                };
                SettingsError(format!("{variable}: {error}"))
            })?;
        Ok(Settings {
            source,
            api_url,
            requests,
        })
    }
}

/// A setting that is missing or malformed; the message names the variable.
#[derive(Debug)]
struct SettingsError(String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for SettingsError {}

/// The source for the token endpoint at `token_url`, authenticating as `client_id` with
/// `client_secret` (`client_secret_basic`) and asking for `params`; every part is checked.
fn build_source(
    token_url: String,
    client_id: String,
    client_secret: String,
    method: Method,
    params: TokenParams,
) -> Result<ClientCredentials, BuildError> {
    let endpoint = Endpoint::builder(token_url).build()?;
    let client = match method {
        Method::Basic => ClientAuth::secret_basic(client_id, client_secret)?,
        Method::Post => ClientAuth::secret_post(client_id, client_secret)?,
        Method::Auto => ClientAuth::secret_auto(client_id, client_secret)?,
    };
    ClientCredentials::builder(endpoint, client)
        .params(params)
        .build()
}

/// How the client secret is sent, from `CLIENT_AUTH`.
#[derive(Clone, Copy, Debug)]
enum Method {
    Basic,
    Post,
    Auto,
}

/// `CLIENT_AUTH`: `client_secret_basic` when unset.
fn auth_method() -> Result<Method, SettingsError> {
    match optional("CLIENT_AUTH")?.as_deref().map(str::trim) {
        None | Some("client_secret_basic") => Ok(Method::Basic),
        Some("client_secret_post") => Ok(Method::Post),
        Some("auto") => Ok(Method::Auto),
        Some(other) => Err(SettingsError(format!(
            "CLIENT_AUTH must be client_secret_basic, client_secret_post or auto, got {other:?}"
        ))),
    }
}

/// A variable that must be set and not empty.
fn required(name: &str, meaning: &str) -> Result<String, SettingsError> {
    optional(name)?.ok_or_else(|| SettingsError(format!("{name} is not set; set it to {meaning}")))
}

/// A variable that may be unset; empty counts as unset.
fn optional(name: &str) -> Result<Option<String>, SettingsError> {
    match env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => Err(SettingsError(format!("{name} is not valid UTF-8"))),
    }
}

/// `REQUESTS`: a whole number of at least 1, 1 when unset.
fn requests() -> Result<u32, SettingsError> {
    let Some(value) = optional("REQUESTS")? else {
        return Ok(1);
    };
    match value.trim().parse::<u32>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(SettingsError(format!(
            "REQUESTS must be a whole number of calls, 1 or more (like REQUESTS=10), got {value:?}"
        ))),
    }
}
