//! Helpers for the unit tests of several modules: a fake token endpoint that records what
//! it was sent.

use std::convert::Infallible;
use std::error::Error as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower_bearer::FetchError;

use crate::{EndpointError, HttpClient, OAuthError};

/// What the fake server saw.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// A fake token endpoint answering every request with `status`, `headers` and `body`, and
/// what it was sent.
pub(crate) fn fake(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: impl Into<Bytes>,
) -> (HttpClient, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let body: Bytes = body.into();
    let headers: Vec<_> = headers.to_vec();
    let service = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let log = log.clone();
        let body = body.clone();
        let headers = headers.clone();
        async move {
            let (parts, request_body) = request.into_parts();
            let request_body = request_body.collect().await?.to_bytes();
            log.lock().unwrap().push(Seen {
                method: parts.method,
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body: String::from_utf8(request_body.to_vec()).unwrap(),
            });
            let mut response = Response::new(Full::new(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_static(value));
            }
            Ok::<_, Infallible>(response)
        }
    });
    (HttpClient::from_service(service), seen)
}

/// The server's error response behind a fetch error.
pub(crate) fn oauth_source(error: &FetchError) -> &OAuthError {
    error
        .source()
        .unwrap()
        .downcast_ref::<OAuthError>()
        .unwrap()
}

/// The endpoint error behind a fetch error.
pub(crate) fn endpoint_source(error: &FetchError) -> &EndpointError {
    error
        .source()
        .unwrap()
        .downcast_ref::<EndpointError>()
        .unwrap()
}
