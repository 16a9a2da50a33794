//! How [`RetryOn401`](super::RetryOn401) keeps a request body for a replay: one policy per
//! file.

mod buffer;
mod clone;
mod collect;
mod map;

pub use buffer::BufferBody;
pub use clone::CloneBody;
pub use collect::CollectBody;
pub use map::MapBody;

/// How [`RetryOn401`](super::RetryOn401) keeps a request body for a replay.
///
/// Three are provided: [`CloneBody`] for bodies that are `Clone` (`Full<Bytes>`, `String`,
/// `Empty`, ...), [`CollectBody`] and [`BufferBody`] for streaming bodies. [`MapBody`]
/// turns the body one of them sends into the type the wrapped service takes.
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
