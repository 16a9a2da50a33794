//! An axum service whose handlers call a downstream API through one shared, authorized
//! client: what `axum_gateway` runs and its tests drive.
//!
//! The client is built once, cloned into each request through axum's `State`, and shares
//! one token cache. Failures map to the status a gateway should answer with: no token
//! (a [`FetchError`]) is `503 Service Unavailable`, since the authorization server is what
//! failed; a downstream that took too long is `504 Gateway Timeout`; anything else about
//! reaching the downstream is `502 Bad Gateway`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::timeout::error::Elapsed;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthLayer, FetchError, RetryOn401Layer, TokenCache};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client the handlers share: hyper's, with tower-bearer's layers and a timeout.
pub type Downstream = BoxCloneSyncService<
    http::Request<Full<Bytes>>,
    http::Response<hyper::body::Incoming>,
    BoxError,
>;

/// The handlers' state: the shared client and where the downstream API is.
#[derive(Clone, Debug)]
pub struct Gateway {
    client: Downstream,
    api: String,
}

impl Gateway {
    /// A gateway to the API at `api` (`http://127.0.0.1:8080`), with tokens from `cache`
    /// sent to that origin only.
    pub fn new(cache: TokenCache, api: &str) -> Result<Self, BoxError> {
        let client = ServiceBuilder::new()
            // tower's timeout, not tower-http's: that one builds its own response and needs
            // a response body that is `Default`, which a client's is not.
            .layer(TimeoutLayer::new(Duration::from_secs(10)))
            .layer(RetryOn401Layer::new())
            .layer(BearerAuthLayer::new(cache).allow_origins([api])?)
            .service(Client::builder(TokioExecutor::new()).build_http());
        Ok(Gateway {
            client: BoxCloneSyncService::new(client),
            api: api.trim_end_matches('/').to_owned(),
        })
    }

    /// The routes: `GET /orders/{id}` asks the API for `/orders/{id}`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/orders/{id}", get(order))
            .with_state(self)
    }
}

async fn order(State(gateway): State<Gateway>, Path(id): Path<String>) -> Response {
    let uri = format!("{}/orders/{id}", gateway.api);
    let Ok(request) = http::Request::get(uri).body(Full::default()) else {
        return (StatusCode::BAD_REQUEST, "not an order id\n").into_response();
    };
    match gateway.client.oneshot(request).await {
        Ok(response) => {
            let status = response.status();
            match response.into_body().collect().await {
                Ok(body) => (status, body.to_bytes()).into_response(),
                Err(_) => {
                    (StatusCode::BAD_GATEWAY, "the API's answer was cut short\n").into_response()
                }
            }
        }
        Err(error) => failure(&*error).into_response(),
    }
}

/// What a failed downstream call becomes. The message names the cause without the details:
/// those go to the logs (a `FetchError` never holds a secret, so it can be logged whole).
fn failure(error: &(dyn std::error::Error + 'static)) -> (StatusCode, &'static str) {
    if let Some(fetch) = error.downcast_ref::<FetchError>() {
        tracing::warn!(error = %fetch, "no access token for the downstream API");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no access token for the API\n",
        );
    }
    if error.is::<Elapsed>() {
        return (
            StatusCode::GATEWAY_TIMEOUT,
            "the API did not answer in time\n",
        );
    }
    tracing::warn!(%error, "the downstream API could not be reached");
    (StatusCode::BAD_GATEWAY, "the API could not be reached\n")
}
