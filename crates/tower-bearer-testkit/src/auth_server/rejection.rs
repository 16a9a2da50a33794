//! An RFC 6749 section 5.2 error response, as the endpoints build it before it is sent.

use std::borrow::Cow;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::dpop::DpopProblem;
use crate::response::{oauth_error, with_dpop_nonce};

pub(super) type HttpResponse = Response<Full<Bytes>>;

/// A value, or the error that ends the request.
pub(super) type Answer<T = HttpResponse> = Result<T, Rejection>;

/// An RFC 6749 section 5.2 error, before it becomes a response.
#[derive(Debug)]
pub(super) struct Rejection {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    /// A `DPoP-Nonce` to send with the error (RFC 9449 section 8).
    dpop_nonce: Option<String>,
}

impl Rejection {
    pub(super) fn bad_request(
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            dpop_nonce: None,
        }
    }

    /// A refused DPoP proof (RFC 9449 sections 5 and 8): 400 `invalid_dpop_proof` or
    /// `use_dpop_nonce`, the latter with the nonce to use.
    pub(super) fn dpop(problem: DpopProblem, nonce: Option<String>) -> Self {
        Self {
            dpop_nonce: nonce,
            ..Self::bad_request(problem.error_code(), problem.to_string())
        }
    }

    pub(super) fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request("invalid_request", description)
    }

    pub(super) fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request("invalid_grant", description)
    }

    pub(super) fn invalid_scope(description: &'static str) -> Self {
        Self::bad_request("invalid_scope", description)
    }

    /// Failed client authentication: 401 with a `Basic` challenge.
    pub(super) fn invalid_client(description: &'static str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
            dpop_nonce: None,
        }
    }

    pub(super) fn into_response(self) -> HttpResponse {
        let mut response = oauth_error(self.status, self.error, &self.description);
        with_dpop_nonce(response.headers_mut(), self.dpop_nonce);
        response
    }
}
