//! Errors from getting a token.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error, as tower middleware returns.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Getting a token failed.
///
/// Returned by a [`TokenSource`](crate::TokenSource) and handed on by the
/// [`TokenCache`](crate::TokenCache) to every caller that waited for the same fetch, so it is
/// cheap to clone. When [`BearerAuth`](crate::BearerAuth) cannot get a token, the request is
/// not sent and the service returns this error boxed; downcast the `BoxError` to read it.
///
/// The message says what happened and what to do. It never contains a secret, as long as the
/// source's own error (its [`source`](StdError::source)) does not.
#[derive(Clone)]
pub struct FetchError {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    message: String,
    retry_after: Option<Duration>,
    source: Option<BoxError>,
}

/// What kind of failure, which decides what the cache does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Worth trying again later: network errors, timeouts, 5xx, 429.
    Transient,
    /// Will fail the same way until someone changes configuration: a wrong client secret, a
    /// revoked refresh token, a missing variable.
    Permanent,
}

impl FetchError {
    /// A failure that may go away by itself (a network error, a 5xx, a 429): the cache
    /// retries with backoff.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(Kind::Transient, message.into())
    }

    /// A failure that needs a person to fix it (wrong credentials, a bad configuration): the
    /// cache remembers it for a while so a burst of callers does not become a burst of
    /// requests.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(Kind::Permanent, message.into())
    }

    fn new(kind: Kind, message: String) -> Self {
        FetchError {
            inner: Arc::new(Inner {
                kind,
                message,
                retry_after: None,
                source: None,
            }),
        }
    }

    /// Attaches the underlying error, reported by [`source`](StdError::source).
    #[must_use]
    pub fn with_source(self, source: impl Into<BoxError>) -> Self {
        self.map_inner(|inner| inner.source = Some(source.into()))
    }

    /// Attaches how long the server asked us to wait before trying again (`Retry-After`).
    #[must_use]
    pub fn with_retry_after(self, retry_after: Duration) -> Self {
        self.map_inner(|inner| inner.retry_after = Some(retry_after))
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            // Shared already: rebuild without the old source, which cannot be cloned.
            Err(shared) => Inner {
                kind: shared.kind,
                message: shared.message.clone(),
                retry_after: shared.retry_after,
                source: None,
            },
        };
        f(&mut inner);
        FetchError {
            inner: Arc::new(inner),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.inner.kind == Kind::Transient
    }

    /// Whether this needs a configuration change (credentials, grant, variable) to go away.
    pub fn is_permanent(&self) -> bool {
        self.inner.kind == Kind::Permanent
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The message, without the source chain.
    pub fn message(&self) -> &str {
        &self.inner.message
    }
}

impl fmt::Debug for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchError")
            .field("kind", &self.inner.kind)
            .field("message", &self.inner.message)
            .field("retry_after", &self.inner.retry_after)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl StdError for FetchError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

impl From<crate::InvalidToken> for FetchError {
    fn from(error: crate::InvalidToken) -> Self {
        FetchError::permanent(format!(
            "the token source returned an unusable token: {error}"
        ))
        .with_source(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_source() {
        let error = FetchError::transient("token endpoint unreachable")
            .with_source(std::io::Error::other("connection refused"))
            .with_retry_after(Duration::from_secs(3));
        assert!(error.is_transient());
        assert!(!error.is_permanent());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(error.source().unwrap().to_string(), "connection refused");
        let shared = error.clone();
        assert_eq!(shared.to_string(), "token endpoint unreachable");
        assert!(FetchError::permanent("bad secret").is_permanent());
    }
}
