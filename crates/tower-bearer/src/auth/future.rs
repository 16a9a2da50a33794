use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::rejected::{may_reject, on_rejection};
use super::service::insert_authorization;
use crate::cache::Entry;
use crate::{BoxError, FetchError, Token, TokenCache};

/// The token's fetch, or an error that stops the request before it is sent.
type TokenFetch = Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send>>;

pin_project! {
    /// Response future of [`BearerAuth`](super::BearerAuth).
    ///
    /// On the usual path it is the inner service's future and the number of the cache entry
    /// whose token was attached, so that a 401 can invalidate exactly that token; only when
    /// a token must be fetched first does it hold the (boxed) fetch.
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
            fetching: Pin<Box<Fetching<S, B>>>,
        },
        Sent {
            #[pin]
            future: S::Future,
            // The cache entry whose token went out, by number (see `cache::registry`), or
            // `None` when no token of ours did (the caller's own header, an origin outside
            // the allow-list).
            attached: Option<NonZeroU64>,
        },
    }
}

/// What the response of a request with a DPoP-bound token is read with; nothing without
/// the `dpop` feature.
#[cfg(feature = "dpop")]
type DpopSent = Option<super::dpop::Sent>;
#[cfg(not(feature = "dpop"))]
type DpopSent = ();

pin_project! {
    /// Everything needed to send the request once the token arrives, and then its response.
    /// Pinned in its box, so the inner future lives in the same allocation.
    struct Fetching<S, B>
    where
        S: Service<Request<B>>,
    {
        // `None` once the token is in hand (or from the start, for a DPoP request).
        fetch: Option<TokenFetch>,
        cache: TokenCache,
        // Both `Some` until the token arrives.
        service: Option<S>,
        request: Option<Request<B>>,
        // Once sent: the response future, and the token sent.
        #[pin]
        response: Awaited<S::Future>,
        token: Option<Token>,
        // For a DPoP-bound token, once sent: what its response is read with.
        dpop: DpopSent,
    }
}

pin_project! {
    #[project = AwaitedProj]
    enum Awaited<F> {
        NotSent,
        Sent {
            #[pin]
            future: F,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[inline]
    pub(super) fn sent(future: S::Future, attached: Option<NonZeroU64>) -> Self {
        ResponseFuture {
            state: State::Sent { future, attached },
        }
    }

    /// A request that is not sent: the future fails with `error`. It goes the way of a
    /// failed fetch, so that the usual path's `match` has no arm for it.
    pub(super) fn refused(cache: TokenCache, error: BoxError) -> Self {
        ResponseFuture {
            state: State::Fetching {
                fetching: Box::pin(Fetching {
                    fetch: Some(Box::pin(std::future::ready(Err(error)))),
                    cache,
                    service: None,
                    request: None,
                    response: Awaited::NotSent,
                    token: None,
                    dpop: DpopSent::default(),
                }),
            },
        }
    }

    /// Sent with a DPoP-bound token and its proof. It takes the boxed state, as a fetch
    /// does, so the bearer path's state stays small; a proof costs far more than the box.
    #[cfg(feature = "dpop")]
    pub(super) fn sent_dpop(
        cache: TokenCache,
        future: S::Future,
        token: Token,
        dpop: super::dpop::Sent,
    ) -> Self {
        ResponseFuture {
            state: State::Fetching {
                fetching: Box::pin(Fetching {
                    fetch: None,
                    cache,
                    service: None,
                    request: None,
                    response: Awaited::Sent { future },
                    token: Some(token),
                    dpop: Some(dpop),
                }),
            },
        }
    }

    pub(super) fn fetching(cache: TokenCache, service: S, request: Request<B>) -> Self {
        let fetch = {
            let cache = cache.clone();
            Box::pin(async move { cache.token().await.map_err(BoxError::from) })
        };
        ResponseFuture {
            state: State::Fetching {
                fetching: Box::pin(Fetching {
                    fetch: Some(fetch),
                    cache,
                    service: Some(service),
                    request: Some(request),
                    response: Awaited::NotSent,
                    token: None,
                    dpop: DpopSent::default(),
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
                StateProj::Sent { future, attached } => {
                    let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if may_reject(&response) {
                        if let Some(id) = *attached {
                            on_rejection(&mut response, || Entry::reject_by_id(id));
                        }
                    }
                    return Poll::Ready(Ok(response));
                }

                StateProj::Fetching { fetching } => {
                    let mut fetching = fetching.as_mut().project();
                    if let AwaitedProj::Sent { future } = fetching.response.as_mut().project() {
                        let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                        let Some(token) = fetching.token.as_ref() else {
                            return Poll::Ready(Err(polled_after_completion()));
                        };
                        let reject = || fetching.cache.reject(token);
                        #[cfg(feature = "dpop")]
                        if let Some(dpop) = fetching.dpop.as_ref() {
                            super::dpop::on_response(&mut response, token, dpop, reject);
                            return Poll::Ready(Ok(response));
                        }
                        if may_reject(&response) {
                            on_rejection(&mut response, reject);
                        }
                        return Poll::Ready(Ok(response));
                    }
                    let Some(fetch) = fetching.fetch.as_mut() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let token = ready!(fetch.as_mut().poll(cx))?;
                    *fetching.fetch = None;
                    let (Some(mut service), Some(mut request)) =
                        (fetching.service.take(), fetching.request.take())
                    else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    insert_authorization(request.headers_mut(), token.header_value().clone());
                    #[cfg(feature = "dpop")]
                    {
                        *fetching.dpop = super::dpop::attach_proof(&mut request, &token)?;
                    }
                    fetching.response.set(Awaited::Sent {
                        future: service.call(request),
                    });
                    *fetching.token = Some(token);
                }
            }
        }
    }
}

fn polled_after_completion() -> BoxError {
    FetchError::permanent("BearerAuth's response future was polled after it completed").into()
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
