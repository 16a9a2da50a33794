//! How every request reaches the authorization server: the [`Transport`] (the HTTP client
//! and the timeout of each request) that an [`Endpoint`](crate::Endpoint) and a
//! [`Discovery`](crate::Discovery) both make from their
//! [`HttpSettings`](crate::HttpSettings); one request sent and its answer read within
//! the timeout and a size limit; a failure to connect told apart from one after the request
//! left; and the [`StatusClass`] that token, revocation and metadata requests all read a
//! status with.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{request, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Collected, Full, LengthLimitError, Limited};
use tower::ServiceExt;
use tower_bearer::BoxError;
use zeroize::Zeroizing;

use crate::http_client::ResponseBody;
use crate::redact::Redactor;
use crate::server_url::ServerUrl;
use crate::HttpClient;

const USER_AGENT_VALUE: &str = concat!("tower-bearer-oauth2/", env!("CARGO_PKG_VERSION"));

/// An endpoint of the authorization server, named for messages: "the token endpoint
/// https://...".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    pub(crate) name: &'static str,
    pub(crate) url: &'a ServerUrl,
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} endpoint {}", self.name, self.url)
    }
}

/// The HTTP client requests go through and how long each may take, from sending it to
/// reading the whole response.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    http: HttpClient,
    timeout: Duration,
}

impl Transport {
    pub(crate) fn new(http: HttpClient, timeout: Duration) -> Self {
        Transport { http, timeout }
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A request to `uri` that asks for JSON and names this crate as its user agent.
    pub(crate) fn request<T>(method: Method, uri: T) -> request::Builder
    where
        Uri: TryFrom<T>,
        <Uri as TryFrom<T>>::Error: Into<http::Error>,
    {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE))
    }

    /// Sends `request` and reads its whole answer, failing past `max_response_size` bytes
    /// of body, all within the timeout. `redactor` holds the secrets the request carries,
    /// for whoever prints the server's texts.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
        max_response_size: usize,
        redactor: Redactor,
    ) -> Result<RawResponse, TransportError> {
        let exchange = async {
            let response = self
                .http
                .service()
                .oneshot(request)
                .await
                .map_err(|error| {
                    if is_connect_error(&*error) {
                        TransportError::Connect(error)
                    } else {
                        TransportError::Send(error)
                    }
                })?;
            let (parts, body) = response.into_parts();
            let collected = read_limited(body, max_response_size)
                .await
                .map_err(|error| {
                    if error.is::<LengthLimitError>() {
                        TransportError::TooLarge {
                            status: parts.status,
                            limit: max_response_size,
                        }
                    } else {
                        TransportError::Read(error)
                    }
                })?;
            Ok(RawResponse {
                status: parts.status,
                headers: parts.headers,
                body: Zeroizing::new(Vec::from(collected.to_bytes())),
                redactor,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(self.timeout))?
    }
}

/// A response, read in full within the size limit.
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// Zeroized on drop: on success it may hold an access token (best effort; the
    /// transport may have kept copies in its own buffers).
    pub(crate) body: Zeroizing<Vec<u8>>,
    /// The secrets the request sent, to remove from the server's texts.
    pub(crate) redactor: Redactor,
}

/// Why no response was read.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// No connection could be made, so the server never saw the request.
    Connect(BoxError),
    /// The request failed after a connection was made: it may have reached the server.
    Send(BoxError),
    /// The response's body could not be read.
    Read(BoxError),
    /// No complete response within the timeout.
    Timeout(Duration),
    /// The body is larger than the limit.
    TooLarge { status: StatusCode, limit: usize },
}

/// What a response's status says about the request, read the same way for token,
/// revocation and metadata requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusClass {
    /// 2xx.
    Success,
    /// Worth asking again later; see [`StatusClass::of`] for which statuses and why.
    Transient,
    /// 3xx: requests here do not follow redirects.
    Redirect,
    /// A 4xx other than the transient ones: the server refused this request, and will
    /// refuse it again until something changes.
    ClientError,
    /// Anything else (1xx as a final answer, or a status past 599).
    Other,
}

impl StatusClass {
    /// The class of `status`. Transient are:
    ///
    /// - 408 Request Timeout (RFC 9110 section 15.5.9): the server gave up waiting for the
    ///   request, which the RFC lets a client send again;
    /// - 429 Too Many Requests (RFC 6585 section 4): a rate limit, which passes;
    /// - every 5xx (RFC 9110 section 15.6): the server, or a gateway in front of it (502,
    ///   503, 504), failed a request that may well be valid; at a token endpoint that is an
    ///   overloaded or restarting server far more often than a lasting fault.
    pub(crate) fn of(status: StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => StatusClass::Success,
            408 | 429 | 500..=599 => StatusClass::Transient,
            300..=399 => StatusClass::Redirect,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::Other,
        }
    }

    pub(crate) fn is_transient(self) -> bool {
        self == StatusClass::Transient
    }
}

/// Whether the request failed before a connection was made, so the server never saw it:
/// hyper-util's connect errors, or an I/O error saying the connection was refused.
fn is_connect_error(error: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        #[cfg(feature = "hyper-client")]
        if let Some(error) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            if error.is_connect() {
                return true;
            }
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
        }
        cause = error.source();
    }
    false
}

/// Whether the TLS handshake failed because the server asked for a client certificate
/// (RFC 8705) and got none, or none it accepts.
pub(crate) fn refused_client_certificate(error: &(dyn StdError + 'static)) -> bool {
    #[cfg(feature = "hyper-client")]
    {
        use rustls::AlertDescription::{BadCertificate, CertificateRequired, UnknownCA};
        let mut cause = Some(error);
        while let Some(error) = cause {
            // `io::Error::source` skips the error it wraps, so look inside explicitly.
            let inner = error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            if let Some(rustls::Error::AlertReceived(
                CertificateRequired | BadCertificate | UnknownCA,
            )) = inner.or_else(|| error.downcast_ref::<rustls::Error>())
            {
                return true;
            }
            cause = error.source();
        }
    }
    #[cfg(not(feature = "hyper-client"))]
    let _ = error;
    false
}

/// Reads the whole body, failing with [`LengthLimitError`] past `limit` bytes.
///
/// Boxed so the future is checked for `Send` here, where its types are concrete: inside an
/// `async fn` the compiler fails to prove `Limited`'s `Into<BoxError>` bound for every
/// lifetime when it checks the whole future for `Send`.
fn read_limited(
    body: ResponseBody,
    limit: usize,
) -> Pin<Box<dyn Future<Output = Result<Collected<Bytes>, BoxError>> + Send>> {
    Box::pin(Limited::new(body, limit).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses_are_408_429_and_5xx() {
        for status in [408, 429, 500, 501, 502, 503, 504, 599] {
            let class = StatusClass::of(StatusCode::from_u16(status).unwrap());
            assert_eq!(class, StatusClass::Transient, "{status}");
        }
        for (status, class) in [
            (200, StatusClass::Success),
            (204, StatusClass::Success),
            (302, StatusClass::Redirect),
            (400, StatusClass::ClientError),
            (401, StatusClass::ClientError),
            (404, StatusClass::ClientError),
            (409, StatusClass::ClientError),
            (101, StatusClass::Other),
            (600, StatusClass::Other),
        ] {
            assert_eq!(
                StatusClass::of(StatusCode::from_u16(status).unwrap()),
                class,
                "{status}"
            );
        }
    }

    #[test]
    fn refused_connections_are_connect_errors() {
        let refused: BoxError = Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert!(is_connect_error(&*refused));
        let reset: BoxError = Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        ));
        assert!(!is_connect_error(&*reset));
    }
}
