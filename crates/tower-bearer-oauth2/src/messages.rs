//! What a failed token or revocation request says to its caller: one function per outcome,
//! each a [`FetchError`] whose message says what happened here and what to do, with the
//! cause ([`OAuthError`], [`EndpointError`]) as its source so chain printers show it once.
//!
//! No message quotes a secret: URLs are checked [`ServerUrl`]s, client ids are not secret,
//! and the server's texts reach a message only through its sanitized [`OAuthError`].

use std::fmt;

use http::StatusCode;
use tower_bearer::dpop::DpopKey;
use tower_bearer::{BoxError, FetchError};

use crate::response::{DpopMismatch, InvalidResponse, TokenResponseRules};
use crate::server_url::ServerUrl;
use crate::transport::{refused_client_certificate, StatusClass, Target};
use crate::{AuthMethod, BuildError, ClientAuth, EndpointError, OAuthError};

/// What to do when the server wants DPoP from a client without a key.
const CONFIGURE_DPOP_KEY: &str = "configure one with `ClientAuth::dpop`, such as \
                                  `.dpop(DpopKey::generate_es256()?)` on the client's \
                                  `ClientAuth`";

/// What a token request asked for, as its messages name it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asked<'a> {
    pub(crate) url: &'a ServerUrl,
    /// The client as sent: for `secret_auto`, Basic or post.
    pub(crate) client: &'a ClientAuth,
    pub(crate) grant_type: &'a str,
    pub(crate) rules: TokenResponseRules,
    pub(crate) scope: Option<&'a str>,
}

/// The token endpoint's error response to a request.
pub(crate) fn token_refused(asked: Asked<'_>, oauth: OAuthError) -> FetchError {
    let Asked {
        url,
        client,
        grant_type,
        rules,
        scope,
    } = asked;
    let client_id = client.client_id();
    let method = client.method();
    // The server's code and description are the source's to print, so chain printers
    // show them once; this message says what the code means here and what to do.
    let message = match oauth.error() {
        "invalid_client" => format!(
            "the token endpoint {url} rejected the credentials of client `{client_id}`; \
             check the client id and {}, and that the server accepts {method} client \
             authentication for this client",
            if method.is_mutual_tls() {
                "the TLS client certificate registered for it"
            } else {
                "secret"
            },
        ),
        "invalid_grant" if rules == TokenResponseRules::TokenExchange => format!(
            "the token endpoint {url} refused the token exchange of client `{client_id}`; \
             the subject or actor token is invalid, expired or not trusted there, so check \
             where it comes from"
        ),
        "invalid_grant" => format!(
            "the token endpoint {url} rejected the {grant_type} grant of client \
             `{client_id}`; the grant is invalid, expired or revoked, so get a new one"
        ),
        "unauthorized_client" => format!(
            "client `{client_id}` may not use the {grant_type} grant at {url}; allow that \
             grant for the client at the authorization server"
        ),
        "invalid_scope" => format!(
            "the token endpoint {url} refused the scope {} for client `{client_id}`; \
             request only scopes the client is allowed",
            scope.map_or_else(
                || "(none requested)".to_owned(),
                |scope| format!("`{scope}`")
            )
        ),
        "unsupported_grant_type" => format!(
            "the token endpoint {url} does not support the {grant_type} grant; check the \
             token URL and the authorization server's configuration"
        ),
        "invalid_target" => format!(
            "the token endpoint {url} will not issue a token for the requested audience or \
             resource to client `{client_id}`; check the `audience` and `resource` values \
             (RFC 8693 section 2.2.2)"
        ),
        "invalid_request" => format!(
            "the token endpoint {url} says the token request is malformed; check the extra \
             parameters, audience and resource"
        ),
        _ if oauth.is_transient() => format!(
            "the token endpoint {url} could not issue a token just now; it will be asked \
             again after a backoff"
        ),
        _ => format!(
            "the token endpoint {url} refused to issue a token to client `{client_id}`; see \
             the authorization server's documentation of the error code it returned"
        ),
    };
    let fetch_error = if oauth.is_transient() {
        FetchError::transient(message)
    } else {
        FetchError::permanent(message)
    };
    fetch_error.with_source(oauth)
}

/// A refused DPoP proof (RFC 9449 sections 5 and 8), or a server that wants one from a
/// client without a key. `key` signed the request's proof, if it carried one;
/// `after_nonce_replay` says the request was the attempt's one replay with a new nonce.
pub(crate) fn dpop_refused(
    url: &ServerUrl,
    client: &ClientAuth,
    oauth: OAuthError,
    key: Option<&DpopKey>,
    after_nonce_replay: bool,
) -> FetchError {
    let client_id = client.client_id();
    let Some(key) = key else {
        return FetchError::permanent(format!(
            "the token endpoint {url} requires DPoP proofs (RFC 9449) from client \
             `{client_id}`, which has no DPoP key; {CONFIGURE_DPOP_KEY}"
        ))
        .with_source(oauth);
    };
    if oauth.is_invalid_dpop_proof() {
        let algorithm = key.algorithm();
        return FetchError::permanent(format!(
            "the token endpoint {url} refused the DPoP proof of client `{client_id}`; \
             check that the server accepts {algorithm} proofs (its metadata's \
             `dpop_signing_alg_values_supported`) and DPoP for this client, and that this \
             machine's clock is right, as each proof carries the time"
        ))
        .with_source(oauth);
    }
    if after_nonce_replay {
        // Asked again at once: the nonce it sent was no good for the very next request.
        return FetchError::transient(format!(
            "the token endpoint {url} asked for a new DPoP nonce (use_dpop_nonce) again, \
             right after the request was sent once more with the nonce it had just \
             given; the latest nonce is kept for the next fetch, after a backoff. If this \
             persists, the server issues nonces that do not last for one request (several \
             instances that do not share their nonce secret?)"
        ))
        .with_source(oauth);
    }
    FetchError::permanent(format!(
        "the token endpoint {url} asked for a DPoP nonce (use_dpop_nonce) without a new, \
         valid one in a `DPoP-Nonce` header (RFC 9449 section 8), so no proof can \
         carry it; check the server, and any proxy in front of it that may drop the \
         header"
    ))
    .with_source(oauth)
}

/// A DPoP proof that could not be made.
pub(crate) fn proof_failed(target: Target<'_>, error: impl Into<BoxError>) -> FetchError {
    FetchError::transient(format!(
        "cannot make the DPoP proof for {target}; it will be tried again after a backoff"
    ))
    .with_source(error)
}

/// A success response that is not a token this client can use.
pub(crate) fn unusable_token_response(
    url: &ServerUrl,
    client: &ClientAuth,
    status: StatusCode,
    invalid: InvalidResponse,
) -> FetchError {
    let client_id = client.client_id();
    match invalid.dpop {
        Some(DpopMismatch::KeyMissing) => {
            return FetchError::permanent(format!(
                "the token endpoint {url} issued a DPoP-bound token (RFC 9449) to client \
                 `{client_id}`, which has no DPoP key, so no request could carry the \
                 token's proofs; {CONFIGURE_DPOP_KEY}"
            ))
            .with_source(EndpointError::dpop_key_missing(status));
        }
        Some(DpopMismatch::Downgrade(token_type)) => {
            return FetchError::permanent(format!(
                "the token endpoint {url} issued a {token_type} token to client \
                 `{client_id}` though the request carried a DPoP proof (RFC 9449 section \
                 5), so the token is not used: the server ignores DPoP, or does not \
                 support it for this client. Enable DPoP for the client at the server \
                 (for example `dpop_bound_access_tokens`), or remove the DPoP key from the \
                 `ClientAuth` to use bearer tokens"
            ))
            .with_source(EndpointError::dpop_downgrade(
                status,
                token_type.to_string(),
            ));
        }
        None => {}
    }
    let transient = invalid.transient;
    let mut error = EndpointError::invalid_response(status, invalid.what, transient);
    if let Some(source) = invalid.source {
        error = error.with_source(source);
    }
    // What is wrong with the body is the source's to say.
    if transient {
        FetchError::transient(format!(
            "the token endpoint {url} sent no token response; it will be asked again after \
             a backoff, and if this persists check that the URL is the token endpoint"
        ))
        .with_source(error)
    } else {
        FetchError::permanent(format!(
            "the token endpoint {url} sent a token response this client cannot use; check \
             that the URL is an OAuth 2.0 token endpoint"
        ))
        .with_source(error)
    }
}

/// The revocation endpoint's error response (RFC 7009 section 2.2.1).
pub(crate) fn revocation_refused(
    target: Target<'_>,
    hint: impl fmt::Display,
    client: &ClientAuth,
    oauth: OAuthError,
) -> FetchError {
    let client_id = client.client_id();
    // The server's code and description are the source's to print.
    let error = if oauth.is_transient() {
        FetchError::transient(format!(
            "{target} could not revoke the {hint} just now; try again later"
        ))
    } else if oauth.is_invalid_client() {
        FetchError::permanent(format!(
            "{target} rejected the credentials of client `{client_id}`; check the client id \
             and secret, and that the server accepts {} at its revocation endpoint",
            client.method()
        ))
    } else {
        FetchError::permanent(format!(
            "{target} refused to revoke the {hint} of client `{client_id}`; see the \
             authorization server's documentation of the error code it returned"
        ))
    };
    error.with_source(oauth)
}

/// A revocation asked of a source whose endpoint names no revocation URL.
pub(crate) fn revocation_not_configured(client_id: &str) -> FetchError {
    FetchError::permanent(format!(
        "no revocation endpoint is configured for client `{client_id}`; set \
         `revocation_url` on the `Endpoint`, or build it from the server's metadata \
         (`Discovery`), which names it"
    ))
}

/// An error status without an OAuth error response.
pub(crate) fn unexpected_status(target: Target<'_>, status: StatusCode) -> FetchError {
    let name = target.name;
    let error = EndpointError::unexpected_status(status);
    let class = StatusClass::of(status);
    if class.is_transient() {
        let message = if status == StatusCode::TOO_MANY_REQUESTS {
            format!(
                "{target} is rate limiting {name} requests; it will be asked again after a \
                 backoff"
            )
        } else {
            format!(
                "{target} failed the {name} request; the authorization server may be down or \
                 overloaded, it will be asked again after a backoff"
            )
        };
        return FetchError::transient(message).with_source(error);
    }
    let endpoint_advice;
    let advice = if class == StatusClass::Redirect {
        "requests to it do not follow redirects, so configure the URL it redirects to"
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "check the client id and secret and the client authentication method"
    } else if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        endpoint_advice =
            format!("check that the URL is the authorization server's {name} endpoint");
        &endpoint_advice
    } else {
        endpoint_advice = format!("check the {name} URL and the request parameters");
        &endpoint_advice
    };
    FetchError::permanent(format!("{target} refused the {name} request; {advice}"))
        .with_source(error)
}

/// The request could not be sent or its answer not read.
pub(crate) fn unreachable(target: Target<'_>, error: BoxError) -> FetchError {
    let hint = if refused_client_certificate(&*error) {
        " (the server wants a TLS client certificate it accepts: check the \
         identity given to `tls`, or the certificate your `http_client` presents)"
    } else {
        ""
    };
    FetchError::transient(format!(
        "cannot reach {target}{hint}; it will be asked again after a backoff"
    ))
    .with_source(EndpointError::transport(error))
}

/// No complete answer within `timeout`.
pub(crate) fn timed_out(target: Target<'_>, timeout: std::time::Duration) -> FetchError {
    FetchError::transient(format!(
        "the request to {target} timed out; it will be asked again after a backoff (raise \
         `timeout` if the server is just slow)"
    ))
    .with_source(EndpointError::timeout(timeout))
}

/// An answer over the size limit.
pub(crate) fn too_large(target: Target<'_>, status: StatusCode, limit: usize) -> FetchError {
    FetchError::permanent(format!(
        "{target} sent a response over the size limit; check the URL, or raise \
         `max_response_size` if its tokens really are that large"
    ))
    .with_source(EndpointError::too_large(status, limit))
}

/// A request this crate failed to build.
pub(crate) fn unbuildable(target: Target<'_>, error: impl Into<BoxError>) -> FetchError {
    FetchError::permanent(format!(
        "cannot build the request for {target}; this is a bug in tower-bearer-oauth2"
    ))
    .with_source(error)
}

/// A mutual-TLS client combined with an endpoint whose default client has no certificate.
pub(crate) fn mtls_without_certificate(client_id: &str, method: AuthMethod) -> BuildError {
    BuildError::invalid_tls(format!(
        "client `{client_id}` authenticates with {method} (RFC 8705) but the endpoint's \
         default HTTP client has no client certificate to present; give it one with \
         `HttpClient::with_tls(ClientTls::new().identity(..))`, or pass an \
         `HttpClient::from_service` whose TLS presents the certificate"
    ))
}
