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
    /// are sent. Larger bodies, and bodies in more than 1024 frames, are not replayed: the
    /// rejection is returned. See [`BufferBody`], and its
    /// [`max_frames`](BufferBody::max_frames) with [`with_policy`](Self::with_policy).
    pub fn buffered(limit: usize) -> RetryOn401Layer<BufferBody> {
        RetryOn401Layer {
            policy: BufferBody::new(limit),
        }
    }

    /// Replays streaming request bodies of up to `limit` bytes by reading them before the
    /// first send, so a server that answers before reading the body does not prevent the
    /// replay. The choice for unary gRPC and small JSON bodies. Larger bodies, and bodies in
    /// more than 1024 frames, are sent as they are and not replayed. See [`CollectBody`],
    /// and its [`max_frames`](CollectBody::max_frames) with [`with_policy`](Self::with_policy).
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
    /// one body type only. A tonic `Channel` takes `tonic::body::Body`, so over one this is
    /// `RetryOn401Layer::collected(64 * 1024).map_body(tonic::body::Body::new)`; a service
    /// that takes boxed bodies:
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::combinators::UnsyncBoxBody;
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    /// use tower_bearer::{source::StaticToken, BearerAuthLayer, RetryOn401Layer, TokenCache};
    ///
    /// type Body = UnsyncBoxBody<Bytes, Infallible>;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let cache = TokenCache::new(StaticToken::new("token")?);
    /// let client = ServiceBuilder::new()
    ///     .layer(RetryOn401Layer::collected(64 * 1024).map_body(Body::new))
    ///     .layer(BearerAuthLayer::new(cache))
    ///     .service(service_fn(|request: Request<Body>| async move {
    ///         let body = request.into_body().collect().await?.to_bytes();
    ///         Ok::<_, Infallible>(Response::new(body))
    ///     }));
    /// let request = Request::new(Full::new(Bytes::from("hello")).boxed_unsync());
    /// assert_eq!(client.oneshot(request).await?.into_body(), "hello");
    /// # Ok(())
    /// # }
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
