//! Where tokens come from: the [`TokenSource`] trait and the built-in sources.
//!
//! A source is asked for a fresh token rarely: the [`TokenCache`](crate::TokenCache) sits in
//! front of it and asks only when the cached token is about to expire, was rejected, or there
//! is none yet. So a source may be slow (a network round trip) and returns a boxed future,
//! which keeps the trait object-safe: `Arc<dyn TokenSource>` is how the cache holds it.
//!
//! Your own source is a few lines, either as a type or as a closure:
//!
//! ```
//! use std::time::Duration;
//! use tower_bearer::{source, FetchError, Token};
//!
//! let source = source::from_fn(|| async {
//!     // Ask your secrets manager, a sidecar, ...
//!     Token::builder("fetched-token")
//!         .expires_in(Duration::from_secs(300))
//!         .build()
//!         .map_err(FetchError::from)
//! });
//! # let _ = source;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{FetchError, Token};

mod env;
mod file;
mod from_fn;
#[cfg(feature = "oauth2-crate")]
pub mod oauth2_crate;
mod static_token;

pub use env::EnvToken;
pub use file::{FileToken, TokenFileTooLarge};
pub use from_fn::{from_fn, FromFn};
pub use static_token::StaticToken;

/// The future a [`TokenSource`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, FetchError>> + Send + 'a>>;

/// Gives out fresh tokens.
///
/// Implementations should not cache: each call should return a token that is as fresh as the
/// source can make it. Caching, single flight, refresh ahead and backoff are the
/// [`TokenCache`](crate::TokenCache)'s job.
///
/// Errors should say whether they are worth retrying: [`FetchError::transient`] for network
/// trouble and 5xx, [`FetchError::permanent`] for wrong credentials or configuration.
pub trait TokenSource: Send + Sync + 'static {
    /// Fetches a fresh token.
    fn fetch(&self) -> TokenFuture<'_>;
}

impl<S: TokenSource + ?Sized> TokenSource for Arc<S> {
    fn fetch(&self) -> TokenFuture<'_> {
        (**self).fetch()
    }
}

impl<S: TokenSource + ?Sized> TokenSource for Box<S> {
    fn fetch(&self) -> TokenFuture<'_> {
        (**self).fetch()
    }
}
