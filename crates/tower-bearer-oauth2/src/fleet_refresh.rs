//! One rotating refresh token shared by a fleet of replicas: how a replica refreshes without
//! ever presenting a refresh token that another replica has already used.
//!
//! With rotation, presenting a used refresh token looks like theft to a server with reuse
//! detection, which then revokes the grant for every replica. So:
//!
//! - every refresh happens under the fleet's refresh lease (`SET NX PX` on a key derived
//!   from the store key), so replicas refresh one after another;
//! - under the lease the replica reads the store and presents the newest refresh token it
//!   finds (its own copy only when the store holds nothing newer), and after a rotation it
//!   stores the new one before it lets go of the lease;
//! - when the store cannot be reached, read in time, or the lease taken, the replica does
//!   not refresh (unless told to with [`WhenStoreUnavailable::RefreshWithOwnCopy`]): its
//!   copy may have been rotated away. The cache keeps serving a still-valid access token
//!   meanwhile;
//! - a store that lost its data (nothing stored, or an older generation than this
//!   replica's) or holds a value it cannot read is written again with this replica's copy,
//!   under the lease, so sharing resumes by itself.
//!
//! After a data loss nobody knows at first which replica holds the newest refresh token. So
//! whoever notices (a refresh, or the background check that every replica runs every
//! [`CHECK_EVERY`]) puts its own copy back with "newest generation wins" semantics and holds
//! the refresh lease for [`SETTLE`]: long enough for every live replica's check to put back
//! its copy too. Only then does anyone refresh, with the newest copy put back. Between
//! refreshes the check also has each replica adopt a newer stored copy, so copies stay
//! current.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;
use tower_bearer::store::{RefreshTokenStore, StoreError, StoreErrorKind, StoreKey};
use tower_bearer::FetchError;

/// What a replica does when the fleet's store cannot be reached, or does not answer in time,
/// and it needs to refresh; see [`RefreshTokenBuilder::share_through`](crate::RefreshTokenBuilder::share_through).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenStoreUnavailable {
    /// Do not refresh: fail the fetch with a transient error that says why, so the cache
    /// keeps its still-valid access token and tries again after a backoff. The default: the
    /// replica's own refresh token may have been rotated away by another replica, and
    /// presenting it could revoke the fleet's grant.
    #[default]
    Wait,
    /// Refresh with this replica's own copy of the refresh token. Right for a single
    /// replica that uses the store only to survive restarts; with several replicas it can
    /// revoke the grant.
    RefreshWithOwnCopy,
}

/// How long one store operation may take.
const STORE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a replica waiting for the refresh lease looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often the background check reads the store between refreshes.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long nobody refreshes after a data loss was noticed: two checks of every replica,
/// and a margin.
pub(crate) const SETTLE: Duration = Duration::from_secs(11);

/// The fleet's side of a [`RefreshToken`](crate::RefreshToken).
pub(crate) struct Fleet {
    store: Arc<dyn RefreshTokenStore>,
    key: StoreKey,
    lease_key: StoreKey,
    /// Names this replica's lease, so that only it can release it.
    holder: String,
    /// The store's generation of the refresh token this replica holds (0: the one it was
    /// configured with, never seen in the store).
    generation: AtomicU64,
    lease_ttl: Duration,
    max_wait: Duration,
    when_unavailable: WhenStoreUnavailable,
    /// Whether an unreadable value was reported already (reported once).
    reported_unreadable: AtomicBool,
    checker_started: AtomicBool,
}

/// What the lease holder presents: the refresh token and its generation in the store.
pub(crate) struct Presenting {
    pub(crate) refresh_token: SecretString,
    pub(crate) generation: u64,
}

/// The fleet's refresh lease, while this replica holds it. Dropping it does not release
/// it (that needs the store): [`release`](Lease::release) does, or it runs out.
pub(crate) struct Lease<'a> {
    fleet: &'a Fleet,
}

impl Fleet {
    pub(crate) fn new(
        store: Arc<dyn RefreshTokenStore>,
        key: StoreKey,
        lease_ttl: Duration,
        max_wait: Duration,
        when_unavailable: WhenStoreUnavailable,
    ) -> Self {
        Fleet {
            lease_key: key.derive("refresh"),
            holder: format!("refresh-{:016x}", fastrand::u64(..)),
            store,
            key,
            generation: AtomicU64::new(0),
            lease_ttl,
            max_wait,
            when_unavailable,
            reported_unreadable: AtomicBool::new(false),
            checker_started: AtomicBool::new(false),
        }
    }

    pub(crate) fn key(&self) -> &StoreKey {
        &self.key
    }

    pub(crate) fn when_unavailable(&self) -> WhenStoreUnavailable {
        self.when_unavailable
    }

    /// Takes the fleet's refresh lease, waiting while another replica holds it.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, FetchError> {
        let deadline = Instant::now() + self.max_wait;
        loop {
            let attempt = self
                .store
                .try_lease(&self.lease_key, &self.holder, self.lease_ttl);
            match timed(attempt).await {
                Ok(true) => return Ok(Lease { fleet: self }),
                Ok(false) if Instant::now() >= deadline => {
                    return Err(FetchError::transient(format!(
                        "another replica has held the fleet's refresh lease for {:?}; not \
                         refreshing without it, since two replicas presenting one refresh \
                         token can get the grant revoked",
                        self.max_wait
                    )))
                }
                Ok(false) => tokio::time::sleep(POLL_INTERVAL).await,
                Err(error) => return Err(unavailable(error)),
            }
        }
    }

    /// Under the lease: the refresh token to present, from the store if it holds a newer
    /// one, and the store brought back in line if it lost or garbled the fleet's copy.
    pub(crate) async fn choose(
        &self,
        _lease: &Lease<'_>,
        own: SecretString,
    ) -> Result<Presenting, FetchError> {
        let local = self.generation.load(Ordering::Acquire);
        match timed(self.store.refresh_token(&self.key)).await {
            Ok(Some(stored)) if stored.generation >= local => {
                self.generation.store(stored.generation, Ordering::Release);
                Ok(Presenting {
                    refresh_token: stored.refresh_token,
                    generation: stored.generation,
                })
            }
            // Nothing stored and this replica never saw the store: a new fleet.
            Ok(None) if local == 0 => Ok(Presenting {
                refresh_token: own,
                generation: 0,
            }),
            Ok(stored) => {
                tracing::warn!(
                    key = %self.key,
                    found = stored.as_ref().map(|s| s.generation),
                    ours = local,
                    "the store lost the fleet's refresh token (a restart, a flush, an \
                     eviction); putting this replica's back and waiting for the others to \
                     put back theirs before refreshing"
                );
                self.settle(own, local).await
            }
            Err(error) if error.kind() == StoreErrorKind::Unreadable => {
                if !self.reported_unreadable.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        key = %self.key,
                        %error,
                        "the store holds a refresh-token value this replica cannot read; \
                         replacing it with this replica's"
                    );
                }
                self.settle(own, local.max(1)).await
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Under the lease, after a data loss: puts this replica's copy back, waits [`SETTLE`]
    /// for the others to put back theirs (the newest wins), and presents the newest.
    async fn settle(&self, own: SecretString, generation: u64) -> Result<Presenting, FetchError> {
        timed(self.store.put_refresh_token(&self.key, generation, &own))
            .await
            .map_err(unavailable)?;
        tokio::time::sleep(SETTLE).await;
        match timed(self.store.refresh_token(&self.key)).await {
            Ok(Some(stored)) if stored.generation >= generation => {
                self.generation.store(stored.generation, Ordering::Release);
                Ok(Presenting {
                    refresh_token: stored.refresh_token,
                    generation: stored.generation,
                })
            }
            Ok(_) => Err(FetchError::transient(
                "the fleet's refresh token was lost from the store again while replicas \
                 were putting theirs back; trying again after a backoff",
            )),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Under the lease, after the server rotated `presented` (of `generation`) into
    /// `rotated`: stores it as the next generation. Lets go of the lease only once the store
    /// has it; otherwise the lease runs out by itself, which keeps the other replicas from
    /// presenting the rotated-away one meanwhile.
    pub(crate) async fn publish(&self, lease: Lease<'_>, generation: u64, rotated: &SecretString) {
        let next = generation + 1;
        for attempt in 1..=3 {
            let written = match timed(
                self.store
                    .replace_refresh_token(&self.key, generation, rotated),
            )
            .await
            {
                Ok(true) => Ok(()),
                // Under the lease nobody else rotates: the store lost the value or holds a
                // foreign one since we read it. Ours is the newest; store it as such.
                Ok(false) => timed(self.store.put_refresh_token(&self.key, next, rotated))
                    .await
                    .map(drop),
                Err(error) => Err(error),
            };
            match written {
                Ok(()) => {
                    self.generation.store(next, Ordering::Release);
                    lease.release().await;
                    return;
                }
                Err(error) if attempt == 3 => {
                    tracing::warn!(
                        key = %self.key,
                        %error,
                        "could not store the rotated refresh token for the fleet; other \
                         replicas wait for the refresh lease to run out, and this replica \
                         stores it at its next refresh"
                    );
                    // Ours is newer than anything stored: the next `choose` republishes it.
                    // The lease is left to run out.
                    self.generation.store(next, Ordering::Release);
                    let _ = lease;
                    return;
                }
                Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }

    /// True the first time it is called: the caller then starts the background check.
    pub(crate) fn first_to_start_checking(&self) -> bool {
        !self.checker_started.swap(true, Ordering::AcqRel)
    }

    /// Between refreshes: adopts a newer stored refresh token, and republishes this
    /// replica's if the store lost it. Errors are for the next refresh to report.
    pub(crate) async fn check(&self, current: &std::sync::Mutex<SecretString>) {
        let local = self.generation.load(Ordering::Acquire);
        match timed(self.store.refresh_token(&self.key)).await {
            Ok(Some(stored)) if stored.generation > local => {
                *lock(current) = stored.refresh_token;
                self.generation.store(stored.generation, Ordering::Release);
            }
            Ok(Some(stored)) if stored.generation == local => {}
            Ok(_) if local == 0 => {}
            // Lost, older, or unreadable: put ours back (the newest wins) and hold refreshes
            // off until every replica's check has had the chance to do the same.
            _ => {
                let own = lock(current).clone();
                if let Ok(true) = timed(self.store.put_refresh_token(&self.key, local, &own)).await
                {
                    tracing::warn!(
                        key = %self.key,
                        ours = local,
                        "the store had lost the fleet's refresh token; put this replica's back"
                    );
                    // Left to run out: that is the hold.
                    let _ =
                        timed(self.store.try_lease(&self.lease_key, &self.holder, SETTLE)).await;
                }
            }
        }
    }
}

impl Lease<'_> {
    pub(crate) async fn release(self) {
        let fleet = self.fleet;
        let _ = timed(fleet.store.release(&fleet.lease_key, &fleet.holder)).await;
    }
}

/// A store operation within [`STORE_TIMEOUT`].
async fn timed<T>(
    operation: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(STORE_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("no answer within {STORE_TIMEOUT:?}"),
            ))
        })
}

fn unavailable(error: StoreError) -> FetchError {
    FetchError::transient(
        "the fleet's refresh-token store cannot be reached or read, so this replica does not \
         refresh: another replica may have rotated its refresh token, and presenting that \
         one again could get the fleet's grant revoked; it tries again after a backoff",
    )
    .with_source(error)
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
