//! The errors of this crate: a token endpoint's OAuth error response, the other ways a token
//! request can fail, and a builder's configuration errors.
//!
//! A failed fetch reaches the caller as a [`tower_bearer::FetchError`]; these are its
//! sources.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;
use tower_bearer::BoxError;

use crate::transport::StatusClass;

/// An error response from the token endpoint (RFC 6749 section 5.2).
///
/// The server's `error` code says what went wrong; `error_description` and `error_uri` are
/// optional, human-oriented details. They are shown as the server sent them, except that
/// control characters are dropped, long texts are cut, and the client secret is replaced by
/// `[redacted]` should the server echo it.
///
/// A [`FetchError`](tower_bearer::FetchError) from a token source of this crate has an
/// `OAuthError` as its [`source`](StdError::source) when the server sent an error response,
/// and an [`EndpointError`] otherwise. Downcast it to act on the details:
///
/// ```
/// use std::error::Error as _;
/// use tower_bearer::FetchError;
/// use tower_bearer_oauth2::OAuthError;
///
/// fn needs_new_credentials(error: &FetchError) -> bool {
///     error
///         .source()
///         .and_then(|source| source.downcast_ref::<OAuthError>())
///         .is_some_and(OAuthError::is_invalid_client)
/// }
/// # let _ = needs_new_credentials;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OAuthError {
    status: StatusCode,
    error: String,
    description: Option<String>,
    uri: Option<String>,
}

impl OAuthError {
    pub(crate) fn new(
        status: StatusCode,
        error: String,
        description: Option<String>,
        uri: Option<String>,
    ) -> Self {
        OAuthError {
            status,
            error,
            description,
            uri,
        }
    }

    /// The `error` code, such as `invalid_client` or `invalid_scope`.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// The `error_description`, if the server sent one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `error_uri`, a page about the error, if the server sent one.
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }

    /// The HTTP status of the error response (usually 400 or 401).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// `invalid_client`: client authentication failed (unknown client, wrong secret, or a
    /// client authentication method the server does not accept for this client).
    pub fn is_invalid_client(&self) -> bool {
        self.error == "invalid_client"
    }

    /// `invalid_grant`: the grant (authorization code, refresh token, ...) is invalid,
    /// expired or revoked.
    pub fn is_invalid_grant(&self) -> bool {
        self.error == "invalid_grant"
    }

    /// `unauthorized_client`: the client may not use this grant type.
    pub fn is_unauthorized_client(&self) -> bool {
        self.error == "unauthorized_client"
    }

    /// `invalid_scope`: the requested scope is invalid, unknown, or more than the client may
    /// have.
    pub fn is_invalid_scope(&self) -> bool {
        self.error == "invalid_scope"
    }

    /// `unsupported_grant_type`: the server does not support this grant type.
    pub fn is_unsupported_grant_type(&self) -> bool {
        self.error == "unsupported_grant_type"
    }

    /// `invalid_request`: a parameter is missing, repeated or malformed.
    pub fn is_invalid_request(&self) -> bool {
        self.error == "invalid_request"
    }

    /// `invalid_dpop_proof` (RFC 9449 section 5): the server refused the request's DPoP
    /// proof, or wants one and got none.
    pub fn is_invalid_dpop_proof(&self) -> bool {
        self.error == "invalid_dpop_proof"
    }

    /// `use_dpop_nonce` (RFC 9449 section 8): the server wants a DPoP proof that carries
    /// the nonce it sent in the response's `DPoP-Nonce` header. The token sources send the
    /// request again once with it; this error reaches a caller only when the server asked
    /// again right after, sent no usable nonce, or the client has no DPoP key.
    pub fn is_use_dpop_nonce(&self) -> bool {
        self.error == "use_dpop_nonce"
    }

    /// Whether asking again later may succeed: the status is 5xx, 429 or 408 (the statuses
    /// every request of this crate takes as transient), or the code says the server is busy
    /// (`temporarily_unavailable`, `server_error`, `slow_down`).
    ///
    /// Every other error needs a change of configuration or credentials.
    pub fn is_transient(&self) -> bool {
        StatusClass::of(self.status).is_transient()
            || matches!(
                self.error.as_str(),
                "temporarily_unavailable" | "server_error" | "slow_down"
            )
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the authorization server answered HTTP {} with OAuth error `{}`",
            self.status.as_u16(),
            self.error
        )?;
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        if let Some(uri) = &self.uri {
            write!(f, " (see {uri})")?;
        }
        Ok(())
    }
}

impl StdError for OAuthError {}

/// A token request that failed without an OAuth error response: the endpoint could not be
/// reached, did not answer in time, or answered with something other than a token response
/// or an OAuth error.
#[derive(Debug)]
#[non_exhaustive]
pub struct EndpointError {
    kind: EndpointErrorKind,
    status: Option<StatusCode>,
    transient: bool,
    source: Option<BoxError>,
}

#[derive(Debug)]
enum EndpointErrorKind {
    Transport,
    Timeout(Duration),
    UnexpectedStatus,
    InvalidResponse(String),
    /// A DPoP-bound token, and no DPoP key to send its proofs with.
    DpopKeyMissing,
    /// Another token type than `DPoP` (named here) in answer to a request with a proof.
    DpopDowngrade(String),
    TooLarge(usize),
}

impl EndpointError {
    pub(crate) fn transport(source: BoxError) -> Self {
        Self::new(EndpointErrorKind::Transport, None, true, Some(source))
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Self::new(EndpointErrorKind::Timeout(after), None, true, None)
    }

    pub(crate) fn unexpected_status(status: StatusCode) -> Self {
        Self::new(
            EndpointErrorKind::UnexpectedStatus,
            Some(status),
            StatusClass::of(status).is_transient(),
            None,
        )
    }

    pub(crate) fn invalid_response(status: StatusCode, what: String, transient: bool) -> Self {
        Self::new(
            EndpointErrorKind::InvalidResponse(what),
            Some(status),
            transient,
            None,
        )
    }

    pub(crate) fn dpop_key_missing(status: StatusCode) -> Self {
        Self::new(EndpointErrorKind::DpopKeyMissing, Some(status), false, None)
    }

    pub(crate) fn dpop_downgrade(status: StatusCode, token_type: String) -> Self {
        Self::new(
            EndpointErrorKind::DpopDowngrade(token_type),
            Some(status),
            false,
            None,
        )
    }

    pub(crate) fn too_large(status: StatusCode, limit: usize) -> Self {
        Self::new(
            EndpointErrorKind::TooLarge(limit),
            Some(status),
            false,
            None,
        )
    }

    fn new(
        kind: EndpointErrorKind,
        status: Option<StatusCode>,
        transient: bool,
        source: Option<BoxError>,
    ) -> Self {
        EndpointError {
            kind,
            status,
            transient,
            source,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The HTTP status of the response, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The request could not be sent or the response could not be read (connection refused,
    /// reset, TLS failure, DNS, ...). The cause is the [`source`](StdError::source).
    pub fn is_transport(&self) -> bool {
        matches!(self.kind, EndpointErrorKind::Transport)
    }

    /// No complete response arrived within the configured timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, EndpointErrorKind::Timeout(_))
    }

    /// The endpoint answered with an error status and no OAuth error body (an HTML error
    /// page, an empty 503, a redirect, ...).
    pub fn is_unexpected_status(&self) -> bool {
        matches!(self.kind, EndpointErrorKind::UnexpectedStatus)
    }

    /// The endpoint answered with a success status but the body is not a usable token
    /// response (not JSON, a required field missing, a token type this crate cannot use,
    /// or one that does not fit the client's DPoP configuration: see
    /// [`is_dpop_key_missing`](Self::is_dpop_key_missing) and
    /// [`is_dpop_downgrade`](Self::is_dpop_downgrade)).
    pub fn is_invalid_response(&self) -> bool {
        matches!(
            self.kind,
            EndpointErrorKind::InvalidResponse(_)
                | EndpointErrorKind::DpopKeyMissing
                | EndpointErrorKind::DpopDowngrade(_)
        )
    }

    /// The server issued a DPoP-bound token (`token_type` `DPoP`, RFC 9449) to a client
    /// without a DPoP key, so no request could carry the proofs the token needs. Configure
    /// the client's key with [`ClientAuth::dpop`](crate::ClientAuth::dpop).
    pub fn is_dpop_key_missing(&self) -> bool {
        matches!(self.kind, EndpointErrorKind::DpopKeyMissing)
    }

    /// The request carried a DPoP proof and the server issued a token of another type,
    /// usually `Bearer` (RFC 9449 section 5): the server does not support DPoP, or not for
    /// this client. The token is not used, so a client configured for DPoP never falls
    /// back to bearer tokens unnoticed.
    pub fn is_dpop_downgrade(&self) -> bool {
        matches!(self.kind, EndpointErrorKind::DpopDowngrade(_))
    }

    /// The response was larger than the configured maximum response size.
    pub fn is_too_large(&self) -> bool {
        matches!(self.kind, EndpointErrorKind::TooLarge(_))
    }

    /// Whether asking again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EndpointErrorKind::Transport => {
                f.write_str("the request could not be sent or its response not read")
            }
            EndpointErrorKind::Timeout(after) => {
                write!(f, "no complete response arrived within {after:?}")
            }
            EndpointErrorKind::UnexpectedStatus => write!(
                f,
                "the answer was HTTP {} without an OAuth error response",
                self.status.map_or(0, |status| status.as_u16())
            ),
            EndpointErrorKind::InvalidResponse(what) => write!(
                f,
                "the HTTP {} response is not a usable token response: {what}",
                self.status.map_or(0, |status| status.as_u16())
            ),
            EndpointErrorKind::DpopKeyMissing => write!(
                f,
                "the HTTP {} response holds a DPoP-bound token (RFC 9449) and the client has no \
                 DPoP key to prove possession of it",
                self.status.map_or(0, |status| status.as_u16())
            ),
            EndpointErrorKind::DpopDowngrade(token_type) => write!(
                f,
                "the HTTP {} response holds a token of type `{token_type}` though the request \
                 carried a DPoP proof, where RFC 9449 section 5 has the server issue a DPoP \
                 token or refuse",
                self.status.map_or(0, |status| status.as_u16())
            ),
            EndpointErrorKind::TooLarge(limit) => write!(
                f,
                "the HTTP {} response is larger than the limit of {limit} bytes",
                self.status.map_or(0, |status| status.as_u16())
            ),
        }
    }
}

impl StdError for EndpointError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        source_of(&self.source)
    }
}

/// The `source()` of an error that keeps its cause as an optional [`BoxError`].
pub(crate) fn source_of(source: &Option<BoxError>) -> Option<&(dyn StdError + 'static)> {
    source
        .as_ref()
        .map(|source| &**source as &(dyn StdError + 'static))
}

/// `Display` (the message) and `Error` (the optional boxed source) for an error type with
/// `message: String` and `source: Option<BoxError>` fields.
macro_rules! message_error {
    ($error:ty) => {
        impl std::fmt::Display for $error {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.message)
            }
        }

        impl std::error::Error for $error {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                $crate::error::source_of(&self.source)
            }
        }
    };
}

pub(crate) use message_error;

/// A builder was given a configuration that cannot work. The message says which part and
/// how to fix it; it never contains the client secret.
#[derive(Debug)]
#[non_exhaustive]
pub struct BuildError {
    kind: BuildErrorKind,
    message: String,
    source: Option<BoxError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BuildErrorKind {
    InvalidUrl,
    InsecureHttp,
    InvalidCredentials,
    InvalidParameter,
    NoHttpClient,
    HttpClient,
    InvalidTls,
}

impl BuildError {
    pub(crate) fn invalid_url(message: String) -> Self {
        Self::new(BuildErrorKind::InvalidUrl, message)
    }

    pub(crate) fn insecure_http(message: String) -> Self {
        Self::new(BuildErrorKind::InsecureHttp, message)
    }

    pub(crate) fn invalid_credentials(message: String) -> Self {
        Self::new(BuildErrorKind::InvalidCredentials, message)
    }

    pub(crate) fn invalid_parameter(message: String) -> Self {
        Self::new(BuildErrorKind::InvalidParameter, message)
    }

    #[cfg_attr(feature = "hyper-client", allow(dead_code))]
    pub(crate) fn no_http_client() -> Self {
        Self::new(
            BuildErrorKind::NoHttpClient,
            "no HTTP client: enable the `hyper-client` feature of tower-bearer-oauth2 or pass \
             one with `http_client`"
                .to_owned(),
        )
    }

    #[cfg_attr(not(feature = "hyper-client"), allow(dead_code))]
    pub(crate) fn http_client(message: String, source: impl Into<BoxError>) -> Self {
        Self::new(BuildErrorKind::HttpClient, message).with_source(source)
    }

    /// Attaches the cause, which the message then does not repeat.
    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    #[cfg_attr(not(feature = "hyper-client"), allow(dead_code))]
    pub(crate) fn invalid_tls(message: String) -> Self {
        Self::new(BuildErrorKind::InvalidTls, message)
    }

    fn new(kind: BuildErrorKind, message: String) -> Self {
        BuildError {
            kind,
            message,
            source: None,
        }
    }

    /// The token URL is not an absolute `https://` or `http://` URL, or it carries
    /// credentials.
    pub fn is_invalid_url(&self) -> bool {
        self.kind == BuildErrorKind::InvalidUrl
    }

    /// The token URL is plain `http://` to a host that is not loopback, and
    /// `allow_insecure_http(true)` was not set.
    pub fn is_insecure_http(&self) -> bool {
        self.kind == BuildErrorKind::InsecureHttp
    }

    /// The client id or secret is empty.
    pub fn is_invalid_credentials(&self) -> bool {
        self.kind == BuildErrorKind::InvalidCredentials
    }

    /// A scope, resource or extra parameter is malformed, or an extra parameter would
    /// override one this crate sets itself.
    pub fn is_invalid_parameter(&self) -> bool {
        self.kind == BuildErrorKind::InvalidParameter
    }

    /// No HTTP client was given and the `hyper-client` feature is off.
    pub fn is_missing_http_client(&self) -> bool {
        self.kind == BuildErrorKind::NoHttpClient
    }

    /// The default HTTP client could not be set up.
    pub fn is_http_client(&self) -> bool {
        self.kind == BuildErrorKind::HttpClient
    }

    /// A TLS client certificate, its private key or a root certificate is not usable PEM,
    /// or mutual-TLS client authentication has no certificate to present (RFC 8705).
    pub fn is_invalid_tls(&self) -> bool {
        self.kind == BuildErrorKind::InvalidTls
    }
}

message_error!(BuildError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_error_predicates() {
        let error = OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client".into(),
            Some("bad secret".into()),
            Some("https://auth.example/errors".into()),
        );
        assert!(error.is_invalid_client());
        assert!(!error.is_invalid_grant());
        assert!(!error.is_transient());
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error.description(), Some("bad secret"));
        assert_eq!(error.uri(), Some("https://auth.example/errors"));
        assert_eq!(
            error.to_string(),
            "the authorization server answered HTTP 401 with OAuth error `invalid_client`: bad \
             secret \
             (see https://auth.example/errors)"
        );

        let busy = OAuthError::new(
            StatusCode::BAD_REQUEST,
            "temporarily_unavailable".into(),
            None,
            None,
        );
        assert!(busy.is_transient());
        let overloaded = OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "whatever".into(),
            None,
            None,
        );
        assert!(overloaded.is_transient());
    }

    #[test]
    fn endpoint_error_kinds() {
        let timeout = EndpointError::timeout(Duration::from_secs(2));
        assert!(timeout.is_timeout() && timeout.is_transient());
        assert_eq!(
            timeout.to_string(),
            "no complete response arrived within 2s"
        );
        let status = EndpointError::unexpected_status(StatusCode::NOT_FOUND);
        assert!(status.is_unexpected_status() && !status.is_transient());
        for transient in [408, 429, 502] {
            let status = EndpointError::unexpected_status(StatusCode::from_u16(transient).unwrap());
            assert!(status.is_transient(), "{transient}");
        }
        assert_eq!(status.status(), Some(StatusCode::NOT_FOUND));
        let too_large = EndpointError::too_large(StatusCode::OK, 10);
        assert!(too_large.is_too_large() && !too_large.is_transient());
        let transport = EndpointError::transport("connection refused".into());
        assert!(transport.is_transport() && transport.is_transient());
        assert_eq!(
            transport.source().unwrap().to_string(),
            "connection refused"
        );
    }
}
