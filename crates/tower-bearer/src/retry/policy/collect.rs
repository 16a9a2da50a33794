use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http::HeaderMap;
use http_body::Body;

use super::ReplayPolicy;
use crate::retry::body::{into_bytes, Prefix, Recorder, ReplayBody};

/// Replays small bodies by reading them before the request is sent, so that a replay never
/// depends on how much of the body the server read before it answered.
///
/// Before the first send, the body is read as far as it is ready without waiting, up to
/// `limit` bytes. A body that ends within that (a unary gRPC message, a JSON document) is
/// sent from the copy and can always be replayed, even when the server answers before
/// reading it; over HTTP/2 that is common, and [`BufferBody`](super::BufferBody) then cannot
/// replay. A body that is not ready yet is not waited for: a streaming call whose client
/// sends only after it hears from the server would never start. It is sent as it comes and
/// recorded, as `BufferBody` does, so it can still be replayed if it was sent to its end
/// within the limit. A body past the limit is sent as it is and not replayed.
///
/// The wrapped service receives a [`ReplayBody`]. Bodies must be `Unpin` to be read before
/// they are sent (`tonic::body::Body`, hyper's `Incoming`, `Full`, boxed bodies all are);
/// pin others with `Box::pin`.
#[derive(Clone, Copy, Debug)]
pub struct CollectBody {
    limit: usize,
}

impl CollectBody {
    /// Reads bodies of up to `limit` bytes before sending them.
    pub fn new(limit: usize) -> Self {
        CollectBody { limit }
    }
}

/// How far reading a body before the send got.
enum Read<E> {
    /// To its end: everything is in hand.
    Complete,
    /// It would have to wait for more.
    Waiting,
    /// More than the limit.
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
        let mut chunks = VecDeque::new();
        let mut length = 0usize;
        let mut trailers: Option<HeaderMap> = None;
        // Nothing waits on this context: a body that is not ready is handed over as it is,
        // and the service polls it again with its own waker.
        let mut cx = Context::from_waker(Waker::noop());
        let read = loop {
            if body.is_end_stream() {
                break Read::Complete;
            }
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => match into_bytes(frame).into_data() {
                    Ok(data) => {
                        length = length.saturating_add(data.len());
                        chunks.push_back(data);
                        if length > self.limit {
                            break Read::OverLimit;
                        }
                    }
                    Err(frame) => {
                        // Trailers end a body (http-body's `Frame`); other frames are not
                        // recorded, as `BufferBody` does not record them.
                        if let Ok(map) = frame.into_trailers() {
                            trailers = Some(map);
                            break Read::Complete;
                        }
                    }
                },
                Poll::Ready(Some(Err(error))) => break Read::Failed(error),
                Poll::Ready(None) => break Read::Complete,
                Poll::Pending => break Read::Waiting,
            }
        };
        match read {
            Read::Complete => {
                let recorder = Recorder::complete(chunks.clone(), trailers.clone());
                (ReplayBody::replaying(chunks, trailers), recorder)
            }
            Read::Waiting => {
                let recorder = Recorder::open(self.limit, chunks.clone(), length);
                let prefix = Prefix {
                    chunks,
                    trailers,
                    error: None,
                };
                (
                    ReplayBody::recording(prefix, body, recorder.clone()),
                    recorder,
                )
            }
            Read::OverLimit | Read::Failed(_) => {
                let error = match read {
                    Read::Failed(error) => Some(error),
                    _ => None,
                };
                let recorder = Recorder::abandoned();
                let prefix = Prefix {
                    chunks,
                    trailers,
                    error,
                };
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
    use crate::retry::body::test_bodies::{streaming, Chunks, Pausing};
    use bytes::Bytes;
    use http_body_util::BodyExt;

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
}
