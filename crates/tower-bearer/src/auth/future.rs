use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::service::attach;
use crate::used_token::RejectedToken;
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
            // Which token went with the request, to mark a 401 for the retry layer.
            attached: Option<RejectedToken>,
        },
    }
}

/// Everything needed to send the request once the token arrives.
struct Fetching<S, B> {
    fetch: TokenFetch,
    cache: TokenCache,
    // Both `Some` until the token arrives.
    service: Option<S>,
    request: Option<Request<B>>,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[inline]
    pub(super) fn sent(future: S::Future, attached: Option<RejectedToken>) -> Self {
        ResponseFuture {
            state: State::Sent { future, attached },
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
                StateProj::Fetching { fetching } => {
                    let token = ready!(fetching.fetch.as_mut().poll(cx))?;
                    let (Some(mut service), Some(mut request)) =
                        (fetching.service.take(), fetching.request.take())
                    else {
                        return Poll::Ready(Err(FetchError::permanent(
                            "BearerAuth's response future was polled after it completed",
                        )
                        .into()));
                    };
                    let attached = attach(&mut request, &token, &fetching.cache);
                    let future = service.call(request);
                    this.state.set(State::Sent { future, attached });
                }
                StateProj::Sent { future, attached } => {
                    let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if response.status() == StatusCode::UNAUTHORIZED {
                        mark_rejected(&mut response, *attached);
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

/// Marks a 401 with the token that went with the request, for the retry layer.
#[cold]
fn mark_rejected<ResBody>(response: &mut Response<ResBody>, attached: Option<RejectedToken>) {
    if let Some(attached) = attached {
        response.extensions_mut().insert(attached);
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
