//! Reading `client_secret_basic` credentials (RFC 6749 section 2.3.1).
//!
//! The client id and secret are each `application/x-www-form-urlencoded` before they are
//! joined with `:` and base64-encoded, so a `:` inside either survives. We decode strictly:
//! a client that skips the form encoding fails as soon as its secret holds `%` or `+`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;

/// What an `Authorization` header on a token request carried.
pub(super) enum HeaderCredentials {
    Basic(BasicCredentials),
    /// The `Basic` scheme, but not decodable; says what was wrong.
    Malformed(&'static str),
    /// Some other scheme, say `Bearer`.
    OtherScheme,
}

/// A decoded client id and secret.
pub(super) struct BasicCredentials {
    pub(super) client_id: String,
    pub(super) client_secret: String,
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

pub(super) fn header_credentials(value: &HeaderValue) -> HeaderCredentials {
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|&byte| byte == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return HeaderCredentials::OtherScheme;
    }
    match decode_basic(rest.trim_ascii()) {
        Ok(credentials) => HeaderCredentials::Basic(credentials),
        Err(problem) => HeaderCredentials::Malformed(problem),
    }
}

fn decode_basic(token68: &[u8]) -> Result<BasicCredentials, &'static str> {
    let decoded = STANDARD
        .decode(token68)
        .map_err(|_| "the Basic credentials are not valid base64")?;
    // Split at the first ':'; the encoded id cannot contain one, the secret may.
    let colon = decoded
        .iter()
        .position(|&byte| byte == b':')
        .ok_or("the Basic credentials have no ':' between client id and secret")?;
    let client_id = form_urldecode(&decoded[..colon])
        .ok_or("the client id in the Basic credentials is not form-url-encoded UTF-8")?;
    let client_secret = form_urldecode(&decoded[colon + 1..])
        .ok_or("the client secret in the Basic credentials is not form-url-encoded UTF-8")?;
    Ok(BasicCredentials {
        client_id,
        client_secret,
    })
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a
/// byte. A `%` without two hex digits after it, or bytes that are not UTF-8, give `None`.
fn form_urldecode(encoded: &[u8]) -> Option<String> {
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.iter().copied();
    while let Some(byte) = bytes.next() {
        match byte {
            b'+' => decoded.push(b' '),
            b'%' => {
                let high = hex_digit(bytes.next()?)?;
                let low = hex_digit(bytes.next()?)?;
                decoded.push(high << 4 | low);
            }
            other => decoded.push(other),
        }
    }
    String::from_utf8(decoded).ok()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw))).unwrap()
    }

    #[test]
    fn decodes_form_encoded_id_and_secret_split_at_the_first_colon() {
        let value = basic("my+client%3A1:p%40ss%3Aw%25rd%2B+%C3%BC");
        let HeaderCredentials::Basic(credentials) = header_credentials(&value) else {
            panic!("not decoded");
        };
        assert_eq!(credentials.client_id, "my client:1");
        assert_eq!(credentials.client_secret, "p@ss:w%rd+ ü");
    }

    #[test]
    fn a_raw_colon_in_the_secret_stays_in_the_secret() {
        let HeaderCredentials::Basic(credentials) = header_credentials(&basic("id:a:b")) else {
            panic!("not decoded");
        };
        assert_eq!(credentials.client_id, "id");
        assert_eq!(credentials.client_secret, "a:b");
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        let value = HeaderValue::from_str(&format!("bAsIc {}", STANDARD.encode("a:b"))).unwrap();
        assert!(matches!(
            header_credentials(&value),
            HeaderCredentials::Basic(_)
        ));
    }

    #[test]
    fn rejects_what_a_careless_client_sends() {
        for raw in ["no-colon", "id:w%rd", "id:%C3"] {
            assert!(
                matches!(
                    header_credentials(&basic(raw)),
                    HeaderCredentials::Malformed(_)
                ),
                "{raw}"
            );
        }
        let not_base64 = HeaderValue::from_static("Basic ***");
        assert!(matches!(
            header_credentials(&not_base64),
            HeaderCredentials::Malformed(_)
        ));
        let bearer = HeaderValue::from_static("Bearer abc");
        assert!(matches!(
            header_credentials(&bearer),
            HeaderCredentials::OtherScheme
        ));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let HeaderCredentials::Basic(credentials) = header_credentials(&basic("id:hunter2")) else {
            panic!("not decoded");
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
