//! Failures the mock authorization server can be told to produce.

use std::time::Duration;

use http::StatusCode;

/// A failure injected into a token request with [`AuthServer::fail_next`] or
/// [`AuthServer::fail_always`].
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use tower_bearer_testkit::{AuthServer, Fault};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let auth = AuthServer::start().await?;
/// // The next two token requests see a rate limit, the third a slow but good answer.
/// auth.fail_next(2, Fault::StatusRetryAfter(StatusCode::TOO_MANY_REQUESTS, 1));
/// auth.fail_next(1, Fault::Delay(Duration::from_millis(50)));
/// # Ok(())
/// # }
/// ```
///
/// [`AuthServer::fail_next`]: crate::AuthServer::fail_next
/// [`AuthServer::fail_always`]: crate::AuthServer::fail_always
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long (on the tokio clock), then answer the request normally.
    Delay(Duration),
    /// Act on the request at once (issue, rotate, revoke), then wait this long (on the tokio
    /// clock) before sending the answer: a client that gives up meanwhile loses what the
    /// server did, as with an answer lost on the network.
    DelayAnswer(Duration),
    /// Answer with this status, a short `text/plain` body and nothing else.
    Status(StatusCode),
    /// Answer with this status and `Retry-After` set to the given number of seconds.
    StatusRetryAfter(StatusCode, u64),
    /// Answer with this status and `Retry-After` as an HTTP date (RFC 9110 section 10.2.3):
    /// the server's wall clock ([`SystemTime::now`](std::time::SystemTime::now)) at answer time plus the given duration.
    ///
    /// HTTP dates have whole seconds and the wall clock keeps running while tokio's clock is
    /// paused, so a client reads a wait up to a second shorter than the duration (or more,
    /// if the test machine stalls between the answer and the client reading it).
    StatusRetryAfterDate(StatusCode, Duration),
    /// Answer with an RFC 6749 section 5.2 error: this status and the JSON body
    /// `{"error": error, "error_description": ...}`. A 401 also carries
    /// `WWW-Authenticate: Basic realm="testkit"`.
    OAuthError {
        /// The HTTP status, usually 400 or 401.
        status: StatusCode,
        /// The error code, for example `invalid_grant` or `invalid_client`.
        error: String,
    },
    /// Answer 200 with `Content-Type: application/json` and a body that is not JSON.
    BadJson,
    /// Close the connection without sending any response.
    DropConnection,
    /// Answer `400 invalid_request` with the request (form body or `Authorization` header)
    /// echoed into the `error_description` in this encoding, as some servers do: to prove a
    /// client never prints back the secrets it sent.
    EchoRequest(crate::Echo),
}

impl Fault {
    /// An [`OAuthError`](Fault::OAuthError) with this status and error code.
    pub fn oauth_error(status: StatusCode, error: impl Into<String>) -> Self {
        Self::OAuthError {
            status,
            error: error.into(),
        }
    }
}
