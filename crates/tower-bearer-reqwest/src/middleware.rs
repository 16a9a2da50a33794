use std::fmt;

use http::{HeaderMap, Method, StatusCode, Uri, Version};
use reqwest::{Request, Response};
use reqwest_middleware::{Error, Middleware, Next, Result};
use tower_bearer::authorizer::{
    AllowedOrigins, Authorize, Authorizer, Incoming, InvalidOrigin, Outgoing, Sent,
};
use tower_bearer::{FetchError, TokenCache};

/// Attaches bearer tokens from a [`TokenCache`] to reqwest requests, and replays a request
/// once when the server rejects its token (or asks for a DPoP nonce).
///
/// It drives an [`Authorizer`], as the tower layers do, and keeps only reqwest's glue. See
/// the [crate docs](crate) for what it does on a 401 and when no token can be had. Cloning
/// it is cheap; clones share the cache.
#[derive(Clone)]
pub struct BearerAuthMiddleware {
    authorizer: Authorizer,
}

impl BearerAuthMiddleware {
    /// Attaches tokens from `cache` to every request.
    pub fn new(cache: TokenCache) -> Self {
        Self::with_authorizer(Authorizer::new(cache))
    }

    /// Attaches tokens as `authorizer` says (its cache, its allow-list).
    pub fn with_authorizer(authorizer: Authorizer) -> Self {
        BearerAuthMiddleware { authorizer }
    }

    /// Sends the token only to these origins (`https://api.example.com`,
    /// `http://127.0.0.1:8080`); requests to any other origin go out without it. See
    /// [`Authorizer::allow_origins`].
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
    pub fn allow_origins<I>(self, origins: I) -> std::result::Result<Self, InvalidOrigin>
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

    /// The cache tokens come from.
    pub fn cache(&self) -> &TokenCache {
        self.authorizer.cache()
    }

    /// The authorizer this middleware drives.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// Authorizes `request` and sends it: its response, and what reads it.
    async fn send(
        &self,
        mut request: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<(Response, Sent)> {
        let sent = authorize(self.authorizer.clone(), &mut request).await?;
        let response = next.run(request, extensions).await?;
        Ok((response, sent))
    }
}

/// Runs the authorizer's steps for `request`: attaches what it says, waiting for a token
/// (or a DPoP nonce) if need be. The error is the request's: the cache's [`FetchError`]
/// (which [`fetch_error`] reads back), or why the request was refused.
async fn authorize(mut authorizer: Authorizer, request: &mut Request) -> Result<Sent> {
    let Ok(uri) = request.url().as_str().parse::<Uri>() else {
        // A URL that `http` cannot read as a URI: hyper could not send it either.
        return Err(Error::middleware(UnreadableUrl));
    };
    let mut outgoing = Reqwest { request, uri };
    match authorizer.authorize(&mut outgoing) {
        Authorize::Send(sent) => Ok(sent),
        Authorize::Wait(pending) => {
            let ready = pending.await.map_err(from_box)?;
            ready.attach(&mut outgoing).map_err(from_box)
        }
        Authorize::Refuse(error) => Err(from_box(error)),
    }
}

#[async_trait::async_trait]
impl Middleware for BearerAuthMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        // Taken before the token goes on: `None` for a streaming body, which cannot be
        // sent twice.
        let replay = request.try_clone();
        let (response, sent) = self.send(request, extensions, next.clone()).await?;
        if !sent.is_ours() {
            return Ok(response);
        }
        let verdict = sent.verdict(&Answer(&response));
        let Some(replay) = replay.filter(|_| verdict.replay()) else {
            return Ok(response);
        };
        drop(response);
        tracing::debug!(
            ?verdict,
            "the server refused the token; replaying the request once"
        );
        let (response, sent) = self.send(replay, extensions, next).await?;
        // Read for its side effects (a nonce, a rejected token); not replayed again.
        let _ = sent.verdict(&Answer(&response));
        Ok(response)
    }
}

/// A reqwest request as the authorizer sees it, with its URL read as a `Uri`.
struct Reqwest<'a> {
    request: &'a mut Request,
    uri: Uri,
}

impl Outgoing for Reqwest<'_> {
    fn method(&self) -> &Method {
        self.request.method()
    }
    fn uri(&self) -> &Uri {
        &self.uri
    }
    fn headers(&self) -> &HeaderMap {
        self.request.headers()
    }
    fn headers_mut(&mut self) -> &mut HeaderMap {
        // `header_value` is marked sensitive, so reqwest and hyper keep it out of their logs.
        self.request.headers_mut()
    }
}

/// A reqwest response as the authorizer sees it: its URL is where reqwest's redirects
/// ended, so a 401 from another origin is not taken for a rejection of the token.
struct Answer<'a>(&'a Response);

impl Incoming for Answer<'_> {
    fn status(&self) -> StatusCode {
        self.0.status()
    }
    fn version(&self) -> Version {
        self.0.version()
    }
    fn headers(&self) -> &HeaderMap {
        self.0.headers()
    }
    fn final_uri(&self) -> Option<Uri> {
        // Unreadable as a `Uri`: an origin nothing was sent to.
        Some(self.0.url().as_str().parse().unwrap_or_default())
    }
}

/// The request's URL cannot be read as an HTTP URI; it was not sent.
#[derive(Debug)]
struct UnreadableUrl;

impl fmt::Display for UnreadableUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request's URL cannot be read as an HTTP URI, so it was not sent")
    }
}

impl std::error::Error for UnreadableUrl {}

/// The authorizer's error as the middleware's: the cache's [`FetchError`] as it is, so
/// that [`fetch_error`] finds it; a refusal (a relative URL under an allow-list, a DPoP
/// proof that cannot be made) with its message and source.
fn from_box(error: tower_bearer::BoxError) -> Error {
    match error.downcast::<FetchError>() {
        Ok(fetch) => Error::middleware(*fetch),
        Err(other) => Error::middleware(Refused(other)),
    }
}

/// Why the authorizer refused to send a request.
#[derive(Debug)]
struct Refused(tower_bearer::BoxError);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
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
            .field("authorizer", &self.authorizer)
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
            let origins = auth.authorizer().allowed_origins().unwrap();
            assert_eq!(origins.contains(&url.parse().unwrap()), allowed, "{url}");
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
