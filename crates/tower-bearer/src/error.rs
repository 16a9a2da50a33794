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
/// The message says what happened and what to do, and describes this error only: the
/// underlying error is its [`source`](StdError::source), so a chain printer (anyhow, eyre,
/// `tracing`) shows each cause once. It never contains a secret, as long as the source's own
/// error does not.
#[derive(Clone)]
pub struct FetchError {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: Kind,
    cause: Cause,
    message: String,
    retry_after: Option<Duration>,
    // Shared, so that a clone of a shared error keeps it (see `map_inner`).
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
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

/// What ended the fetch, when it was not the source's own error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// The source returned this error.
    Source,
    /// The source panicked.
    Panic,
    /// The source did not finish within the cache's fetch timeout.
    Timeout,
    /// The fetch was stopped before it finished (its task was aborted, or the runtime that
    /// ran it shut down).
    Cancelled,
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
        Self::with_cause(kind, Cause::Source, message)
    }

    fn with_cause(kind: Kind, cause: Cause, message: String) -> Self {
        FetchError {
            inner: Arc::new(Inner {
                kind,
                cause,
                message,
                retry_after: None,
                source: None,
            }),
        }
    }

    /// The token source panicked. The panic's message is left out: it could hold a secret.
    pub(crate) fn source_panicked() -> Self {
        Self::with_cause(
            Kind::Transient,
            Cause::Panic,
            "the token source panicked while fetching a token (a bug in the source or in a \
             callback it runs); the cache will try again after a backoff"
                .to_owned(),
        )
    }

    /// The token source did not finish within `timeout`.
    pub(crate) fn timed_out(timeout: Duration) -> Self {
        Self::with_cause(
            Kind::Transient,
            Cause::Timeout,
            format!(
                "the token source did not return a token within {timeout:?}, so the fetch \
                 was abandoned; the cache will try again after a backoff (raise \
                 CacheConfig::fetch_timeout if the source legitimately takes longer)"
            ),
        )
    }

    /// The fetch was stopped before it finished.
    pub(crate) fn cancelled() -> Self {
        Self::with_cause(
            Kind::Transient,
            Cause::Cancelled,
            "the token fetch was stopped before it finished (its task was aborted or the \
             runtime running it shut down); the next request will start a new one"
                .to_owned(),
        )
    }

    /// Attaches the underlying error, reported by [`source`](StdError::source). Replaces an
    /// earlier one.
    #[must_use]
    pub fn with_source(self, source: impl Into<BoxError>) -> Self {
        let source: BoxError = source.into();
        self.map_inner(|inner| inner.source = Some(Arc::from(source)))
    }

    /// Attaches how long the server asked us to wait before trying again (`Retry-After`).
    ///
    /// Any duration is accepted; the cache honours it up to its
    /// [backoff maximum](crate::CacheConfig::backoff).
    #[must_use]
    pub fn with_retry_after(self, retry_after: Duration) -> Self {
        self.map_inner(|inner| inner.retry_after = Some(retry_after))
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| (*shared).clone());
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

    /// Whether the token source panicked (the panic's message is not kept).
    pub fn is_panic(&self) -> bool {
        self.inner.cause == Cause::Panic
    }

    /// Whether the source took longer than the cache's
    /// [fetch timeout](crate::CacheConfig::fetch_timeout).
    pub fn is_timeout(&self) -> bool {
        self.inner.cause == Cause::Timeout
    }

    /// Whether the fetch was stopped before it finished: its task was aborted or its runtime
    /// shut down.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cause == Cause::Cancelled
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
            .field("cause", &self.inner.cause)
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

/// Prints an error and each of its causes once, `: `-separated, for a log line.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

impl From<crate::InvalidToken> for FetchError {
    fn from(error: crate::InvalidToken) -> Self {
        FetchError::permanent(
            "the token source returned a value that cannot be used as an access token",
        )
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

    #[test]
    fn a_shared_error_keeps_its_source() {
        let error = FetchError::transient("token endpoint unreachable")
            .with_source(std::io::Error::other("connection refused"));
        let _kept = error.clone();
        let later = error.with_retry_after(Duration::from_secs(1));
        assert_eq!(later.source().unwrap().to_string(), "connection refused");
    }

    /// Each message once, as `anyhow`'s `{:#}` or eyre print a chain.
    fn chain(error: &(dyn StdError + 'static)) -> String {
        Chain(error).to_string()
    }

    #[test]
    fn a_chain_prints_each_cause_once() {
        let error = FetchError::from(crate::InvalidToken::Empty);
        assert_eq!(
            chain(&error),
            "the token source returned a value that cannot be used as an access token: \
             the access token is empty"
        );
        let io = FetchError::transient("token endpoint unreachable")
            .with_source(std::io::Error::other("connection refused"));
        assert_eq!(chain(&io), "token endpoint unreachable: connection refused");
    }

    #[test]
    fn panics_timeouts_and_cancellations_are_typed() {
        assert!(FetchError::source_panicked().is_panic());
        assert!(FetchError::source_panicked().is_transient());
        let timeout = FetchError::timed_out(Duration::from_secs(5));
        assert!(timeout.is_timeout() && !timeout.is_panic());
        assert!(timeout.to_string().contains("5s"), "{timeout}");
        assert!(FetchError::cancelled().is_cancelled());
        assert!(!FetchError::transient("x").is_panic());
    }
}
