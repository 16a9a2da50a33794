//! The refresh token grant (RFC 6749 section 6): trading a long-lived refresh token for
//! access tokens, and keeping up with refresh token rotation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use secrecy::{ExposeSecret, SecretString};
use tower::Service;
use tower_bearer::source::TokenFuture;
use tower_bearer::{BoxError, FetchError, Token, TokenCache, TokenSource};

use crate::client_credentials::{check_param, normalize_scope, ParamNames};
use crate::endpoint::{Grant, TokenEndpoint};
use crate::http_client;
use crate::settings::EndpointSettings;
use crate::token_url::TokenUrl;
use crate::{
    AuthServerMetadata, BuildError, ClientAuth, RetryPolicy, RevocationError, TokenTypeHint,
};

/// A [`TokenSource`] for the OAuth 2.0 refresh token grant (RFC 6749 section 6).
///
/// It holds the current refresh token. Each [`fetch`](TokenSource::fetch) makes a `POST` to
/// the token endpoint with `grant_type=refresh_token`, that refresh token, the scope and extra
/// parameters, and the client's credentials, and returns the access token from the answer.
///
/// # Rotation
///
/// When the answer carries a new `refresh_token` (servers that rotate send one with every
/// refresh, and the old one stops working), the source replaces the one it holds before
/// `fetch` returns, and then calls the [`on_rotate`](RefreshTokenBuilder::on_rotate) hook
/// with the new one so you can persist it. Refreshes are serialized inside the source: a
/// fetch waits for the one before it to finish, rotation and hook included, and then
/// presents the refresh token that one left. So concurrent fetches never present a refresh
/// token that was already rotated away, even without a
/// [`TokenCache`](tower_bearer::TokenCache) in front (which makes one fetch for all callers
/// anyway). The hook runs once per rotation, in rotation order.
///
/// If a fetch is dropped while its request is in flight, the server may have rotated the
/// refresh token without us reading the new one; the cache runs fetches on their own task
/// so its callers going away cannot cause that.
///
/// # Errors and retries
///
/// `invalid_grant` (the refresh token expired, was revoked or was already used) is
/// permanent: the grant is gone and the user has to sign in again. The default
/// [`RetryPolicy`] is [`RetryPolicy::for_refresh_tokens`]: it retries only failures to
/// connect and 429, never a timeout, a broken connection or a 5xx, because the server may
/// have rotated the refresh token while the answer was lost, and replaying the old one
/// looks like token theft to servers with reuse detection, which then revoke the whole
/// grant. The cache still backs off and fetches again later.
///
/// `RefreshToken` is cheap to clone; clones share the refresh token and the connection pool.
///
/// ```no_run
/// use tower_bearer::{TokenCache, TokenSource};
/// use tower_bearer_oauth2::RefreshToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let stored = std::fs::read_to_string("refresh-token")?;
/// let source = RefreshToken::builder(
///     "https://auth.example.com/oauth2/token",
///     "desktop-sync",
///     std::env::var("CLIENT_SECRET")?,
///     stored.trim(),
/// )
/// .on_rotate(|new_refresh_token| {
///     use secrecy::ExposeSecret;
///     if let Err(error) = std::fs::write("refresh-token", new_refresh_token.expose_secret()) {
///         eprintln!("could not save the new refresh token: {error}");
///     }
/// })
/// .build()?;
/// let cache = TokenCache::new(source);
/// let token = cache.token().await?;
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RefreshToken {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: TokenEndpoint,
    scope: Option<String>,
    params: Vec<(String, String)>,
    /// The refresh token to present next.
    current: Mutex<SecretString>,
    /// Held for a whole refresh, so each one presents what the one before it left.
    refreshing: tokio::sync::Mutex<()>,
    on_rotate: Option<RotateHook>,
}

/// What to call with a new refresh token.
#[derive(Clone)]
enum RotateHook {
    Sync(Arc<dyn Fn(&SecretString) + Send + Sync>),
    Async(Arc<dyn Fn(SecretString) -> HookFuture + Send + Sync>),
}

type HookFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl RefreshToken {
    /// Starts building a source for the token endpoint at `token_url`, authenticating as
    /// `client_id` with `client_secret`, starting from `refresh_token`.
    ///
    /// Nothing is checked until [`build`](RefreshTokenBuilder::build).
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
        refresh_token: impl Into<SecretString>,
    ) -> RefreshTokenBuilder {
        RefreshTokenBuilder {
            settings: EndpointSettings::new(
                token_url.into(),
                client_id.into(),
                client_secret.into(),
                RetryPolicy::for_refresh_tokens(),
            ),
            refresh_token: refresh_token.into(),
            scope: None,
            params: Vec::new(),
            on_rotate: None,
        }
    }

    /// Starts building a source that authenticates with `private_key_jwt`; see
    /// [`ClientCredentials::builder_with_private_key`](crate::ClientCredentials::builder_with_private_key).
    #[cfg(feature = "private-key-jwt")]
    pub fn builder_with_private_key(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        key: crate::PrivateKey,
        refresh_token: impl Into<SecretString>,
    ) -> RefreshTokenBuilder {
        let mut builder = Self::builder(token_url, client_id, String::new(), refresh_token);
        builder.settings.client_auth = ClientAuth::PrivateKeyJwt;
        builder.settings.private_key = Some(key);
        builder
    }

    /// Starts building a source from an authorization server's metadata, as
    /// [`ClientCredentials::builder_from_metadata`](crate::ClientCredentials::builder_from_metadata)
    /// does: token endpoint, revocation endpoint and client authentication method.
    pub fn builder_from_metadata(
        metadata: &AuthServerMetadata,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
        refresh_token: impl Into<SecretString>,
    ) -> RefreshTokenBuilder {
        let mut builder = Self::builder(
            metadata.token_endpoint(),
            client_id,
            client_secret,
            refresh_token,
        )
        .client_auth(metadata.preferred_client_auth().unwrap_or_default());
        builder.settings.use_metadata(metadata);
        builder
    }

    /// The refresh token the next fetch will present: the one given to the builder, or the
    /// latest the server rotated in.
    pub fn refresh_token(&self) -> SecretString {
        self.current().clone()
    }

    /// The token endpoint URL.
    pub fn token_url(&self) -> &http::Uri {
        self.inner.endpoint.url.uri()
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.endpoint.client.id
    }

    /// How the client authenticates.
    pub fn client_auth(&self) -> ClientAuth {
        self.inner.endpoint.client.method
    }

    /// The revocation endpoint URL, if one is configured.
    pub fn revocation_url(&self) -> Option<&http::Uri> {
        self.inner
            .endpoint
            .revocation_url
            .as_ref()
            .map(TokenUrl::uri)
    }

    /// Revokes the refresh token this source holds (RFC 7009, `token_type_hint` =
    /// `refresh_token`); RFC 7009 section 2.1 has the server revoke the access tokens of the
    /// same grant too, where it can. For sign-out, or shutdown of a process that will not
    /// need the grant again: every later fetch fails with `invalid_grant`.
    ///
    /// Waits for a refresh in progress, so the token revoked is the latest one.
    pub async fn revoke_refresh_token(&self) -> Result<(), RevocationError> {
        let _turn = self.inner.refreshing.lock().await;
        let refresh_token = self.refresh_token();
        self.inner
            .endpoint
            .revoke(refresh_token.expose_secret(), TokenTypeHint::RefreshToken)
            .await
    }

    /// Revokes an access token this source issued (RFC 7009); see
    /// [`ClientCredentials::revoke`](crate::ClientCredentials::revoke).
    pub async fn revoke(&self, token: &Token) -> Result<(), RevocationError> {
        self.inner
            .endpoint
            .revoke(token.secret().expose_secret(), TokenTypeHint::AccessToken)
            .await
    }

    /// Revokes the access token `cache` holds, if any, and drops it from the cache; see
    /// [`ClientCredentials::revoke_cached`](crate::ClientCredentials::revoke_cached).
    /// The refresh token stays valid; [`revoke_refresh_token`](Self::revoke_refresh_token)
    /// ends the grant.
    pub async fn revoke_cached(&self, cache: &TokenCache) -> Result<bool, RevocationError> {
        let Some(token) = cache.cached() else {
            return Ok(false);
        };
        self.revoke(&token).await?;
        cache.invalidate(&token);
        Ok(true)
    }

    fn current(&self) -> MutexGuard<'_, SecretString> {
        // Only ever replaced whole, so a panic elsewhere cannot leave it half-written.
        self.inner
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn refresh(&self) -> Result<Token, FetchError> {
        let _turn = self.inner.refreshing.lock().await;
        let presented = self.refresh_token();
        let token = self
            .inner
            .endpoint
            .request(Grant {
                grant_type: "refresh_token",
                credential: Some(("refresh_token", presented.expose_secret())),
                scope: self.inner.scope.as_deref(),
                params: &self.inner.params,
            })
            .await?;
        if let Some(rotated) = token.refresh_token() {
            if rotated.expose_secret() != presented.expose_secret() {
                *self.current() = rotated.clone();
                tracing::debug!(
                    client_id = %self.inner.endpoint.client.id,
                    "the token endpoint rotated the refresh token"
                );
                match &self.inner.on_rotate {
                    Some(RotateHook::Sync(hook)) => hook(rotated),
                    Some(RotateHook::Async(hook)) => hook(rotated.clone()).await,
                    None => {}
                }
            }
        }
        Ok(token)
    }
}

impl TokenSource for RefreshToken {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.refresh())
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RefreshToken")
            .field("token_url", &inner.endpoint.url)
            .field("revocation_url", &inner.endpoint.revocation_url)
            .field("client_id", &inner.endpoint.client.id)
            .field("client_secret", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("client_auth", &inner.endpoint.client.method)
            .field("scope", &inner.scope)
            .field("params", &ParamNames(&inner.params))
            .field("on_rotate", &inner.on_rotate.as_ref().map(|_| ".."))
            .field("retry", &inner.endpoint.retry)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RefreshToken`]; see [`RefreshToken::builder`].
///
/// The settings it shares with [`ClientCredentialsBuilder`](crate::ClientCredentialsBuilder)
/// behave the same; only the default [`retry`](Self::retry) policy differs.
#[must_use = "a builder does nothing until `build` is called"]
pub struct RefreshTokenBuilder {
    settings: EndpointSettings,
    refresh_token: SecretString,
    scope: Option<String>,
    params: Vec<(String, String)>,
    on_rotate: Option<RotateHook>,
}

impl RefreshTokenBuilder {
    /// Called with the new refresh token each time the server rotates it, after the source
    /// holds it and before the fetch returns; once per rotation, never concurrently. Persist
    /// it here: the old one no longer works. Keep it quick, as the refresh waits for it;
    /// for async storage use [`on_rotate_async`](Self::on_rotate_async). Replaces an earlier
    /// hook.
    pub fn on_rotate<F>(mut self, hook: F) -> Self
    where
        F: Fn(&SecretString) + Send + Sync + 'static,
    {
        self.on_rotate = Some(RotateHook::Sync(Arc::new(hook)));
        self
    }

    /// Like [`on_rotate`](Self::on_rotate), with an async hook that the refresh awaits (a
    /// database write, a secrets manager call). Handle its errors inside: the new refresh
    /// token is already in use whatever the hook does. Replaces an earlier hook.
    pub fn on_rotate_async<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(SecretString) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_rotate = Some(RotateHook::Async(Arc::new(move |refresh_token| {
            Box::pin(hook(refresh_token)) as HookFuture
        })));
        self
    }

    /// How the client authenticates (default [`ClientAuth::ClientSecretBasic`]).
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.settings.client_auth = client_auth;
        self
    }

    /// The scope to request, space-separated. RFC 6749 section 6 lets it only narrow the
    /// scope the refresh token was granted; without it the server grants that whole scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// An extra form parameter for the token request (repeatable). The parameters this
    /// crate sets itself, `refresh_token` among them, are refused by
    /// [`build`](Self::build).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// A `resource` parameter (RFC 8707), repeatable.
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// The `aud` claim of `private_key_jwt` client assertions (default: the token URL).
    #[cfg(feature = "private-key-jwt")]
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        self.settings.assertion_audience = Some(audience.into());
        self
    }

    /// The revocation endpoint (RFC 7009) for
    /// [`revoke_refresh_token`](RefreshToken::revoke_refresh_token) and
    /// [`revoke`](RefreshToken::revoke) (default: none).
    pub fn revocation_url(mut self, url: impl Into<String>) -> Self {
        self.settings.revocation_url = Some(url.into());
        self
    }

    /// How long one token request may take (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// How a fetch retries (default [`RetryPolicy::for_refresh_tokens`]: only failures to
    /// connect and 429; see [`RefreshToken`] for why). A policy with
    /// [`retry_processed(true)`](RetryPolicy::retry_processed) is fine with servers that
    /// neither rotate refresh tokens nor detect reuse.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.settings.retry = policy;
        self
    }

    /// The largest response body read, in bytes (default 64 KiB).
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.settings.max_response_size = bytes;
        self
    }

    /// The lifetime assumed for an access token whose response has no `expires_in`
    /// (default 5 minutes).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.default_lifetime = lifetime;
        self
    }

    /// Allows a plain `http://` token URL to a host that is not loopback (default: refused).
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.settings.allow_insecure_http = allow;
        self
    }

    /// The TLS settings of the default HTTP client, such as a client certificate for
    /// mutual TLS (RFC 8705); see
    /// [`ClientCredentialsBuilder::tls`](crate::ClientCredentialsBuilder::tls).
    #[cfg(feature = "hyper-client")]
    pub fn tls(mut self, tls: crate::ClientTls) -> Self {
        self.settings.tls = tls;
        self
    }

    /// The HTTP client to reach the token endpoint with; see
    /// [`ClientCredentialsBuilder::http_client`](crate::ClientCredentialsBuilder::http_client).
    pub fn http_client<S, B>(mut self, client: S) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.settings.http_client = Some(http_client::erase(client));
        self
    }

    /// Checks the configuration and builds the source.
    ///
    /// Fails for the same reasons as
    /// [`ClientCredentialsBuilder::build`](crate::ClientCredentialsBuilder::build), and if
    /// the refresh token is empty or a `refresh_token` parameter was added.
    pub fn build(self) -> Result<RefreshToken, BuildError> {
        if self.refresh_token.expose_secret().is_empty() {
            return Err(BuildError::invalid_credentials(format!(
                "the refresh token of client `{}` is empty; check where it is read from",
                self.settings.client_id
            )));
        }
        let scope = self
            .scope
            .as_deref()
            .map(normalize_scope)
            .transpose()?
            .flatten();
        for (name, value) in &self.params {
            if name == "refresh_token" {
                return Err(BuildError::invalid_parameter(
                    "the extra parameter `refresh_token` is set by tower-bearer-oauth2 itself; \
                     pass the refresh token to `RefreshToken::builder`"
                        .to_owned(),
                ));
            }
            check_param(name, value)?;
        }
        Ok(RefreshToken {
            inner: Arc::new(Inner {
                endpoint: self.settings.build()?,
                scope,
                params: self.params,
                current: Mutex::new(self.refresh_token),
                refreshing: tokio::sync::Mutex::new(()),
                on_rotate: self.on_rotate,
            }),
        })
    }
}

impl fmt::Debug for RefreshTokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("RefreshTokenBuilder");
        self.settings.debug_fields(&mut debug);
        debug
            .field("refresh_token", &"[redacted]")
            .field("scope", &self.scope)
            .field("params", &ParamNames(&self.params))
            .field("on_rotate", &self.on_rotate.as_ref().map(|_| ".."))
            .finish()
    }
}
