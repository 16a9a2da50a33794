use std::sync::Arc;

use tower_layer::Layer;

use super::{BearerAuth, CloneService, InvalidOrigin, Origin};
use crate::TokenCache;

/// Adds a bearer token from a [`TokenCache`] to each request; see the
/// [module docs](crate::auth).
#[derive(Clone, Debug)]
pub struct BearerAuthLayer {
    cache: TokenCache,
    allowed_origins: Option<Arc<[Origin]>>,
}

impl BearerAuthLayer {
    /// Attaches tokens from `cache` to every request.
    pub fn new(cache: TokenCache) -> Self {
        BearerAuthLayer {
            cache,
            allowed_origins: None,
        }
    }

    /// Attaches tokens only to requests whose URI has one of these origins (scheme, host and
    /// port, as in `https://api.example.com`); others pass through without one.
    ///
    /// By default every request gets the token, which is right for a client that only
    /// talks to one API. A client that also follows links or calls other hosts should list
    /// its API's origin here so the token does not leak to them.
    ///
    /// Once a list is set, a request with a relative URI (no scheme and host) cannot be
    /// checked against it: it is not sent, and the service returns a [`RelativeUri`](super::RelativeUri) error
    /// (unless the caller set its own `Authorization`). tonic sends such URIs unless its
    /// client is built `with_origin`.
    ///
    /// ```
    /// # use tower_bearer::{source::StaticToken, BearerAuthLayer, TokenCache};
    /// # let cache = TokenCache::new(StaticToken::new("t").unwrap());
    /// let layer = BearerAuthLayer::new(cache).allow_origins(["https://api.example.com"])?;
    /// # let _ = layer;
    /// # Ok::<(), tower_bearer::auth::InvalidOrigin>(())
    /// ```
    pub fn allow_origins<I>(mut self, origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let origins = origins
            .into_iter()
            .map(|origin| origin.as_ref().parse())
            .collect::<Result<Vec<Origin>, _>>()?;
        self.allowed_origins = Some(origins.into());
        Ok(self)
    }

    /// The cache this layer takes tokens from.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }
}

impl<S: CloneService> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::from_parts(inner, &self.cache, self.allowed_origins.clone())
    }
}
