use std::fmt;
use std::future::Future;

use super::{TokenFuture, TokenSource};
use crate::{FetchError, Token};

/// A [`TokenSource`] from an async closure; see [`from_fn`].
#[derive(Clone)]
pub struct FromFn<F> {
    fetch: F,
}

/// Makes a [`TokenSource`] from a closure that returns a future of a token.
///
/// The closure is called once per fetch.
///
/// ```
/// use tower_bearer::{source, FetchError, Token};
///
/// let source = source::from_fn(|| async { Token::bearer("abc").map_err(FetchError::from) });
/// # let _ = source;
/// ```
pub fn from_fn<F, Fut>(fetch: F) -> FromFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, FetchError>> + Send + 'static,
{
    FromFn { fetch }
}

impl<F, Fut> TokenSource for FromFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, FetchError>> + Send + 'static,
{
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin((self.fetch)())
    }
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn").finish_non_exhaustive()
    }
}
