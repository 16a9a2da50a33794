//! The refresh token grant (RFC 6749 section 6): trading a long-lived refresh token for
//! access tokens, and keeping up with refresh token rotation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::{ExposeSecret, SecretString};
use tower_bearer::source::TokenFuture;
use tower_bearer::store::{RefreshTokenStore, RefreshWrite, StoreError, StoreKey};
use tower_bearer::{FetchError, Token, TokenCache, TokenSource};

use crate::fleet::{on_own_task, Fleet, FleetConfig, Presentation, WhenStoreUnavailable};
use crate::response::TokenResponseRules;
use crate::revocation::TokenTypeHint;
use crate::server_url::ServerUrl;
use crate::token_request::{Grant, TokenEndpoint};
use crate::{BuildError, ClientAuth, Endpoint, RetryPolicy, RevocationError, TokenParams};

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
/// grant. The cache still backs off and fetches again later. A policy set on the
/// [`Endpoint`](crate::EndpointBuilder::retry) replaces it; one with
/// [`retry_processed(true)`](RetryPolicy::retry_processed) is fine with servers that neither
/// rotate refresh tokens nor detect reuse.
///
/// # DPoP
///
/// With a client that has a DPoP key ([`ClientAuth::dpop`]), every refresh carries a proof
/// signed with it, and the access tokens come bound to it. A server may bind the refresh
/// token to the key too (RFC 9449 section 5 has it do so for public clients); such a
/// refresh token works with no other key, so keep the key as long as the refresh token,
/// and give replicas that share one through
/// [`share_through`](RefreshTokenBuilder::share_through) the same key.
///
/// `RefreshToken` is cheap to clone; clones share the refresh token and the connection pool.
///
/// ```
/// use tower_bearer::{TokenCache, TokenSource};
/// use tower_bearer_oauth2::{ClientAuth, Endpoint, RefreshToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let auth = tower_bearer_testkit::AuthServer::builder().client("desktop-sync", "s3cret").start().await?;
/// # std::env::set_var("CLIENT_SECRET", "s3cret");
/// # let dir = std::env::temp_dir().join(format!("tower-bearer-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let first = auth.issue_refresh_token("desktop-sync", None);
/// # std::fs::write(dir.join("refresh-token"), &first)?;
/// let path = std::path::PathBuf::from("refresh-token");
/// let token_url = "https://auth.example.com/oauth2/token";
/// # let (path, token_url) = (dir.join("refresh-token"), auth.token_url());
/// let stored = std::fs::read_to_string(&path)?;
/// let endpoint = Endpoint::builder(token_url).build()?;
/// let client = ClientAuth::secret_basic("desktop-sync", std::env::var("CLIENT_SECRET")?)?;
/// let source = RefreshToken::builder(endpoint, client, stored.trim())
/// .on_rotate(move |new_refresh_token| {
///     use secrecy::ExposeSecret;
///     if let Err(error) = std::fs::write(&path, new_refresh_token.expose_secret()) {
///         eprintln!("could not save the new refresh token: {error}");
///     }
/// })
/// .build()?;
/// let cache = TokenCache::new(source);
/// let token = cache.token().await?;
/// # let saved = std::fs::read_to_string(dir.join("refresh-token"))?;
/// # assert!(saved != first && auth.is_refresh_token_valid(&saved));
/// # assert!(auth.is_valid(secrecy::ExposeSecret::expose_secret(token.secret())));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RefreshToken {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: TokenEndpoint,
    params: TokenParams,
    /// The refresh token to present next, without a fleet (a fleet keeps its own copy).
    current: Mutex<SecretString>,
    /// Held for a whole refresh without a fleet, so each one presents what the one before
    /// it left (a fleet has its own turn).
    refreshing: tokio::sync::Mutex<()>,
    on_rotate: Option<RotateHook>,
    /// The fleet's refresh protocol; see [`RefreshTokenBuilder::share_through`].
    fleet: Option<Arc<Fleet>>,
}

/// What to call with a new refresh token.
#[derive(Clone)]
enum RotateHook {
    Sync(Arc<dyn Fn(&SecretString) + Send + Sync>),
    Async(Arc<dyn Fn(SecretString) -> HookFuture + Send + Sync>),
}

type HookFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl RefreshToken {
    /// Starts building a source that asks `endpoint` for access tokens as `client`,
    /// starting from `refresh_token`.
    ///
    /// Nothing is checked until [`build`](RefreshTokenBuilder::build).
    pub fn builder(
        endpoint: Endpoint,
        client: ClientAuth,
        refresh_token: impl Into<SecretString>,
    ) -> RefreshTokenBuilder {
        RefreshTokenBuilder {
            endpoint,
            client,
            refresh_token: refresh_token.into(),
            params: TokenParams::new(),
            on_rotate: None,
            shared: None,
            when_store_unavailable: WhenStoreUnavailable::default(),
            fleet: FleetConfig::default(),
        }
    }

    /// Puts a new grant's refresh token into a fleet's store, if the store holds nothing for
    /// `key` yet; `Ok(true)` if it did. For the moment the grant is obtained (right after
    /// the login or the authorization that issued `refresh_token`) or a first deployment,
    /// by whoever holds the token then: the fleet's replicas then find it and present it
    /// after watching the store for 1.5 check intervals, instead of settling first as they
    /// must when they find the store empty (with the default [`FleetConfig`] and endpoint
    /// limits, that settle is about two minutes: it waits out the longest refresh that
    /// may have been in flight when the store lost its data).
    ///
    /// Never call it as part of a replica's start: after a data loss the store is empty
    /// too, and a refresh token seeded then, if the fleet had rotated it away, would be
    /// presented again and get the grant revoked. Only seed a refresh token nobody has
    /// presented yet. A store that already holds any record for `key`, even a damaged one,
    /// is left as it is (`Ok(false)`).
    ///
    /// ```
    /// use secrecy::SecretString;
    /// use tower_bearer::store::{MemoryStore, StoreKey};
    /// use tower_bearer_oauth2::RefreshToken;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let store = MemoryStore::new(); // tower-bearer-redis's RedisStore in a fleet
    /// let key = StoreKey::builder("https://auth.example.com/oauth2/token", "reporting").build();
    /// let from_login = SecretString::from("the refresh token the login returned");
    /// assert!(RefreshToken::seed_store(&store, &key, &from_login).await?);
    /// assert!(!RefreshToken::seed_store(&store, &key, &from_login).await?, "only once");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn seed_store(
        store: &impl RefreshTokenStore,
        key: &StoreKey,
        refresh_token: &SecretString,
    ) -> Result<bool, StoreError> {
        // Generation 0 is what every replica is configured with, and the lowest: newest-wins
        // writes it only where no record is.
        let write = RefreshWrite {
            generation: 0,
            refresh_token,
            replacing_damaged: None,
            settle: None,
        };
        store.store_refresh(key, write).await
    }

    /// The refresh token the next fetch will present: the one given to the builder, or the
    /// latest the server rotated in.
    pub fn refresh_token(&self) -> SecretString {
        match &self.inner.fleet {
            Some(fleet) => fleet.refresh_token(),
            None => self.current().clone(),
        }
    }

    /// The token endpoint URL this source sends to: the endpoint's, or its mutual-TLS alias
    /// when the client uses mutual TLS.
    pub fn token_url(&self) -> &http::Uri {
        self.inner.endpoint.url.uri()
    }

    /// The revocation endpoint URL, if one is configured.
    pub fn revocation_url(&self) -> Option<&http::Uri> {
        self.inner
            .endpoint
            .revocation_url
            .as_ref()
            .map(ServerUrl::uri)
    }

    /// Who the source authenticates as, and how.
    pub fn client_auth(&self) -> &ClientAuth {
        &self.inner.endpoint.client
    }

    /// Revokes the refresh token this source holds (RFC 7009, `token_type_hint` =
    /// `refresh_token`); RFC 7009 section 2.1 has the server revoke the access tokens of the
    /// same grant too, where it can. For sign-out, or shutdown of a process that will not
    /// need the grant again: every later fetch fails with `invalid_grant`.
    ///
    /// Waits for a refresh in progress, so the token revoked is the latest one.
    pub async fn revoke_refresh_token(&self) -> Result<(), RevocationError> {
        let _turn = match &self.inner.fleet {
            Some(fleet) => fleet.turn().await,
            None => self.inner.refreshing.lock().await,
        };
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
        let Some(fleet) = &self.inner.fleet else {
            // On a task of its own, so that a fetch dropped mid-request (a cache dropped or
            // timing out) cannot lose a rotated refresh token the server already issued.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return self.refresh_alone().await;
            };
            let this = self.clone();
            return on_own_task(runtime, async move { this.refresh_alone().await }).await;
        };
        fleet.start_checking();
        let this = self.clone();
        let (token, rotated) = fleet
            .refresh(move |presented| {
                let this = this.clone();
                async move { this.present(presented).await }
            })
            .await?;
        if let Some(rotated) = rotated {
            self.call_hook(&rotated).await;
        }
        Ok(token)
    }

    /// A refresh without a fleet: each presents what the one before it left.
    async fn refresh_alone(&self) -> Result<Token, FetchError> {
        let _turn = self.inner.refreshing.lock().await;
        let presented = self.refresh_token();
        let token = self.request(&presented).await?;
        if let Some(rotated) = rotation(&token, &presented) {
            *self.current() = rotated.clone();
            self.call_hook(&rotated).await;
        }
        Ok(token)
    }

    /// Presents `presented` for the fleet, and says whether the server may have consumed it.
    async fn present(&self, presented: SecretString) -> Presentation {
        match self.request(&presented).await {
            Ok(token) => match rotation(&token, &presented) {
                Some(rotated) => Presentation::Rotated(token, rotated),
                None => Presentation::Kept(token),
            },
            Err(error) if issued_nothing(&error) => Presentation::Refused(error),
            Err(error) => Presentation::Unknown(error),
        }
    }

    /// One refresh token grant request presenting `presented`.
    async fn request(&self, presented: &SecretString) -> Result<Token, FetchError> {
        self.inner
            .endpoint
            .request(Grant {
                grant_type: "refresh_token",
                secret_params: &[("refresh_token", presented.expose_secret())],
                params: &self.inner.params,
                response: TokenResponseRules::Standard,
            })
            .await
    }

    async fn call_hook(&self, rotated: &SecretString) {
        match &self.inner.on_rotate {
            Some(RotateHook::Sync(hook)) => hook(rotated),
            Some(RotateHook::Async(hook)) => hook(rotated.clone()).await,
            None => {}
        }
    }
}

/// The new refresh token in `token`, if the server rotated `presented`.
fn rotation(token: &Token, presented: &SecretString) -> Option<SecretString> {
    let rotated = token
        .refresh_token()
        .filter(|rotated| rotated.expose_secret() != presented.expose_secret())
        .cloned()?;
    tracing::debug!("the token endpoint rotated the refresh token");
    Some(rotated)
}

/// Whether the token endpoint answered `error` without issuing anything: an OAuth error
/// response, or a client error status (4xx). A timeout, a broken connection or a 5xx may
/// come after the server acted.
fn issued_nothing(error: &FetchError) -> bool {
    let Some(source) = std::error::Error::source(error) else {
        return false;
    };
    if source.downcast_ref::<crate::OAuthError>().is_some() {
        return true;
    }
    source
        .downcast_ref::<crate::EndpointError>()
        .and_then(crate::EndpointError::status)
        .is_some_and(|status| status.is_client_error())
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
            .field("endpoint", &inner.endpoint)
            .field("refresh_token", &"[redacted]")
            .field("params", &inner.params)
            .field("on_rotate", &inner.on_rotate.as_ref().map(|_| ".."))
            .field("shared", &inner.fleet.as_deref().map(Fleet::key))
            .finish_non_exhaustive()
    }
}

/// Builds a [`RefreshToken`]; see [`RefreshToken::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct RefreshTokenBuilder {
    endpoint: Endpoint,
    client: ClientAuth,
    refresh_token: SecretString,
    params: TokenParams,
    on_rotate: Option<RotateHook>,
    shared: Option<(Arc<dyn RefreshTokenStore>, StoreKey)>,
    when_store_unavailable: WhenStoreUnavailable,
    fleet: FleetConfig,
}

impl RefreshTokenBuilder {
    /// Shares the refresh token with the other replicas through `store` under `key`, for
    /// fleets whose server rotates refresh tokens.
    ///
    /// With rotation, each refresh invalidates the refresh token it presented, and a server
    /// with reuse detection revokes the whole grant when a used one comes back. So no
    /// refresh token is ever presented twice across the fleet (the protocol and what it
    /// assumes are in the [crate docs](crate#a-fleet-sharing-one-refresh-token)):
    ///
    /// - before presenting generation N of the refresh token, the replica records in the
    ///   store that it is presenting N (an *intent*, with no expiry); while it stands, no
    ///   other replica presents N, however long the holder takes or stays cut off. The
    ///   holder resolves it by publishing N+1, which it keeps trying to do for as long as
    ///   it lives;
    /// - every write names its generation and the store keeps the newest, so a late write
    ///   from a replica holding an older copy never overwrites a newer one;
    /// - from the moment it is built, the replica reads the store every
    ///   [`FleetConfig::check_interval`]: it adopts a newer refresh token and notices a
    ///   data loss. An empty store, an older generation or a damaged value is put back from
    ///   the newest copy a replica holds, and nobody presents during a settle that lets every
    ///   replica put back its own; a value sealed with a key this replica lacks is never
    ///   presented;
    /// - when the store cannot be reached or does not answer in time, the replica does not
    ///   refresh ([`WhenStoreUnavailable::Wait`], the default): the fetch fails with a
    ///   transient error saying why, and the cache keeps serving its still-valid access
    ///   token.
    ///
    /// The store's token also wins over the one passed to [`RefreshToken::builder`], so a
    /// replica started with a stale one catches up. `store` may be a clone of the one a
    /// [`StoreSource`](tower_bearer::store::StoreSource) shares access tokens through.
    pub fn share_through(mut self, store: impl RefreshTokenStore, key: StoreKey) -> Self {
        self.shared = Some((Arc::new(store), key));
        self
    }

    /// What to do when the fleet's store cannot be reached and a refresh is due (default
    /// [`WhenStoreUnavailable::Wait`]); only matters with [`share_through`](Self::share_through).
    pub fn when_store_unavailable(mut self, choice: WhenStoreUnavailable) -> Self {
        self.when_store_unavailable = choice;
        self
    }

    /// The fleet's timings (default [`FleetConfig::default`]); only matters with
    /// [`share_through`](Self::share_through).
    pub fn fleet(mut self, config: FleetConfig) -> Self {
        self.fleet = config;
        self
    }

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

    /// The scope, resources and extra parameters to request (default: none). Replaces
    /// those set before. RFC 6749 section 6 lets a scope only narrow the one the refresh
    /// token was granted; without one the server grants that whole scope.
    pub fn params(mut self, params: TokenParams) -> Self {
        self.params = params;
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
                self.client.client_id()
            )));
        }
        let params = self.params.check(
            &["refresh_token"],
            "pass the refresh token to `RefreshToken::builder`",
        )?;
        let endpoint = TokenEndpoint::new(
            self.endpoint,
            self.client,
            RetryPolicy::for_refresh_tokens(),
        )?;
        // The longest one refresh can take at the token endpoint, retries included; with
        // DPoP, an attempt may take a second request, for a server nonce.
        let requests_per_attempt = if endpoint.client.dpop_key().is_some() {
            2
        } else {
            1
        };
        let longest_refresh = endpoint
            .transport()
            .timeout()
            .saturating_mul(
                endpoint
                    .retry
                    .attempts()
                    .saturating_mul(requests_per_attempt),
            )
            .saturating_add(endpoint.retry.max_total_wait());
        let fleet = self.shared.map(|(store, key)| {
            Arc::new(Fleet::new(
                store,
                key,
                self.fleet,
                longest_refresh,
                self.when_store_unavailable,
                self.refresh_token.clone(),
            ))
        });
        if let Some(fleet) = &fleet {
            // Every replica observes the fleet from its start; without a runtime here, from
            // its first fetch.
            fleet.start_checking();
        }
        Ok(RefreshToken {
            inner: Arc::new(Inner {
                endpoint,
                params,
                current: Mutex::new(self.refresh_token),
                refreshing: tokio::sync::Mutex::new(()),
                on_rotate: self.on_rotate,
                fleet,
            }),
        })
    }
}

impl fmt::Debug for RefreshTokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenBuilder")
            .field("endpoint", &self.endpoint)
            .field("client", &self.client)
            .field("refresh_token", &"[redacted]")
            .field("params", &self.params)
            .field("on_rotate", &self.on_rotate.as_ref().map(|_| ".."))
            .field("shared", &self.shared.as_ref().map(|(_, key)| key))
            .field("fleet", &self.fleet)
            .finish()
    }
}
