//! Reading the authorization server's answers: the token response (RFC 6749 section 5.1),
//! the error response (section 5.2) and `Retry-After` (RFC 9110 section 10.2.3), and the
//! one reading of an error answer, [`ErrorResponse`], that token, revocation and metadata
//! requests share.
//!
//! Pure functions over a status, headers and body bytes, so every case is tested without a
//! server.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use tower_bearer::dpop::DpopKey;
use tower_bearer::{FetchError, Token, TokenType};

use crate::redact::{sanitize, Redactor};
use crate::retry::RetryReason;
use crate::transport::RawResponse;
use crate::OAuthError;

/// The longest `Retry-After` honoured. A misconfigured proxy asking for a day must not stop
/// token refresh for a day; the cache's own backoff still applies on top.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// An answer that is not a success, read once, the same way for every request: its status
/// (read with [`StatusClass`](crate::transport::StatusClass)), the OAuth error its body holds, if any, and the server's
/// `Retry-After`.
#[derive(Debug)]
pub(crate) struct ErrorResponse {
    pub(crate) status: StatusCode,
    /// The body's error response (RFC 6749 section 5.2), sanitized, if it is one.
    pub(crate) oauth: Option<OAuthError>,
    /// `Retry-After`, capped at [`MAX_RETRY_AFTER`].
    retry_after: Option<Duration>,
}

impl ErrorResponse {
    pub(crate) fn read(response: &RawResponse) -> Self {
        let retry_after =
            retry_after(&response.headers, SystemTime::now()).map(|wait| wait.min(MAX_RETRY_AFTER));
        ErrorResponse {
            status: response.status,
            oauth: parse_error(response.status, &response.body, &response.redactor),
            retry_after,
        }
    }

    /// Whether sending the request again within the fetch may help. Never for an OAuth
    /// error that says the request itself is wrong, whatever the status: wrong credentials,
    /// a revoked grant, a grant or scope the client may not have (repeating wrong
    /// credentials can lock a client out), nor for the DPoP errors the token request
    /// answers itself (RFC 9449 sections 5 and 8). Otherwise when the status is
    /// [transient](crate::transport::StatusClass::of).
    pub(crate) fn retry(&self) -> Option<RetryReason> {
        if self.oauth.as_ref().is_some_and(is_never_retried) {
            return None;
        }
        RetryReason::for_status(self.status)
    }

    /// `error` with the server's `Retry-After`, when `error` is transient: a permanent error
    /// is not asked again, so there is nothing to wait for.
    pub(crate) fn with_retry_after(&self, error: FetchError) -> FetchError {
        match self.retry_after {
            Some(wait) if error.is_transient() => error.with_retry_after(wait),
            _ => error,
        }
    }
}

/// OAuth errors that fail the same way however often they are repeated, whatever the
/// status, and the DPoP errors, which the token request handles itself.
fn is_never_retried(oauth: &OAuthError) -> bool {
    oauth.is_invalid_client()
        || oauth.is_invalid_grant()
        || oauth.is_unauthorized_client()
        || oauth.is_invalid_scope()
        || is_dpop_error(oauth)
}

/// The DPoP errors of RFC 9449 sections 5 and 8.
pub(crate) fn is_dpop_error(oauth: &OAuthError) -> bool {
    oauth.is_invalid_dpop_proof() || oauth.is_use_dpop_nonce()
}

/// Why a success response is not a usable token.
#[derive(Debug)]
pub(crate) struct InvalidResponse {
    /// What is wrong, for the message. Never contains a token.
    pub(crate) what: String,
    /// Worth asking again: the body was not JSON at all (cut short, a proxy's page).
    pub(crate) transient: bool,
    pub(crate) source: Option<tower_bearer::BoxError>,
    /// Set when the token type does not fit the client's DPoP key, or its lack of one.
    pub(crate) dpop: Option<DpopMismatch>,
}

impl InvalidResponse {
    fn permanent(what: impl Into<String>) -> Self {
        InvalidResponse {
            what: what.into(),
            transient: false,
            source: None,
            dpop: None,
        }
    }

    fn dpop(mismatch: DpopMismatch) -> Self {
        let what = match &mismatch {
            DpopMismatch::KeyMissing => "a DPoP token, and the client has no DPoP key".to_owned(),
            DpopMismatch::Downgrade(token_type) => {
                format!("a {token_type} token in answer to a DPoP proof")
            }
        };
        InvalidResponse {
            dpop: Some(mismatch),
            ..Self::permanent(what)
        }
    }
}

/// A token type that does not fit the request's DPoP proof (RFC 9449 section 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DpopMismatch {
    /// `DPoP`, and no proof was sent: the client has no key.
    KeyMissing,
    /// Not `DPoP` (this type instead), though a proof was sent.
    Downgrade(TokenType),
}

/// What a success response must hold beyond RFC 6749 section 5.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenResponseRules {
    /// RFC 6749 section 5.1 alone.
    Standard,
    /// RFC 8693 section 2.2.1: `issued_token_type` is required, and `token_type` may be
    /// `N_A` when the issued token is not an access token.
    TokenExchange,
}

/// `issued_token_type`s that can be sent as `Authorization: Bearer` when the server says
/// `token_type` `N_A`: an access token, or a JWT, which APIs that accept JWTs take as a
/// bearer credential.
const BEARER_USABLE_TYPES: &[&str] = &[
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:jwt",
];

/// Builds the token from a success response.
///
/// - `access_token` and `token_type` are required; `token_type` is matched ignoring case
///   and must be one [`TokenType`] knows.
/// - `expires_in` may be a JSON number or a numeric string, whole or fractional (see
///   [`parse_expires_in`]). When it is missing, `null` or `0` (which some servers send to
///   mean "not said"), the token gets `default_lifetime`.
/// - `scope`, when missing, is the scope that was requested (RFC 6749 section 5.1: the server
///   may leave it out only when it granted exactly that).
/// - `null` counts as missing for every field, as some servers serialize absent fields so.
/// - `dpop_key` is the key the request's DPoP proof was signed with, if it carried one.
///   Then the token must be a `DPoP` token (RFC 9449 section 5), and it is bound to the
///   key; without a key, a `DPoP` token is refused, as no request could carry its proofs.
pub(crate) fn parse_token(
    body: &[u8],
    rules: TokenResponseRules,
    requested_scope: Option<&str>,
    default_lifetime: Duration,
    dpop_key: Option<&DpopKey>,
    redactor: &Redactor,
) -> Result<Token, InvalidResponse> {
    // Parse to a generic value first: serde's typed errors quote the offending value, which
    // could be the token, while syntax errors only give a position.
    let mut fields = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => {
            return Err(InvalidResponse::permanent(
                "the body is JSON but not an object",
            ))
        }
        Err(error) => {
            return Err(InvalidResponse {
                transient: true,
                source: Some(error.into()),
                ..InvalidResponse::permanent("the body is not JSON")
            })
        }
    };

    if rules == TokenResponseRules::TokenExchange {
        check_exchange_response(&mut fields, redactor)?;
    }

    let access_token = match take_string(&mut fields, "access_token")? {
        Some(token) if !token.is_empty() => token,
        Some(_) => return Err(InvalidResponse::permanent("`access_token` is empty")),
        None => return Err(InvalidResponse::permanent("`access_token` is missing")),
    };
    let token_type = match take_string(&mut fields, "token_type")? {
        Some(token_type) => TokenType::parse(&token_type).ok_or_else(|| {
            InvalidResponse::permanent(format!(
                "the token type `{}` is not one this client can use (Bearer or DPoP)",
                sanitize(&token_type, 40, redactor)
            ))
        })?,
        None => return Err(InvalidResponse::permanent("`token_type` is missing")),
    };
    let lifetime = parse_expires_in(fields.get("expires_in").unwrap_or(&Value::Null))?
        .filter(|lifetime| !lifetime.is_zero())
        .unwrap_or(default_lifetime);

    let mut builder = Token::builder(access_token).expires_in(lifetime);
    builder = match (token_type, dpop_key) {
        (TokenType::DPoP, Some(key)) => builder.dpop_key(key.clone()),
        (TokenType::DPoP, None) => return Err(InvalidResponse::dpop(DpopMismatch::KeyMissing)),
        (other, Some(_)) => return Err(InvalidResponse::dpop(DpopMismatch::Downgrade(other))),
        (other, None) => builder.token_type(other),
    };
    match take_string(&mut fields, "scope")? {
        Some(scope) => builder = builder.scope(scope),
        None => {
            if let Some(scope) = requested_scope {
                builder = builder.scope(scope);
            }
        }
    }
    if let Some(refresh_token) = take_string(&mut fields, "refresh_token")? {
        if !refresh_token.is_empty() {
            builder = builder.refresh_token(refresh_token);
        }
    }
    builder.build().map_err(|error| InvalidResponse {
        source: Some(error.into()),
        ..InvalidResponse::permanent("the access token cannot be sent in an HTTP header")
    })
}

/// RFC 8693 section 2.2.1: insists on `issued_token_type`, and turns a `token_type` of
/// `N_A` into `Bearer` when the issued token can be used as one.
fn check_exchange_response(
    fields: &mut Map<String, Value>,
    redactor: &Redactor,
) -> Result<(), InvalidResponse> {
    let issued_token_type = match fields.get("issued_token_type") {
        Some(Value::String(issued)) if !issued.is_empty() => issued.clone(),
        _ => {
            return Err(InvalidResponse::permanent(
                "`issued_token_type` is missing, and RFC 8693 section 2.2.1 requires it in a \
                 token exchange response",
            ))
        }
    };
    let not_applicable = matches!(
        fields.get("token_type"),
        Some(Value::String(token_type)) if token_type.eq_ignore_ascii_case("N_A")
    );
    if not_applicable {
        if !BEARER_USABLE_TYPES.contains(&issued_token_type.as_str()) {
            return Err(InvalidResponse::permanent(format!(
                "the issued token is a `{}` with `token_type` N_A, which cannot be sent as a \
                 bearer credential; set `requested_token_type` to \
                 urn:ietf:params:oauth:token-type:access_token",
                sanitize(&issued_token_type, 100, redactor)
            )));
        }
        fields.insert("token_type".to_owned(), Value::from("Bearer"));
    }
    Ok(())
}

/// Moves a string field out of the object, so the token is not copied. `null` is missing.
fn take_string(
    fields: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<String>, InvalidResponse> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(InvalidResponse::permanent(format!(
            "`{name}` is not a string"
        ))),
    }
}

/// `expires_in` (RFC 6749 section 5.1), as a JSON number or a numeric string, which some
/// servers send: whole or fractional seconds, kept to the nanosecond, so `0.5` is half a
/// second rather than "not said". Values too large for a [`Duration`] (`1e308`) saturate to
/// [`Duration::MAX`]; the core clamps every lifetime to its own maximum.
///
/// A negative, infinite, NaN or non-numeric value is an error naming the field rather than
/// the default lifetime: a server that sends one is broken, and guessing a lifetime could
/// keep a token past its real expiry (every call a 401) or refresh it needlessly, while the
/// error says at once what to fix.
fn parse_expires_in(value: &Value) -> Result<Option<Duration>, InvalidResponse> {
    let lifetime = match value {
        Value::Null => return Ok(None),
        Value::Number(number) => match number.as_u64() {
            Some(seconds) => Some(Duration::from_secs(seconds)),
            None => number.as_f64().and_then(seconds_f64),
        },
        Value::String(text) => {
            let text = text.trim();
            match text.parse::<u64>() {
                Ok(seconds) => Some(Duration::from_secs(seconds)),
                Err(_) => text.parse::<f64>().ok().and_then(seconds_f64),
            }
        }
        _ => None,
    };
    lifetime.map(Some).ok_or_else(|| {
        InvalidResponse::permanent(
            "`expires_in` is not a non-negative number of seconds; the authorization server \
             must send a number such as 3600",
        )
    })
}

/// A non-negative, finite number of seconds as a [`Duration`], saturating past
/// [`Duration::MAX`]; `None` for anything else.
fn seconds_f64(seconds: f64) -> Option<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// Reads an error response, if the body is one (a JSON object with a string `error`).
///
/// The server's texts are [sanitized](sanitize) before anyone prints them: each secret the
/// request sent replaced in whatever encoding the server echoes it, control characters
/// escaped (no forged log lines), lengths capped.
pub(crate) fn parse_error(
    status: StatusCode,
    body: &[u8],
    redactor: &Redactor,
) -> Option<OAuthError> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let text = |name: &str, max_chars: usize| match fields.get(name) {
        Some(Value::String(value)) if !value.is_empty() => {
            Some(sanitize(value, max_chars, redactor))
        }
        _ => None,
    };
    let error = text("error", 100)?;
    Some(OAuthError::new(
        status,
        error,
        text("error_description", 500),
        text("error_uri", 500),
    ))
}

/// Whether an answer is `use_dpop_nonce` (RFC 9449 section 8): a client error whose body
/// is an error response with that code.
pub(crate) fn asks_for_dpop_nonce(status: StatusCode, body: &[u8]) -> bool {
    status.is_client_error()
        && parse_error(status, body, &Redactor::default())
            .is_some_and(|error| error.is_use_dpop_nonce())
}

/// How long the server asks us to wait: `Retry-After` as delay-seconds or an HTTP-date
/// (a date in the past is no wait). `None` if absent or unreadable.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use secrecy::ExposeSecret;
    use tokio::time::Instant;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn parse(body: &str) -> Result<Token, InvalidResponse> {
        parse_token(
            body.as_bytes(),
            TokenResponseRules::Standard,
            Some("requested"),
            Duration::from_secs(300),
            None,
            &Redactor::default(),
        )
    }

    /// The response to a request whose proof was signed with `key`.
    fn parse_with_proof(body: &str, key: &DpopKey) -> Result<Token, InvalidResponse> {
        parse_token(
            body.as_bytes(),
            TokenResponseRules::Standard,
            None,
            Duration::from_secs(300),
            Some(key),
            &Redactor::default(),
        )
    }

    fn redactor(secret: &str) -> Redactor {
        let mut redactor = Redactor::default();
        redactor.secret(secret);
        redactor
    }

    fn lifetime(token: &Token) -> Duration {
        token.expires_at().unwrap() - Instant::now()
    }

    fn roughly(actual: Duration, expected: Duration) -> bool {
        actual <= expected && actual + Duration::from_secs(5) >= expected
    }

    #[test]
    fn full_response() {
        let token = parse(
            r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"Bearer",
                "expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA",
                "scope":"read write","example_parameter":"example_value"}"#,
        )
        .unwrap();
        assert_eq!(token.secret().expose_secret(), "2YotnFZFEjr1zCsicMWpAA");
        assert_eq!(token.header_value(), "Bearer 2YotnFZFEjr1zCsicMWpAA");
        assert_eq!(token.token_type(), &TokenType::Bearer);
        assert!(roughly(lifetime(&token), HOUR));
        assert_eq!(token.scope(), Some("read write"));
        assert_eq!(
            token.refresh_token().unwrap().expose_secret(),
            "tGzv3JOkF0XG5Qx2TlKWIA"
        );
    }

    fn expires_in(json: &str) -> Result<Option<Duration>, InvalidResponse> {
        parse_expires_in(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn expires_in_whole_seconds_as_number_or_string() {
        for json in ["3600", r#""3600""#, r#"" 3600 ""#, "3600.0", r#""3600.0""#] {
            assert_eq!(expires_in(json).unwrap(), Some(HOUR), "{json}");
        }
        let token =
            parse(r#"{"access_token":"t","token_type":"bearer","expires_in":"3600"}"#).unwrap();
        assert!(roughly(lifetime(&token), HOUR));
    }

    #[test]
    fn expires_in_keeps_fractions_below_a_second() {
        let half = Duration::from_millis(500);
        assert_eq!(expires_in("0.5").unwrap(), Some(half));
        assert_eq!(expires_in(r#""0.5""#).unwrap(), Some(half));
        assert_eq!(
            expires_in("3600.25").unwrap(),
            Some(HOUR + Duration::from_millis(250))
        );
        // Half a second, not the 300 s default.
        let token =
            parse(r#"{"access_token":"t","token_type":"Bearer","expires_in":0.5}"#).unwrap();
        assert!(lifetime(&token) <= half, "{:?}", lifetime(&token));
    }

    #[test]
    fn expires_in_zero_is_not_said() {
        assert_eq!(expires_in("0").unwrap(), Some(Duration::ZERO));
        let token = parse(r#"{"access_token":"t","token_type":"Bearer","expires_in":0}"#).unwrap();
        assert!(roughly(lifetime(&token), Duration::from_secs(300)));
    }

    #[test]
    fn huge_expires_in_saturates_without_panicking() {
        let max = u64::MAX.to_string();
        assert_eq!(
            expires_in(&max).unwrap(),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            expires_in(&format!(r#""{max}""#)).unwrap(),
            Some(Duration::from_secs(u64::MAX))
        );
        for json in ["1e308", r#""1e308""#, "18446744073709551616", "1e20"] {
            assert_eq!(expires_in(json).unwrap(), Some(Duration::MAX), "{json}");
        }
        // The core decides how long such a token may live; building it must not panic.
        for json in [max.as_str(), "1e308"] {
            let body =
                format!(r#"{{"access_token":"t","token_type":"Bearer","expires_in":{json}}}"#);
            assert!(parse(&body).is_ok(), "{json}");
        }
    }

    #[test]
    fn negative_or_non_numeric_expires_in_is_an_error_naming_it() {
        for json in [
            "-1",
            r#""-1""#,
            "-0.5",
            r#""abc""#,
            r#""""#,
            r#""NaN""#,
            r#""inf""#,
            r#""-inf""#,
            "true",
            "[3600]",
            r#"{"seconds":3600}"#,
        ] {
            let invalid = expires_in(json).unwrap_err();
            assert!(!invalid.transient, "{json}");
            assert!(
                invalid.what.contains("`expires_in`"),
                "{json}: {}",
                invalid.what
            );
        }
    }

    #[test]
    fn missing_null_or_zero_expires_in_uses_the_default_lifetime() {
        for expires_in in [
            "",
            r#","expires_in":null"#,
            r#","expires_in":0"#,
            r#","expires_in":"0""#,
        ] {
            let body = format!(r#"{{"access_token":"t","token_type":"Bearer"{expires_in}}}"#);
            let token = parse(&body).unwrap();
            assert!(
                roughly(lifetime(&token), Duration::from_secs(300)),
                "{body}"
            );
        }
    }

    #[test]
    fn token_type_ignores_case() {
        for token_type in ["bearer", "BEARER", "Bearer", "bEaReR"] {
            let body = format!(r#"{{"access_token":"t","token_type":"{token_type}"}}"#);
            let token = parse(&body).unwrap();
            assert_eq!(token.header_value(), "Bearer t");
        }
        let key = DpopKey::generate_es256().unwrap();
        for token_type in ["dpop", "DPOP", "DPoP"] {
            let body = format!(r#"{{"access_token":"t","token_type":"{token_type}"}}"#);
            let token = parse_with_proof(&body, &key).unwrap();
            assert_eq!(token.token_type(), &TokenType::DPoP);
            assert_eq!(token.header_value(), "DPoP t");
            assert_eq!(
                token.dpop_key().map(DpopKey::thumbprint),
                Some(key.thumbprint())
            );
        }
    }

    #[test]
    fn a_dpop_token_without_a_key_is_permanent_and_names_the_mismatch() {
        let invalid = parse(r#"{"access_token":"s3cr3t-token","token_type":"DPoP"}"#).unwrap_err();
        assert!(!invalid.transient);
        assert_eq!(invalid.dpop, Some(DpopMismatch::KeyMissing));
        assert!(invalid.what.contains("no DPoP key"), "{}", invalid.what);
        assert!(!invalid.what.contains("s3cr3t"), "{}", invalid.what);
    }

    #[test]
    fn a_bearer_token_in_answer_to_a_proof_is_a_permanent_downgrade() {
        let key = DpopKey::generate_ed25519().unwrap();
        for token_type in ["Bearer", "bearer"] {
            let body = format!(r#"{{"access_token":"s3cr3t-token","token_type":"{token_type}"}}"#);
            let invalid = parse_with_proof(&body, &key).unwrap_err();
            assert!(!invalid.transient);
            assert_eq!(
                invalid.dpop,
                Some(DpopMismatch::Downgrade(TokenType::Bearer))
            );
            assert!(!invalid.what.contains("s3cr3t"), "{}", invalid.what);
        }
        // A token exchange's `N_A` is read as Bearer, so it is a downgrade too.
        let body = r#"{"access_token":"t","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#;
        let invalid = parse_token(
            body.as_bytes(),
            TokenResponseRules::TokenExchange,
            None,
            HOUR,
            Some(&key),
            &Redactor::default(),
        )
        .unwrap_err();
        assert_eq!(
            invalid.dpop,
            Some(DpopMismatch::Downgrade(TokenType::Bearer))
        );
    }

    #[test]
    fn unknown_token_type_is_permanent() {
        let invalid = parse(r#"{"access_token":"t","token_type":"mac"}"#).unwrap_err();
        assert!(!invalid.transient);
        assert!(invalid.what.contains("`mac`"), "{}", invalid.what);
    }

    #[test]
    fn missing_or_wrong_fields_are_permanent_and_never_quote_the_token() {
        let cases = [
            (r#"{"token_type":"Bearer"}"#, "`access_token` is missing"),
            (
                r#"{"access_token":null,"token_type":"Bearer"}"#,
                "`access_token` is missing",
            ),
            (
                r#"{"access_token":"","token_type":"Bearer"}"#,
                "`access_token` is empty",
            ),
            (
                r#"{"access_token":"s3cr3t-token"}"#,
                "`token_type` is missing",
            ),
            (
                r#"{"access_token":42,"token_type":"Bearer"}"#,
                "`access_token` is not a string",
            ),
            (
                r#"{"access_token":"s3cr3t-token","token_type":7}"#,
                "`token_type` is not a string",
            ),
            (r#"["s3cr3t-token"]"#, "the body is JSON but not an object"),
            (r#""s3cr3t-token""#, "the body is JSON but not an object"),
            (
                r#"{"access_token":"s3cr3t token","token_type":"Bearer"}"#,
                "the access token cannot be sent in an HTTP header",
            ),
        ];
        for (body, expected) in cases {
            let invalid = parse(body).unwrap_err();
            assert!(!invalid.transient, "{body}");
            assert!(
                invalid.what.starts_with(expected),
                "{body}: {}",
                invalid.what
            );
            assert!(!invalid.what.contains("s3cr3t"), "{}", invalid.what);
            if let Some(source) = &invalid.source {
                assert!(!source.to_string().contains("s3cr3t"), "{source}");
            }
        }
    }

    #[test]
    fn not_json_is_transient_and_never_quotes_the_body() {
        for body in ["<html>s3cr3t</html>", "", r#"{"access_token":"s3cr3t"#] {
            let invalid = parse(body).unwrap_err();
            assert!(invalid.transient, "{body}");
            assert_eq!(invalid.what, "the body is not JSON");
            let source = invalid.source.unwrap().to_string();
            assert!(!source.contains("s3cr3t"), "{source}");
        }
    }

    #[test]
    fn scope_defaults_to_the_requested_one() {
        let token = parse(r#"{"access_token":"t","token_type":"Bearer"}"#).unwrap();
        assert_eq!(token.scope(), Some("requested"));
        let token = parse_token(
            br#"{"access_token":"t","token_type":"Bearer"}"#,
            TokenResponseRules::Standard,
            None,
            HOUR,
            None,
            &Redactor::default(),
        )
        .unwrap();
        assert_eq!(token.scope(), None);
        let token =
            parse(r#"{"access_token":"t","token_type":"Bearer","scope":"narrower"}"#).unwrap();
        assert_eq!(token.scope(), Some("narrower"));
    }

    #[test]
    fn error_responses() {
        let error = parse_error(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_scope","error_description":"scope x is unknown",
                "error_uri":"https://auth.example/errors#scope"}"#,
            &redactor("hunter2"),
        )
        .unwrap();
        assert!(error.is_invalid_scope());
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.description(), Some("scope x is unknown"));
        assert_eq!(error.uri(), Some("https://auth.example/errors#scope"));

        let minimal = parse_error(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client"}"#,
            &redactor("x"),
        )
        .unwrap();
        assert!(minimal.is_invalid_client());
        assert_eq!(minimal.description(), None);
        assert_eq!(minimal.uri(), None);

        for not_oauth in [
            &b"<html>Bad Gateway</html>"[..],
            b"",
            br#"{"message":"not found"}"#,
            br#"{"error":42}"#,
            br#"{"error":""}"#,
            br#"["invalid_client"]"#,
        ] {
            assert!(parse_error(StatusCode::BAD_GATEWAY, not_oauth, &redactor("x")).is_none());
        }
    }

    #[test]
    fn error_texts_are_sanitized() {
        let long = "a".repeat(2000);
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"secret hunter2 is wrong\r\nforged log line {long}"}}"#
        );
        let error = parse_error(
            StatusCode::UNAUTHORIZED,
            body.as_bytes(),
            &redactor("hunter2"),
        )
        .unwrap();
        let description = error.description().unwrap();
        assert!(
            description.starts_with("secret [redacted] is wrong"),
            "{description}"
        );
        assert!(!description.contains('\n') && !description.contains('\r'));
        assert_eq!(description.chars().count(), 503);
        assert!(!error.to_string().contains("hunter2"));
    }

    /// An error answer with `status`, `body` and `Retry-After: 86400`.
    fn error_response(status: u16, body: &str) -> ErrorResponse {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("86400"));
        ErrorResponse::read(&RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: zeroize::Zeroizing::new(body.as_bytes().to_vec()),
            redactor: Redactor::default(),
        })
    }

    #[test]
    fn error_responses_are_retried_by_status_unless_the_code_needs_a_fix() {
        for status in [408, 429, 500, 503] {
            let refusal = error_response(status, r#"{"error":"temporarily_unavailable"}"#);
            assert!(refusal.retry().is_some(), "{status}");
            assert!(refusal.oauth.is_some_and(|oauth| oauth.is_transient()));
            assert!(error_response(status, "<html></html>").retry().is_some());
        }
        for code in [
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "invalid_scope",
            "use_dpop_nonce",
            "invalid_dpop_proof",
        ] {
            let body = format!(r#"{{"error":"{code}"}}"#);
            assert!(error_response(503, &body).retry().is_none(), "{code}");
        }
        for status in [400, 401, 404] {
            let refusal = error_response(status, r#"{"error":"temporarily_unavailable"}"#);
            assert!(refusal.retry().is_none(), "{status}");
        }
    }

    #[test]
    fn retry_after_is_capped_and_only_on_transient_errors() {
        let refusal = error_response(503, "");
        let transient = refusal.with_retry_after(FetchError::transient("busy"));
        assert_eq!(transient.retry_after(), Some(MAX_RETRY_AFTER));
        let permanent = refusal.with_retry_after(FetchError::permanent("refused"));
        assert_eq!(permanent.retry_after(), None);
    }

    #[test]
    fn retry_after_seconds_or_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 GMT
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:29:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(60)));
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:00:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("-5"));
        assert_eq!(retry_after(&headers, now), None);
    }

    fn exchanged(body: &str) -> Result<Token, InvalidResponse> {
        parse_token(
            body.as_bytes(),
            TokenResponseRules::TokenExchange,
            None,
            HOUR,
            None,
            &Redactor::default(),
        )
    }

    #[test]
    fn token_exchange_needs_issued_token_type() {
        for body in [
            r#"{"access_token":"t-5ecr3t","token_type":"Bearer"}"#,
            r#"{"access_token":"t-5ecr3t","token_type":"Bearer","issued_token_type":null}"#,
            r#"{"access_token":"t-5ecr3t","token_type":"Bearer","issued_token_type":7}"#,
            r#"{"access_token":"t-5ecr3t","token_type":"Bearer","issued_token_type":""}"#,
        ] {
            let invalid = exchanged(body).expect_err(body);
            assert!(!invalid.transient, "{body}");
            assert!(
                invalid.what.contains("issued_token_type"),
                "{}",
                invalid.what
            );
            assert!(invalid.what.contains("RFC 8693"), "{}", invalid.what);
            assert!(!invalid.what.contains("5ecr3t"));
        }
        // The standard rules do not ask for it.
        assert!(parse(r#"{"access_token":"t","token_type":"Bearer"}"#).is_ok());
    }

    #[test]
    fn token_exchange_takes_n_a_only_for_bearer_usable_tokens() {
        for issued in BEARER_USABLE_TYPES {
            for token_type in ["N_A", "n_a"] {
                let body = format!(
                    r#"{{"access_token":"t","token_type":"{token_type}","issued_token_type":"{issued}"}}"#
                );
                let token = exchanged(&body).unwrap();
                assert_eq!(token.header_value(), "Bearer t", "{body}");
            }
        }
        for issued in [
            "urn:ietf:params:oauth:token-type:id_token",
            "urn:ietf:params:oauth:token-type:refresh_token",
            "urn:ietf:params:oauth:token-type:saml2",
        ] {
            let body = format!(
                r#"{{"access_token":"t","token_type":"N_A","issued_token_type":"{issued}"}}"#
            );
            let invalid = exchanged(&body).expect_err(issued);
            assert!(!invalid.transient);
            assert!(invalid.what.contains(issued), "{}", invalid.what);
            assert!(
                invalid.what.contains("requested_token_type"),
                "{}",
                invalid.what
            );
        }
        // A real token type is used as it is, whatever was issued.
        let body = r#"{"access_token":"t","token_type":"bearer","issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}"#;
        assert_eq!(exchanged(body).unwrap().header_value(), "Bearer t");
    }
}
