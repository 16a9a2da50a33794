//! The Redis the store examples use: `REDIS_URL` and `TOKEN_STORE_KEY` from the environment,
//! or a `redis-server` of their own on a free 127.0.0.1 port.

use tower_bearer_testkit::RedisServer;

/// Where the fleet's Redis is, and the key every replica seals tokens with.
pub(crate) struct Redis {
    pub(crate) url: String,
    pub(crate) encryption_key: [u8; 32],
    /// The server this process started, stopped when dropped.
    _started: Option<RedisServer>,
}

/// Redis from `REDIS_URL` (with `TOKEN_STORE_KEY`, 64 hex digits), or one started here.
pub(crate) fn from_env() -> Result<Redis, Box<dyn std::error::Error + Send + Sync>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            let hex = std::env::var("TOKEN_STORE_KEY").map_err(|_| {
                "REDIS_URL is set, so set TOKEN_STORE_KEY to 64 hex digits as well \
                 (for example from `openssl rand -hex 32`)"
            })?;
            Ok(Redis {
                url,
                encryption_key: parse_key(&hex)?,
                _started: None,
            })
        }
        Err(_) => {
            let redis = RedisServer::start().map_err(|error| {
                format!("REDIS_URL is not set and redis-server could not be started: {error}")
            })?;
            println!(
                "REDIS_URL is not set: started redis-server at {}",
                redis.url()
            );
            Ok(Redis {
                url: redis.url(),
                // A fixed demo key; a real fleet loads its key from a secret store.
                encryption_key: [7; 32],
                _started: Some(redis),
            })
        }
    }
}

fn parse_key(hex: &str) -> Result<[u8; 32], &'static str> {
    const WRONG: &str = "TOKEN_STORE_KEY must be exactly 64 hex digits (32 bytes)";
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(WRONG);
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| WRONG)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| WRONG)?;
    }
    Ok(key)
}
