use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{TokenFuture, TokenSource};
use crate::{FetchError, Token};

/// A bearer token read from a file, such as a Kubernetes projected service account token,
/// which the kubelet rotates in place.
///
/// The file is read again on every fetch, and tokens from it ask the cache to fetch again
/// after [`reread_every`](FileToken::reread_every) (default 60 s), so a rotated file is
/// picked up within that interval. Leading and trailing whitespace (a final newline, as
/// editors and `echo` write) is removed.
///
/// An unreadable, empty or malformed file is an error that names the path (never its
/// contents): a missing file is [transient](FetchError::is_transient), since a mounted
/// secret may appear a moment after start-up.
///
/// ```
/// use tower_bearer::source::FileToken;
///
/// let source = FileToken::new("/var/run/secrets/tokens/api-token");
/// # let _ = source;
/// ```
#[derive(Clone, Debug)]
pub struct FileToken {
    path: PathBuf,
    reread_every: Duration,
}

impl FileToken {
    /// Reads the token from `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileToken {
            path: path.into(),
            reread_every: Duration::from_secs(60),
        }
    }

    /// How long a token read from the file is used before the file is read again.
    #[must_use]
    pub fn reread_every(mut self, interval: Duration) -> Self {
        self.reread_every = interval;
        self
    }

    /// The path the token is read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read(&self) -> Result<Token, FetchError> {
        let path = self.path.display();
        let contents = tokio::fs::read(&self.path).await.map_err(|error| {
            let message = format!("cannot read token file {path}");
            let fetch_error = if error.kind() == std::io::ErrorKind::NotFound {
                FetchError::transient(message)
            } else {
                FetchError::permanent(message)
            };
            fetch_error.with_source(error)
        })?;
        let contents = zeroize::Zeroizing::new(contents);
        let text = std::str::from_utf8(&contents).map_err(|_| {
            FetchError::permanent(format!(
                "token file {path} is not valid UTF-8; it must hold the access token as visible ASCII"
            ))
        })?;
        let value = text.trim();
        if value.is_empty() {
            return Err(FetchError::permanent(format!(
                "token file {path} is empty; write the access token into it"
            )));
        }
        Token::builder(value)
            .refresh_after(self.reread_every)
            .build()
            .map_err(|error| {
                FetchError::permanent(format!("token file {path} does not hold a usable token"))
                    .with_source(error)
            })
    }
}

impl TokenSource for FileToken {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.read())
    }
}
