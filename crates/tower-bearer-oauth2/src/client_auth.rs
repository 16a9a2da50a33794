//! Client authentication (RFC 6749 section 2.3): who the client is and how it proves it to
//! the authorization server's endpoints.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tower_bearer::dpop::DpopKey;
use zeroize::Zeroizing;

use crate::redact::Redactor;
use crate::BuildError;

/// Who the client is and how it proves it to the authorization server (RFC 6749 section
/// 2.3): a client id and a credential, made together so a client that cannot authenticate
/// cannot be made. Give it to a grant's builder, such as
/// [`ClientCredentials::builder`](crate::ClientCredentials::builder).
///
/// - [`secret_basic`](Self::secret_basic) and [`secret_post`](Self::secret_post): a
///   client secret, in an HTTP Basic header (every server supports it) or in the body;
///   [`secret_auto`](Self::secret_auto) finds out which of the two the server wants.
/// - `private_key_jwt` (feature `private-key-jwt`): a short-lived JWT signed with the
///   client's `PrivateKey` in each request (RFC 7523 section 2.2).
/// - [`tls_client_auth`](Self::tls_client_auth) and
///   [`self_signed_tls_client_auth`](Self::self_signed_tls_client_auth): the TLS client
///   certificate the endpoint's [`HttpClient`](crate::HttpClient) presents (RFC 8705).
/// - [`public`](Self::public): no authentication, for grants that carry their own proof.
///
/// Any of them can also hold a DPoP key ([`dpop`](Self::dpop), RFC 9449): then each token
/// request proves possession of it, and the server binds the tokens it issues to it.
///
/// The secret or key never appears in `Debug` output, errors or logs.
///
/// ```
/// use tower_bearer_oauth2::{AuthMethod, ClientAuth};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = ClientAuth::secret_basic("billing-service", "s3cret")?;
/// assert_eq!(client.client_id(), "billing-service");
/// assert_eq!(client.method(), AuthMethod::ClientSecretBasic);
/// assert!(!format!("{client:?}").contains("s3cret"));
///
/// // An empty secret (an unset environment variable?) is refused here, not at the server.
/// assert!(ClientAuth::secret_basic("billing-service", "").unwrap_err().is_invalid_credentials());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClientAuth {
    id: String,
    credential: Credential,
    /// The key each token request proves possession of (RFC 9449), if any.
    dpop: Option<DpopKey>,
}

/// What proves the client's identity, one per method, so a secret comes only with a secret
/// method and a key only with `private_key_jwt`.
#[derive(Clone)]
enum Credential {
    SecretBasic(SecretString),
    SecretPost(SecretString),
    /// Basic until the server refuses it, then post; what worked first is shared by clones.
    SecretAuto(SecretString, Arc<Detected>),
    #[cfg(feature = "private-key-jwt")]
    PrivateKeyJwt(crate::PrivateKey),
    TlsClientAuth,
    SelfSignedTlsClientAuth,
    None,
}

impl ClientAuth {
    /// `client_secret_basic`: HTTP Basic authentication with the client id and secret (RFC
    /// 6749 section 2.3.1).
    ///
    /// Each of the two is `application/x-www-form-urlencoded` before they are joined with `:`
    /// and base64-encoded, as the RFC requires, so ids and secrets with `:`, `%`, `+`,
    /// spaces or non-ASCII characters work with servers that follow it. Every server must
    /// support this method.
    ///
    /// Fails with [`BuildError::is_invalid_credentials`] when the id or the secret is empty.
    pub fn secret_basic(
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> Result<Self, BuildError> {
        Self::with_secret(
            client_id.into(),
            client_secret.into(),
            Credential::SecretBasic,
        )
    }

    /// `client_secret_post`: the client id and secret as `client_id` and `client_secret` in
    /// the request body (RFC 6749 section 2.3.1). The RFC discourages it; use it when the
    /// server asks for it.
    ///
    /// Fails with [`BuildError::is_invalid_credentials`] when the id or the secret is empty.
    pub fn secret_post(
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> Result<Self, BuildError> {
        Self::with_secret(
            client_id.into(),
            client_secret.into(),
            Credential::SecretPost,
        )
    }

    /// A client secret presented the way the server wants it, found out by trying: Basic
    /// first (RFC 6749 section 2.3.1 requires servers to support it), then, if the server
    /// refuses that request with an `invalid_client` error response of status 400 or 401
    /// (RFC 6749 section 5.2), the same request once more with the secret in the body
    /// (`client_secret_post`). No other answer switches: a 5xx whose body says
    /// `invalid_client` is that fetch's error, and the next request sends Basic again.
    /// Never a method other than these two. Like Go's x/oauth2 `AuthStyleAutoDetect`.
    ///
    /// The first method that gets a token is remembered, by this value and its clones, for
    /// every later request: after post worked, requests send post; after Basic worked, a
    /// refused Basic request is the fetch's error and post is not tried (the server takes
    /// Basic, so the credentials are wrong). Until then nothing is remembered, and each
    /// fetch starts with Basic. Each answer is read for the method its own request sent,
    /// so fetches running together share what one of them learns and none fails for it: a
    /// Basic request refused after another fetch found post is still sent once more with
    /// post.
    ///
    /// The post request is the one extra request, at most once per fetch: it is not
    /// retried by the endpoint's [`RetryPolicy`](crate::RetryPolicy). With a DPoP key (see
    /// [`dpop`](Self::dpop)), each attempt replays at most one request after a
    /// `use_dpop_nonce` answer, whichever method it sent: the post request carries the
    /// latest nonce, and is replayed only if the Basic request of its attempt was not. So
    /// one fetch sends the secret at most `max_attempts + 1` times, or
    /// `2 × max_attempts + 1` times with a DPoP key: one more than
    /// [`secret_basic`](Self::secret_basic) at most, `max_attempts` and
    /// `2 × max_attempts`.
    ///
    /// Fails with [`BuildError::is_invalid_credentials`] when the id or the secret is empty.
    pub fn secret_auto(
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> Result<Self, BuildError> {
        Self::with_secret(client_id.into(), client_secret.into(), |secret| {
            Credential::SecretAuto(secret, Arc::new(Detected::default()))
        })
    }

    /// A client id and secret, neither empty, presented as `method` says.
    fn with_secret(
        id: String,
        secret: SecretString,
        method: impl FnOnce(SecretString) -> Credential,
    ) -> Result<Self, BuildError> {
        let id = non_empty(id)?;
        if secret.expose_secret().is_empty() {
            return Err(BuildError::invalid_credentials(format!(
                "the client secret of client `{id}` is empty; check where it is read from (an \
                 unset environment variable?)"
            )));
        }
        Ok(ClientAuth {
            id,
            credential: method(secret),
            dpop: None,
        })
    }

    /// `private_key_jwt` (RFC 7523 section 2.2): each request carries a fresh assertion
    /// signed with `key` (`iss` = `sub` = the client id, a random `jti`, one minute of
    /// validity), whose `aud` is the token URL unless the endpoint's
    /// [`assertion_audience`](crate::EndpointBuilder::assertion_audience) says otherwise.
    ///
    /// Fails with [`BuildError::is_invalid_credentials`] when the id is empty.
    #[cfg(feature = "private-key-jwt")]
    pub fn private_key_jwt(
        client_id: impl Into<String>,
        key: crate::PrivateKey,
    ) -> Result<Self, BuildError> {
        Ok(ClientAuth {
            id: non_empty(client_id.into())?,
            credential: Credential::PrivateKeyJwt(key),
            dpop: None,
        })
    }

    /// `tls_client_auth` (RFC 8705 section 2.1): mutual TLS with a certificate from a PKI
    /// the server trusts. The request carries only `client_id`, and the server matches the
    /// TLS client certificate to the subject it registered for the client.
    ///
    /// The endpoint's [`HttpClient`](crate::HttpClient) presents the certificate: the
    /// default one made [`with_tls`](crate::HttpClient::with_tls) and an identity, or your
    /// own. A grant built with this and a default client without an identity fails with
    /// [`BuildError::is_invalid_tls`]. With server metadata, the server's
    /// `mtls_endpoint_aliases` are used (RFC 8705 section 5).
    ///
    /// Fails with [`BuildError::is_invalid_credentials`] when the id is empty.
    pub fn tls_client_auth(client_id: impl Into<String>) -> Result<Self, BuildError> {
        Ok(ClientAuth {
            id: non_empty(client_id.into())?,
            credential: Credential::TlsClientAuth,
            dpop: None,
        })
    }

    /// `self_signed_tls_client_auth` (RFC 8705 section 2.2): mutual TLS with a self-signed
    /// certificate the client registered with the server, for example in its JWKS;
    /// otherwise as [`tls_client_auth`](Self::tls_client_auth).
    ///
    /// Fails with [`BuildError::is_invalid_credentials`] when the id is empty.
    pub fn self_signed_tls_client_auth(client_id: impl Into<String>) -> Result<Self, BuildError> {
        Ok(ClientAuth {
            id: non_empty(client_id.into())?,
            credential: Credential::SelfSignedTlsClientAuth,
            dpop: None,
        })
    }

    /// No client authentication: a public client (RFC 6749 section 2.1), which sends only
    /// its `client_id`, unless that is empty. For grants that carry their own proof, such as
    /// token exchange (RFC 8693) with servers that trust the subject token alone.
    pub fn public(client_id: impl Into<String>) -> Self {
        ClientAuth {
            id: client_id.into(),
            credential: Credential::None,
            dpop: None,
        }
    }

    /// The same client, proving possession of `key` with every token request (DPoP, RFC
    /// 9449): each request to the token endpoint, of every grant made with this client,
    /// carries a `DPoP` proof signed with `key` (`htm` `POST`, `htu` the token URL, and the
    /// server's latest nonce for that origin, if it sent one), and the server binds the
    /// tokens it issues to the key's [thumbprint](DpopKey::thumbprint). Such a token is
    /// a [`TokenType::DPoP`](tower_bearer::TokenType::DPoP) token that carries the key, so
    /// `tower-bearer`'s auth layer sends a proof with each request that uses it.
    ///
    /// A server that wants a nonce (RFC 9449 section 8) answers `use_dpop_nonce` with one
    /// in `DPoP-Nonce`; the request is then sent once more with a proof that carries it,
    /// outside the endpoint's [`RetryPolicy`](crate::RetryPolicy). The nonce in every token
    /// endpoint response is kept, for every clone of the key. A server that answers a
    /// proof with a `Bearer` token is an error (RFC 9449 section 5), never a silent
    /// downgrade: see [`EndpointError::is_dpop_downgrade`](crate::EndpointError::is_dpop_downgrade).
    ///
    /// Keep the key as long as its tokens: a refresh token bound to it works with no other
    /// key. Replaces a key given before.
    ///
    /// ```
    /// use tower_bearer::dpop::DpopKey;
    /// use tower_bearer_oauth2::ClientAuth;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let key = DpopKey::generate_es256()?;
    /// let client = ClientAuth::secret_basic("billing-service", "s3cret")?.dpop(key.clone());
    /// assert_eq!(client.dpop_key().map(DpopKey::thumbprint), Some(key.thumbprint()));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn dpop(mut self, key: DpopKey) -> ClientAuth {
        self.dpop = Some(key);
        self
    }

    /// The DPoP key token requests prove possession of, if one was given with
    /// [`dpop`](Self::dpop).
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.dpop.as_ref()
    }

    /// The client id (empty for a public client given none).
    pub fn client_id(&self) -> &str {
        &self.id
    }

    /// The client authentication method; for [`secret_auto`](Self::secret_auto), the one
    /// its next request uses.
    pub fn method(&self) -> AuthMethod {
        match &self.credential {
            Credential::SecretBasic(_) => AuthMethod::ClientSecretBasic,
            Credential::SecretPost(_) => AuthMethod::ClientSecretPost,
            Credential::SecretAuto(_, detected) => detected.method(),
            #[cfg(feature = "private-key-jwt")]
            Credential::PrivateKeyJwt(_) => AuthMethod::PrivateKeyJwt,
            Credential::TlsClientAuth => AuthMethod::TlsClientAuth,
            Credential::SelfSignedTlsClientAuth => AuthMethod::SelfSignedTlsClientAuth,
            Credential::None => AuthMethod::None,
        }
    }

    /// Adds the credentials to a request to one of the server's endpoints: the header value
    /// to send, or the form fields appended to `form`. `assertion_audience` is the `aud` of
    /// a client assertion (RFC 7523 section 3 lets it name the token endpoint, and servers
    /// accept it at their other endpoints too). Each secret sent is added to `redactor`, so
    /// an answer that echoes it can be cleaned.
    pub(crate) fn apply(
        &self,
        form: &mut form_urlencoded::Serializer<'_, String>,
        assertion_audience: &str,
        redactor: &mut Redactor,
    ) -> Result<Placement, tower_bearer::BoxError> {
        match &self.credential {
            Credential::SecretBasic(secret) => self.apply_basic(secret, redactor),
            Credential::SecretPost(secret) => Ok(self.apply_post(secret, form, redactor)),
            Credential::SecretAuto(secret, detected) => match detected.method() {
                AuthMethod::ClientSecretPost => Ok(self.apply_post(secret, form, redactor)),
                _ => self.apply_basic(secret, redactor),
            },
            #[cfg(feature = "private-key-jwt")]
            Credential::PrivateKeyJwt(key) => {
                let assertion = Zeroizing::new(key.assertion(&self.id, assertion_audience)?);
                redactor.secret(&assertion);
                form.append_pair("client_id", &self.id);
                form.append_pair(
                    "client_assertion_type",
                    crate::private_key_jwt::ASSERTION_TYPE,
                );
                form.append_pair("client_assertion", &assertion);
                Ok(Placement::Form)
            }
            Credential::None => {
                if !self.id.is_empty() {
                    form.append_pair("client_id", &self.id);
                }
                Ok(Placement::Form)
            }
            // RFC 8705 section 2: the certificate authenticates; the id names the client.
            Credential::TlsClientAuth | Credential::SelfSignedTlsClientAuth => {
                let _ = assertion_audience;
                form.append_pair("client_id", &self.id);
                Ok(Placement::Form)
            }
        }
    }
}

impl ClientAuth {
    fn apply_basic(
        &self,
        secret: &SecretString,
        redactor: &mut Redactor,
    ) -> Result<Placement, tower_bearer::BoxError> {
        let secret = secret.expose_secret();
        redactor.basic_credentials(&self.id, secret);
        Ok(Placement::Header(basic_authorization(&self.id, secret)?))
    }

    fn apply_post(
        &self,
        secret: &SecretString,
        form: &mut form_urlencoded::Serializer<'_, String>,
        redactor: &mut Redactor,
    ) -> Placement {
        redactor.secret(secret.expose_secret());
        form.append_pair("client_id", &self.id);
        form.append_pair("client_secret", secret.expose_secret());
        Placement::Form
    }

    /// The client as the next request presents it: for [`secret_auto`](Self::secret_auto),
    /// a `secret_basic` or `secret_post` client as known now, so the request is answered
    /// for the method it used whatever another request learns meanwhile; any other client
    /// as it is.
    pub(crate) fn as_sent(&self) -> Cow<'_, ClientAuth> {
        match &self.credential {
            Credential::SecretAuto(secret, detected) => Cow::Owned(match detected.method() {
                AuthMethod::ClientSecretPost => {
                    self.with_credential(Credential::SecretPost(secret.clone()))
                }
                _ => self.with_credential(Credential::SecretBasic(secret.clone())),
            }),
            _ => Cow::Borrowed(self),
        }
    }

    /// For [`secret_auto`](Self::secret_auto): the client to send a request as once more
    /// after the server refused it as `sent` with `invalid_client`: with post, if that
    /// request used Basic and Basic has not worked for this client before.
    pub(crate) fn fallback_after(&self, sent: AuthMethod) -> Option<ClientAuth> {
        match &self.credential {
            Credential::SecretAuto(secret, detected)
                if sent == AuthMethod::ClientSecretBasic && !detected.is_basic() =>
            {
                Some(self.with_credential(Credential::SecretPost(secret.clone())))
            }
            _ => None,
        }
    }

    /// For [`secret_auto`](Self::secret_auto): a request sent with `method` got a token.
    /// The first method that works is kept for good.
    pub(crate) fn worked(&self, method: AuthMethod) {
        if let Credential::SecretAuto(_, detected) = &self.credential {
            if detected.learn(method) {
                tracing::debug!(
                    client_id = %self.id,
                    method = method.as_str(),
                    "found the client authentication method the server accepts"
                );
            }
        }
    }

    /// The same client id and DPoP key with another credential.
    fn with_credential(&self, credential: Credential) -> ClientAuth {
        ClientAuth {
            id: self.id.clone(),
            credential,
            dpop: self.dpop.clone(),
        }
    }
}

/// What [`ClientAuth::secret_auto`] found out: nothing yet, Basic, or post. Set once: the
/// first method that works.
#[derive(Debug, Default)]
struct Detected(AtomicU8);

impl Detected {
    const UNKNOWN: u8 = 0;
    const BASIC: u8 = 1;
    const POST: u8 = 2;

    fn method(&self) -> AuthMethod {
        match self.0.load(Ordering::Acquire) {
            Self::POST => AuthMethod::ClientSecretPost,
            _ => AuthMethod::ClientSecretBasic,
        }
    }

    fn is_known(&self) -> bool {
        self.0.load(Ordering::Acquire) != Self::UNKNOWN
    }

    fn is_basic(&self) -> bool {
        self.0.load(Ordering::Acquire) == Self::BASIC
    }

    /// Keeps `method` unless one is known already; whether this call set it.
    fn learn(&self, method: AuthMethod) -> bool {
        let value = match method {
            AuthMethod::ClientSecretPost => Self::POST,
            _ => Self::BASIC,
        };
        self.0
            .compare_exchange(Self::UNKNOWN, value, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ClientAuth");
        debug
            .field("client_id", &self.id)
            .field("method", &self.method());
        match &self.credential {
            Credential::SecretBasic(_) | Credential::SecretPost(_) => {
                debug.field("client_secret", &"[redacted]");
            }
            Credential::SecretAuto(_, detected) => {
                debug
                    .field("client_secret", &"[redacted]")
                    .field("detected", &detected.is_known());
            }
            #[cfg(feature = "private-key-jwt")]
            Credential::PrivateKeyJwt(key) => {
                debug.field("key", key);
            }
            Credential::TlsClientAuth | Credential::SelfSignedTlsClientAuth | Credential::None => {}
        }
        if let Some(key) = &self.dpop {
            debug.field("dpop", key);
        }
        debug.finish()
    }
}

/// A client id that is not empty, for the methods that authenticate.
fn non_empty(id: String) -> Result<String, BuildError> {
    if id.is_empty() {
        return Err(BuildError::invalid_credentials(
            "the client id is empty; pass the id the authorization server registered".to_owned(),
        ));
    }
    Ok(id)
}

/// The client authentication method, named as in the OAuth dynamic client registration
/// metadata (RFC 7591 section 2, `token_endpoint_auth_method`): what
/// [`ClientAuth::method`] says, and what
/// [`AuthServerMetadata::preferred_client_auth`](crate::AuthServerMetadata::preferred_client_auth)
/// picks.
///
/// ```
/// use tower_bearer_oauth2::AuthMethod;
///
/// assert_eq!(AuthMethod::ClientSecretPost.as_str(), "client_secret_post");
/// assert!(AuthMethod::TlsClientAuth.is_mutual_tls());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `client_secret_basic`; see [`ClientAuth::secret_basic`].
    ClientSecretBasic,
    /// `client_secret_post`; see [`ClientAuth::secret_post`].
    ClientSecretPost,
    /// `private_key_jwt` (RFC 7523 section 2.2); see `ClientAuth::private_key_jwt`.
    PrivateKeyJwt,
    /// `none`: a public client; see [`ClientAuth::public`].
    None,
    /// `tls_client_auth` (RFC 8705 section 2.1); see [`ClientAuth::tls_client_auth`].
    TlsClientAuth,
    /// `self_signed_tls_client_auth` (RFC 8705 section 2.2); see
    /// [`ClientAuth::self_signed_tls_client_auth`].
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    /// The registered name: `client_secret_basic`, `client_secret_post`,
    /// `private_key_jwt`, `none`, `tls_client_auth` or `self_signed_tls_client_auth`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the client authenticates with its TLS client certificate (RFC 8705), so no
    /// secret is sent.
    pub fn is_mutual_tls(&self) -> bool {
        matches!(
            self,
            AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth
        )
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the client's credentials go in one request.
pub(crate) enum Placement {
    /// An `Authorization` header value, marked sensitive.
    Header(HeaderValue),
    /// Form fields, already in the request body.
    Form,
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

    const AUDIENCE: &str = "https://auth.example.com/token";

    /// The form `client` adds to a request, when it adds no header.
    fn form_of(client: &ClientAuth) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        let placement = client.apply(&mut form, AUDIENCE, &mut Redactor::default());
        assert!(matches!(placement, Ok(Placement::Form)));
        form.finish()
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
        let client = ClientAuth::secret_post("my client:1", "p@ss:w%rd+ ü").unwrap();
        assert_eq!(
            form_of(&client),
            "client_id=my+client%3A1&client_secret=p%40ss%3Aw%25rd%2B+%C3%BC"
        );
    }

    #[test]
    fn mutual_tls_sends_the_client_id_and_no_secret() {
        for client in [
            ClientAuth::tls_client_auth("billing").unwrap(),
            ClientAuth::self_signed_tls_client_auth("billing").unwrap(),
        ] {
            assert_eq!(form_of(&client), "client_id=billing");
            assert!(client.method().is_mutual_tls());
        }
        assert_eq!(AuthMethod::TlsClientAuth.as_str(), "tls_client_auth");
        assert_eq!(
            AuthMethod::SelfSignedTlsClientAuth.to_string(),
            "self_signed_tls_client_auth"
        );
    }

    #[test]
    fn a_public_client_sends_its_id_if_it_has_one() {
        assert_eq!(form_of(&ClientAuth::public("app")), "client_id=app");
        assert_eq!(form_of(&ClientAuth::public("")), "");
        assert_eq!(ClientAuth::public("app").method(), AuthMethod::None);
    }

    #[test]
    fn a_client_that_cannot_authenticate_cannot_be_made() {
        assert!(ClientAuth::secret_basic("", "secret")
            .unwrap_err()
            .is_invalid_credentials());
        let error = ClientAuth::secret_post("id", "").unwrap_err();
        assert!(error.is_invalid_credentials());
        assert!(error.to_string().contains("secret"), "{error}");
        assert!(ClientAuth::tls_client_auth("")
            .unwrap_err()
            .is_invalid_credentials());
        assert!(ClientAuth::self_signed_tls_client_auth("")
            .unwrap_err()
            .is_invalid_credentials());
    }

    #[test]
    fn secret_auto_falls_back_by_the_method_sent_and_keeps_the_first_that_worked() {
        let client = ClientAuth::secret_auto("billing", "s3cret").unwrap();
        let sent = client.as_sent().into_owned();
        assert_eq!(sent.method(), AuthMethod::ClientSecretBasic);
        // Between sending Basic and reading its refusal, a clone learns post: the request
        // that sent Basic still gets its one try with post.
        client.clone().worked(AuthMethod::ClientSecretPost);
        let post = client.fallback_after(sent.method()).expect("post to try");
        assert_eq!(form_of(&post), "client_id=billing&client_secret=s3cret");
        assert!(client
            .fallback_after(AuthMethod::ClientSecretPost)
            .is_none());
        assert_eq!(client.as_sent().method(), AuthMethod::ClientSecretPost);
        // A Basic request that worked late changes nothing: the first to work is kept.
        client.worked(AuthMethod::ClientSecretBasic);
        assert_eq!(client.method(), AuthMethod::ClientSecretPost);

        // Once Basic has worked, a refused Basic request is wrong credentials: no post.
        let client = ClientAuth::secret_auto("billing", "s3cret").unwrap();
        client.worked(AuthMethod::ClientSecretBasic);
        assert!(client
            .fallback_after(AuthMethod::ClientSecretBasic)
            .is_none());
        // Other clients never fall back, and are sent as they are.
        let basic = ClientAuth::secret_basic("billing", "s3cret").unwrap();
        assert!(basic
            .fallback_after(AuthMethod::ClientSecretBasic)
            .is_none());
        assert!(matches!(basic.as_sent(), Cow::Borrowed(_)));
    }

    #[test]
    fn debug_hides_the_secret() {
        let client = ClientAuth::secret_basic("client", "hunter2").unwrap();
        let printed = format!("{client:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("client"), "{printed}");
        assert!(printed.contains("ClientSecretBasic"), "{printed}");
    }
}
