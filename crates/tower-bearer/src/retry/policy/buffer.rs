use http_body::Body;

use super::ReplayPolicy;
use crate::retry::body::{Limits, Prefix, Read, Recorder, ReplayBody};

/// Replays streaming bodies by recording them, up to a limit, as they are sent.
///
/// The wrapped service receives a [`ReplayBody`]. A request can be replayed if its body was
/// sent to the end, was no longer than the limit and came in at most
/// [`max_frames`](BufferBody::max_frames) frames (default 1024); otherwise the rejection is
/// returned as it is. The recording is dropped as soon as it passes either limit, so memory
/// stays bounded, even for a body that yields empty frames for ever.
///
/// A server that answers before it has read the body (an auth proxy refusing the token,
/// say) may leave the recording unfinished, and the request is then not replayed; over
/// HTTP/2 that happens often. [`CollectBody`](super::CollectBody) reads small bodies before
/// sending, so such answers replay too.
#[derive(Clone, Copy, Debug)]
pub struct BufferBody {
    limits: Limits,
}

impl BufferBody {
    /// Records bodies up to `limit` bytes, in up to 1024 frames.
    pub fn new(limit: usize) -> Self {
        BufferBody {
            limits: Limits::bytes(limit),
        }
    }

    /// The most frames a replayable body may come in, trailers included (default 1024).
    ///
    /// Raise it for bodies that arrive in many small pieces; a body in more frames is sent
    /// and not replayed, as one over the byte limit is.
    #[must_use]
    pub fn max_frames(mut self, frames: usize) -> Self {
        self.limits.frames = frames;
        self
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
            Recorder::complete(Read::default())
        } else {
            Recorder::open(self.limits, Read::default())
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
    use crate::retry::body::test_bodies::{streaming, Chunks, EmptyFrames};
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use std::task::{Context, Poll, Waker};

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

    #[test]
    fn a_body_of_endless_empty_frames_is_not_recorded_without_bound() {
        let policy = BufferBody::new(1024);
        let (body, _polls) = EmptyFrames::endless();
        let (body, saved) = ReplayPolicy::<EmptyFrames>::prepare(&policy, body);
        let mut body = std::pin::pin!(body);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..10_000 {
            let frame = body.as_mut().poll_frame(&mut cx);
            assert!(matches!(frame, Poll::Ready(Some(Ok(_)))));
        }
        let recorded = format!("{saved:?}");
        assert!(recorded.contains("state: Abandoned"), "{recorded}");
        assert!(recorded.contains("frames: 0"), "nothing kept: {recorded}");
        assert!(ReplayPolicy::<EmptyFrames>::replay(&policy, saved).is_none());
    }
}
