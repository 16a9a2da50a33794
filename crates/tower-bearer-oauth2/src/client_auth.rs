//! How the client proves who it is to the token endpoint (RFC 6749 section 2.3).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::redact::Redactor;

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
    /// A JWT signed with the client's private key, sent as `client_assertion` (RFC 7523
    /// section 2.2). Needs the `private-key-jwt` feature and a key: build the source with
    /// `builder_with_private_key`.
    PrivateKeyJwt,
    /// No client authentication: a public client (RFC 6749 section 2.1), which sends only its
    /// `client_id` (when it has one). For grants that carry their own proof, such as token
    /// exchange (RFC 8693) and the JWT bearer grant (RFC 7523 section 3.1).
    None,
    /// Mutual TLS with a certificate from a PKI the server trusts (RFC 8705 section 2.1):
    /// the request carries only `client_id`, and the server matches the TLS client
    /// certificate to the subject it registered for the client. The transport must present
    /// the certificate: build with `builder_with_tls_client_auth` and give the default
    /// client a `ClientTls` with an identity, or pass an `http_client` whose TLS presents
    /// it.
    TlsClientAuth,
    /// Mutual TLS with a self-signed certificate the client registered with the server
    /// (RFC 8705 section 2.2), for example in its JWKS; otherwise as
    /// [`TlsClientAuth`](Self::TlsClientAuth).
    SelfSignedTlsClientAuth,
}

impl ClientAuth {
    /// The registered name: `client_secret_basic`, `client_secret_post`,
    /// `private_key_jwt`, `none`, `tls_client_auth` or `self_signed_tls_client_auth`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
            ClientAuth::None => "none",
            ClientAuth::TlsClientAuth => "tls_client_auth",
            ClientAuth::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the client authenticates with its TLS client certificate (RFC 8705), so no
    /// secret is sent.
    pub fn is_mutual_tls(&self) -> bool {
        matches!(
            self,
            ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth
        )
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client id, its secret or private key, and how to present them.
#[derive(Clone)]
pub(crate) struct ClientSecret {
    pub(crate) id: String,
    /// Empty with `private_key_jwt` and mutual TLS.
    pub(crate) secret: SecretString,
    pub(crate) method: ClientAuth,
    /// The signing key for `private_key_jwt`.
    #[cfg(feature = "private-key-jwt")]
    pub(crate) key: Option<crate::PrivateKey>,
    /// The `aud` of client assertions; the token endpoint URL when `None`.
    pub(crate) assertion_audience: Option<String>,
}

/// Where the credentials go in one token request.
pub(crate) enum Credentials {
    /// An `Authorization` header value, marked sensitive.
    Header(HeaderValue),
    /// Form fields for the request body.
    Form,
}

impl ClientSecret {
    /// Adds the credentials to a request to one of the server's endpoints: the header value
    /// to send, or the form fields appended to `form`. `token_url` is the default audience
    /// of a client assertion (RFC 7523 section 3 lets it name the token endpoint, and
    /// servers accept it at their other endpoints too). Each secret sent is added to
    /// `redactor`, so an answer that echoes it can be cleaned.
    pub(crate) fn apply(
        &self,
        form: &mut form_urlencoded::Serializer<'_, String>,
        token_url: &str,
        redactor: &mut Redactor,
    ) -> Result<Credentials, tower_bearer::BoxError> {
        match self.method {
            ClientAuth::ClientSecretBasic => {
                let secret = self.secret.expose_secret();
                redactor.basic_credentials(&self.id, secret);
                Ok(Credentials::Header(basic_authorization(&self.id, secret)?))
            }
            ClientAuth::ClientSecretPost => {
                redactor.secret(self.secret.expose_secret());
                form.append_pair("client_id", &self.id);
                form.append_pair("client_secret", self.secret.expose_secret());
                Ok(Credentials::Form)
            }
            ClientAuth::PrivateKeyJwt => self.apply_assertion(form, token_url, redactor),
            ClientAuth::None => {
                if !self.id.is_empty() {
                    form.append_pair("client_id", &self.id);
                }
                Ok(Credentials::Form)
            }
            // RFC 8705 section 2: the certificate authenticates; the id names the client.
            ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth => {
                form.append_pair("client_id", &self.id);
                Ok(Credentials::Form)
            }
        }
    }

    #[cfg(feature = "private-key-jwt")]
    fn apply_assertion(
        &self,
        form: &mut form_urlencoded::Serializer<'_, String>,
        token_url: &str,
        redactor: &mut Redactor,
    ) -> Result<Credentials, tower_bearer::BoxError> {
        let key = self
            .key
            .as_ref()
            .ok_or("private_key_jwt without a private key")?;
        let audience = self.assertion_audience.as_deref().unwrap_or(token_url);
        let assertion = Zeroizing::new(key.assertion(&self.id, audience)?);
        redactor.secret(&assertion);
        form.append_pair("client_id", &self.id);
        form.append_pair(
            "client_assertion_type",
            crate::private_key_jwt::ASSERTION_TYPE,
        );
        form.append_pair("client_assertion", &assertion);
        Ok(Credentials::Form)
    }

    #[cfg(not(feature = "private-key-jwt"))]
    fn apply_assertion(
        &self,
        _form: &mut form_urlencoded::Serializer<'_, String>,
        _token_url: &str,
        _redactor: &mut Redactor,
    ) -> Result<Credentials, tower_bearer::BoxError> {
        Err("private_key_jwt needs the `private-key-jwt` feature".into())
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecret")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .field("method", &self.method)
            .field("assertion_audience", &self.assertion_audience)
            .finish_non_exhaustive()
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

    fn client(id: &str, secret: &str, method: ClientAuth) -> ClientSecret {
        ClientSecret {
            id: id.into(),
            secret: SecretString::from(secret),
            method,
            #[cfg(feature = "private-key-jwt")]
            key: None,
            assertion_audience: None,
        }
    }

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
        let client = client("my client:1", "p@ss:w%rd+ ü", ClientAuth::ClientSecretPost);
        let mut form = form_urlencoded::Serializer::new(String::new());
        assert!(matches!(
            client.apply(
                &mut form,
                "https://auth.example.com/token",
                &mut Redactor::default()
            ),
            Ok(Credentials::Form)
        ));
        assert_eq!(
            form.finish(),
            "client_id=my+client%3A1&client_secret=p%40ss%3Aw%25rd%2B+%C3%BC"
        );
    }

    #[test]
    fn mutual_tls_sends_the_client_id_and_no_secret() {
        for method in [
            ClientAuth::TlsClientAuth,
            ClientAuth::SelfSignedTlsClientAuth,
        ] {
            let client = client("billing", "", method);
            let mut form = form_urlencoded::Serializer::new(String::new());
            assert!(matches!(
                client.apply(
                    &mut form,
                    "https://auth.example.com/token",
                    &mut Redactor::default()
                ),
                Ok(Credentials::Form)
            ));
            assert_eq!(form.finish(), "client_id=billing");
            assert!(method.is_mutual_tls());
        }
        assert_eq!(ClientAuth::TlsClientAuth.as_str(), "tls_client_auth");
        assert_eq!(
            ClientAuth::SelfSignedTlsClientAuth.to_string(),
            "self_signed_tls_client_auth"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let client = client("client", "hunter2", ClientAuth::ClientSecretBasic);
        let printed = format!("{client:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("client"), "{printed}");
    }
}
