//! The testkit's mock authorization server and mock API on 127.0.0.1, running until Ctrl-C,
//! so you can point the `client_credentials` example (or your own client) at them:
//!
//! ```sh
//! cargo run -p examples --bin testkit_servers      # terminal 1: prints `export` lines
//! REQUESTS=5 cargo run -p examples --bin client_credentials   # terminal 2, after pasting them
//! ```
//!
//! The API answers any path with 200 `hello` for a valid token and 401 with an RFC 6750
//! challenge otherwise. On Ctrl-C it prints how many requests each server saw.
//!
//! `SERVER_CLIENT_AUTH=client_secret_post` (or `client_secret_basic`) has the authorization
//! server accept only that method, as a server whose client is registered for it does; try
//! the client with `CLIENT_AUTH=auto` against it.

use std::error::Error;
use std::time::Duration;

use tower_bearer_testkit::{ApiServer, AuthServer, ClientAuthMethod};

/// Tokens live long enough for a session of trying things, short enough to see a refresh.
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut builder = AuthServer::builder().token_lifetime(TOKEN_LIFETIME);
    match std::env::var("SERVER_CLIENT_AUTH").as_deref() {
        Ok("client_secret_post") => {
            builder = builder.client_auth_methods(&[ClientAuthMethod::Post]);
        }
        Ok("client_secret_basic") => {
            builder = builder.client_auth_methods(&[ClientAuthMethod::Basic]);
        }
        Ok(other) if !other.is_empty() => {
            return Err(format!(
                "SERVER_CLIENT_AUTH must be client_secret_basic or client_secret_post, got {other:?}"
            )
            .into());
        }
        _ => {}
    }
    let auth = builder.start().await?;
    let api = ApiServer::start(&auth).await?;

    println!(
        "# Mock servers on 127.0.0.1; tokens live {} s.",
        TOKEN_LIFETIME.as_secs()
    );
    println!("# Paste these lines into another terminal:");
    println!("export TOKEN_URL={}", auth.token_url());
    println!("export CLIENT_ID={}", AuthServer::DEFAULT_CLIENT_ID);
    println!("export CLIENT_SECRET={}", AuthServer::DEFAULT_CLIENT_SECRET);
    println!("export API_URL={}/orders", api.url());
    println!("# Ctrl-C stops the servers.");

    tokio::signal::ctrl_c().await?;
    println!(
        "\nStopped. Token requests: {}. API requests: {} ({} answered 200, {} answered 401).",
        auth.token_requests(),
        api.requests(),
        api.authorized(),
        api.rejected()
    );
    Ok(())
}
