use std::time::Duration;

use super::{TokenFuture, TokenSource};
use crate::{FetchError, Token};

/// A bearer token read from an environment variable each time the cache asks.
///
/// Reading on demand means a process that updates its environment (or a test) is picked up
/// at the next fetch. A cached token without expiry is only fetched again after a 401 (with
/// [`RetryOn401Layer`](crate::RetryOn401Layer)) or, if set, every
/// [`reread_every`](EnvToken::reread_every).
///
/// A missing, empty or malformed variable is a [permanent](FetchError::is_permanent) error
/// that names the variable (never its value).
///
/// ```
/// use tower_bearer::source::EnvToken;
///
/// let source = EnvToken::new("API_TOKEN");
/// # let _ = source;
/// ```
#[derive(Clone, Debug)]
pub struct EnvToken {
    name: String,
    reread_every: Option<Duration>,
}

impl EnvToken {
    /// A source that reads the variable `name`.
    pub fn new(name: impl Into<String>) -> Self {
        EnvToken {
            name: name.into(),
            reread_every: None,
        }
    }

    /// Have the cache read the variable again after this long, even if no request was
    /// rejected.
    #[must_use]
    pub fn reread_every(mut self, interval: Duration) -> Self {
        self.reread_every = Some(interval);
        self
    }

    fn read(&self) -> Result<Token, FetchError> {
        let name = &self.name;
        let value = match std::env::var(name) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => {
                return Err(FetchError::permanent(format!(
                    "environment variable {name} is not set; set it to the access token"
                )))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(FetchError::permanent(format!(
                    "environment variable {name} is not valid UTF-8; it must hold the access token as visible ASCII"
                )))
            }
        };
        if value.is_empty() {
            return Err(FetchError::permanent(format!(
                "environment variable {name} is empty; set it to the access token"
            )));
        }
        let mut builder = Token::builder(value);
        if let Some(interval) = self.reread_every {
            builder = builder.refresh_after(interval);
        }
        builder.build().map_err(|error| {
            FetchError::permanent(format!(
                "environment variable {name} does not hold a usable token"
            ))
            .with_source(error)
        })
    }
}

impl TokenSource for EnvToken {
    fn fetch(&self) -> TokenFuture<'_> {
        let result = self.read();
        Box::pin(async move { result })
    }
}
