//! The access token and its ready-made `Authorization` header.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use zeroize::Zeroize;

/// An access token, as handed out by a [`TokenSource`](crate::TokenSource).
///
/// The token value is kept in a [`SecretString`]: it is zeroized on drop and never printed
/// by `Debug`. The `Authorization` header value is built once, when the token is built, and
/// marked [sensitive](HeaderValue::set_sensitive), so attaching it to a request is a cheap
/// reference-counted clone.
///
/// `Token` is cheap to clone: clones share one allocation.
///
/// Expiry is an [`Instant`] taken from tokio's clock, so tests that pause tokio time see
/// tokens expire on the paused clock.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::Token;
///
/// let token = Token::builder("an-access-token")
///     .expires_in(Duration::from_secs(3600))
///     .scope("read write")
///     .build()?;
/// assert_eq!(token.scope(), Some("read write"));
/// assert!(!format!("{token:?}").contains("an-access-token"));
/// # Ok::<(), tower_bearer::InvalidToken>(())
/// ```
#[derive(Clone)]
pub struct Token {
    inner: Arc<Inner>,
}

struct Inner {
    secret: SecretString,
    header: HeaderValue,
    token_type: TokenType,
    expires_at: Option<Instant>,
    expires_at_system: Option<SystemTime>,
    refresh_after: Option<Instant>,
    scope: Option<String>,
    refresh_token: Option<SecretString>,
    #[cfg(feature = "dpop")]
    dpop: Option<DpopBinding>,
}

/// What a DPoP-bound token needs for its proofs: the key, and the `ath` claim (the token's
/// hash), made once.
#[cfg(feature = "dpop")]
struct DpopBinding {
    key: crate::dpop::DpopKey,
    ath: String,
}

impl Token {
    /// The longest lifetime a token is given: one year. A longer `expires_in` (a server that
    /// sends `u64::MAX` or `1e308` for "forever") is read as a year, so such a token is
    /// still refreshed now and then, and no deadline computed from it can overflow the clock.
    pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

    /// A bearer token with no known expiry.
    ///
    /// Fails if the value is empty or holds bytes that cannot appear in an HTTP header.
    pub fn bearer(value: impl Into<String>) -> Result<Self, InvalidToken> {
        Self::builder(value).build()
    }

    /// Starts building a token from its secret value.
    pub fn builder(value: impl Into<String>) -> TokenBuilder {
        TokenBuilder {
            value: SecretString::from(value.into()),
            token_type: TokenType::Bearer,
            expires_in: None,
            refresh_after: None,
            scope: None,
            refresh_token: None,
            #[cfg(feature = "dpop")]
            dpop_key: None,
        }
    }

    /// The secret token value. Handle with care: this is the credential itself.
    pub fn secret(&self) -> &SecretString {
        &self.inner.secret
    }

    /// The `Authorization` header value (`Bearer <token>`), marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.inner.header
    }

    /// The token type, which is also the `Authorization` scheme.
    pub fn token_type(&self) -> &TokenType {
        &self.inner.token_type
    }

    /// When the token expires, on tokio's clock, if the source said.
    pub fn expires_at(&self) -> Option<Instant> {
        self.inner.expires_at
    }

    /// When the token expires, on the wall clock, if the source said. Used by token stores
    /// that share tokens between processes, where an `Instant` means nothing.
    pub fn expires_at_system(&self) -> Option<SystemTime> {
        self.inner.expires_at_system
    }

    /// A hint from the source to ask it again after this instant even though the token has
    /// no expiry (a token file that may be rotated, for example).
    pub fn refresh_after(&self) -> Option<Instant> {
        self.inner.refresh_after
    }

    /// The scope the authorization server granted, if it said (RFC 6749 section 5.1).
    pub fn scope(&self) -> Option<&str> {
        self.inner.scope.as_deref()
    }

    /// The refresh token issued with this access token, if any.
    pub fn refresh_token(&self) -> Option<&SecretString> {
        self.inner.refresh_token.as_ref()
    }

    /// The key a DPoP-bound token (RFC 9449) is bound to: each request that carries the
    /// token carries a proof signed with it. `None` for a bearer token.
    #[cfg(feature = "dpop")]
    pub fn dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
        self.inner.dpop.as_ref().map(|binding| &binding.key)
    }

    /// The key, and the `ath` claim of its proofs.
    #[cfg(feature = "dpop")]
    pub(crate) fn dpop_binding(&self) -> Option<(&crate::dpop::DpopKey, &str)> {
        self.inner
            .dpop
            .as_ref()
            .map(|binding| (&binding.key, binding.ath.as_str()))
    }

    /// Whether requests with this token need a proof: the auth layer sends them by the path
    /// that can make one.
    #[cfg(feature = "dpop")]
    #[inline]
    pub(crate) fn is_dpop(&self) -> bool {
        self.inner.token_type == TokenType::DPoP
    }

    /// Whether `self` and `other` are the same token: the same issued value.
    ///
    /// Used to invalidate exactly the token a server rejected.
    pub fn same_as(&self, other: &Token) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || self.inner.header.as_bytes() == other.inner.header.as_bytes()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"[redacted]")
            .field("token_type", &self.inner.token_type)
            .field("expires_at", &self.inner.expires_at)
            .field("scope", &self.inner.scope)
            .field(
                "refresh_token",
                &self.inner.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Builds a [`Token`]; see [`Token::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct TokenBuilder {
    value: SecretString,
    token_type: TokenType,
    expires_in: Option<Duration>,
    refresh_after: Option<Duration>,
    scope: Option<String>,
    refresh_token: Option<SecretString>,
    #[cfg(feature = "dpop")]
    dpop_key: Option<crate::dpop::DpopKey>,
}

impl TokenBuilder {
    /// The token type (default [`TokenType::Bearer`]).
    pub fn token_type(mut self, token_type: TokenType) -> Self {
        self.token_type = token_type;
        self
    }

    /// The lifetime from now, as in the token response's `expires_in` (RFC 6749 section 5.1).
    ///
    /// At most [`Token::MAX_LIFETIME`]; a longer lifetime is shortened to it. Sub-second
    /// lifetimes are kept as they are.
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime.min(Token::MAX_LIFETIME));
        self
    }

    /// Ask the source again after this long, even if the token has no expiry.
    ///
    /// At most [`Token::MAX_LIFETIME`], like [`expires_in`](Self::expires_in).
    pub fn refresh_after(mut self, after: Duration) -> Self {
        self.refresh_after = Some(after.min(Token::MAX_LIFETIME));
        self
    }

    /// The granted scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The refresh token issued with the access token.
    pub fn refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(SecretString::from(refresh_token.into()));
        self
    }

    /// Binds the token to a DPoP key (RFC 9449): its type becomes [`TokenType::DPoP`], and
    /// every request the auth layer sends with it carries a proof signed with `key`. A
    /// `DPoP` token cannot be built without its key.
    #[cfg(feature = "dpop")]
    pub fn dpop_key(mut self, key: crate::dpop::DpopKey) -> Self {
        self.token_type = TokenType::DPoP;
        self.dpop_key = Some(key);
        self
    }

    /// Checks the value and builds the token with its header value.
    pub fn build(self) -> Result<Token, InvalidToken> {
        let value = self.value.expose_secret();
        check_token_chars(value)?;
        #[cfg(feature = "dpop")]
        let dpop = match (&self.token_type, self.dpop_key) {
            (TokenType::DPoP, Some(key)) => Some(DpopBinding {
                ath: crate::dpop::access_token_hash(value),
                key,
            }),
            (TokenType::DPoP, None) => return Err(InvalidToken::DpopWithoutKey),
            (TokenType::Bearer, _) => None,
        };
        #[cfg(not(feature = "dpop"))]
        if self.token_type == TokenType::DPoP {
            return Err(InvalidToken::DpopWithoutKey);
        }
        let mut header_text = Vec::with_capacity(self.token_type.as_str().len() + 1 + value.len());
        header_text.extend_from_slice(self.token_type.as_str().as_bytes());
        header_text.push(b' ');
        header_text.extend_from_slice(value.as_bytes());
        let owner = HeaderBytes(header_text.into_boxed_slice());
        // The characters were checked above, so this cannot fail; map it anyway rather than panic.
        let mut header = HeaderValue::from_maybe_shared(Bytes::from_owner(owner))
            .map_err(|_| InvalidToken::NotVisibleAscii { position: 0 })?;
        header.set_sensitive(true);

        let now = Instant::now();
        let expires_at = self.expires_in.and_then(|d| now.checked_add(d));
        let expires_at_system = self
            .expires_in
            .and_then(|d| SystemTime::now().checked_add(d));
        Ok(Token {
            inner: Arc::new(Inner {
                secret: self.value,
                header,
                token_type: self.token_type,
                expires_at,
                expires_at_system,
                refresh_after: self.refresh_after.and_then(|d| now.checked_add(d)),
                scope: self.scope,
                refresh_token: self.refresh_token,
                #[cfg(feature = "dpop")]
                dpop,
            }),
        })
    }
}

/// The bytes of a token's `Authorization` header value, owned by its `Bytes`.
///
/// Two jobs. The bytes are zeroed when the last clone of the header value is dropped. And
/// the alignment puts the reference count that every request's header clone increments
/// (bytes keeps it next to the owner) on cache lines of its own: without it, that count
/// can share a line with data every request reads, such as the cache's current entry, and
/// calls on different cores slow each other down.
#[repr(align(128))]
struct HeaderBytes(Box<[u8]>);

impl AsRef<[u8]> for HeaderBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for HeaderBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("value", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// RFC 6750 section 2.1 allows a `b64token`; real servers hand out a little more (JWTs,
/// opaque strings with other punctuation), so we accept any visible ASCII but no spaces,
/// which is what can stand in a header after the scheme.
fn check_token_chars(value: &str) -> Result<(), InvalidToken> {
    if value.is_empty() {
        return Err(InvalidToken::Empty);
    }
    match value.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        Some(position) => Err(InvalidToken::NotVisibleAscii { position }),
        None => Ok(()),
    }
}

/// The type of an access token (RFC 6749 section 7.1), which is also the scheme of the
/// `Authorization` header it goes in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenType {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449): sender-constrained, needs a proof per request.
    DPoP,
}

impl TokenType {
    /// The scheme as written in the `Authorization` header.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenType::Bearer => "Bearer",
            TokenType::DPoP => "DPoP",
        }
    }

    /// Parses a `token_type` from a token response, ignoring case as RFC 6749 section 5.1
    /// requires. Returns `None` for types this crate cannot use.
    pub fn parse(token_type: &str) -> Option<Self> {
        if token_type.eq_ignore_ascii_case("bearer") {
            Some(TokenType::Bearer)
        } else if token_type.eq_ignore_ascii_case("dpop") {
            Some(TokenType::DPoP)
        } else {
            None
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token value that cannot be used in an `Authorization` header.
///
/// The message says where the problem is, never what the value was.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidToken {
    /// The token is empty.
    Empty,
    /// The token holds a byte that is not visible ASCII (a space, a control character, a
    /// line break or a non-ASCII character) at this byte position.
    NotVisibleAscii {
        /// Byte offset of the first bad byte.
        position: usize,
    },
    /// A `DPoP` token without the key it is bound to: no request could carry its proof.
    DpopWithoutKey,
}

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidToken::Empty => f.write_str("the access token is empty"),
            InvalidToken::NotVisibleAscii { position } => write!(
                f,
                "the access token has a character that is not allowed in an HTTP header at byte {position} \
                 (only visible ASCII without spaces is allowed; check for a trailing newline or quotes)"
            ),
            InvalidToken::DpopWithoutKey => f.write_str(
                "the access token is DPoP-bound (RFC 9449) but no DPoP key was given, so no \
                 request could carry its proof; configure the source with a DPoP key (with the \
                 `dpop` feature: `TokenBuilder::dpop_key`, or the OAuth crate's \
                 `ClientAuth::dpop`)",
            ),
        }
    }
}

impl std::error::Error for InvalidToken {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_value_is_sensitive_and_has_scheme() {
        let token = Token::bearer("abc.def-ghi_~+/=").unwrap();
        assert_eq!(token.header_value(), "Bearer abc.def-ghi_~+/=");
        assert!(token.header_value().is_sensitive());
    }

    #[test]
    fn debug_hides_secrets() {
        let token = Token::builder("s3cr3t-access")
            .refresh_token("s3cr3t-refresh")
            .build()
            .unwrap();
        let printed = format!("{token:?} {:?}", token.header_value());
        assert!(!printed.contains("s3cr3t"), "{printed}");
        let builder = format!("{:?}", Token::builder("s3cr3t-access"));
        assert!(!builder.contains("s3cr3t"), "{builder}");
    }

    #[test]
    fn rejects_values_that_cannot_be_a_header() {
        assert_eq!(Token::bearer("").unwrap_err(), InvalidToken::Empty);
        assert_eq!(
            Token::bearer("abc\n").unwrap_err(),
            InvalidToken::NotVisibleAscii { position: 3 }
        );
        assert_eq!(
            Token::bearer("a b").unwrap_err(),
            InvalidToken::NotVisibleAscii { position: 1 }
        );
        assert_eq!(
            Token::bearer("tökén").unwrap_err(),
            InvalidToken::NotVisibleAscii { position: 1 }
        );
        let message = Token::bearer("secret value").unwrap_err().to_string();
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn token_type_parses_case_insensitively() {
        assert_eq!(TokenType::parse("bearer"), Some(TokenType::Bearer));
        assert_eq!(TokenType::parse("BEARER"), Some(TokenType::Bearer));
        assert_eq!(TokenType::parse("DPoP"), Some(TokenType::DPoP));
        assert_eq!(TokenType::parse("mac"), None);
    }

    #[test]
    fn lifetimes_are_clamped_to_a_year_and_keep_fractions() {
        let now = Instant::now();
        let forever = Token::builder("t")
            .expires_in(Duration::MAX)
            .refresh_after(Duration::MAX)
            .build()
            .unwrap();
        let at = forever.expires_at().unwrap();
        assert!(at <= now + Token::MAX_LIFETIME + Duration::from_secs(1));
        assert!(at >= now + Token::MAX_LIFETIME - Duration::from_secs(1));
        assert!(forever.refresh_after().unwrap() <= at);
        assert!(forever.expires_at_system().is_some());

        let half = Token::builder("t")
            .expires_in(Duration::from_millis(500))
            .build()
            .unwrap();
        // Measured from just before `build`, so a little over 500 ms, never the 300 s default.
        let left = half.expires_at().unwrap().saturating_duration_since(now);
        assert!(left >= Duration::from_millis(500) && left < Duration::from_secs(5));
    }

    #[test]
    fn same_as_compares_values() {
        let a = Token::bearer("one").unwrap();
        let b = Token::bearer("one").unwrap();
        let c = Token::bearer("two").unwrap();
        assert!(a.same_as(&a.clone()));
        assert!(a.same_as(&b));
        assert!(!a.same_as(&c));
    }
}
