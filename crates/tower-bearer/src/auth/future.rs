use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use std::num::NonZeroU64;

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::service::attach;
use crate::used_token::RejectedUpTo;
use crate::{BoxError, FetchError, Token, TokenCache};

type TokenFetch = Pin<Box<dyn Future<Output = Result<Token, FetchError>> + Send>>;

pin_project! {
    /// Response future of [`BearerAuth`](super::BearerAuth).
    ///
    /// On the usual path it is the inner service's future and nothing else; only when a
    /// token must be fetched first does it hold the (boxed) fetch.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // Boxed so that the usual `Sent` path does not carry a request's worth of bytes.
        Fetching {
            fetching: Box<Fetching<S, B>>,
        },
        Sent {
            #[pin]
            future: S::Future,
        },
    }
}

/// Everything needed to send the request once the token arrives, and then its response.
///
/// The request stays on this (slow, rare) path to the end, so that a 401 for a token that
/// was fetched for it can be marked with that token's generation: the retry layer's own
/// estimate only covers tokens that were cached when it sent the request.
struct Fetching<S, B>
where
    S: Service<Request<B>>,
{
    fetch: TokenFetch,
    cache: TokenCache,
    // Both `Some` until the token arrives.
    service: Option<S>,
    request: Option<Request<B>>,
    // Once sent: the response future, and the generation of the token sent.
    sent: Option<Pin<Box<S::Future>>>,
    generation: Option<u64>,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[inline]
    pub(super) fn sent(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Sent { future },
        }
    }

    pub(super) fn fetching(cache: TokenCache, service: S, request: Request<B>) -> Self {
        let fetch = {
            let cache = cache.clone();
            Box::pin(async move { cache.token().await })
        };
        ResponseFuture {
            state: State::Fetching {
                fetching: Box::new(Fetching {
                    fetch,
                    cache,
                    service: Some(service),
                    request: Some(request),
                    sent: None,
                    generation: None,
                }),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Sent { future } => return future.poll(cx).map_err(Into::into),
                StateProj::Fetching { fetching } => {
                    if let Some(sent) = &mut fetching.sent {
                        let mut response = ready!(sent.as_mut().poll(cx)).map_err(Into::into)?;
                        if let (StatusCode::UNAUTHORIZED, Some(up_to)) =
                            (response.status(), fetching.generation)
                        {
                            response.extensions_mut().insert(RejectedUpTo { up_to });
                        }
                        return Poll::Ready(Ok(response));
                    }
                    let token = ready!(fetching.fetch.as_mut().poll(cx))?;
                    let (Some(mut service), Some(mut request)) =
                        (fetching.service.take(), fetching.request.take())
                    else {
                        return Poll::Ready(Err(FetchError::permanent(
                            "BearerAuth's response future was polled after it completed",
                        )
                        .into()));
                    };
                    attach(&mut request, &token, &fetching.cache);
                    fetching.generation = fetching.cache.generation_of(&token).map(NonZeroU64::get);
                    fetching.sent = Some(Box::pin(service.call(request)));
                }
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Fetching { .. } => "fetching token",
            State::Sent { .. } => "sent",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
