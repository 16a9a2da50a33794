use std::collections::VecDeque;

use http_body::Body;

use super::ReplayPolicy;
use crate::retry::body::{Prefix, Recorder, ReplayBody};

/// Replays streaming bodies by recording them, up to a limit, as they are sent.
///
/// The wrapped service receives a [`ReplayBody`]. A request can be replayed if its body was
/// sent to the end and was no longer than the limit; otherwise the rejection is returned as
/// it is. The recording is dropped as soon as it passes the limit, so memory stays bounded.
///
/// A server that answers before it has read the body (an auth proxy refusing the token,
/// say) may leave the recording unfinished, and the request is then not replayed; over
/// HTTP/2 that happens often. [`CollectBody`](super::CollectBody) reads small bodies before
/// sending, so such answers replay too.
#[derive(Clone, Copy, Debug)]
pub struct BufferBody {
    limit: usize,
}

impl BufferBody {
    /// Records bodies up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        BufferBody { limit }
    }
}

impl<B> ReplayPolicy<B> for BufferBody
where
    B: Body,
{
    type Body = ReplayBody<B>;
    type Saved = Recorder;

    fn prepare(&self, body: B) -> (ReplayBody<B>, Recorder) {
        let recorder = if body.is_end_stream() {
            Recorder::complete(VecDeque::new(), None)
        } else {
            Recorder::open(self.limit, VecDeque::new(), 0)
        };
        let body = ReplayBody::recording(Prefix::empty(), body, recorder.clone());
        (body, recorder)
    }

    fn replay(&self, saved: Recorder) -> Option<ReplayBody<B>> {
        saved.replay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::body::test_bodies::{streaming, Chunks};
    use bytes::Bytes;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn replays_what_was_sent() {
        let policy = BufferBody::new(1024);
        let (body, saved) = policy.prepare(streaming(&["hello ", "world"]));
        assert!(
            ReplayPolicy::<Chunks>::replay(&policy, saved.clone()).is_none(),
            "not sent yet"
        );
        let sent = body.collect().await.unwrap().to_bytes();
        assert_eq!(sent, "hello world");
        let replay =
            ReplayPolicy::<Chunks>::replay(&policy, saved).expect("complete and under the limit");
        assert_eq!(replay.collect().await.unwrap().to_bytes(), "hello world");
    }

    #[tokio::test]
    async fn gives_up_over_the_limit() {
        let policy = BufferBody::new(8);
        let (body, saved) = policy.prepare(streaming(&["hello ", "world"]));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello world");
        assert!(ReplayPolicy::<Chunks>::replay(&policy, saved).is_none());
    }

    #[tokio::test]
    async fn empty_body_is_complete_without_polling() {
        let policy = BufferBody::new(8);
        let (_body, saved) = policy.prepare(http_body_util::Empty::<Bytes>::new());
        assert!(ReplayPolicy::<http_body_util::Empty<Bytes>>::replay(&policy, saved).is_some());
    }
}
