//! Client authentication (RFC 6749 section 2.3.1, RFC 7523 section 2.2, RFC 8705
//! section 2): reading `client_secret_basic` credentials, and checking whichever method the
//! client used.
//!
//! The client id and secret are each `application/x-www-form-urlencoded` before they are
//! joined with `:` and base64-encoded, so a `:` inside either survives. We decode strictly:
//! a client that skips the form encoding fails as soon as its secret holds `%` or `+`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;

use super::form::{param, Params};
use super::rejection::{Answer, Rejection};
use super::AuthState;
use crate::client_certificate::PeerCertificate;
use crate::ClientAuthMethod;

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

/// The `client_assertion_type` of a `private_key_jwt` client (RFC 7523 section 2.2).
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl AuthState {
    /// Authenticates the client (RFC 6749 section 2.3.1, RFC 8705 section 2) and returns its
    /// id.
    pub(super) fn authenticate(
        &self,
        params: &Params,
        header: Option<HeaderCredentials>,
        peer: Option<&PeerCertificate>,
    ) -> Answer<String> {
        let posted_id = param(params, "client_id");
        let posted_secret = param(params, "client_secret");
        if let Some(assertion_type) = param(params, "client_assertion_type") {
            if header.is_some() || posted_secret.is_some() {
                return Err(Rejection::invalid_request(
                    "the client used more than one authentication method",
                ));
            }
            if !self.accepts(ClientAuthMethod::PrivateKeyJwt) {
                return Err(Rejection::invalid_client(
                    "this server does not accept private_key_jwt",
                ));
            }
            if assertion_type != JWT_BEARER_ASSERTION {
                return Err(Rejection::invalid_client(
                    "unsupported client_assertion_type",
                ));
            }
            let assertion = param(params, "client_assertion").ok_or_else(|| {
                Rejection::invalid_request("the client_assertion parameter is missing")
            })?;
            return self.verify_assertion(assertion, posted_id);
        }
        let (client_id, client_secret) = match header {
            Some(HeaderCredentials::Basic(credentials)) => {
                if posted_secret.is_some() {
                    return Err(Rejection::invalid_request(
                        "the client authenticated with both Basic and client_secret; use one",
                    ));
                }
                if posted_id.is_some_and(|id| id != credentials.client_id) {
                    return Err(Rejection::invalid_request(
                        "the client_id parameter differs from the Basic credentials",
                    ));
                }
                if !self.accepts(ClientAuthMethod::Basic) {
                    return Err(Rejection::invalid_client(
                        "this server does not accept client_secret_basic",
                    ));
                }
                (credentials.client_id, credentials.client_secret)
            }
            Some(HeaderCredentials::Malformed(problem)) => {
                return Err(Rejection::invalid_client(problem))
            }
            Some(HeaderCredentials::OtherScheme) => {
                return Err(Rejection::invalid_client(
                    "unsupported Authorization scheme; use Basic or client_secret_post",
                ))
            }
            None => match (posted_id, posted_secret) {
                (Some(_), Some(_)) if !self.accepts(ClientAuthMethod::Post) => {
                    return Err(Rejection::invalid_client(
                        "this server does not accept client_secret_post",
                    ));
                }
                (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
                (Some(id), None) => return self.authenticate_tls(id, peer),
                (None, Some(_)) => {
                    return Err(Rejection::invalid_request(
                        "client_secret was sent without client_id",
                    ));
                }
                (None, None) => return Err(Rejection::invalid_client("no client authentication")),
            },
        };
        match self.clients.get(&client_id) {
            None => Err(Rejection::invalid_client("unknown client")),
            Some(secret) if *secret != client_secret => {
                Err(Rejection::invalid_client("wrong client secret"))
            }
            Some(_) => Ok(client_id),
        }
    }

    /// RFC 8705 section 2: a client that sent only its id is authenticated by its TLS
    /// client certificate, if it registered one.
    fn authenticate_tls(&self, client_id: &str, peer: Option<&PeerCertificate>) -> Answer<String> {
        let registered = self
            .tls_clients
            .get(client_id)
            .ok_or(Rejection::invalid_client("the client_secret is missing"))?;
        registered.check(peer).map_err(Rejection::invalid_client)?;
        Ok(client_id.to_owned())
    }

    /// Checks a `private_key_jwt` client assertion (RFC 7523 sections 2.2 and 3) and returns
    /// the client id.
    fn verify_assertion(&self, assertion: &str, posted_id: Option<&str>) -> Answer<String> {
        let reject = Rejection::invalid_client;
        let claims = self.verify_jwt(assertion, &self.key_clients, reject)?;
        let client_id = claims["iss"].as_str().unwrap_or_default().to_owned();
        if claims["sub"] != client_id.as_str() {
            return Err(reject("the assertion sub is not the client id"));
        }
        if posted_id.is_some_and(|posted| posted != client_id) {
            return Err(reject("client_id differs from the assertion's iss"));
        }
        Ok(client_id)
    }

    pub(super) fn accepts(&self, method: ClientAuthMethod) -> bool {
        self.auth_methods
            .as_ref()
            .is_none_or(|methods| methods.contains(&method))
    }
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
