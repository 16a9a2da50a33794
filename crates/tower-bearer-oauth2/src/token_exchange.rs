//! OAuth 2.0 token exchange (RFC 8693): trading a token the workload already has (a
//! Kubernetes service account token, a user's access token) for one another API accepts.

use std::fmt;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tower_bearer::source::TokenFuture;
use tower_bearer::{FetchError, Token, TokenSource};

use crate::response::TokenResponseRules;
use crate::token_request::{Grant, TokenEndpoint};
use crate::{BuildError, ClientAuth, Endpoint, RetryPolicy, TokenParams};

/// The `grant_type` of a token exchange (RFC 8693 section 2.1).
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Parameters [`TokenExchangeBuilder`] sets itself, which `param` may not override.
const EXCHANGE_PARAMS: &[&str] = &[
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
];

/// The token type identifiers of RFC 8693 section 3, for `subject_token_type`,
/// `actor_token_type` and `requested_token_type`.
pub mod token_type {
    /// An OAuth 2.0 access token.
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    /// An OAuth 2.0 refresh token.
    pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
    /// An OpenID Connect ID Token.
    pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
    /// A base64url-encoded SAML 1.1 assertion.
    pub const SAML1: &str = "urn:ietf:params:oauth:token-type:saml1";
    /// A base64url-encoded SAML 2.0 assertion.
    pub const SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";
    /// A JWT (RFC 7519), such as a Kubernetes projected service account token.
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
}

/// A [`TokenSource`] for OAuth 2.0 token exchange (RFC 8693).
///
/// Each [`fetch`](TokenSource::fetch) first fetches the subject token from the
/// [`TokenSource`] it was given (and the actor token, if any), fresh each time, so a
/// [`FileToken`](tower_bearer::source::FileToken) over a rotating Kubernetes projected token always
/// sends the current one. It then makes a `POST` to the token endpoint with
/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, `subject_token`,
/// `subject_token_type`, the optional `actor_token`, `actor_token_type`,
/// `requested_token_type`, and the [`TokenParams`] (`audience`s, `resource`s and `scope`,
/// section 2.1), with the client's credentials, and returns the issued token.
///
/// The response must carry `issued_token_type` (section 2.2.1). A `token_type` of `N_A`
/// (the issued token is not an OAuth access token) is accepted only when the issued token
/// is an access token or a JWT, which can be sent as `Bearer`; anything else fails with a
/// permanent error that says to ask for an access token with
/// [`requested_token_type`](TokenExchangeBuilder::requested_token_type).
///
/// Errors, retries and client authentication work as in
/// [`ClientCredentials`](crate::ClientCredentials); `invalid_grant` (the subject token is
/// expired or not trusted) and `invalid_target` (the audience or resource is refused) are
/// permanent. A public client passes [`ClientAuth::public`]: RFC 8693 makes client
/// authentication optional, and some servers trust the subject token alone. The subject and
/// actor tokens never appear in `Debug`, errors or logs.
///
/// ```
/// use tower_bearer::source::FileToken;
/// use tower_bearer::TokenCache;
/// use tower_bearer_oauth2::{token_type, ClientAuth, Endpoint, TokenExchange, TokenParams};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let auth = tower_bearer_testkit::AuthServer::builder()
/// #     .client("payments-workload", "s3cret")
/// #     .subject_token("sa-token-1")
/// #     .start()
/// #     .await?;
/// # std::env::set_var("CLIENT_SECRET", "s3cret");
/// # let dir = std::env::temp_dir().join(format!("tower-bearer-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # std::fs::write(dir.join("sa-token"), "sa-token-1")?;
/// let token_url = "https://auth.example.com/oauth2/token";
/// let subject_path = "/var/run/secrets/tokens/sa-token";
/// # let (token_url, subject_path) = (auth.token_url(), dir.join("sa-token"));
/// let endpoint = Endpoint::builder(token_url).build()?;
/// let client = ClientAuth::secret_basic("payments-workload", std::env::var("CLIENT_SECRET")?)?;
/// let source = TokenExchange::builder(
///     endpoint,
///     client,
///     FileToken::new(subject_path),
///     token_type::JWT,
/// )
/// .params(TokenParams::new().audience("https://ledger.example.com"))
/// .requested_token_type(token_type::ACCESS_TOKEN)
/// .build()?;
/// let cache = TokenCache::new(source);
/// # cache.token().await?;
/// # assert_eq!(auth.last_request().unwrap().param("subject_token"), Some("sa-token-1"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
///
/// A closure works as the subject too, through [`tower_bearer::source::from_fn`].
#[derive(Clone)]
pub struct TokenExchange {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where each exchange gets its subject token.
    subject: Arc<dyn TokenSource>,
    /// The scope, then the token type parameters, audiences, resources and extra
    /// parameters, in order.
    params: TokenParams,
    /// Where each exchange gets its actor token, if it has one.
    actor: Option<Arc<dyn TokenSource>>,
    endpoint: TokenEndpoint,
}

impl TokenExchange {
    /// Starts building a source that asks `endpoint` as `client` to exchange the token
    /// `subject` gives, of type `subject_token_type` (see [`token_type`]).
    ///
    /// Nothing is checked until [`build`](TokenExchangeBuilder::build).
    pub fn builder(
        endpoint: Endpoint,
        client: ClientAuth,
        subject: impl TokenSource,
        subject_token_type: impl Into<String>,
    ) -> TokenExchangeBuilder {
        TokenExchangeBuilder {
            endpoint,
            client,
            subject: Arc::new(subject),
            subject_token_type: subject_token_type.into(),
            params: TokenParams::new(),
            actor: None,
            requested_token_type: None,
        }
    }

    /// The token endpoint URL this source sends to: the endpoint's, or its mutual-TLS alias
    /// when the client uses mutual TLS.
    pub fn token_url(&self) -> &http::Uri {
        self.inner.endpoint.url.uri()
    }

    /// Who the source authenticates as, and how.
    pub fn client_auth(&self) -> &ClientAuth {
        &self.inner.endpoint.client
    }

    async fn exchange(&self) -> Result<Token, FetchError> {
        let inner = &*self.inner;
        let subject = inner
            .subject
            .fetch()
            .await
            .map_err(|error| self.party_error("subject", error))?;
        let actor = match &inner.actor {
            Some(actor) => Some(
                actor
                    .fetch()
                    .await
                    .map_err(|error| self.party_error("actor", error))?,
            ),
            None => None,
        };
        let mut secret_params = vec![("subject_token", subject.secret().expose_secret())];
        if let Some(actor) = &actor {
            secret_params.push(("actor_token", actor.secret().expose_secret()));
        }
        inner
            .endpoint
            .request(Grant {
                grant_type: GRANT_TYPE,
                secret_params: &secret_params,
                params: &inner.params,
                response: TokenResponseRules::TokenExchange,
            })
            .await
    }

    /// The subject or actor token could not be had: keeps whether trying again may help.
    fn party_error(&self, party: &str, error: FetchError) -> FetchError {
        let url = &self.inner.endpoint.url;
        // The cause's message is the source's to print.
        let message = format!("cannot get the {party} token for the token exchange at {url}");
        let wrapped = if error.is_transient() {
            FetchError::transient(message)
        } else {
            FetchError::permanent(message)
        };
        match error.retry_after() {
            Some(wait) => wrapped.with_retry_after(wait),
            None => wrapped,
        }
        .with_source(error)
    }
}

impl TokenSource for TokenExchange {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.exchange())
    }
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("TokenExchange")
            .field("endpoint", &inner.endpoint)
            .field("subject_token", &"[from its source]")
            .field(
                "actor_token",
                &inner.actor.as_ref().map(|_| "[from its source]"),
            )
            .field("params", &inner.params)
            .finish()
    }
}

/// Builds a [`TokenExchange`]; see [`TokenExchange::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct TokenExchangeBuilder {
    endpoint: Endpoint,
    client: ClientAuth,
    subject: Arc<dyn TokenSource>,
    subject_token_type: String,
    actor: Option<(Arc<dyn TokenSource>, String)>,
    requested_token_type: Option<String>,
    params: TokenParams,
}

impl TokenExchangeBuilder {
    /// The party acting on behalf of the subject (delegation, RFC 8693 section 1.1): its token
    /// is fetched from `actor` for each exchange and sent as `actor_token` with
    /// `actor_token_type`.
    pub fn actor_token(
        mut self,
        actor: impl TokenSource,
        actor_token_type: impl Into<String>,
    ) -> Self {
        self.actor = Some((Arc::new(actor), actor_token_type.into()));
        self
    }

    /// The `requested_token_type`: the kind of token wanted (see [`token_type`]); without it
    /// the server picks.
    pub fn requested_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.requested_token_type = Some(token_type.into());
        self
    }

    /// The `audience`s, `resource`s, scope and extra parameters to request (RFC 8693
    /// section 2.1; default: none). Replaces those set before.
    pub fn params(mut self, params: TokenParams) -> Self {
        self.params = params;
        self
    }

    /// Checks the configuration and builds the source.
    ///
    /// Fails for the same reasons as
    /// [`ClientCredentialsBuilder::build`](crate::ClientCredentialsBuilder::build), if a
    /// token type is empty, or if a parameter this crate sets itself was added with
    /// [`TokenParams::param`].
    pub fn build(self) -> Result<TokenExchange, BuildError> {
        let requested = self
            .params
            .check(EXCHANGE_PARAMS, "use the builder's own method for it")?;
        let mut params = vec![(
            "subject_token_type".to_owned(),
            check_token_type("subject_token_type", self.subject_token_type)?,
        )];
        let actor = match self.actor {
            Some((actor, actor_token_type)) => {
                params.push((
                    "actor_token_type".to_owned(),
                    check_token_type("actor_token_type", actor_token_type)?,
                ));
                Some(actor)
            }
            None => None,
        };
        if let Some(requested) = self.requested_token_type {
            params.push((
                "requested_token_type".to_owned(),
                check_token_type("requested_token_type", requested)?,
            ));
        }
        params.extend(requested.params);
        Ok(TokenExchange {
            inner: Arc::new(Inner {
                endpoint: TokenEndpoint::new(self.endpoint, self.client, RetryPolicy::new())?,
                subject: self.subject,
                actor,
                params: TokenParams {
                    scope: requested.scope,
                    params,
                },
            }),
        })
    }
}

/// A token type identifier is a URI (RFC 8693 section 3); at least it must not be empty.
fn check_token_type(name: &str, value: String) -> Result<String, BuildError> {
    if value.trim().is_empty() {
        return Err(BuildError::invalid_parameter(format!(
            "`{name}` is empty; pass a token type identifier such as \
             tower_bearer_oauth2::token_type::JWT"
        )));
    }
    Ok(value)
}

impl fmt::Debug for TokenExchangeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchangeBuilder")
            .field("endpoint", &self.endpoint)
            .field("client", &self.client)
            .field("subject_token", &"[from its source]")
            .field("subject_token_type", &self.subject_token_type)
            .field(
                "actor_token_type",
                &self.actor.as_ref().map(|(_, token_type)| token_type),
            )
            .field("requested_token_type", &self.requested_token_type)
            .field("params", &self.params)
            .finish()
    }
}
