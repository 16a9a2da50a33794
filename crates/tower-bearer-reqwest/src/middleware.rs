use std::fmt;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Extensions, StatusCode};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Error, Middleware, Next, Result};
use tower_bearer::auth::{InvalidOrigin, Origin as AllowedOrigin};
use tower_bearer::challenge::token_rejected;
use tower_bearer::{FetchError, Token, TokenCache};
use url::Origin;

/// Attaches bearer tokens from a [`TokenCache`] to reqwest requests, and replays a request
/// once when the server rejects its token.
///
/// See the [crate docs](crate) for what it does on a 401 and when no token can be had.
/// Cloning it is cheap; clones share the cache.
#[derive(Clone)]
pub struct BearerAuthMiddleware {
    cache: TokenCache,
    allowed_origins: Option<Arc<[AllowedOrigin]>>,
}

impl BearerAuthMiddleware {
    /// Attaches tokens from `cache` to every request.
    pub fn new(cache: TokenCache) -> Self {
        BearerAuthMiddleware {
            cache,
            allowed_origins: None,
        }
    }

    /// Sends the token only to these origins (`https://api.example.com`,
    /// `http://127.0.0.1:8080`); requests to any other origin go out without it.
    ///
    /// By default every request gets the token, which suits a client that talks to one
    /// API. A client that also calls other hosts should list its API's origin here.
    ///
    /// ```
    /// # use tower_bearer::{source::StaticToken, TokenCache};
    /// # use tower_bearer_reqwest::BearerAuthMiddleware;
    /// # let cache = TokenCache::new(StaticToken::new("t").unwrap());
    /// let auth = BearerAuthMiddleware::new(cache).allow_origins(["https://api.example.com"])?;
    /// # let _ = auth;
    /// # Ok::<(), tower_bearer_reqwest::InvalidOrigin>(())
    /// ```
    pub fn allow_origins<I>(mut self, origins: I) -> std::result::Result<Self, InvalidOrigin>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let origins = origins
            .into_iter()
            .map(|origin| origin.as_ref().parse())
            .collect::<std::result::Result<Vec<AllowedOrigin>, _>>()?;
        self.allowed_origins = Some(origins.into());
        Ok(self)
    }

    /// The cache tokens come from.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    fn origin_allowed(&self, url: &Url) -> bool {
        let Some(origins) = &self.allowed_origins else {
            return true;
        };
        // A URL that `http` cannot read as a URI matches no origin: no token for it.
        origins
            .iter()
            .any(|origin| origin.matches_str(url.as_str()))
    }

    /// The token to attach, or the request's error: the cache's [`FetchError`], which
    /// [`fetch_error`] reads back.
    async fn token(&self) -> Result<Token> {
        self.cache.token().await.map_err(Error::middleware)
    }
}

#[async_trait::async_trait]
impl Middleware for BearerAuthMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        if !self.origin_allowed(request.url()) || request.headers().contains_key(AUTHORIZATION) {
            return next.run(request, extensions).await;
        }
        let token = self.token().await?;
        // Taken before sending: `None` for a streaming body, which cannot be sent twice.
        let mut replay = request.try_clone();
        // The response's URL is where reqwest's redirects ended.
        let sent_to = request.url().origin();
        attach(&mut request, &token);
        let response = next.clone().run(request, extensions).await?;
        if !rejects_token(&response, &sent_to) {
            return Ok(response);
        }
        let rejected = self.cache.reject(&token);
        let Some(mut replay) = replay
            .take()
            .filter(|_| rejected.replay_gets_another_token())
        else {
            return Ok(response);
        };
        drop(response);
        tracing::debug!("the server rejected the token; replaying the request once with a new one");
        let token = self.token().await?;
        attach(&mut replay, &token);
        let response = next.run(replay, extensions).await?;
        if rejects_token(&response, &sent_to) {
            // Not replayed again; the next request gets another token, or the backoff.
            self.cache.reject(&token);
        }
        Ok(response)
    }
}

/// Whether `response` is a 401 whose challenge says the token itself is bad, from the
/// origin the token was sent to. After a redirect to another origin (which reqwest follows
/// without `Authorization`), a 401 is that origin's answer to a request without our token:
/// returned as it is, the token kept and the request not replayed.
fn rejects_token(response: &Response, sent_to: &Origin) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        && response.url().origin() == *sent_to
        && token_rejected(response.headers())
}

fn attach(request: &mut Request, token: &Token) {
    // `header_value` is marked sensitive, so reqwest and hyper keep it out of their logs.
    request
        .headers_mut()
        .insert(AUTHORIZATION, token.header_value().clone());
}

/// The cache's [`FetchError`] in an error from
/// [`ClientWithMiddleware`](reqwest_middleware::ClientWithMiddleware), if no token could be
/// had for the request (which then was not sent).
///
/// The middleware returns it as [`Error::Middleware`]; this is
/// `anyhow::Error::downcast_ref::<FetchError>()` on that variant.
pub fn fetch_error(error: &Error) -> Option<&FetchError> {
    match error {
        Error::Middleware(error) => error.downcast_ref::<FetchError>(),
        _ => None,
    }
}

impl fmt::Debug for BearerAuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthMiddleware")
            .field("cache", &self.cache)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use tower_bearer::source::StaticToken;

    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let cache = TokenCache::new(StaticToken::new("t").unwrap());
        let auth = BearerAuthMiddleware::new(cache)
            .allow_origins(["https://api.example.com", "http://127.0.0.1:8080"])
            .unwrap();
        for (url, allowed) in [
            ("https://API.example.com/v1?x=1", true),
            ("https://api.example.com:443/", true),
            ("http://127.0.0.1:8080/a", true),
            ("http://api.example.com/", false),
            ("https://api.example.com:8443/", false),
            ("http://127.0.0.1:8081/", false),
            ("https://evil.example.com/", false),
        ] {
            assert_eq!(auth.origin_allowed(&url.parse().unwrap()), allowed, "{url}");
        }
    }

    #[test]
    fn rejects_bad_origins() {
        let cache = TokenCache::new(StaticToken::new("t").unwrap());
        let error = BearerAuthMiddleware::new(cache)
            .allow_origins(["api.example.com"])
            .unwrap_err();
        assert!(error.to_string().contains("api.example.com"), "{error}");
    }
}
