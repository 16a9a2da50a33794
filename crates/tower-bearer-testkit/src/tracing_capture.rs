//! Capturing everything logged through `tracing`, to prove no secret ends up there.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::level_filters::LevelFilter;
use tracing::subscriber::{DefaultGuard, NoSubscriber};
use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;

use crate::lock;

/// Records every `tracing` event, down to `TRACE`, on the current thread until the returned
/// guard is dropped.
///
/// The subscriber is installed with [`tracing::subscriber::set_default`], so it sees events
/// from this thread only: everything in a `#[tokio::test]` on the default current-thread
/// runtime, but not tasks on the workers of a multi-thread runtime. The output is
/// `tracing-subscriber`'s `fmt` format without colours, span fields included.
///
/// ```
/// use tower_bearer_testkit::capture_tracing;
///
/// let logs = capture_tracing();
/// tracing::debug!(client_id = "my-client", "fetching a token");
/// assert!(logs.contents().contains("fetching a token"));
/// assert!(!logs.contains("hunter2"));
/// ```
pub fn capture_tracing() -> TracingCapture {
    let buffer = SharedBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_max_level(LevelFilter::TRACE)
        .with_ansi(false)
        .finish();
    // With a single subscriber registered, tracing-core asks only the current thread's
    // subscriber whether a new callsite is of interest, so a test on another thread without
    // one would switch that event off for everybody. A second, silent subscriber that lives
    // as long as the process makes it ask every registered subscriber instead.
    static KEEP_ASKING_ALL: OnceLock<Dispatch> = OnceLock::new();
    KEEP_ASKING_ALL.get_or_init(|| Dispatch::new(NoSubscriber::default()));
    let guard = tracing::subscriber::set_default(subscriber);
    // Callsites registered before this subscriber: ask them again.
    tracing::callsite::rebuild_interest_cache();
    TracingCapture {
        buffer,
        _guard: guard,
    }
}

/// The guard [`capture_tracing`] returns; capturing stops when it is dropped.
#[must_use = "capturing stops when the guard is dropped"]
pub struct TracingCapture {
    buffer: SharedBuffer,
    _guard: DefaultGuard,
}

impl TracingCapture {
    /// Everything logged so far, as text.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&lock(&self.buffer.0)).into_owned()
    }

    /// Whether anything logged so far contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.contents().contains(needle)
    }
}

impl fmt::Debug for TracingCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingCapture")
            .field("captured_bytes", &lock(&self.buffer.0).len())
            .finish()
    }
}

/// The in-memory sink the `fmt` subscriber writes each event into.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SharedBuffer {
    type Writer = SharedBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_events_and_span_fields_until_dropped() {
        let logs = capture_tracing();
        let span = tracing::info_span!("token_fetch", endpoint = "https://auth.example/token");
        span.in_scope(|| tracing::trace!(attempt = 1, "sending"));
        assert!(logs.contains("sending"));
        assert!(logs.contains("attempt=1"));
        assert!(logs.contains("auth.example"));

        let buffer = logs.buffer.clone();
        drop(logs);
        tracing::error!("after the guard");
        assert!(!String::from_utf8_lossy(&lock(&buffer.0)).contains("after the guard"));
    }
}
