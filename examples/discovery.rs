//! Building a client credentials source from nothing but the authorization server's issuer
//! URL: discovery (RFC 8414, falling back to OpenID Connect discovery) finds the token and
//! revocation endpoints and the client authentication methods the server supports.
//!
//! | variable        |          | meaning                                                |
//! |-----------------|----------|--------------------------------------------------------|
//! | `ISSUER`        | optional | the issuer URL; without it, a mock server is started   |
//! | `CLIENT_ID`     | with `ISSUER` | this service's client id                          |
//! | `CLIENT_SECRET` | with `ISSUER` | its client secret                                 |
//! | `SCOPE`         | optional | the scope to ask for, space-separated                  |
//!
//! ```sh
//! cargo run -p examples --bin discovery      # against an in-process mock server
//! # Against oidc-provider (see interop/README.md for starting it on port 3000):
//! ISSUER=http://127.0.0.1:3000 CLIENT_ID=interop-basic CLIENT_SECRET=interop-basic-secret \
//!     SCOPE=api:read cargo run -p examples --bin discovery
//! ```
//!
//! The issuer must match the metadata's `issuer` exactly (RFC 8414 section 3.3), trailing
//! slash included. Exits with status 2 for a missing setting, 1 when discovery or the token
//! request fails.

use std::env;
use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use tower_bearer::TokenCache;
use tower_bearer_oauth2::{ClientCredentials, Discovery, HttpSettings, TokenParams};
use tower_bearer_testkit::AuthServer;

mod report;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    // Keeps the mock server (if any) running until the end.
    let (issuer, client_id, client_secret, _mock) = match env::var("ISSUER") {
        Ok(issuer) => {
            let (Ok(id), Ok(secret)) = (env::var("CLIENT_ID"), env::var("CLIENT_SECRET")) else {
                eprintln!(
                    "configuration error: with ISSUER set, set CLIENT_ID and CLIENT_SECRET too"
                );
                return ExitCode::from(2);
            };
            (issuer, id, secret, None)
        }
        Err(_) => match AuthServer::builder().start().await {
            Ok(mock) => {
                println!(
                    "ISSUER is not set: started a mock authorization server at {}",
                    mock.url()
                );
                let issuer = mock.url();
                let id = AuthServer::DEFAULT_CLIENT_ID.to_owned();
                let secret = AuthServer::DEFAULT_CLIENT_SECRET.to_owned();
                (issuer, id, secret, Some(mock))
            }
            Err(error) => {
                eprintln!("error: could not start the mock authorization server: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    report::exit_code(run(&issuer, client_id, client_secret).await)
}

async fn run(issuer: &str, client_id: String, client_secret: String) -> Result<(), BoxError> {
    // The endpoint built from the metadata talks to the server as discovery did: the same
    // client and connection pool, the same timeout.
    let http = HttpSettings::new().timeout(Duration::from_secs(10));
    let metadata = Discovery::new().http_settings(http).fetch(issuer).await?;
    println!("issuer                  {}", metadata.issuer());
    println!("token endpoint          {}", metadata.token_endpoint());
    println!(
        "revocation endpoint     {}",
        metadata.revocation_endpoint().unwrap_or("(none)")
    );
    println!(
        "client authentication   {}",
        metadata.token_endpoint_auth_methods_supported().join(", ")
    );

    let endpoint = metadata.endpoint().build()?;
    let client = metadata.client_secret_auth(client_id, client_secret)?;
    let mut params = TokenParams::new();
    if let Ok(scope) = env::var("SCOPE") {
        params = params.scope(scope);
    }
    let source = ClientCredentials::builder(endpoint, client)
        .params(params)
        .build()?;
    println!(
        "chosen                  {}",
        source.client_auth().method().as_str()
    );

    let cache = TokenCache::new(source);
    let token = cache.token().await?;
    // Never the token itself: its type, lifetime and scope are enough to see it worked.
    println!(
        "token                   {} (expires in {} s, scope {})",
        token.token_type(),
        token.expires_at().map_or(0, |at| at
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs()),
        token.scope().unwrap_or("(as requested)")
    );
    Ok(())
}
