//! A request body that can be read only once.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};

/// An [`http_body::Body`] that yields its chunks one frame per poll and cannot be cloned.
///
/// Middleware cannot replay it the way it can a buffered body, so it tests what a retry
/// layer does with a request it cannot send twice. Its size is unknown, so hyper sends it
/// chunked.
///
/// ```
/// use http_body_util::BodyExt;
/// use tower_bearer_testkit::StreamingBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let body = StreamingBody::from_static(&["hello, ", "world"]);
/// assert_eq!(body.collect().await?.to_bytes(), "hello, world");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StreamingBody {
    /// Yielded before `chunks`.
    empty_frames: u64,
    chunks: VecDeque<Bytes>,
    polls: PollCount,
}

impl StreamingBody {
    /// A body made of `chunks`, in order.
    pub fn new(chunks: Vec<Bytes>) -> Self {
        Self {
            empty_frames: 0,
            chunks: chunks.into(),
            polls: PollCount::default(),
        }
    }

    /// A body that first yields `count` empty data frames, every one ready at once, then
    /// `chunks`: it tests that middleware which reads bodies is bounded in frames, not only
    /// in bytes. hyper sends it as `chunks` alone.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use tower_bearer_testkit::StreamingBody;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let body = StreamingBody::empty_frames_then(1000, &["hello"]);
    /// let polls = body.polls();
    /// assert_eq!(body.collect().await?.to_bytes(), "hello");
    /// assert_eq!(polls.get(), 1002, "1000 empty frames, the data, the end");
    /// # Ok(())
    /// # }
    /// ```
    pub fn empty_frames_then(count: u64, chunks: &[&'static str]) -> Self {
        Self {
            empty_frames: count,
            ..Self::from_static(chunks)
        }
    }

    /// A body made of static string chunks, in order.
    pub fn from_static(chunks: &[&'static str]) -> Self {
        Self::new(
            chunks
                .iter()
                .map(|chunk| Bytes::from_static(chunk.as_bytes()))
                .collect(),
        )
    }

    /// How often the body has been polled for a frame, readable after the body was sent.
    pub fn polls(&self) -> PollCount {
        self.polls.clone()
    }
}

/// How often a [`StreamingBody`] has been polled for a frame; see [`StreamingBody::polls`].
#[derive(Clone, Debug, Default)]
pub struct PollCount(Arc<AtomicU64>);

impl PollCount {
    /// The polls so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Body for StreamingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.polls.0.fetch_add(1, Ordering::SeqCst);
        if self.empty_frames > 0 {
            self.empty_frames -= 1;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::new()))));
        }
        Poll::Ready(self.chunks.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.empty_frames == 0 && self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn yields_one_chunk_per_frame_then_ends() {
        let mut body = StreamingBody::from_static(&["a", "bc"]);
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), None);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "a");
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "bc");
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
    }
}
