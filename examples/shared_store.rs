//! A fleet of replicas sharing one token through Redis: the authorization server sees one
//! token request per token lifetime for the whole fleet, not one per replica.
//!
//! The part to copy is `replica` below: compared with a plain `TokenCache::new(source)`,
//! a replica adds three lines (the store, the key, the `StoreSource` around the source).
//!
//! ```sh
//! # Starts its own redis-server on a free 127.0.0.1 port (needs the redis-server binary):
//! cargo run -p examples --bin shared_store
//! # Or uses yours; TOKEN_STORE_KEY is 64 hex digits, the same on every replica:
//! REDIS_URL=redis://127.0.0.1:6379 TOKEN_STORE_KEY=$(openssl rand -hex 32) \
//!     cargo run -p examples --bin shared_store
//! ```
//!
//! It runs against the testkit's mock authorization server on 127.0.0.1 and plays three
//! replicas in one process (in production each is its own process or pod; the
//! `tower-bearer-redis` fleet tests use real processes).

use std::error::Error;
use std::process::ExitCode;

use tower_bearer::store::StoreSource;
use tower_bearer::TokenCache;
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, TokenParams};
use tower_bearer_redis::RedisStore;
use tower_bearer_testkit::AuthServer;

mod redis_env;
mod report;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    report::exit_code(run().await)
}

/// One replica's token cache, as each process of the fleet would build it.
fn replica(
    redis_url: &str,
    encryption_key: [u8; 32],
    token_url: &str,
) -> Result<TokenCache, BoxError> {
    let (client_id, client_secret) = (
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    );
    let endpoint = Endpoint::builder(token_url).build()?;
    let client = ClientAuth::secret_basic(client_id, client_secret)?;
    let source = ClientCredentials::builder(endpoint, client)
        .params(TokenParams::new().scope("orders:read"))
        .build()?;

    // The three lines that share the token across replicas:
    let store = RedisStore::builder(redis_url)
        .encryption_key("k1", encryption_key)
        .build()?;
    let key = source.store_key(); // token URL, client id, scope: never the secret
    Ok(TokenCache::new(StoreSource::new(source, store, key)))
}

async fn run() -> Result<(), BoxError> {
    let redis = redis_env::from_env()?;
    let auth = AuthServer::start().await?;
    let token_url = auth.token_url();

    let replicas = (0..3)
        .map(|_| replica(&redis.url, redis.encryption_key, &token_url))
        .collect::<Result<Vec<_>, _>>()?;
    for (n, cache) in replicas.iter().enumerate() {
        cache.token().await?;
        println!(
            "replica {n} has a token; the authorization server has had {} token request(s)",
            auth.token_requests()
        );
    }
    println!(
        "three replicas, {} token request(s): the first fetched and shared, the others read it \
         from Redis (encrypted)",
        auth.token_requests()
    );
    Ok(())
}
