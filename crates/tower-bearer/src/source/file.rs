use std::error::Error as StdError;
use std::fmt;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use zeroize::Zeroizing;

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
/// A read runs on tokio's blocking pool, which DNS lookups and `tokio::fs` share. A read
/// that hangs (a stuck network mount, a FIFO nobody writes) cannot be stopped, so one read
/// at most is in flight for a source and its clones: a fetch that finds one joins it and
/// gets its outcome, however many fetches before it were abandoned (by the cache's
/// [fetch timeout](crate::CacheConfig::fetch_timeout)). A hung file holds one thread of the
/// pool, not one per fetch.
///
/// At most [`max_size`](FileToken::max_size) bytes are read (default 64 KiB); a larger file
/// is a [permanent](FetchError::is_permanent) error whose source is a [`TokenFileTooLarge`],
/// and is never read whole.
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
#[derive(Clone)]
pub struct FileToken {
    path: PathBuf,
    reread_every: Duration,
    max_size: usize,
    /// The read in flight, shared with clones; a new one for each new setting, since a
    /// read's outcome depends on them.
    in_flight: Arc<InFlight>,
}

/// The outcome of a read, once there is one.
type Outcome = Option<Result<Token, FetchError>>;

/// The read of a file in flight, if there is one: `Some` from the moment a read starts until
/// it ends, however it ends.
#[derive(Default)]
struct InFlight(Mutex<Option<watch::Receiver<Outcome>>>);

impl FileToken {
    /// The size limit unless [`max_size`](FileToken::max_size) sets another: tokens are a
    /// few KiB at most (a Kubernetes service account token is about 1 KiB, and HTTP servers
    /// refuse headers past 8 to 64 KiB), so a larger file is not a token file.
    pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;

    /// Reads the token from `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileToken {
            path: path.into(),
            reread_every: Duration::from_secs(60),
            max_size: Self::DEFAULT_MAX_SIZE,
            in_flight: Arc::default(),
        }
    }

    /// How long a token read from the file is used before the file is read again.
    #[must_use]
    pub fn reread_every(mut self, interval: Duration) -> Self {
        self.reread_every = interval;
        self.in_flight = Arc::default();
        self
    }

    /// The largest file read, in bytes, surrounding whitespace included (default
    /// [64 KiB](FileToken::DEFAULT_MAX_SIZE)). Reading stops one byte past it, and a larger
    /// file fails with a [`TokenFileTooLarge`] source.
    #[must_use]
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self.in_flight = Arc::default();
        self
    }

    /// The path the token is read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The read in flight, or a new one if there is none.
    fn join_or_start(&self) -> watch::Receiver<Outcome> {
        let mut in_flight = crate::sync::lock(&self.in_flight.0);
        if let Some(outcome) = &*in_flight {
            return outcome.clone();
        }
        let (sender, outcome) = watch::channel(None);
        *in_flight = Some(outcome.clone());
        drop(in_flight);
        let read = Reading {
            in_flight: Arc::clone(&self.in_flight),
            outcome: Some(sender),
        };
        let (path, max_size, reread_every) = (self.path.clone(), self.max_size, self.reread_every);
        // Not awaited: a fetch that is abandoned leaves the read to finish, or to hang, here.
        drop(tokio::task::spawn_blocking(move || {
            read.finish(read_token(&path, max_size, reread_every));
        }));
        outcome
    }

    async fn fetch_token(&self) -> Result<Token, FetchError> {
        let mut outcome = self.join_or_start();
        match outcome
            .wait_for(Option::is_some)
            .await
            .map(|seen| seen.clone())
        {
            Ok(Some(result)) => result,
            _ => Err(FetchError::transient(format!(
                "the read of token file {} stopped before it finished (its runtime shut \
                 down, or it panicked); the next fetch reads the file again",
                self.path.display()
            ))),
        }
    }
}

impl TokenSource for FileToken {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.fetch_token())
    }
}

impl fmt::Debug for FileToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileToken")
            .field("path", &self.path)
            .field("reread_every", &self.reread_every)
            .field("max_size", &self.max_size)
            .finish_non_exhaustive()
    }
}

/// A read that has started: ends the read in flight when it is done, or when it is dropped
/// without an outcome (a blocking task dropped at runtime shutdown, a panic).
struct Reading {
    in_flight: Arc<InFlight>,
    outcome: Option<watch::Sender<Outcome>>,
}

impl Reading {
    fn finish(mut self, result: Result<Token, FetchError>) {
        // Ended before the outcome is seen, so a fetch that comes after it reads again.
        self.end();
        if let Some(outcome) = self.outcome.take() {
            outcome.send_replace(Some(result));
        }
    }

    fn end(&self) {
        *crate::sync::lock(&self.in_flight.0) = None;
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        if self.outcome.is_some() {
            self.end();
        }
    }
}

/// Reads and checks the token in `path`, on a thread that may block.
fn read_token(path: &Path, max_size: usize, reread_every: Duration) -> Result<Token, FetchError> {
    let display = path.display();
    let contents = read_capped(path, max_size).map_err(|error| {
        let message = format!("cannot read token file {display}");
        let fetch_error = if error.kind() == std::io::ErrorKind::NotFound {
            FetchError::transient(message)
        } else {
            FetchError::permanent(message)
        };
        fetch_error.with_source(error)
    })?;
    if contents.len() > max_size {
        return Err(FetchError::permanent(format!(
            "token file {display} is too large to hold an access token; point FileToken at \
             the file that holds only the token, or raise FileToken::max_size"
        ))
        .with_source(TokenFileTooLarge {
            path: path.to_owned(),
            limit: max_size,
        }));
    }
    let text = std::str::from_utf8(&contents).map_err(|_| {
        FetchError::permanent(format!(
            "token file {display} is not valid UTF-8; it must hold the access token as visible ASCII"
        ))
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(FetchError::permanent(format!(
            "token file {display} is empty; write the access token into it"
        )));
    }
    Token::builder(value)
        .refresh_after(reread_every)
        .build()
        .map_err(|error| {
            FetchError::permanent(format!("token file {display} does not hold a usable token"))
                .with_source(error)
        })
}

/// The file's first `max_size + 1` bytes at most: one more than fits tells a file that is
/// too large from one that fits exactly.
fn read_capped(path: &Path, max_size: usize) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let file = File::open(path)?;
    // Room for the whole file at once, so no copy of the token is left behind in memory
    // given back by a growing buffer; 4 KiB for files of unknown size (FIFOs, procfs).
    let expected = file
        .metadata()
        .ok()
        .and_then(|metadata| usize::try_from(metadata.len()).ok())
        .filter(|&len| len > 0)
        .unwrap_or(4096);
    let mut contents = Zeroizing::new(Vec::with_capacity(expected.min(max_size).saturating_add(1)));
    let limit = u64::try_from(max_size).map_or(u64::MAX, |max| max.saturating_add(1));
    file.take(limit).read_to_end(&mut contents)?;
    Ok(contents)
}

/// A token file held more bytes than [`FileToken::max_size`] allows; the
/// [source](StdError::source) of the [`FetchError`] that [`FileToken`] returns for it.
///
/// A token is a few KiB at most, so the path most likely names the wrong file; if the token
/// really is that large, raise the limit. Reading stopped one byte past the limit.
#[derive(Debug)]
#[non_exhaustive]
pub struct TokenFileTooLarge {
    path: PathBuf,
    limit: usize,
}

impl TokenFileTooLarge {
    /// The file that was too large.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limit it passed, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl fmt::Display for TokenFileTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the file holds more than {} bytes, the most FileToken reads",
            self.limit
        )
    }
}

impl StdError for TokenFileTooLarge {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_file_is_read_one_byte_past_the_limit_and_no_further() {
        let dir = std::env::temp_dir().join(format!("tower-bearer-capped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, vec![b't'; 1024 * 1024]).unwrap();
        assert_eq!(read_capped(&path, 100).unwrap().len(), 101);
        assert_eq!(read_capped(&path, 0).unwrap().len(), 1);
        assert_eq!(read_capped(&path, usize::MAX).unwrap().len(), 1024 * 1024);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
