//! Where a request goes: the paths the server answers, the count of each request, and the
//! faults injected into token and revocation requests before either endpoint sees them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::client_auth::{header_credentials, HeaderCredentials};
use super::echo;
use super::form::{param, parse_form, Params};
use super::rejection::{HttpResponse, Rejection};
use super::AuthState;
use crate::client_certificate::PeerCertificate;
use crate::dpop::DPOP_HEADER;
use crate::response::{oauth_error, text};
use crate::server::{DropConnection, Reply};
use crate::{lock, ClientAuthMethod, Fault, TokenRequest};

pub(super) const TOKEN_PATH: &str = "/token";
pub(super) const REVOCATION_PATH: &str = "/revoke";
/// The mTLS endpoint aliases of an HTTPS server (RFC 8705 section 5).
pub(super) const MTLS_TOKEN_PATH: &str = "/mtls/token";
pub(super) const MTLS_REVOCATION_PATH: &str = "/mtls/revoke";
pub(super) const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

pub(super) async fn handle(state: Arc<AuthState>, request: Request<Incoming>) -> Reply {
    let peer = request.extensions().get::<PeerCertificate>().cloned();
    if peer.is_some() && request.uri().path().starts_with("/mtls/") {
        state.mtls_alias_requests.fetch_add(1, Ordering::SeqCst);
    }
    let endpoint = match request.uri().path() {
        TOKEN_PATH => Endpoint::Token,
        REVOCATION_PATH => Endpoint::Revocation,
        MTLS_TOKEN_PATH if peer.is_some() => Endpoint::Token,
        MTLS_REVOCATION_PATH if peer.is_some() => Endpoint::Revocation,
        METADATA_PATH if request.method() == Method::GET => {
            state.metadata_requests.fetch_add(1, Ordering::SeqCst);
            return Ok(state.metadata());
        }
        _ => return Ok(text(StatusCode::NOT_FOUND, "not found")),
    };
    let counter = match endpoint {
        Endpoint::Token => &state.token_requests,
        Endpoint::Revocation => &state.revocation_requests,
    };
    counter.fetch_add(1, Ordering::SeqCst);
    if matches!(endpoint, Endpoint::Token) && request.headers().contains_key(DPOP_HEADER) {
        state.dpop_proofs_received.fetch_add(1, Ordering::SeqCst);
    }
    let fault = lock(&state.faults).take();

    let (parts, body) = request.into_parts();
    // A client that goes away halfway through its body gets nothing back.
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    let form = parse_form(&parts, &body);
    let header = parts.headers.get(AUTHORIZATION).map(header_credentials);
    if let Ok(params) = &form {
        let sent = for_assertions(params, header.as_ref());
        if matches!(endpoint, Endpoint::Token) {
            lock(&state.token_auth_methods).push(sent.auth_method);
        }
        *lock(&state.last_request) = Some(sent);
    }

    let mut answer_after = None;
    match fault {
        None => {}
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DelayAnswer(delay)) => answer_after = Some(delay),
        Some(Fault::DropConnection) => return Err(DropConnection),
        Some(Fault::Status(status)) => return Ok(injected_status(status)),
        Some(Fault::StatusRetryAfter(status, seconds)) => {
            let mut response = injected_status(status);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
            return Ok(response);
        }
        Some(Fault::StatusRetryAfterDate(status, ahead)) => {
            let mut response = injected_status(status);
            let date = SystemTime::now()
                .checked_add(ahead)
                .map(httpdate::fmt_http_date);
            // An HTTP date is plain ASCII; a duration too long for the clock sends no header.
            if let Some(Ok(value)) = date.as_deref().map(HeaderValue::from_str) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
            return Ok(response);
        }
        Some(Fault::OAuthError { status, error }) => {
            return Ok(oauth_error(status, &error, "injected fault"));
        }
        Some(Fault::EchoRequest(echo)) => {
            let params = form.as_deref().unwrap_or_default();
            return Ok(echo::response(
                echo,
                &body,
                params,
                parts.headers.get(AUTHORIZATION),
            ));
        }
        Some(Fault::BadJson) => {
            // What a misrouted request gets from a proxy, labelled as JSON.
            let mut response = text(StatusCode::OK, "<html><body>502 Bad Gateway</body></html>");
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(response);
        }
    }

    if parts.method != Method::POST {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "this endpoint takes POST");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Ok(response);
    }
    let answer = form.and_then(|params| match endpoint {
        Endpoint::Token => state.token(&params, header, peer.as_ref(), &parts),
        Endpoint::Revocation => state.revocation(&params, header, peer.as_ref()),
    });
    if let Some(delay) = answer_after {
        tokio::time::sleep(delay).await;
    }
    Ok(answer.unwrap_or_else(Rejection::into_response))
}

/// The endpoints that take client-authenticated form POSTs, and share the fault queue.
#[derive(Clone, Copy)]
enum Endpoint {
    Token,
    Revocation,
}

fn injected_status(status: StatusCode) -> HttpResponse {
    text(status, format!("injected fault: {status}"))
}

/// What a test sees of a form request: how it authenticated, and its parameters without
/// the client secret.
fn for_assertions(params: &Params, header: Option<&HeaderCredentials>) -> TokenRequest {
    let auth_method = match header {
        Some(HeaderCredentials::Basic(_) | HeaderCredentials::Malformed(_)) => {
            ClientAuthMethod::Basic
        }
        _ if param(params, "client_assertion").is_some() => ClientAuthMethod::PrivateKeyJwt,
        _ if param(params, "client_secret").is_some() => ClientAuthMethod::Post,
        _ => ClientAuthMethod::None,
    };
    let client_id = match header {
        Some(HeaderCredentials::Basic(credentials)) => Some(credentials.client_id.clone()),
        _ => param(params, "client_id").map(str::to_owned),
    };
    TokenRequest {
        grant_type: param(params, "grant_type").unwrap_or_default().to_owned(),
        client_id,
        auth_method,
        scope: param(params, "scope").map(str::to_owned),
        params: params
            .iter()
            .filter(|(name, _)| name != "client_secret")
            .cloned()
            .collect(),
    }
}
