use tower_layer::Layer;

use super::{BearerAuth, CloneService, InvalidOrigin};
use crate::authorizer::{AllowedOrigins, Authorizer};
use crate::TokenCache;

/// Adds a bearer token from a [`TokenCache`] to each request; see the
/// [module docs](crate::auth).
#[derive(Clone, Debug)]
pub struct BearerAuthLayer {
    authorizer: Authorizer,
}

impl BearerAuthLayer {
    /// Attaches tokens from `cache` to every request.
    pub fn new(cache: TokenCache) -> Self {
        Self::with_authorizer(Authorizer::new(cache))
    }

    /// Attaches tokens as `authorizer` says (its cache, its allow-list).
    pub fn with_authorizer(authorizer: Authorizer) -> Self {
        BearerAuthLayer { authorizer }
    }

    /// Attaches tokens only to requests whose URI has one of these origins (scheme, host and
    /// port, as in `https://api.example.com`); others pass through without one. See
    /// [`Authorizer::allow_origins`], and [`with_allowed_origins`](Self::with_allowed_origins)
    /// for a list parsed already.
    ///
    /// By default every request gets the token, which is right for a client that only
    /// talks to one API. A client that also follows links or calls other hosts should list
    /// its API's origin here so the token does not leak to them.
    ///
    /// Once a list is set, a request with a relative URI (no scheme and host) cannot be
    /// checked against it: it is not sent, and the service returns a
    /// [`RelativeUri`](super::RelativeUri) error (unless the caller set its own
    /// `Authorization`). tonic sends such URIs unless its client is built `with_origin`.
    ///
    /// ```
    /// # use tower_bearer::{source::StaticToken, BearerAuthLayer, TokenCache};
    /// # let cache = TokenCache::new(StaticToken::new("t").unwrap());
    /// let layer = BearerAuthLayer::new(cache).allow_origins(["https://api.example.com"])?;
    /// # let _ = layer;
    /// # Ok::<(), tower_bearer::auth::InvalidOrigin>(())
    /// ```
    pub fn allow_origins<I>(self, origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Ok(self.with_allowed_origins(AllowedOrigins::new(origins)?))
    }

    /// As [`allow_origins`](Self::allow_origins), with a list parsed already.
    #[must_use]
    pub fn with_allowed_origins(self, origins: AllowedOrigins) -> Self {
        Self::with_authorizer(self.authorizer.with_allowed_origins(origins))
    }

    /// The cache this layer takes tokens from.
    pub fn cache(&self) -> &TokenCache {
        self.authorizer.cache()
    }

    /// The authorizer the services this layer makes drive.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }
}

impl<S: CloneService> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::with_authorizer(inner, self.authorizer.clone())
    }
}
