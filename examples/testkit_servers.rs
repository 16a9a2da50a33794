//! Starts the testkit's mock authorization server and mock API on 127.0.0.1 and keeps them
//! running until Ctrl-C, printing the environment the `client_credentials` example needs.
//!
//! ```sh
//! cargo run -p examples --bin testkit_servers
//! ```

use std::error::Error;

use tower_bearer_testkit::{ApiServer, AuthServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    println!("# mock servers on 127.0.0.1; paste these into another shell:");
    println!("export TOKEN_URL={}", auth.token_url());
    println!("export CLIENT_ID={}", AuthServer::DEFAULT_CLIENT_ID);
    println!("export CLIENT_SECRET={}", AuthServer::DEFAULT_CLIENT_SECRET);
    println!("export API_URL={}", api.url());
    println!("# Ctrl-C stops them.");
    tokio::signal::ctrl_c().await?;
    println!(
        "\nstopping: {} token requests, {} API requests ({} authorized)",
        auth.token_requests(),
        api.requests(),
        api.authorized()
    );
    Ok(())
}
