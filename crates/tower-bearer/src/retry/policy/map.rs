use std::fmt;

use super::ReplayPolicy;

/// Another policy, with its body turned into the type the wrapped service takes; built by
/// [`RetryOn401Layer::map_body`](crate::RetryOn401Layer::map_body).
///
/// [`BufferBody`](super::BufferBody) and [`CollectBody`](super::CollectBody) send a
/// [`ReplayBody`](crate::retry::ReplayBody); a service that takes one body type only (a
/// tonic `Channel` takes `tonic::body::Body`) needs it wrapped, on the first send and on
/// the replay alike.
#[derive(Clone, Copy)]
pub struct MapBody<P, F> {
    policy: P,
    map: F,
}

impl<P, F> MapBody<P, F> {
    /// `policy`'s bodies, passed through `map`.
    pub fn new(policy: P, map: F) -> Self {
        MapBody { policy, map }
    }
}

impl<B, P, F, T> ReplayPolicy<B> for MapBody<P, F>
where
    P: ReplayPolicy<B>,
    F: Fn(P::Body) -> T,
{
    type Body = T;
    type Saved = P::Saved;

    fn prepare(&self, body: B) -> (T, P::Saved) {
        let (body, saved) = self.policy.prepare(body);
        ((self.map)(body), saved)
    }

    fn replay(&self, saved: P::Saved) -> Option<T> {
        self.policy.replay(saved).map(&self.map)
    }
}

impl<P: fmt::Debug, F> fmt::Debug for MapBody<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapBody")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
