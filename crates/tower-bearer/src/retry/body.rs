//! How a request body is kept so the request can be sent a second time.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How [`RetryOn401`](super::RetryOn401) keeps a request body for a replay.
///
/// Two are provided: [`CloneBody`] for bodies that are `Clone` (`Full<Bytes>`, `String`,
/// `Empty`, ...) and [`BufferBody`] for streaming bodies.
pub trait ReplayPolicy<B> {
    /// The body type the wrapped service receives.
    type Body;
    /// What is kept to build the replay.
    type Saved;

    /// Splits the incoming body into the one to send now and what to keep.
    fn prepare(&self, body: B) -> (Self::Body, Self::Saved);

    /// The body for the replay, or `None` if it cannot be replayed.
    fn replay(&self, saved: Self::Saved) -> Option<Self::Body>;
}

/// Replays `Clone` bodies by cloning them before the first send. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneBody;

impl<B: Clone> ReplayPolicy<B> for CloneBody {
    type Body = B;
    type Saved = B;

    fn prepare(&self, body: B) -> (B, B) {
        (body.clone(), body)
    }

    fn replay(&self, saved: B) -> Option<B> {
        Some(saved)
    }
}

/// Replays streaming bodies by recording them, up to a limit, as they are sent.
///
/// The wrapped service receives a [`ReplayBody`]. A request can be replayed if its body was
/// sent to the end and was no longer than the limit; otherwise the 401 is returned as it is.
/// The recording is dropped as soon as it passes the limit, so memory stays bounded.
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
        let recorder = Recorder(Arc::new(Mutex::new(Recording {
            chunks: VecDeque::new(),
            length: 0,
            limit: self.limit,
            state: if body.is_end_stream() {
                RecordingState::Complete
            } else {
                RecordingState::Open
            },
            trailers: None,
        })));
        let body = ReplayBody {
            kind: Kind::Recording {
                inner: body,
                recorder: recorder.clone(),
            },
        };
        (body, recorder)
    }

    fn replay(&self, saved: Recorder) -> Option<ReplayBody<B>> {
        let recording = saved.lock();
        (recording.state == RecordingState::Complete).then(|| ReplayBody {
            kind: Kind::Replaying {
                chunks: recording.chunks.clone(),
                trailers: recording.trailers.clone(),
            },
        })
    }
}

/// The recording [`BufferBody`] keeps of a body in flight.
#[derive(Clone)]
pub struct Recorder(Arc<Mutex<Recording>>);

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Recording> {
        crate::sync::lock(&self.0)
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recording = self.lock();
        f.debug_struct("Recorder")
            .field("length", &recording.length)
            .field("limit", &recording.limit)
            .field("state", &recording.state)
            .finish()
    }
}

struct Recording {
    chunks: VecDeque<Bytes>,
    length: usize,
    limit: usize,
    state: RecordingState,
    trailers: Option<HeaderMap>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecordingState {
    Open,
    Complete,
    /// Over the limit, or the body failed: cannot be replayed.
    Abandoned,
}

impl Recording {
    fn record(&mut self, frame: &Frame<Bytes>) {
        if self.state != RecordingState::Open {
            return;
        }
        if let Some(data) = frame.data_ref() {
            self.length = self.length.saturating_add(data.len());
            if self.length > self.limit {
                self.abandon();
            } else {
                self.chunks.push_back(data.clone());
            }
        } else if let Some(trailers) = frame.trailers_ref() {
            self.trailers = Some(trailers.clone());
        }
    }

    fn abandon(&mut self) {
        self.state = RecordingState::Abandoned;
        self.chunks = VecDeque::new();
        self.trailers = None;
    }
}

pin_project! {
    /// A request body that records itself while it is sent, or replays a recording; see
    /// [`BufferBody`].
    pub struct ReplayBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Recording {
            #[pin]
            inner: B,
            recorder: Recorder,
        },
        Replaying {
            chunks: VecDeque<Bytes>,
            trailers: Option<HeaderMap>,
        },
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Recording { inner, recorder } => match ready!(inner.poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                    recorder.lock().record(&frame);
                    Poll::Ready(Some(Ok(frame)))
                }
                Some(Err(error)) => {
                    recorder.lock().abandon();
                    Poll::Ready(Some(Err(error)))
                }
                None => {
                    let mut recording = recorder.lock();
                    if recording.state == RecordingState::Open {
                        recording.state = RecordingState::Complete;
                    }
                    Poll::Ready(None)
                }
            },
            KindProj::Replaying { chunks, trailers } => {
                if let Some(chunk) = chunks.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Recording { inner, recorder } => {
                let end = inner.is_end_stream();
                if end {
                    let mut recording = recorder.lock();
                    if recording.state == RecordingState::Open {
                        recording.state = RecordingState::Complete;
                    }
                }
                end
            }
            Kind::Replaying { chunks, trailers } => chunks.is_empty() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Recording { inner, .. } => inner.size_hint(),
            Kind::Replaying { chunks, .. } => {
                SizeHint::with_exact(chunks.iter().map(|c| c.len() as u64).sum())
            }
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Recording { .. } => "recording",
            Kind::Replaying { .. } => "replaying",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that is not `Clone` and yields its chunks one poll at a time.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    fn streaming(chunks: &[&'static str]) -> Chunks {
        Chunks(
            chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
        )
    }

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
