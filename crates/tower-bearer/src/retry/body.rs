//! The request body the wrapped service receives under [`BufferBody`](super::BufferBody) and
//! [`CollectBody`](super::CollectBody), and the recording kept for the replay.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// What a body's frame is kept as: its data as `Bytes` (cheap to clone for a replay).
pub(super) fn into_bytes<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
}

/// The recording kept of a body in flight, shared with the [`ReplayBody`] that sends it.
#[derive(Clone)]
pub struct Recorder(Arc<Mutex<Recording>>);

impl Recorder {
    /// A recording of a body that has not been read yet, or of one of which `read` was
    /// read before it was sent.
    pub(super) fn open(limits: Limits, read: Read) -> Self {
        Recorder::with_state(limits, read, RecordingState::Open)
    }

    /// The recording of a body that was read to its end before it was sent.
    pub(super) fn complete(read: Read) -> Self {
        let limits = Limits {
            bytes: read.length,
            frames: read.frames,
        };
        Recorder::with_state(limits, read, RecordingState::Complete)
    }

    /// A body that cannot be replayed: over a limit, or it failed.
    pub(super) fn abandoned() -> Self {
        let limits = Limits {
            bytes: 0,
            frames: 0,
        };
        Recorder::with_state(limits, Read::default(), RecordingState::Abandoned)
    }

    fn with_state(limits: Limits, read: Read, state: RecordingState) -> Self {
        Recorder(Arc::new(Mutex::new(Recording {
            read,
            limits,
            state,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Recording> {
        crate::sync::lock(&self.0)
    }

    /// The body for a replay, if the whole body was recorded.
    pub(super) fn replay<B: Body>(&self) -> Option<ReplayBody<B>> {
        let recording = self.lock();
        (recording.state == RecordingState::Complete).then(|| {
            ReplayBody::replaying(
                recording.read.chunks.clone(),
                recording.read.trailers.clone(),
            )
        })
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recording = self.lock();
        f.debug_struct("Recorder")
            .field("length", &recording.read.length)
            .field("frames", &recording.read.frames)
            .field("limits", &recording.limits)
            .field("state", &recording.state)
            .finish()
    }
}

/// How much of a body may be kept for a replay. Both bound memory: `bytes` what the data
/// takes, `frames` what the frames around it take (an endless stream of empty frames has no
/// bytes at all) and how long reading a body before it is sent can go on.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) bytes: usize,
    pub(super) frames: usize,
}

impl Limits {
    /// The default for `frames`: far more than a body within a replayable size is usually
    /// split into (a unary gRPC call is one or two), few enough that reading them all in
    /// `call` takes microseconds.
    pub(super) const DEFAULT_FRAMES: usize = 1024;

    /// `bytes`, in up to [`DEFAULT_FRAMES`](Self::DEFAULT_FRAMES) frames.
    pub(super) fn bytes(bytes: usize) -> Self {
        Limits {
            bytes,
            frames: Self::DEFAULT_FRAMES,
        }
    }

    /// Whether `read` is past either limit.
    pub(super) fn exceeded_by(&self, read: &Read) -> bool {
        read.length > self.bytes || read.frames > self.frames
    }
}

/// What has been read of a body: its data, trailers, and how many frames it came in.
#[derive(Clone, Default)]
pub(super) struct Read {
    pub(super) chunks: VecDeque<Bytes>,
    pub(super) trailers: Option<HeaderMap>,
    /// The bytes in `chunks`.
    pub(super) length: usize,
    /// Every frame read, empty ones and trailers included.
    pub(super) frames: usize,
}

impl Read {
    /// Adds a frame to what was read.
    pub(super) fn push(&mut self, frame: &Frame<Bytes>) {
        self.frames = self.frames.saturating_add(1);
        if let Some(data) = frame.data_ref() {
            self.length = self.length.saturating_add(data.len());
            self.chunks.push_back(data.clone());
        } else if let Some(trailers) = frame.trailers_ref() {
            self.trailers = Some(trailers.clone());
        }
    }
}

struct Recording {
    read: Read,
    limits: Limits,
    state: RecordingState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecordingState {
    Open,
    Complete,
    /// Over a limit, or the body failed: cannot be replayed.
    Abandoned,
}

impl Recording {
    fn record(&mut self, frame: &Frame<Bytes>) {
        if self.state != RecordingState::Open {
            return;
        }
        self.read.push(frame);
        if self.limits.exceeded_by(&self.read) {
            self.abandon();
        }
    }

    fn finish(&mut self) {
        if self.state == RecordingState::Open {
            self.state = RecordingState::Complete;
        }
    }

    fn abandon(&mut self) {
        self.state = RecordingState::Abandoned;
        self.read = Read::default();
    }
}

/// What was read from a body before it was handed to the service, sent ahead of the rest.
pub(super) struct Prefix<E> {
    pub(super) chunks: VecDeque<Bytes>,
    pub(super) trailers: Option<HeaderMap>,
    /// The error the body failed with while it was read; sent after the chunks.
    pub(super) error: Option<E>,
}

impl<E> Prefix<E> {
    pub(super) fn empty() -> Self {
        Prefix::new(Read::default(), None)
    }

    /// Sends what was `read`, then `error` if there is one.
    pub(super) fn new(read: Read, error: Option<E>) -> Self {
        Prefix {
            chunks: read.chunks,
            trailers: read.trailers,
            error,
        }
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none() && self.error.is_none()
    }

    fn next(&mut self) -> Option<Result<Frame<Bytes>, E>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Some(Ok(Frame::data(chunk)));
        }
        if let Some(trailers) = self.trailers.take() {
            return Some(Ok(Frame::trailers(trailers)));
        }
        self.error.take().map(Err)
    }

    fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }
}

pin_project! {
    /// A request body that records itself while it is sent, or replays a recording; see
    /// [`BufferBody`](super::BufferBody) and [`CollectBody`](super::CollectBody).
    pub struct ReplayBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        Recording {
            // Sent first: what was read before the body was handed over (already recorded).
            prefix: Prefix<B::Error>,
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

impl<B: Body> ReplayBody<B> {
    /// Sends `prefix`, then `inner`, recording what `inner` yields.
    pub(super) fn recording(prefix: Prefix<B::Error>, inner: B, recorder: Recorder) -> Self {
        ReplayBody {
            kind: Kind::Recording {
                prefix,
                inner,
                recorder,
            },
        }
    }

    /// Sends these chunks and trailers.
    pub(super) fn replaying(chunks: VecDeque<Bytes>, trailers: Option<HeaderMap>) -> Self {
        ReplayBody {
            kind: Kind::Replaying { chunks, trailers },
        }
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
            KindProj::Recording {
                prefix,
                inner,
                recorder,
            } => {
                if let Some(frame) = prefix.next() {
                    return Poll::Ready(Some(frame));
                }
                match ready!(inner.poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        let frame = into_bytes(frame);
                        recorder.lock().record(&frame);
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Some(Err(error)) => {
                        recorder.lock().abandon();
                        Poll::Ready(Some(Err(error)))
                    }
                    None => {
                        recorder.lock().finish();
                        Poll::Ready(None)
                    }
                }
            }
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
            Kind::Recording {
                prefix,
                inner,
                recorder,
            } => {
                let end = prefix.is_empty() && inner.is_end_stream();
                if end {
                    recorder.lock().finish();
                }
                end
            }
            Kind::Replaying { chunks, trailers } => chunks.is_empty() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Recording { prefix, inner, .. } => {
                let ahead = prefix.len();
                let rest = inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(ahead));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(ahead));
                }
                hint
            }
            Kind::Replaying { chunks, .. } => {
                SizeHint::with_exact(chunks.iter().map(|c| c.len() as u64).sum())
            }
        }
    }
}

impl<B: Body> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Recording { .. } => "recording",
            Kind::Replaying { .. } => "replaying",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

/// Bodies the policies' tests send: not `Clone`, yielding one frame per poll.
#[cfg(test)]
pub(super) mod test_bodies {
    use super::*;

    /// Chunks, then trailers or an error if asked for.
    pub(crate) struct Chunks {
        chunks: VecDeque<Bytes>,
        trailers: Option<HeaderMap>,
        fail: bool,
    }

    impl Chunks {
        pub(crate) fn with_trailers(chunks: &[&'static str], trailers: HeaderMap) -> Self {
            Chunks {
                trailers: Some(trailers),
                ..streaming(chunks)
            }
        }

        pub(crate) fn failing_after(chunks: &[&'static str]) -> Self {
            Chunks {
                fail: true,
                ..streaming(chunks)
            }
        }
    }

    pub(crate) fn streaming(chunks: &[&'static str]) -> Chunks {
        Chunks {
            chunks: chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
            trailers: None,
            fail: false,
        }
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if let Some(chunk) = self.chunks.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if std::mem::take(&mut self.fail) {
                return Poll::Ready(Some(Err(std::io::Error::other("the body broke"))));
            }
            Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
        }
    }

    /// Always ready, yields empty data frames for ever, and counts how often it is polled.
    pub(crate) struct EmptyFrames {
        polls: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl EmptyFrames {
        /// The body, and the count of its polls.
        pub(crate) fn endless() -> (Self, Arc<std::sync::atomic::AtomicUsize>) {
            let polls = Arc::default();
            let body = EmptyFrames {
                polls: Arc::clone(&polls),
            };
            (body, polls)
        }
    }

    impl Body for EmptyFrames {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            self.polls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
        }
    }

    /// Yields `ready`, then is pending once (waking itself), then yields `later`.
    pub(crate) struct Pausing {
        ready: VecDeque<Bytes>,
        paused: bool,
        later: VecDeque<Bytes>,
    }

    impl Pausing {
        pub(crate) fn new(ready: &[&'static str], later: &[&'static str]) -> Self {
            let bytes = |chunks: &[&'static str]| {
                chunks
                    .iter()
                    .map(|c| Bytes::from_static(c.as_bytes()))
                    .collect()
            };
            Pausing {
                ready: bytes(ready),
                paused: false,
                later: bytes(later),
            }
        }
    }

    impl Body for Pausing {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if let Some(chunk) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if !self.paused {
                self.paused = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.later.pop_front().map(|c| Ok(Frame::data(c))))
        }
    }
}
