//! The refresh token grant (RFC 6749 section 6): trading a long-lived refresh token for
//! access tokens, and keeping up with refresh token rotation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tower_bearer::source::TokenFuture;
use tower_bearer::store::{StoreKey, TokenStore};
use tower_bearer::{FetchError, Token, TokenCache, TokenSource};

use crate::client_credentials::{check_request, ParamNames};
use crate::endpoint::{Grant, TokenEndpoint};
use crate::response::TokenResponseRules;
use crate::settings::EndpointSettings;
use crate::token_url::TokenUrl;
use crate::{AuthServerMetadata, BuildError, RetryPolicy, RevocationError, TokenTypeHint};

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
    shared: Option<Shared>,
}

/// Where a fleet keeps its one refresh token; see [`RefreshTokenBuilder::share_through`].
struct Shared {
    store: Arc<dyn TokenStore>,
    key: StoreKey,
    /// The store's generation of the refresh token in `current` (0: not from the store).
    generation: AtomicU64,
}

/// How long a store operation may take before the source goes on with its own copy.
const STORE_TIMEOUT: Duration = Duration::from_millis(500);

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
            shared: None,
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
        builder.settings.client_auth = crate::ClientAuth::PrivateKeyJwt;
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

    crate::settings::endpoint_getters!(inner.endpoint);

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
        self.inner.endpoint.revoke_access_token(token).await
    }

    /// Revokes the access token `cache` holds, if any, and drops it from the cache; see
    /// [`ClientCredentials::revoke_cached`](crate::ClientCredentials::revoke_cached).
    /// The refresh token stays valid; [`revoke_refresh_token`](Self::revoke_refresh_token)
    /// ends the grant.
    pub async fn revoke_cached(&self, cache: &TokenCache) -> Result<bool, RevocationError> {
        self.inner.endpoint.revoke_cached(cache).await
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
        if let Some(shared) = &self.inner.shared {
            self.adopt_shared(shared).await;
        }
        let presented = self.refresh_token();
        let token = self
            .inner
            .endpoint
            .request(Grant {
                grant_type: "refresh_token",
                credentials: &[("refresh_token", presented.expose_secret())],
                scope: self.inner.scope.as_deref(),
                params: &self.inner.params,
                response: TokenResponseRules::Standard,
            })
            .await?;
        if let Some(rotated) = token.refresh_token() {
            if rotated.expose_secret() != presented.expose_secret() {
                *self.current() = rotated.clone();
                tracing::debug!(
                    client_id = %self.inner.endpoint.client.id,
                    "the token endpoint rotated the refresh token"
                );
                if let Some(shared) = &self.inner.shared {
                    self.publish_shared(shared, rotated).await;
                }
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

impl RefreshToken {
    /// Takes the fleet's refresh token if the store holds a newer one than this replica's.
    async fn adopt_shared(&self, shared: &Shared) {
        let read = tokio::time::timeout(STORE_TIMEOUT, shared.store.refresh_token(&shared.key));
        match read.await {
            Ok(Ok(Some(stored)))
                if stored.generation > shared.generation.load(Ordering::Acquire) =>
            {
                *self.current() = stored.refresh_token;
                shared
                    .generation
                    .store(stored.generation, Ordering::Release);
                tracing::debug!(
                    key = %shared.key,
                    generation = stored.generation,
                    "took the fleet's newer refresh token from the store"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(
                key = %shared.key,
                %error,
                "could not read the shared refresh token; refreshing with this replica's"
            ),
            Err(_) => tracing::warn!(
                key = %shared.key,
                "the store did not answer in time; refreshing with this replica's refresh token"
            ),
        }
    }

    /// Stores a rotated refresh token for the fleet, unless another replica stored a newer
    /// one meanwhile (compare-and-set on the generation).
    async fn publish_shared(&self, shared: &Shared, rotated: &SecretString) {
        let expected = shared.generation.load(Ordering::Acquire);
        let write = shared
            .store
            .replace_refresh_token(&shared.key, expected, rotated);
        match tokio::time::timeout(STORE_TIMEOUT, write).await {
            Ok(Ok(true)) => shared.generation.store(expected + 1, Ordering::Release),
            Ok(Ok(false)) => tracing::warn!(
                key = %shared.key,
                "another replica stored a newer refresh token meanwhile; keeping the store's"
            ),
            Ok(Err(error)) => tracing::warn!(
                key = %shared.key,
                %error,
                "could not store the rotated refresh token for the fleet"
            ),
            Err(_) => tracing::warn!(
                key = %shared.key,
                "the store did not answer in time; the rotated refresh token is not shared"
            ),
        }
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
            .field("shared", &inner.shared.as_ref().map(|shared| &shared.key))
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
    shared: Option<(Arc<dyn TokenStore>, StoreKey)>,
}

impl RefreshTokenBuilder {
    /// Shares the refresh token with the other replicas through `store` under `key`, for
    /// fleets whose server rotates refresh tokens.
    ///
    /// With rotation, each refresh invalidates the refresh token it presented; a replica
    /// that kept its own copy would present a dead one (and a server with reuse detection
    /// would then revoke the whole grant). So before each refresh the source takes the
    /// store's refresh token if it is newer than its own, and after a rotation it stores
    /// the new one with compare-and-set on the store's generation
    /// ([`TokenStore::replace_refresh_token`]), so an older refresh token never overwrites a
    /// newer one. The store's token also wins over the one passed to
    /// [`RefreshToken::builder`], so a replica started with a stale one catches up.
    ///
    /// Pair it with a [`StoreSource`](tower_bearer::store::StoreSource) over the same store
    /// so that only one replica refreshes at a time. If the store fails, the source warns
    /// and refreshes with its own copy.
    pub fn share_through(mut self, store: impl TokenStore, key: StoreKey) -> Self {
        self.shared = Some((Arc::new(store), key));
        self
    }

    crate::settings::endpoint_setters!(
        retry_default = "[`RetryPolicy::for_refresh_tokens`]: only failures to connect and 429; \
                         see [`RefreshToken`] for why. A policy with \
                         [`retry_processed(true)`](RetryPolicy::retry_processed) is fine with \
                         servers that neither rotate refresh tokens nor detect reuse"
    );

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

    crate::settings::request_setters!(
        scope_doc = "The scope to request, space-separated. RFC 6749 section 6 lets it only \
                     narrow the scope the refresh token was granted; without it the server \
                     grants that whole scope.",
        param_doc = "The parameters this crate sets itself, `refresh_token` among them, are \
                     refused by [`build`](Self::build)."
    );

    /// A `resource` parameter (RFC 8707), repeatable.
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// The revocation endpoint (RFC 7009) for
    /// [`revoke_refresh_token`](RefreshToken::revoke_refresh_token) and
    /// [`revoke`](RefreshToken::revoke) (default: none).
    pub fn revocation_url(mut self, url: impl Into<String>) -> Self {
        self.settings.revocation_url = Some(url.into());
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
        let scope = check_request(
            self.scope.as_deref(),
            &self.params,
            &["refresh_token"],
            "pass the refresh token to `RefreshToken::builder`",
        )?;
        Ok(RefreshToken {
            inner: Arc::new(Inner {
                endpoint: self.settings.build()?,
                scope,
                params: self.params,
                current: Mutex::new(self.refresh_token),
                refreshing: tokio::sync::Mutex::new(()),
                on_rotate: self.on_rotate,
                shared: self.shared.map(|(store, key)| Shared {
                    store,
                    key,
                    generation: AtomicU64::new(0),
                }),
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
            .field("shared", &self.shared.as_ref().map(|(_, key)| key))
            .finish()
    }
}
