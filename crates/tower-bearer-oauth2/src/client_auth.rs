//! How the client proves who it is to the token endpoint (RFC 6749 section 2.3).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// The client authentication method, named as in the OAuth dynamic client registration
/// metadata (RFC 7591 section 2, `token_endpoint_auth_method`).
///
/// ```
/// use tower_bearer_oauth2::ClientAuth;
///
/// assert_eq!(ClientAuth::default(), ClientAuth::ClientSecretBasic);
/// assert_eq!(ClientAuth::ClientSecretPost.as_str(), "client_secret_post");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic authentication with the client id and secret (RFC 6749 section 2.3.1).
    ///
    /// Each of the two is `application/x-www-form-urlencoded` before they are joined with
    /// `:` and base64-encoded, as the RFC requires, so ids and secrets with `:`, `%`, `+`,
    /// spaces or non-ASCII characters work with servers that follow it. Every server must
    /// support this method, hence the default.
    #[default]
    ClientSecretBasic,
    /// The client id and secret as `client_id` and `client_secret` in the request body
    /// (RFC 6749 section 2.3.1). The RFC discourages it; use it when the server asks for it.
    ClientSecretPost,
}

impl ClientAuth {
    /// The registered name: `client_secret_basic` or `client_secret_post`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
        }
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client id, its secret and how to present them.
#[derive(Clone)]
pub(crate) struct ClientSecret {
    pub(crate) id: String,
    pub(crate) secret: SecretString,
    pub(crate) method: ClientAuth,
}

/// Where the credentials go in one token request.
pub(crate) enum Credentials {
    /// An `Authorization` header value, marked sensitive.
    Header(HeaderValue),
    /// Form fields for the request body.
    Form,
}

impl ClientSecret {
    /// Adds the credentials to a token request: the header value to send, or the form
    /// fields appended to `form`.
    pub(crate) fn apply(
        &self,
        form: &mut form_urlencoded::Serializer<'_, String>,
    ) -> Result<Credentials, http::header::InvalidHeaderValue> {
        match self.method {
            ClientAuth::ClientSecretBasic => {
                basic_authorization(&self.id, self.secret.expose_secret()).map(Credentials::Header)
            }
            ClientAuth::ClientSecretPost => {
                form.append_pair("client_id", &self.id);
                form.append_pair("client_secret", self.secret.expose_secret());
                Ok(Credentials::Form)
            }
        }
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecret")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .field("method", &self.method)
            .finish()
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, per RFC 6749 section 2.3.1 and
/// appendix B (spaces become `+`). Every intermediate copy of the secret is zeroized.
pub(crate) fn basic_authorization(
    id: &str,
    secret: &str,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut credentials = Zeroizing::new(String::with_capacity((id.len() + secret.len()) * 3 + 1));
    credentials.extend(form_urlencoded::byte_serialize(id.as_bytes()));
    credentials.push(':');
    credentials.extend(form_urlencoded::byte_serialize(secret.as_bytes()));

    let mut header = Zeroizing::new(String::with_capacity(6 + credentials.len() * 4 / 3 + 4));
    header.push_str("Basic ");
    STANDARD.encode_string(credentials.as_bytes(), &mut header);

    let mut value = HeaderValue::from_str(&header)?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_encodes_each_part_before_base64() {
        // urlencode: "my+client%3A1" ":" "p%40ss%3Aw%25rd%2B+%C3%BC"
        let value = basic_authorization("my client:1", "p@ss:w%rd+ ü").unwrap();
        assert_eq!(
            value,
            "Basic bXkrY2xpZW50JTNBMTpwJTQwc3MlM0F3JTI1cmQlMkIrJUMzJUJD"
        );
        assert!(value.is_sensitive());
    }

    #[test]
    fn basic_plain_credentials() {
        // The RFC 6749 section 2.3.1 example.
        let value = basic_authorization("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw").unwrap();
        assert_eq!(value, "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3");
    }

    #[test]
    fn post_adds_form_fields() {
        let client = ClientSecret {
            id: "my client:1".into(),
            secret: SecretString::from("p@ss:w%rd+ ü"),
            method: ClientAuth::ClientSecretPost,
        };
        let mut form = form_urlencoded::Serializer::new(String::new());
        assert!(matches!(client.apply(&mut form), Ok(Credentials::Form)));
        assert_eq!(
            form.finish(),
            "client_id=my+client%3A1&client_secret=p%40ss%3Aw%25rd%2B+%C3%BC"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let client = ClientSecret {
            id: "client".into(),
            secret: SecretString::from("hunter2"),
            method: ClientAuth::ClientSecretBasic,
        };
        let printed = format!("{client:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("client"), "{printed}");
    }
}
