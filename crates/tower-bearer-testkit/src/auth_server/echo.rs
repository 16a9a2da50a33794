//! Echoing a token request back in an error, as careless servers do, so a client can prove
//! it redacts what it sent in every encoding such a server might use.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::response::oauth_error;

/// How a [`Fault::EchoRequest`](crate::Fault::EchoRequest) writes the request it received
/// into the `error_description` of its `400 invalid_request` answer.
///
/// Each variant is one encoding a real server has been seen to echo a request in; a test
/// loops over [`Echo::ALL`] to cover them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Echo {
    /// The form body exactly as received (`application/x-www-form-urlencoded`).
    FormBody,
    /// The form body with its percent escapes in lowercase hex.
    FormBodyLowercase,
    /// Each parameter decoded and percent-encoded again the RFC 3986 way, as JavaScript's
    /// `encodeURIComponent` does: `%20` for a space, and `!'()*` left as they are.
    PercentEncoded,
    /// Each parameter decoded, `name=value`, joined with `&`.
    Decoded,
    /// The decoded parameters as a JSON object, with `/` written `\/` and non-ASCII
    /// characters as `\uXXXX`, as PHP's `json_encode` does.
    Json,
    /// The decoded parameters as a JSON object with every character but ASCII letters and
    /// digits written `\uXXXX`, as .NET's default JSON encoder does for HTML-sensitive ones.
    JsonUnicode,
    /// The `Authorization` header as received (`Basic ...`).
    AuthorizationHeader,
    /// The `Basic` credentials base64-decoded: `urlencode(id):urlencode(secret)`.
    BasicDecoded,
}

impl Echo {
    /// Every encoding, for tests that cover them all.
    pub const ALL: [Echo; 8] = [
        Echo::FormBody,
        Echo::FormBodyLowercase,
        Echo::PercentEncoded,
        Echo::Decoded,
        Echo::Json,
        Echo::JsonUnicode,
        Echo::AuthorizationHeader,
        Echo::BasicDecoded,
    ];

    /// How this echo writes one form value, so a test can look for exactly that text;
    /// `None` for the echoes of the `Authorization` header, which hold no form values.
    pub fn encode(self, value: &str) -> Option<String> {
        let form = || form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
        Some(match self {
            Echo::FormBody => form(),
            Echo::FormBodyLowercase => lowercase_escapes(&form()),
            Echo::PercentEncoded => percent_encoded(value),
            Echo::Decoded => value.to_owned(),
            Echo::Json => json_string(value, false),
            Echo::JsonUnicode => json_string(value, true),
            Echo::AuthorizationHeader | Echo::BasicDecoded => return None,
        })
    }
}

/// The `400 invalid_request` answer echoing the request in `echo`'s encoding.
pub(super) fn response(
    echo: Echo,
    body: &[u8],
    params: &[(String, String)],
    authorization: Option<&HeaderValue>,
) -> Response<Full<Bytes>> {
    let body = String::from_utf8_lossy(body);
    let header = authorization.map(|value| String::from_utf8_lossy(value.as_bytes()));
    let echoed = match echo {
        Echo::FormBody => body.into_owned(),
        Echo::FormBodyLowercase => lowercase_escapes(&body),
        Echo::PercentEncoded | Echo::Decoded => join(params, echo),
        Echo::Json | Echo::JsonUnicode => json_object(params, echo),
        Echo::AuthorizationHeader => header.unwrap_or_default().into_owned(),
        Echo::BasicDecoded => header
            .as_deref()
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|token68| STANDARD.decode(token68.trim()).ok())
            .map(|decoded| String::from_utf8_lossy(&decoded).into_owned())
            .unwrap_or_default(),
    };
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &format!("cannot process this request: {echoed}"),
    )
}

/// `name=value&...`, each part as `echo` writes it.
fn join(params: &[(String, String)], echo: Echo) -> String {
    let encode = |text: &str| echo.encode(text).unwrap_or_default();
    params
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `{"name":"value",...}`, each string as `echo` writes it.
fn json_object(params: &[(String, String)], echo: Echo) -> String {
    let encode = |text: &str| format!("\"{}\"", echo.encode(text).unwrap_or_default());
    let fields: Vec<String> = params
        .iter()
        .map(|(name, value)| format!("{}:{}", encode(name), encode(value)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// `%2B` becomes `%2b`; the rest stays.
fn lowercase_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(
                chars
                    .by_ref()
                    .take(2)
                    .map(|digit| digit.to_ascii_lowercase()),
            );
        }
    }
    out
}

fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// The contents of a JSON string (without quotes); `escape_all` escapes all but letters
/// and digits.
fn json_string(text: &str, escape_all: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            _ if escape_all && !c.is_ascii_alphanumeric() => unicode_escape(c, &mut out),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            _ if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            _ => unicode_escape(c, &mut out),
        }
    }
    out
}

fn unicode_escape(c: char, out: &mut String) {
    let mut units = [0; 2];
    for unit in c.encode_utf16(&mut units) {
        let _ = write!(out, "\\u{unit:04x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(lowercase_escapes("a%2Bb%C3%BC+"), "a%2bb%c3%bc+");
        assert_eq!(percent_encoded("a b+/ü!"), "a%20b%2B%2F%C3%BC!");
        let params = [("k".to_owned(), "a/\"ü".to_owned())];
        assert_eq!(json_object(&params, Echo::Json), r#"{"k":"a\/\"\u00fc"}"#);
        assert_eq!(
            json_object(&params, Echo::JsonUnicode),
            r#"{"k":"a\u002f\u0022\u00fc"}"#
        );
        assert_eq!(join(&params, Echo::Decoded), "k=a/\"ü");
        assert_eq!(
            Echo::FormBodyLowercase.encode("a/").as_deref(),
            Some("a%2f")
        );
        assert_eq!(Echo::AuthorizationHeader.encode("a"), None);
    }
}
