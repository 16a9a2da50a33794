use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http_body::Body;

use super::ReplayPolicy;
use crate::retry::body::{into_bytes, Limits, Prefix, Read, Recorder, ReplayBody};

/// Replays small bodies by reading them before the request is sent, so that a replay never
/// depends on how much of the body the server read before it answered.
///
/// Before the first send, the body is read as far as it is ready without waiting, up to
/// `limit` bytes in at most [`max_frames`](CollectBody::max_frames) frames (default 1024).
/// A body that ends within that (a unary gRPC message, a JSON document) is sent from the
/// copy and can always be replayed, even when the server answers before reading it; over
/// HTTP/2 that is common, and [`BufferBody`](super::BufferBody) then cannot replay. A body
/// that is not ready yet is not waited for: a streaming call whose client sends only after
/// it hears from the server would never start. It is sent as it comes and recorded, as
/// `BufferBody` does, so it can still be replayed if it was sent to its end within the
/// limits.
///
/// A body past either limit, more than `limit` bytes or more than `max_frames` frames, is
/// sent as it is and not replayed: a 401 for it is returned untouched, as for any body that
/// cannot be replayed. The frame limit bounds the work done in `call`: a body that is always
/// ready but yields empty frames for ever is read `max_frames + 1` times there, then handed
/// to the service as it is.
///
/// The wrapped service receives a [`ReplayBody`]. Bodies must be `Unpin` to be read before
/// they are sent (`tonic::body::Body`, hyper's `Incoming`, `Full`, boxed bodies all are);
/// pin others with `Box::pin`.
#[derive(Clone, Copy, Debug)]
pub struct CollectBody {
    limits: Limits,
}

impl CollectBody {
    /// Reads bodies of up to `limit` bytes, in up to 1024 frames, before sending them.
    pub fn new(limit: usize) -> Self {
        CollectBody {
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

/// How far reading a body before the send got.
enum Outcome<E> {
    /// To its end: everything is in hand.
    Complete,
    /// It would have to wait for more.
    Waiting,
    /// More bytes or frames than the limits.
    OverLimit,
    /// It failed with this error.
    Failed(E),
}

impl<B> ReplayPolicy<B> for CollectBody
where
    B: Body + Unpin,
{
    type Body = ReplayBody<B>;
    type Saved = Recorder;

    fn prepare(&self, mut body: B) -> (ReplayBody<B>, Recorder) {
        let mut read = Read::default();
        // Nothing waits on this context: a body that is not ready is handed over as it is,
        // and the service polls it again with its own waker.
        let mut cx = Context::from_waker(Waker::noop());
        // Every frame counts against the limits, so this ends for a body that is always
        // ready, even one whose frames hold no bytes.
        let outcome = loop {
            if body.is_end_stream() {
                break Outcome::Complete;
            }
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = into_bytes(frame);
                    read.push(&frame);
                    if self.limits.exceeded_by(&read) {
                        break Outcome::OverLimit;
                    }
                    // Trailers end a body (http-body's `Frame`).
                    if frame.is_trailers() {
                        break Outcome::Complete;
                    }
                }
                Poll::Ready(Some(Err(error))) => break Outcome::Failed(error),
                Poll::Ready(None) => break Outcome::Complete,
                Poll::Pending => break Outcome::Waiting,
            }
        };
        match outcome {
            Outcome::Complete => {
                let body = ReplayBody::replaying(read.chunks.clone(), read.trailers.clone());
                (body, Recorder::complete(read))
            }
            Outcome::Waiting => {
                let recorder = Recorder::open(self.limits, read.clone());
                let prefix = Prefix::new(read, None);
                (
                    ReplayBody::recording(prefix, body, recorder.clone()),
                    recorder,
                )
            }
            Outcome::OverLimit | Outcome::Failed(_) => {
                let error = match outcome {
                    Outcome::Failed(error) => Some(error),
                    _ => None,
                };
                let recorder = Recorder::abandoned();
                let prefix = Prefix::new(read, error);
                (
                    ReplayBody::recording(prefix, body, recorder.clone()),
                    recorder,
                )
            }
        }
    }

    fn replay(&self, saved: Recorder) -> Option<ReplayBody<B>> {
        saved.replay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::body::test_bodies::{streaming, Chunks, EmptyFrames, Pausing};
    use bytes::Bytes;
    use http::HeaderMap;
    use http_body_util::BodyExt;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    fn replay<B: Body + Unpin>(policy: &CollectBody, saved: Recorder) -> Option<ReplayBody<B>> {
        ReplayPolicy::<B>::replay(policy, saved)
    }

    #[tokio::test]
    async fn a_ready_body_can_be_replayed_before_it_is_sent() {
        let policy = CollectBody::new(1024);
        let (body, saved) = policy.prepare(streaming(&["hello ", "world"]));
        // The server answered without reading a byte: the replay still has the whole body.
        drop(body);
        let replay = replay::<Chunks>(&policy, saved).expect("read to its end before the send");
        assert_eq!(replay.collect().await.unwrap().to_bytes(), "hello world");
    }

    #[tokio::test]
    async fn the_first_send_carries_the_whole_body() {
        let policy = CollectBody::new(1024);
        let (body, _saved) = policy.prepare(streaming(&["a", "b", "c"]));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
    }

    #[tokio::test]
    async fn a_body_that_would_wait_is_sent_as_it_comes_and_recorded() {
        let policy = CollectBody::new(1024);
        let (body, saved) = policy.prepare(Pausing::new(&["ready "], &["later"]));
        assert!(
            replay::<Pausing>(&policy, saved.clone()).is_none(),
            "not sent to its end yet"
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "ready later");
        let replay = replay::<Pausing>(&policy, saved).expect("recorded while it was sent");
        assert_eq!(replay.collect().await.unwrap().to_bytes(), "ready later");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_sent_whole_and_not_replayed() {
        let policy = CollectBody::new(8);
        let (body, saved) = policy.prepare(streaming(&["hello ", "world", "!"]));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello world!");
        assert!(replay::<Chunks>(&policy, saved).is_none());
    }

    #[tokio::test]
    async fn a_body_that_fails_while_read_sends_what_it_had_then_the_error() {
        let policy = CollectBody::new(1024);
        let (body, saved) = policy.prepare(Chunks::failing_after(&["part"]));
        let mut body = std::pin::pin!(body);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "part");
        assert!(
            body.frame().await.unwrap().is_err(),
            "the error is sent, not lost"
        );
        assert!(replay::<Chunks>(&policy, saved).is_none());
    }

    #[tokio::test]
    async fn trailers_are_kept_for_the_replay() {
        let policy = CollectBody::new(1024);
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "1".parse().unwrap());
        let body = Chunks::with_trailers(&["data"], trailers.clone());
        let (_body, saved) = policy.prepare(body);
        let replay = replay::<Chunks>(&policy, saved).unwrap();
        let collected = replay.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"data"));
    }

    #[test]
    fn an_always_ready_body_of_empty_frames_is_read_a_bounded_number_of_times() {
        let (body, polls) = EmptyFrames::endless();
        // On a thread of its own, so a `prepare` that never returns fails the test instead
        // of hanging it.
        let (done, prepared) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let policy = CollectBody::new(1024);
            let (body, saved) = policy.prepare(body);
            let _ = done.send((body, replay::<EmptyFrames>(&policy, saved).is_none()));
        });
        let (body, not_replayable) = prepared
            .recv_timeout(Duration::from_secs(10))
            .expect("prepare returned");
        let polls_in_prepare = polls.load(Ordering::Relaxed);
        assert_eq!(
            polls_in_prepare, 1025,
            "1024 frames, and one past the limit"
        );
        assert!(
            not_replayable,
            "over the frame limit, as over the byte limit"
        );
        // The body is handed on as it is: the service reads the rest.
        let mut body = std::pin::pin!(body);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..2000 {
            let frame = body.as_mut().poll_frame(&mut cx);
            assert!(matches!(frame, Poll::Ready(Some(Ok(_)))));
        }
    }

    #[tokio::test]
    async fn a_body_within_the_frame_limit_is_replayed_and_one_past_it_is_not() {
        let policy = CollectBody::new(1024).max_frames(3);
        let (_body, saved) = policy.prepare(streaming(&["a", "", "c"]));
        let replayed = replay::<Chunks>(&policy, saved).expect("3 frames, within the limit");
        assert_eq!(replayed.collect().await.unwrap().to_bytes(), "ac");

        let (body, saved) = policy.prepare(streaming(&["a", "", "c", ""]));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "ac", "sent whole");
        assert!(replay::<Chunks>(&policy, saved).is_none());
    }

    #[tokio::test]
    async fn a_body_that_would_wait_is_recorded_within_the_frame_limit_only() {
        let policy = CollectBody::new(1024).max_frames(2);
        let (body, saved) = policy.prepare(Pausing::new(&["ready "], &["later", "!"]));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "ready later!");
        assert!(
            replay::<Pausing>(&policy, saved).is_none(),
            "3 frames, one past the limit"
        );
    }
}
