//! A token source whose tokens say which fetch made them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower_bearer::source::TokenFuture;
use tower_bearer::{FetchError, Token, TokenSource};

/// Hands out `token-1`, `token-2`, ... (one per fetch, each valid an hour unless
/// [`lifetime`](Self::lifetime) says otherwise) and counts its fetches. Clones share the
/// count, so a test keeps one clone and gives the other to the cache.
///
/// ```
/// use tower_bearer::TokenCache;
/// use tower_bearer_test_support::{current_token, NumberedSource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer::FetchError> {
/// let source = NumberedSource::new();
/// let cache = TokenCache::new(source.clone());
/// cache.token().await?;
/// assert_eq!((source.fetches(), current_token(&cache).as_str()), (1, "token-1"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct NumberedSource {
    prefix: &'static str,
    lifetime: Duration,
    fetches: Arc<AtomicU64>,
}

impl NumberedSource {
    /// `token-N` tokens valid an hour.
    pub fn new() -> Self {
        Self::named("token")
    }

    /// `{prefix}-N` tokens valid an hour.
    pub fn named(prefix: &'static str) -> Self {
        NumberedSource {
            prefix,
            lifetime: Duration::from_secs(3600),
            fetches: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Each token is valid for `lifetime` from its fetch.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// How many fetches this source and its clones have made.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Default for NumberedSource {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenSource for NumberedSource {
    fn fetch(&self) -> TokenFuture<'_> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        let token = Token::builder(format!("{}-{n}", self.prefix))
            .expires_in(self.lifetime)
            .build()
            .map_err(FetchError::from);
        Box::pin(async move { token })
    }
}
