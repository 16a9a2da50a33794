use super::{TokenFuture, TokenSource};
use crate::{InvalidToken, Token};

/// A token that never changes: an API key issued as a bearer token, or a token for tests.
///
/// The value is checked when the source is built, so a bad value fails at start-up, not on
/// the first request.
///
/// ```
/// use tower_bearer::source::StaticToken;
///
/// let source = StaticToken::new("a-long-lived-token")?;
/// assert!(StaticToken::new("with a space").is_err());
/// # let _ = source;
/// # Ok::<(), tower_bearer::InvalidToken>(())
/// ```
#[derive(Clone, Debug)]
pub struct StaticToken {
    token: Token,
}

impl StaticToken {
    /// A source that always returns this bearer token.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidToken> {
        Ok(StaticToken {
            token: Token::bearer(value)?,
        })
    }

    /// A source that always returns this token.
    pub fn from_token(token: Token) -> Self {
        StaticToken { token }
    }
}

impl TokenSource for StaticToken {
    fn fetch(&self) -> TokenFuture<'_> {
        let token = self.token.clone();
        Box::pin(async move { Ok(token) })
    }
}
