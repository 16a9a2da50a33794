//! How strict a mock server is about DPoP proofs.

use std::time::Duration;

/// How a mock server checks DPoP proofs (RFC 9449): whether every request needs one,
/// whether proofs need a server nonce, and the `iat` window.
///
/// Give it to [`AuthServerBuilder::dpop`](crate::AuthServerBuilder::dpop) or
/// [`ApiServerBuilder::dpop`](crate::ApiServerBuilder::dpop). Without a call both servers
/// use [`DpopOptions::new`]: a proof is checked whenever a request carries one, and none is
/// required.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer_testkit::{AuthServer, DpopNoncePolicy, DpopOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let auth = AuthServer::builder()
///     .dpop(
///         DpopOptions::new()
///             .require_proof(true)
///             .require_nonce(DpopNoncePolicy::new().rotate_after_uses(10))
///             .iat_window(Duration::from_secs(30)),
///     )
///     .start()
///     .await?;
/// assert!(auth.dpop_nonce().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopOptions {
    pub(crate) require_proof: bool,
    pub(crate) nonce: Option<DpopNoncePolicy>,
    pub(crate) iat_window: Duration,
    pub(crate) replay_cache_capacity: usize,
}

impl DpopOptions {
    /// How far `iat` may be from the server's wall clock, either way, unless configured:
    /// 60 seconds.
    pub const DEFAULT_IAT_WINDOW: Duration = Duration::from_secs(60);
    /// How many `jti`s the replay cache holds unless configured: 10,000.
    pub const DEFAULT_REPLAY_CACHE_CAPACITY: usize = 10_000;

    /// Proofs checked when sent, none required, no nonce, the default window and cache.
    pub fn new() -> DpopOptions {
        DpopOptions {
            require_proof: false,
            nonce: None,
            iat_window: Self::DEFAULT_IAT_WINDOW,
            replay_cache_capacity: Self::DEFAULT_REPLAY_CACHE_CAPACITY,
        }
    }

    /// The strictest server: a proof on every request, and a nonce of the server's own in
    /// each ([`DpopNoncePolicy::new`]); the default window and cache.
    pub fn strict() -> DpopOptions {
        DpopOptions::new()
            .require_proof(true)
            .require_nonce(DpopNoncePolicy::new())
    }

    /// Whether every request needs a DPoP proof (default `false`). At the token endpoint
    /// a request without one gets 400 `invalid_dpop_proof`; at the API a `Bearer` token, or
    /// none, gets 401 with a `DPoP` challenge.
    #[must_use]
    pub fn require_proof(mut self, require: bool) -> DpopOptions {
        self.require_proof = require;
        self
    }

    /// Requires every proof to carry a nonce this server issued (RFC 9449 section 8 at the
    /// token endpoint, section 9 at the API), rotated as `policy` says. A proof without
    /// one, or with one the server no longer accepts, is refused with `use_dpop_nonce` and
    /// the current nonce in a `DPoP-Nonce` header.
    #[must_use]
    pub fn require_nonce(mut self, policy: DpopNoncePolicy) -> DpopOptions {
        self.nonce = Some(policy);
        self
    }

    /// How far a proof's `iat` may be from the server's wall clock, in the past or the
    /// future (default [`DEFAULT_IAT_WINDOW`](Self::DEFAULT_IAT_WINDOW)). It is also how
    /// long a `jti` is remembered.
    #[must_use]
    pub fn iat_window(mut self, window: Duration) -> DpopOptions {
        self.iat_window = window;
        self
    }

    /// How many `jti`s the replay cache holds (default
    /// [`DEFAULT_REPLAY_CACHE_CAPACITY`](Self::DEFAULT_REPLAY_CACHE_CAPACITY), at least 1).
    /// Entries leave when their proof's `iat` leaves the window; when the cache is full the
    /// oldest entry leaves early, and a replay of that proof would be accepted.
    #[must_use]
    pub fn replay_cache_capacity(mut self, capacity: usize) -> DpopOptions {
        self.replay_cache_capacity = capacity.max(1);
        self
    }
}

impl Default for DpopOptions {
    fn default() -> DpopOptions {
        DpopOptions::new()
    }
}

/// When a server that requires DPoP nonces issues a new one; for
/// [`DpopOptions::require_nonce`].
///
/// A nonce is current until it has been used [`rotate_after_uses`](Self::rotate_after_uses)
/// times or is [`rotate_every`](Self::rotate_every) old (on the tokio clock, so a test on
/// paused time rotates it with `tokio::time::advance`), whichever comes first, or until the
/// test rotates it by hand. The previous nonce stays accepted for
/// [`previous_accepted_for`](Self::previous_accepted_for) after that; older ones are stale.
/// Nonces are random base64url strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopNoncePolicy {
    pub(crate) rotate_after_uses: Option<u64>,
    pub(crate) rotate_every: Option<Duration>,
    pub(crate) previous_accepted_for: Duration,
}

impl DpopNoncePolicy {
    /// How long the previous nonce stays accepted after a rotation unless configured:
    /// 5 seconds, enough for requests already in flight.
    pub const DEFAULT_PREVIOUS_ACCEPTED_FOR: Duration = Duration::from_secs(5);

    /// One nonce that rotates only by hand, and the default grace for the previous one.
    pub fn new() -> DpopNoncePolicy {
        DpopNoncePolicy {
            rotate_after_uses: None,
            rotate_every: None,
            previous_accepted_for: Self::DEFAULT_PREVIOUS_ACCEPTED_FOR,
        }
    }

    /// Issues a new nonce once the current one was accepted in `uses` proofs (at least 1).
    #[must_use]
    pub fn rotate_after_uses(mut self, uses: u64) -> DpopNoncePolicy {
        self.rotate_after_uses = Some(uses.max(1));
        self
    }

    /// Issues a new nonce once the current one is `period` old (tokio clock).
    #[must_use]
    pub fn rotate_every(mut self, period: Duration) -> DpopNoncePolicy {
        self.rotate_every = Some(period);
        self
    }

    /// How long the previous nonce stays accepted after a rotation (default
    /// [`DEFAULT_PREVIOUS_ACCEPTED_FOR`](Self::DEFAULT_PREVIOUS_ACCEPTED_FOR)); zero
    /// refuses it at once.
    #[must_use]
    pub fn previous_accepted_for(mut self, grace: Duration) -> DpopNoncePolicy {
        self.previous_accepted_for = grace;
        self
    }
}

impl Default for DpopNoncePolicy {
    fn default() -> DpopNoncePolicy {
        DpopNoncePolicy::new()
    }
}
