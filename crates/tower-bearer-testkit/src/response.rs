//! Building the mock servers' responses.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::dpop::{DPOP_NONCE_HEADER, SIGNING_ALGS};

/// The realm both mock servers name in `WWW-Authenticate`.
const REALM: &str = "testkit";

/// The challenge for a failed client authentication at the token endpoint.
const BASIC_CHALLENGE: &str = "Basic realm=\"testkit\"";

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A JSON body from the token endpoint, which must not be cached (RFC 6749 section 5.1).
pub(crate) fn token_json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// An RFC 6749 section 5.2 error. A 401 carries the `Basic` challenge the RFC asks for.
pub(crate) fn oauth_error(
    status: StatusCode,
    error: &str,
    description: &str,
) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let mut response = token_json(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
    }
    response
}

/// `Bearer realm="testkit"`, followed by `params` (RFC 6750 section 3) when there are any.
pub(crate) fn bearer_challenge(params: &str) -> HeaderValue {
    let challenge = if params.is_empty() {
        format!("Bearer realm=\"{REALM}\"")
    } else {
        format!("Bearer realm=\"{REALM}\", {params}")
    };
    // Only ever built from our own ASCII literals.
    HeaderValue::from_str(&challenge).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// `DPoP`, `params` (RFC 9449 section 7.1) when there are any, and
/// `algs="ES256 EdDSA"`.
pub(crate) fn dpop_challenge(params: &str) -> HeaderValue {
    let algs = SIGNING_ALGS.join(" ");
    let challenge = if params.is_empty() {
        format!("DPoP algs=\"{algs}\"")
    } else {
        format!("DPoP {params}, algs=\"{algs}\"")
    };
    // Only ever built from our own ASCII literals.
    HeaderValue::from_str(&challenge).unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
}

/// Adds `DPoP-Nonce: nonce` (RFC 9449 sections 8 and 9), if there is one to send.
pub(crate) fn with_dpop_nonce(headers: &mut HeaderMap, nonce: Option<String>) {
    // Nonces are base64url, always a valid header value.
    if let Some(Ok(value)) = nonce.map(HeaderValue::try_from) {
        headers.insert(DPOP_NONCE_HEADER, value);
    }
}
