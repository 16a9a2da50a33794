//! The JWT bearer grant (RFC 7523 section 2.1): a signed JWT, the assertion, is the grant
//! itself, as with Google service accounts or Salesforce's server-to-server flow.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "private-key-jwt")]
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tower_bearer::source::TokenFuture;
use tower_bearer::{FetchError, Token, TokenSource};

use crate::response::TokenResponseRules;
use crate::token_request::{Grant, TokenEndpoint};
use crate::{BuildError, ClientAuth, Endpoint, RetryPolicy, TokenParams};

/// The `grant_type` of the JWT bearer grant (RFC 7523 section 2.1).
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The form parameter this grant sets itself, and what to do instead of setting it.
const GRANT_PARAMS: &[&str] = &["assertion"];
const ADVICE: &str = "give the assertion to the builder";

/// Claims the signed assertion sets itself, which [`JwtBearerBuilder::claim`] may not set.
#[cfg(feature = "private-key-jwt")]
const REGISTERED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "iat", "jti"];

/// The default lifetime of an assertion this crate signs: the same minute as client
/// assertions, as each fetch signs a fresh one.
#[cfg(feature = "private-key-jwt")]
const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

type AssertionFuture = Pin<Box<dyn Future<Output = Result<SecretString, FetchError>> + Send>>;

/// A [`TokenSource`] for the JWT bearer grant (RFC 7523 section 2.1).
///
/// Each [`fetch`](TokenSource::fetch) gets a fresh assertion and makes a `POST` to the
/// token endpoint with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
/// `assertion`, the scope and extra parameters. The assertion is either
///
/// - signed here with a `PrivateKey` (RS256 or ES256), from
///   `JwtBearer::builder`: `iss` and `sub` as given, `aud` the token URL unless
///   `audience` says otherwise, `iat` now, `exp` a minute
///   later (`assertion_lifetime`), a random `jti`,
///   and any extra `claim`s (RFC 7523 section 3); or
/// - made by your closure, from [`JwtBearer::builder_with_assertion`], for keys held in a
///   KMS or an HSM.
///
/// Client authentication is optional with this grant (section 3.1) and off by default: many
/// servers take the assertion alone. For those that want it,
/// [`client_auth`](JwtBearerBuilder::client_auth) adds it.
///
/// Errors and retries work as in [`ClientCredentials`](crate::ClientCredentials);
/// `invalid_grant` (the server does not accept the assertion) is permanent. The assertion
/// never appears in `Debug`, errors or logs.
///
/// ```
/// use tower_bearer::TokenCache;
/// use tower_bearer_oauth2::{Endpoint, JwtBearer, PrivateKey, TokenParams};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let test_key = tower_bearer_testkit::TestKey::rs256();
/// # let auth = tower_bearer_testkit::AuthServer::builder()
/// #     .jwt_bearer_issuer("reporting@example.iam", &test_key)
/// #     .start()
/// #     .await?;
/// # let dir = std::env::temp_dir().join(format!("tower-bearer-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # std::fs::write(dir.join("sa-key.pem"), test_key.pkcs8_pem())?;
/// let key_path = "/run/secrets/sa-key.pem";
/// let token_url = "https://auth.example.com/oauth2/token";
/// # let (key_path, token_url) = (dir.join("sa-key.pem"), auth.token_url());
/// let key = PrivateKey::rs256_from_pem(&std::fs::read_to_string(key_path)?)?;
/// let endpoint = Endpoint::builder(token_url).build()?;
/// let source = JwtBearer::builder(endpoint, key, "reporting@example.iam", "reporting@example.iam")
///     .params(TokenParams::new().scope("reports.read"))
/// .build()?;
/// let cache = TokenCache::new(source);
/// # cache.token().await?;
/// # assert_eq!(auth.tokens_issued(), 1);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct JwtBearer {
    inner: Arc<Inner>,
}

struct Inner {
    assertion: Assertion,
    params: TokenParams,
    endpoint: TokenEndpoint,
}

/// Where each fetch's assertion comes from.
#[derive(Clone)]
enum Assertion {
    #[cfg(feature = "private-key-jwt")]
    Signed(SignedAssertion),
    Custom(Arc<dyn Fn() -> AssertionFuture + Send + Sync>),
}

/// An assertion this crate signs.
#[cfg(feature = "private-key-jwt")]
#[derive(Clone)]
struct SignedAssertion {
    key: crate::PrivateKey,
    issuer: String,
    subject: String,
    /// The token URL when `None`.
    audience: Option<String>,
    lifetime: Duration,
    claims: serde_json::Map<String, serde_json::Value>,
}

impl JwtBearer {
    /// Starts building a source whose assertions are signed with `key`, with `iss` =
    /// `issuer` and `sub` = `subject` (for a service account, usually both its id).
    ///
    /// Nothing is checked until [`build`](JwtBearerBuilder::build).
    #[cfg(feature = "private-key-jwt")]
    pub fn builder(
        endpoint: Endpoint,
        key: crate::PrivateKey,
        issuer: impl Into<String>,
        subject: impl Into<String>,
    ) -> JwtBearerBuilder {
        JwtBearerBuilder::new(
            endpoint,
            Assertion::Signed(SignedAssertion {
                key,
                issuer: issuer.into(),
                subject: subject.into(),
                audience: None,
                lifetime: DEFAULT_ASSERTION_LIFETIME,
                claims: serde_json::Map::new(),
            }),
        )
    }

    /// Starts building a source whose assertion comes from `assertion`, called once per
    /// fetch: sign the JWT there with a key this crate cannot hold. Return a
    /// [`FetchError`], transient or permanent, when you cannot.
    ///
    /// ```
    /// use secrecy::SecretString;
    /// use tower_bearer_oauth2::{Endpoint, JwtBearer};
    ///
    /// # fn sign_with_kms() -> String { String::new() }
    /// # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let endpoint = Endpoint::builder("https://auth.example.com/token").build()?;
    /// let source = JwtBearer::builder_with_assertion(endpoint, || async {
    ///     Ok(SecretString::from(sign_with_kms()))
    /// })
    /// .build()?;
    /// # let _ = source;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder_with_assertion<F, Fut>(endpoint: Endpoint, assertion: F) -> JwtBearerBuilder
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<SecretString, FetchError>> + Send + 'static,
    {
        JwtBearerBuilder::new(
            endpoint,
            Assertion::Custom(Arc::new(move || Box::pin(assertion()) as AssertionFuture)),
        )
    }

    /// The token endpoint URL this source sends to: the endpoint's, or its mutual-TLS alias
    /// when the client uses mutual TLS.
    pub fn token_url(&self) -> &http::Uri {
        self.inner.endpoint.url.uri()
    }

    /// Who the source authenticates as, and how: a public client without an id unless
    /// [`client_auth`](JwtBearerBuilder::client_auth) said otherwise.
    pub fn client_auth(&self) -> &ClientAuth {
        &self.inner.endpoint.client
    }

    async fn request(&self) -> Result<Token, FetchError> {
        let inner = &*self.inner;
        let assertion = self.assertion().await?;
        inner
            .endpoint
            .request(Grant {
                grant_type: GRANT_TYPE,
                secret_params: &[("assertion", assertion.expose_secret())],
                params: &inner.params,
                response: TokenResponseRules::Standard,
            })
            .await
    }

    async fn assertion(&self) -> Result<SecretString, FetchError> {
        let url = &self.inner.endpoint.url;
        match &self.inner.assertion {
            #[cfg(feature = "private-key-jwt")]
            Assertion::Signed(signed) => {
                let audience = url.to_string();
                let claims = crate::private_key_jwt::AssertionClaims {
                    issuer: &signed.issuer,
                    subject: &signed.subject,
                    audience: signed.audience.as_deref().unwrap_or(&audience),
                    lifetime: signed.lifetime,
                    extra: Some(&signed.claims),
                };
                signed
                    .key
                    .sign_claims(&claims)
                    .map(SecretString::from)
                    .map_err(|error| {
                        FetchError::transient(format!(
                            "cannot sign the JWT bearer assertion for {url}; it will be tried \
                             again after a backoff"
                        ))
                        .with_source(error)
                    })
            }
            Assertion::Custom(make) => make().await.map_err(|error| {
                // The cause's message is the source's to print.
                let message = format!(
                    "cannot get the JWT bearer assertion for {url}; the assertion callback \
                     failed"
                );
                if error.is_transient() {
                    FetchError::transient(message).with_source(error)
                } else {
                    FetchError::permanent(message).with_source(error)
                }
            }),
        }
    }
}

impl TokenSource for JwtBearer {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.request())
    }
}

impl fmt::Debug for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "private-key-jwt")]
            Assertion::Signed(signed) => f
                .debug_struct("Signed")
                .field("key", &signed.key)
                .field("issuer", &signed.issuer)
                .field("subject", &signed.subject)
                .field("audience", &signed.audience)
                .field("lifetime", &signed.lifetime)
                .field("claims", &signed.claims.keys().collect::<Vec<_>>())
                .finish(),
            Assertion::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl fmt::Debug for JwtBearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("JwtBearer")
            .field("endpoint", &inner.endpoint)
            .field("assertion", &inner.assertion)
            .field("params", &inner.params)
            .finish()
    }
}

/// Builds a [`JwtBearer`]; see `JwtBearer::builder` and
/// [`JwtBearer::builder_with_assertion`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct JwtBearerBuilder {
    endpoint: Endpoint,
    client: ClientAuth,
    assertion: Assertion,
    params: TokenParams,
}

impl JwtBearerBuilder {
    fn new(endpoint: Endpoint, assertion: Assertion) -> Self {
        JwtBearerBuilder {
            endpoint,
            client: ClientAuth::public(""),
            assertion,
            params: TokenParams::new(),
        }
    }

    /// Authenticates the client besides the assertion (default: no client authentication
    /// and no `client_id`). RFC 7523 section 3.1 allows any method; some servers require
    /// one, such as [`ClientAuth::secret_basic`], or [`ClientAuth::public`] for servers that
    /// want to know the client but not authenticate it. For DPoP-bound tokens without
    /// client authentication, give a public client the key:
    /// `ClientAuth::public("").dpop(key)` sends no `client_id` and a proof with each request.
    pub fn client_auth(mut self, client: ClientAuth) -> Self {
        self.client = client;
        self
    }

    /// The `aud` claim of the assertions this crate signs (default: the token URL). Some
    /// servers want their issuer identifier. No effect with
    /// [`builder_with_assertion`](JwtBearer::builder_with_assertion).
    #[cfg(feature = "private-key-jwt")]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        if let Assertion::Signed(signed) = &mut self.assertion {
            signed.audience = Some(audience.into());
        }
        self
    }

    /// How long the assertions this crate signs are valid, `exp` - `iat` (default one
    /// minute). Keep it short: servers cap it (Google at one hour), and a leaked assertion
    /// works until it expires.
    #[cfg(feature = "private-key-jwt")]
    pub fn assertion_lifetime(mut self, lifetime: Duration) -> Self {
        if let Assertion::Signed(signed) = &mut self.assertion {
            signed.lifetime = lifetime;
        }
        self
    }

    /// A further claim in the assertions this crate signs, such as Google's `scope` or a
    /// tenant id. `iss`, `sub`, `aud`, `exp`, `iat` and `jti` are refused by
    /// [`build`](Self::build). Replaces an earlier claim of the same name.
    #[cfg(feature = "private-key-jwt")]
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        if let Assertion::Signed(signed) = &mut self.assertion {
            signed.claims.insert(name.into(), value.into());
        }
        self
    }

    /// The scope and extra parameters to request (RFC 7523 section 2.1; default: none).
    /// Replaces those set before.
    pub fn params(mut self, params: TokenParams) -> Self {
        self.params = params;
        self
    }

    /// Checks the configuration and builds the source.
    ///
    /// Fails for the same reasons as
    /// [`ClientCredentialsBuilder::build`](crate::ClientCredentialsBuilder::build), if a
    /// signed assertion has an empty `iss` or `sub`, a zero lifetime or a registered claim
    /// set with `claim`, or if an `assertion` parameter was added.
    pub fn build(self) -> Result<JwtBearer, BuildError> {
        #[cfg(feature = "private-key-jwt")]
        if let Assertion::Signed(signed) = &self.assertion {
            check_signed(signed)?;
        }
        Ok(JwtBearer {
            inner: Arc::new(Inner {
                params: self.params.check(GRANT_PARAMS, ADVICE)?,
                endpoint: TokenEndpoint::new(self.endpoint, self.client, RetryPolicy::new())?,
                assertion: self.assertion,
            }),
        })
    }
}

#[cfg(feature = "private-key-jwt")]
fn check_signed(signed: &SignedAssertion) -> Result<(), BuildError> {
    if signed.issuer.is_empty() || signed.subject.is_empty() {
        return Err(BuildError::invalid_parameter(
            "the JWT bearer assertion needs a non-empty `iss` and `sub` (RFC 7523 section 3); \
             pass both to `JwtBearer::builder`"
                .to_owned(),
        ));
    }
    if signed.lifetime.as_secs() == 0 {
        return Err(BuildError::invalid_parameter(
            "the assertion lifetime is under one second, so every assertion would be expired \
             when it arrives; give `assertion_lifetime` a minute or so"
                .to_owned(),
        ));
    }
    if let Some(name) = signed
        .claims
        .keys()
        .find(|name| REGISTERED_CLAIMS.contains(&name.as_str()))
    {
        return Err(BuildError::invalid_parameter(format!(
            "the claim `{name}` is set by tower-bearer-oauth2 itself; pass `iss` and `sub` to \
             `JwtBearer::builder` and `aud` to `audience`"
        )));
    }
    Ok(())
}

impl fmt::Debug for JwtBearerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBearerBuilder")
            .field("endpoint", &self.endpoint)
            .field("client", &self.client)
            .field("assertion", &self.assertion)
            .field("params", &self.params)
            .finish()
    }
}
