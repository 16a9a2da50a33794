use tower_layer::Layer;

use super::{BufferBody, CloneBody, RetryOn401};

/// Retries once on a 401 for a rejected token; see the [module docs](crate::retry).
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryOn401Layer<P = CloneBody> {
    policy: P,
}

impl RetryOn401Layer {
    /// Replays `Clone` request bodies by cloning them.
    pub fn new() -> Self {
        RetryOn401Layer { policy: CloneBody }
    }

    /// Replays streaming request bodies of up to `limit` bytes by recording them as they
    /// are sent. Larger bodies are not replayed: the 401 is returned.
    pub fn buffered(limit: usize) -> RetryOn401Layer<BufferBody> {
        RetryOn401Layer {
            policy: BufferBody::new(limit),
        }
    }
}

impl<P> RetryOn401Layer<P> {
    /// Uses another way of keeping bodies for the replay.
    pub fn with_policy(policy: P) -> Self {
        RetryOn401Layer { policy }
    }
}

impl<S: Clone, P: Clone> Layer<S> for RetryOn401Layer<P> {
    type Service = RetryOn401<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryOn401::with_policy(inner, self.policy.clone())
    }
}
