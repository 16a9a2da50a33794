//! The client credentials grant (RFC 6749 section 4.4): a confidential client asks for a
//! token on its own behalf.

use std::fmt;

use tower_bearer::source::TokenFuture;
use tower_bearer::store::StoreKey;
use tower_bearer::{Token, TokenCache, TokenSource};

use crate::response::TokenResponseRules;
use crate::server_url::ServerUrl;
use crate::token_request::{Grant, TokenEndpoint};
use crate::{BuildError, ClientAuth, Endpoint, RetryPolicy, RevocationError, TokenParams};

/// A [`TokenSource`] for the OAuth 2.0 client credentials grant (RFC 6749 section 4.4).
///
/// Each [`fetch`](TokenSource::fetch) makes a `POST` to the token endpoint with
/// `grant_type=client_credentials`, the [`TokenParams`], and the client's credentials
/// ([`ClientAuth`]), and returns the token from the answer. When the request fails in a way
/// that may be brief (network error, timeout, 5xx, 429) it is sent again per the
/// endpoint's [`RetryPolicy`] (by default up to 3 attempts with a short backoff, honouring
/// `Retry-After` up to 10 s). It does not cache: put it behind a
/// [`TokenCache`](tower_bearer::TokenCache), which fetches once for all callers, refreshes
/// ahead of expiry and backs off between fetches that failed.
///
/// Failures are [`FetchError`](tower_bearer::FetchError)s that say whether asking again may
/// help: network errors, timeouts, 5xx and 429 are transient (with the server's
/// `Retry-After`, capped at ten minutes); wrong credentials and other OAuth errors are
/// permanent, and never retried. The error's source is an [`OAuthError`](crate::OAuthError)
/// when the server sent an error response, an [`EndpointError`](crate::EndpointError)
/// otherwise.
///
/// `ClientCredentials` is cheap to clone; clones share the endpoint's connection pool.
///
/// ```
/// use tower_bearer::{TokenCache, TokenSource};
/// use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, TokenParams};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let auth = tower_bearer_testkit::AuthServer::builder().client("my-service", "s3cret").start().await?;
/// # std::env::set_var("CLIENT_SECRET", "s3cret");
/// let token_url = "https://auth.example.com/oauth2/token";
/// # let token_url = auth.token_url();
/// let endpoint = Endpoint::builder(token_url).build()?;
/// let client = ClientAuth::secret_basic("my-service", std::env::var("CLIENT_SECRET")?)?;
/// let source = ClientCredentials::builder(endpoint, client)
///     .params(
///         TokenParams::new()
///             .scopes(["orders:read", "orders:write"])
///             .audience("https://api.example.com"),
///     )
///     .build()?;
/// let cache = TokenCache::new(source);
/// let token = cache.token().await?;
/// # assert!(auth.is_valid(secrecy::ExposeSecret::expose_secret(token.secret())));
/// # assert_eq!(auth.last_request().unwrap().param("audience"), Some("https://api.example.com"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    pub(crate) endpoint: TokenEndpoint,
    params: TokenParams,
}

impl ClientCredentials {
    /// Starts building a source that asks `endpoint` for tokens as `client`.
    pub fn builder(endpoint: Endpoint, client: ClientAuth) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder {
            endpoint,
            client,
            params: TokenParams::new(),
        }
    }

    /// The token endpoint URL this source sends to: the endpoint's, or its mutual-TLS alias
    /// when the client uses mutual TLS.
    pub fn token_url(&self) -> &http::Uri {
        self.endpoint.url.uri()
    }

    /// The revocation endpoint URL, if one is configured.
    pub fn revocation_url(&self) -> Option<&http::Uri> {
        self.endpoint.revocation_url.as_ref().map(ServerUrl::uri)
    }

    /// Who the source authenticates as, and how.
    pub fn client_auth(&self) -> &ClientAuth {
        &self.endpoint.client
    }

    /// The scope requested, space-separated, if any.
    pub fn scope(&self) -> Option<&str> {
        self.params.scope.as_deref()
    }

    /// The key that names this source's tokens in a shared
    /// [`TokenStore`](tower_bearer::store::TokenStore): built from everything that changes
    /// the token issued (token URL, client id, scope, audience, resources and extra
    /// parameters, and the [thumbprint](tower_bearer::dpop::DpopKey::thumbprint) of the
    /// client's DPoP key), never from the secret. Two sources share tokens exactly when
    /// their keys are equal: replicas with different DPoP keys never read each other's
    /// tokens, which they could not send.
    ///
    /// ```
    /// use tower_bearer::store::{MemoryStore, StoreSource};
    /// use tower_bearer::TokenCache;
    /// use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, TokenParams};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let endpoint = Endpoint::builder("https://auth.example.com/token").build()?;
    /// let source = ClientCredentials::builder(endpoint, ClientAuth::secret_basic("billing", "s3cret")?)
    ///     .params(TokenParams::new().scope("invoices:read"))
    ///     .build()?;
    /// let key = source.store_key();
    /// let cache = TokenCache::new(StoreSource::new(source, MemoryStore::new(), key));
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn store_key(&self) -> StoreKey {
        let mut key =
            StoreKey::builder(self.token_url().to_string(), self.client_auth().client_id());
        if let Some(scope) = &self.params.scope {
            key = key.scope(scope);
        }
        for (name, value) in &self.params.params {
            key = key.param(name.as_str(), value.as_str());
        }
        // The key's thumbprint is hashed; the key itself rides along, so a store that reads
        // a token bound to it builds that token with it.
        if let Some(dpop) = self.client_auth().dpop_key() {
            key = key.dpop_key(dpop.clone());
        }
        key.build()
    }

    /// Revokes an access token this source issued (RFC 7009), with the same client
    /// authentication as token requests, so the server stops accepting it before it expires.
    ///
    /// Failures that may be brief are retried per the source's [`RetryPolicy`]. A token the
    /// server no longer knows (expired, revoked already) counts as revoked, as RFC 7009
    /// section 2.2 says. Fails with [`RevocationError::is_not_configured`] when the endpoint
    /// has no [`revocation_url`](crate::EndpointBuilder::revocation_url).
    pub async fn revoke(&self, token: &Token) -> Result<(), RevocationError> {
        self.endpoint.revoke_access_token(token).await
    }

    /// Revokes the token `cache` holds, if it holds one that has not expired, and drops it
    /// from the cache so no request uses it afterwards. For shutdown: an access token
    /// that dies with the process cannot leak from a log or a core dump later.
    ///
    /// Returns whether there was a token to revoke. The cache must be the one this source
    /// feeds; a token from elsewhere is sent to this source's revocation endpoint all the
    /// same, and the server is free to refuse it.
    ///
    /// Not for replicas that share a token through a
    /// [`TokenStore`](tower_bearer::store::TokenStore): the token is theirs too, and one replica
    /// stopping would revoke it under the others (they recover after a 401, at the cost of a
    /// failed request each).
    ///
    /// ```
    /// use tower_bearer::TokenCache;
    /// use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// # let auth = tower_bearer_testkit::AuthServer::builder().client("my-service", "s3cret").start().await?;
    /// # std::env::set_var("CLIENT_SECRET", "s3cret");
    /// let token_url = "https://auth.example.com/oauth2/token";
    /// let revocation_url = "https://auth.example.com/oauth2/revoke";
    /// # let (token_url, revocation_url) = (auth.token_url(), auth.revocation_url());
    /// let endpoint = Endpoint::builder(token_url)
    ///     .revocation_url(revocation_url)
    ///     .build()?;
    /// let client = ClientAuth::secret_basic("my-service", std::env::var("CLIENT_SECRET")?)?;
    /// let source = ClientCredentials::builder(endpoint, client).build()?;
    /// let cache = TokenCache::new(source.clone());
    ///
    /// // ... serve until asked to stop ...
    /// # cache.token().await?;
    ///
    /// if let Err(error) = source.revoke_cached(&cache).await {
    ///     eprintln!("could not revoke the access token at shutdown: {error}");
    /// }
    /// # assert_eq!(auth.tokens_revoked(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revoke_cached(&self, cache: &TokenCache) -> Result<bool, RevocationError> {
        self.endpoint.revoke_cached(cache).await
    }
}

impl TokenSource for ClientCredentials {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.endpoint.request(Grant {
            grant_type: "client_credentials",
            secret_params: &[],
            params: &self.params,
            response: TokenResponseRules::Standard,
        }))
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint)
            .field("params", &self.params)
            .finish()
    }
}

/// Builds a [`ClientCredentials`]; see [`ClientCredentials::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ClientCredentialsBuilder {
    endpoint: Endpoint,
    client: ClientAuth,
    params: TokenParams,
}

impl ClientCredentialsBuilder {
    /// The scope, audiences, resources and extra parameters to request (default: none).
    /// Replaces those set before.
    pub fn params(mut self, params: TokenParams) -> Self {
        self.params = params;
        self
    }

    /// Checks the configuration and builds the source.
    ///
    /// Fails if a scope, resource or parameter is malformed (see [`TokenParams`]), or if the
    /// client uses mutual TLS and the endpoint's default HTTP client has no certificate to
    /// present ([`BuildError::is_invalid_tls`]).
    pub fn build(self) -> Result<ClientCredentials, BuildError> {
        Ok(ClientCredentials {
            params: self.params.check(&[], "")?,
            endpoint: TokenEndpoint::new(self.endpoint, self.client, RetryPolicy::new())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::test_support::fake;
    use crate::{AuthMethod, HttpClient};

    const URL: &str = "https://auth.example.com/oauth2/token";
    const ID: &str = "my client:1";
    const SECRET: &str = "p@ss:w%rd+ ü";
    const TOKEN_BODY: &str =
        r#"{"access_token":"at-s3cr3t","token_type":"bearer","expires_in":"3600","scope":"a b"}"#;

    fn endpoint(client: HttpClient) -> Endpoint {
        Endpoint::builder(URL)
            .retry(RetryPolicy::none())
            .http_client(client)
            .build()
            .unwrap()
    }

    fn builder(client: HttpClient) -> ClientCredentialsBuilder {
        ClientCredentials::builder(
            endpoint(client),
            ClientAuth::secret_basic(ID, SECRET).unwrap(),
        )
    }

    fn assert_no_secrets(printed: &str) {
        for secret in [SECRET, "at-s3cr3t", "p%40ss", "cCU0MHNz"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }
    #[tokio::test]
    async fn basic_auth_request() {
        let (client, seen) = fake(200, &[], TOKEN_BODY);
        let source = builder(client)
            .params(
                TokenParams::new()
                    .scopes(["a", "b"])
                    .audience("https://api.example.com")
                    .resource("https://api.example.com/orders")
                    .resource("urn:example:billing")
                    .param("tenant", "ü&="),
            )
            .build()
            .unwrap();
        let token = source.fetch().await.unwrap();
        assert_eq!(token.secret().expose_secret(), "at-s3cr3t");
        assert_eq!(token.header_value(), "Bearer at-s3cr3t");
        assert_eq!(token.scope(), Some("a b"));

        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!(seen.method, Method::POST);
        assert_eq!(seen.uri, URL);
        assert_eq!(
            seen.headers["authorization"],
            "Basic bXkrY2xpZW50JTNBMTpwJTQwc3MlM0F3JTI1cmQlMkIrJUMzJUJD"
        );
        assert!(seen.headers["authorization"].is_sensitive());
        assert_eq!(
            seen.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(seen.headers["accept"], "application/json");
        assert_eq!(
            seen.body,
            "grant_type=client_credentials&scope=a+b\
             &audience=https%3A%2F%2Fapi.example.com\
             &resource=https%3A%2F%2Fapi.example.com%2Forders\
             &resource=urn%3Aexample%3Abilling\
             &tenant=%C3%BC%26%3D"
        );
    }
    #[tokio::test]
    async fn post_auth_request() {
        let (client, seen) = fake(200, &[], TOKEN_BODY);
        let source = ClientCredentials::builder(
            endpoint(client),
            ClientAuth::secret_post(ID, SECRET).unwrap(),
        )
        .build()
        .unwrap();
        source.fetch().await.unwrap();
        let seen = seen.lock().unwrap()[0].clone();
        assert!(!seen.headers.contains_key("authorization"));
        assert_eq!(
            seen.body,
            "grant_type=client_credentials\
             &client_id=my+client%3A1&client_secret=p%40ss%3Aw%25rd%2B+%C3%BC"
        );
    }
    #[test]
    fn debug_hides_secrets() {
        let (client, _) = fake(200, &[], TOKEN_BODY);
        let builder = builder(client).params(TokenParams::new().param("assertion", "param-s3cr3t"));
        let printed = format!("{builder:?}");
        assert_no_secrets(&printed);
        assert!(!printed.contains("param-s3cr3t"), "{printed}");
        let source = builder.build().unwrap();
        let printed = format!("{source:?}");
        assert_no_secrets(&printed);
        assert!(!printed.contains("param-s3cr3t"), "{printed}");
        assert!(printed.contains("my client:1"), "{printed}");
        assert!(printed.contains("assertion"), "{printed}");
    }
    #[test]
    fn the_store_key_names_the_dpop_key() {
        let (client, _) = fake(200, &[], TOKEN_BODY);
        let key = tower_bearer::dpop::DpopKey::generate_es256().unwrap();
        let source = |auth: ClientAuth| {
            ClientCredentials::builder(endpoint(client.clone()), auth)
                .build()
                .unwrap()
                .store_key()
        };
        let plain = || ClientAuth::secret_basic(ID, SECRET).unwrap();
        let bound = source(plain().dpop(key.clone()));
        assert_eq!(bound, source(plain().dpop(key.clone())), "the same key");
        assert_ne!(bound, source(plain()), "no key");
        let other = tower_bearer::dpop::DpopKey::generate_es256().unwrap();
        assert_ne!(bound, source(plain().dpop(other)), "another key");
    }

    #[cfg(feature = "hyper-client")]
    #[test]
    fn builds_with_the_default_client() {
        let endpoint = Endpoint::builder(URL).build().unwrap();
        let source =
            ClientCredentials::builder(endpoint, ClientAuth::secret_basic(ID, SECRET).unwrap())
                .build()
                .unwrap();
        assert_eq!(source.token_url(), URL);
        assert_eq!(source.client_auth().client_id(), ID);
        assert_eq!(source.client_auth().method(), AuthMethod::ClientSecretBasic);
    }
}
