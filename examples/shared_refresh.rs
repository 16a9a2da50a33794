//! A fleet of replicas sharing one rotating refresh token through Redis, against an
//! authorization server that rotates refresh tokens and revokes the whole grant when a used
//! one comes back (reuse detection). The replicas share the access token too, so the fleet
//! makes the token requests that one replica alone would, and none presents a refresh
//! token twice.
//!
//! The part to copy is `replica` below: one `RedisStore` (clones share a connection) serves
//! both the `StoreSource` that shares access tokens and the `RefreshToken` that shares the
//! refresh token.
//!
//! ```sh
//! # Starts its own redis-server on a free 127.0.0.1 port (needs the redis-server binary):
//! cargo run -p examples --bin shared_refresh
//! # Or uses yours; TOKEN_STORE_KEY is 64 hex digits, the same on every replica:
//! REDIS_URL=redis://127.0.0.1:6379 TOKEN_STORE_KEY=$(openssl rand -hex 32) \
//!     cargo run -p examples --bin shared_refresh
//! ```
//!
//! It plays three replicas in one process against the test kit's authorization server on
//! 127.0.0.1, with 4 s access tokens; in production each replica is its own process.

use std::process::ExitCode;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tower_bearer::store::{RefreshTokenStore, RefreshValue, StoreKey, StoreSource};
use tower_bearer::TokenCache;
use tower_bearer_oauth2::{ClientAuth, Endpoint, FleetConfig, RefreshToken};
use tower_bearer_redis::RedisStore;
use tower_bearer_testkit::AuthServer;

mod redis_env;
mod report;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const LIFETIME: Duration = Duration::from_secs(4);
const LIFETIMES: u32 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    report::exit_code(run().await)
}

/// One replica's token cache, as each process of the fleet would build it from its
/// configuration: the token URL, the client, the refresh token it was deployed with, and
/// the fleet's Redis.
fn replica(
    store: &RedisStore,
    token_url: &str,
    refresh_token: &str,
) -> Result<TokenCache, BoxError> {
    let endpoint = Endpoint::builder(token_url).build()?;
    let client = ClientAuth::secret_basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    let key = grant_key(token_url);
    let refresh = RefreshToken::builder(endpoint, client, refresh_token)
        .share_through(store.clone(), key.clone())
        // Checks every 5 s by default; every second here, so the demo starts quickly.
        .fleet(FleetConfig::new().check_interval(Duration::from_secs(1)))
        .build()?;
    Ok(TokenCache::new(StoreSource::new(
        refresh,
        store.clone(),
        key,
    )))
}

/// The name of the fleet's grant in the store: the token URL, the client and a name for
/// the grant (never a secret).
fn grant_key(token_url: &str) -> StoreKey {
    StoreKey::builder(token_url, AuthServer::DEFAULT_CLIENT_ID)
        .param("grant", "reporting-bot")
        .build()
}

async fn run() -> Result<(), BoxError> {
    let redis = redis_env::from_env()?;
    let auth = AuthServer::builder()
        .detect_refresh_token_reuse(true)
        .token_lifetime(LIFETIME)
        .start()
        .await?;
    let token_url = auth.token_url();
    // What a login (authorization code, device flow) gave once; every replica is deployed
    // with it.
    let seed = auth.issue_refresh_token(AuthServer::DEFAULT_CLIENT_ID, None);

    let store = RedisStore::builder(&redis.url)
        .encryption_key("k1", redis.encryption_key)
        .build()?;
    // Once, when the grant is new: the fleet then needs no settle at its first refresh.
    let seeded = RefreshToken::seed_store(
        &store,
        &grant_key(&token_url),
        &SecretString::from(seed.clone()),
    )
    .await?;
    println!(
        "{}",
        if seeded {
            "the new grant's refresh token was seeded into the store"
        } else {
            "the store already held this grant's refresh token (not seeded again)"
        }
    );

    let replicas = (0..3)
        .map(|_| {
            // Each process has its own connection; here each replica builds its own store.
            let store = RedisStore::builder(&redis.url)
                .encryption_key("k1", redis.encryption_key)
                .build()?;
            replica(&store, &token_url, &seed)
        })
        .collect::<Result<Vec<_>, BoxError>>()?;

    let started = tokio::time::Instant::now();
    let until = started + LIFETIME * LIFETIMES;
    let mut calls = 0;
    while tokio::time::Instant::now() < until {
        for cache in &replicas {
            let token = cache.token().await?;
            assert!(auth.is_valid(token.secret().expose_secret()));
            calls += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "three replicas, {calls} calls over {:.0?}: {} token request(s) for the whole fleet \
         ({} s tokens, each refresh rotating the refresh token)",
        started.elapsed(),
        auth.token_requests(),
        LIFETIME.as_secs()
    );
    let record = store.refresh_record(&grant_key(&token_url)).await?.record;
    let current = match record.map(|record| record.value) {
        Some(RefreshValue::Readable(current)) => current,
        _ => return Err("the store lost the fleet's refresh token".into()),
    };
    if !auth.is_refresh_token_valid(current.expose_secret()) {
        return Err("the grant was revoked: a refresh token was presented twice".into());
    }
    println!("the grant is valid: no refresh token was presented twice");
    Ok(())
}
