use tower_layer::Layer;

use super::{BufferBody, CloneBody, CollectBody, MapBody, RetryOn401};

/// Retries once on a rejected token; see the [module docs](crate::retry).
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
    /// are sent. Larger bodies are not replayed: the rejection is returned. See
    /// [`BufferBody`].
    pub fn buffered(limit: usize) -> RetryOn401Layer<BufferBody> {
        RetryOn401Layer {
            policy: BufferBody::new(limit),
        }
    }

    /// Replays streaming request bodies of up to `limit` bytes by reading them before the
    /// first send, so a server that answers before reading the body does not prevent the
    /// replay. The choice for unary gRPC and small JSON bodies; see [`CollectBody`].
    pub fn collected(limit: usize) -> RetryOn401Layer<CollectBody> {
        RetryOn401Layer {
            policy: CollectBody::new(limit),
        }
    }
}

impl<P> RetryOn401Layer<P> {
    /// Uses another way of keeping bodies for the replay.
    pub fn with_policy(policy: P) -> Self {
        RetryOn401Layer { policy }
    }

    /// Passes the bodies this layer sends through `map`, for a wrapped service that takes
    /// one body type only. A tonic `Channel` takes `tonic::body::Body`:
    ///
    /// ```ignore
    /// RetryOn401Layer::collected(64 * 1024).map_body(tonic::body::Body::new)
    /// ```
    pub fn map_body<F>(self, map: F) -> RetryOn401Layer<MapBody<P, F>> {
        RetryOn401Layer {
            policy: MapBody::new(self.policy, map),
        }
    }
}

impl<S: Clone, P: Clone> Layer<S> for RetryOn401Layer<P> {
    type Service = RetryOn401<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryOn401::with_policy(inner, self.policy.clone())
    }
}
