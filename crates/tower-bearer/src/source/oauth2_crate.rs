//! Tokens from the [`oauth2`](https://docs.rs/oauth2) crate (5.x): for code that already
//! makes its token requests with it and wants the cache and the layers in front.
//!
//! Two functions turn its results into this crate's: [`token`] for a token response
//! (the access token, its expiry, scope and refresh token carried over) and
//! [`fetch_error`] for a `RequestTokenError`, classified as transient or permanent. With
//! them, any of its exchanges is a [`TokenSource`](super::TokenSource) in a few lines:
//!
//! ```no_run
//! use oauth2::basic::BasicClient;
//! use oauth2::{ClientId, ClientSecret, Scope, TokenUrl};
//! use tower_bearer::source::{from_fn, oauth2_crate};
//! use tower_bearer::TokenCache;
//!
//! # async fn send(request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, std::io::Error> { unimplemented!() }
//! # fn main() -> Result<(), oauth2::url::ParseError> {
//! let client = BasicClient::new(ClientId::new("my-service".into()))
//!     .set_client_secret(ClientSecret::new("secret".into()))
//!     .set_token_uri(TokenUrl::new("https://auth.example.com/token".into())?);
//! let source = from_fn(move || {
//!     let client = client.clone();
//!     async move {
//!         let response = client
//!             .exchange_client_credentials()
//!             .add_scope(Scope::new("orders:read".into()))
//!             .request_async(&send) // your HTTP client: oauth2's reqwest feature, or a closure
//!             .await
//!             .map_err(oauth2_crate::fetch_error)?;
//!         oauth2_crate::token(&response)
//!     }
//! });
//! let cache = TokenCache::new(source);
//! # let _ = cache;
//! # Ok(())
//! # }
//! ```
//!
//! Nothing the server wrote goes into an error's message or its `source()`: an
//! `error_description` can echo what the client sent, and a body that failed to parse
//! could be anything. The message names the error code and what to do.

use std::error::Error;
use std::time::Duration;

use oauth2::{ErrorResponse, RequestTokenError, TokenResponse};

use crate::{FetchError, Token};

/// This crate's token from an `oauth2` token response: the access token, its lifetime
/// (`expires_in`), its scope and its refresh token, if the response has them.
///
/// A token type other than `Bearer` is a permanent error: a `DPoP` token (RFC 9449) needs
/// a proof with every request, which tokens from this bridge are not sent with.
pub fn token<R: TokenResponse>(response: &R) -> Result<Token, FetchError> {
    let token_type = serde_json::to_value(response.token_type())
        .ok()
        .and_then(|value| value.as_str().map(str::to_ascii_lowercase));
    if token_type.as_deref() != Some("bearer") {
        return Err(FetchError::permanent(format!(
            "the token response's token_type is {}, not Bearer; only bearer tokens can be \
             used through the oauth2 crate's bridge",
            token_type
                .as_deref()
                .map_or("not readable".into(), |t| format!("`{t}`"))
        )));
    }
    let mut builder = Token::builder(response.access_token().secret().clone());
    if let Some(lifetime) = response.expires_in() {
        builder = builder.expires_in(lifetime);
    }
    if let Some(scopes) = response.scopes() {
        let scope: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
        builder = builder.scope(scope.join(" "));
    }
    if let Some(refresh) = response.refresh_token() {
        builder = builder.refresh_token(refresh.secret().clone());
    }
    builder.build().map_err(FetchError::from)
}

/// Error codes (RFC 6749 section 5.2) that a retry with the same request cannot fix.
const PERMANENT: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

/// How long to wait before retrying a server that said it is `temporarily_unavailable`
/// (RFC 6749 section 4.1.2.1) when it gave no `Retry-After`, which the `oauth2` crate does
/// not pass on anyway.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(5);

/// This crate's error for an `oauth2` `RequestTokenError`.
///
/// - An error response whose code no retry can fix (`invalid_client`, `invalid_grant`,
///   `invalid_scope`, `unauthorized_client`, `unsupported_grant_type`, `invalid_request`,
///   `invalid_target`) is permanent: the cache remembers it instead of asking again at once.
/// - Other codes (`server_error`, `temporarily_unavailable`, extensions) are transient, as
///   are failures to send the request, and bodies that do not parse (an HTML error page
///   from a proxy, say; the `oauth2` crate does not report the HTTP status).
/// - `Other` errors (an empty body, a wrong `Content-Type`) are transient.
///
/// The HTTP client's error is kept as the `source()`; the server's own words are not.
pub fn fetch_error<RE, T>(error: RequestTokenError<RE, T>) -> FetchError
where
    RE: Error + Send + Sync + 'static,
    T: ErrorResponse + 'static,
{
    match error {
        RequestTokenError::ServerResponse(response) => from_error_response(&response),
        RequestTokenError::Request(error) => {
            FetchError::transient("the token request could not be sent").with_source(error)
        }
        RequestTokenError::Parse(_, _) => FetchError::transient(
            "the token endpoint's answer could not be read as a token response or an OAuth \
             error; check that the token URL is right",
        ),
        RequestTokenError::Other(_) => FetchError::transient(
            "the token endpoint's answer was not a JSON token response; check that the token \
             URL is right",
        ),
    }
}

fn from_error_response<T: ErrorResponse>(response: &T) -> FetchError {
    let value = serde_json::to_value(response).ok();
    let code = value
        .as_ref()
        .and_then(|value| value.get("error"))
        .and_then(|code| code.as_str())
        .filter(|code| is_error_code(code));
    let Some(code) = code else {
        return FetchError::transient(
            "the token endpoint answered with an error response without a readable error code",
        );
    };
    if PERMANENT.contains(&code) {
        let advice = match code {
            "invalid_client" => "; check the client id and secret",
            "invalid_grant" => "; the grant (a refresh token, an assertion) is no longer valid",
            "invalid_scope" | "invalid_target" => "; check the scope or resource asked for",
            "unauthorized_client" | "unsupported_grant_type" => {
                "; the client is not allowed this grant"
            }
            _ => "",
        };
        return FetchError::permanent(format!(
            "the token endpoint refused the request: `{code}`{advice}"
        ));
    }
    let error = FetchError::transient(format!("the token endpoint answered `{code}`"));
    if code == "temporarily_unavailable" {
        return error.with_retry_after(UNAVAILABLE_RETRY);
    }
    error
}

/// An RFC 6749 error code: `1*( %x20-21 / %x23-5B / %x5D-7E )`, and short. Anything else is
/// not printed.
fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oauth2::basic::{BasicErrorResponse, BasicErrorResponseType, BasicTokenResponse};
    use oauth2::{AccessToken, RefreshToken, Scope, StandardErrorResponse};
    use std::error::Error as _;

    type Error = RequestTokenError<std::io::Error, BasicErrorResponse>;

    fn server_says(code: BasicErrorResponseType, description: &str) -> FetchError {
        fetch_error::<std::io::Error, _>(RequestTokenError::ServerResponse(
            StandardErrorResponse::new(code, Some(description.into()), None),
        ))
    }

    #[test]
    fn codes_no_retry_can_fix_are_permanent_and_the_rest_transient() {
        use BasicErrorResponseType::*;
        for code in [
            InvalidClient,
            InvalidGrant,
            InvalidScope,
            UnauthorizedClient,
        ] {
            assert!(server_says(code.clone(), "").is_permanent(), "{code:?}");
        }
        for code in ["server_error", "temporarily_unavailable", "slow_down"] {
            let error = server_says(Extension(code.into()), "");
            assert!(error.is_transient(), "{code}");
        }
        assert_eq!(
            server_says(Extension("temporarily_unavailable".into()), "").retry_after(),
            Some(UNAVAILABLE_RETRY)
        );
        let network: Error = RequestTokenError::Request(std::io::Error::other("refused"));
        let network = fetch_error(network);
        assert!(network.is_transient());
        assert!(
            network.source().is_some(),
            "the client's error is the source"
        );
        let other: Error = RequestTokenError::Other("server returned empty error response".into());
        assert!(fetch_error(other).is_transient());
    }

    #[test]
    fn what_the_server_wrote_is_never_in_the_error() {
        let error = server_says(
            BasicErrorResponseType::InvalidClient,
            "client_secret=hunter2 does not match",
        );
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("invalid_client"), "{shown}");
        assert!(error.source().is_none());

        let echoed = server_says(
            BasicErrorResponseType::Extension("client_secret=hunter2\r\nX: y".into()),
            "",
        );
        let shown = format!("{echoed} {echoed:?}");
        assert!(
            !shown.contains("hunter2"),
            "not an error code, not printed: {shown}"
        );

        let body = b"<html>hunter2</html>".to_vec();
        let parse_error = serde_path_to_error_like(&body);
        let error = fetch_error::<std::io::Error, BasicErrorResponse>(parse_error);
        assert!(!format!("{error} {error:?}").contains("hunter2"));
    }

    /// A `Parse` error as the `oauth2` crate builds one.
    fn serde_path_to_error_like(body: &[u8]) -> Error {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let error = serde_path_to_error::deserialize::<_, BasicErrorResponse>(&mut deserializer)
            .unwrap_err();
        RequestTokenError::Parse(error, body.to_vec())
    }

    #[test]
    fn a_token_response_carries_expiry_scope_and_refresh_token_over() {
        let mut response = BasicTokenResponse::new(
            AccessToken::new("access-1".into()),
            oauth2::basic::BasicTokenType::Bearer,
            oauth2::EmptyExtraTokenFields {},
        );
        response.set_expires_in(Some(&Duration::from_secs(600)));
        response.set_scopes(Some(vec![Scope::new("a".into()), Scope::new("b".into())]));
        response.set_refresh_token(Some(RefreshToken::new("refresh-1".into())));
        let token = token(&response).unwrap();
        assert_eq!(token.header_value(), "Bearer access-1");
        assert_eq!(token.scope(), Some("a b"));
        let left = token
            .expires_at()
            .unwrap()
            .saturating_duration_since(tokio::time::Instant::now());
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        assert!(token.refresh_token().is_some());
    }

    #[test]
    fn a_token_type_other_than_bearer_is_refused() {
        let response = BasicTokenResponse::new(
            AccessToken::new("access-1".into()),
            oauth2::basic::BasicTokenType::Extension("DPoP".into()),
            oauth2::EmptyExtraTokenFields {},
        );
        let error = token(&response).unwrap_err();
        assert!(error.is_permanent());
        assert!(error.to_string().contains("`dpop`"), "{error}");
    }
}
