//! One rotating refresh token shared by a fleet of replicas: how a replica refreshes without
//! ever presenting a refresh token that another replica presented before.
//!
//! With rotation, presenting a used refresh token looks like theft to a server with reuse
//! detection, which then revokes the grant for every replica. The protocol, step by step
//! (the store operations are [`RefreshTokenStore`]'s, each atomic):
//!
//! - **Intent before presenting.** A replica presents generation N only after it recorded,
//!   in the store, that it is presenting N ([`begin_presenting`]). The intent has no expiry:
//!   while it stands nobody else presents N, however long the holder takes or stays cut off.
//!   It is resolved by its holder only: by publishing N+1 (the rotated refresh token), or by
//!   clearing it when the server answered without consuming N.
//! - **Fenced, newest-wins writes.** Every write names its generation, and the store keeps
//!   the newest ([`store_refresh`]): a late write from a replica holding an older copy never
//!   overwrites a newer one. A holder that cannot publish keeps trying for as long as it
//!   lives (its background check retries), and meanwhile it alone may go on refreshing with
//!   the copy nobody else has.
//! - **Every replica observes.** From its start, each replica reads the store every check
//!   interval: it adopts a newer refresh token, and notices a data loss.
//! - **Data loss.** A store without the fleet's record, with an older generation than this
//!   replica saw, or with a damaged value, is not a new fleet: the replica puts its copy back
//!   and starts a settle, during which nobody presents, long enough for every live replica
//!   to put back its copy too (the newest wins) and for a refresh in flight to publish.
//!   A replica that has never seen the store does the same, so a brand-new fleet pays one
//!   settle at its first refresh.
//! - **Foreign values** (sealed with a key this replica lacks) are never presented, and
//!   replaced only when older than this replica's copy: this replica may be the
//!   misconfigured one, and a newer foreign value may be the fleet's newest.
//!
//! An unknown outcome (the request may have reached the server, no answer came back) keeps
//! the intent: only its holder presents that generation again, at its next refresh. If the
//! server had rotated it, the rotated token was lost with the answer and nobody can use the
//! grant anyway; if it had not, the second attempt succeeds.

mod config;
#[cfg(test)]
mod simulation;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use tower_bearer::store::{
    RefreshRecord, RefreshState, RefreshTokenStore, RefreshValue, RefreshWrite, StoreError,
    StoreErrorKind, StoreKey,
};
use tower_bearer::{FetchError, Token};

pub use config::FleetConfig;

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

/// How presenting a refresh token at the token endpoint ended.
pub(crate) enum Presentation {
    /// An access token and a new refresh token: the presented one is used up.
    Rotated(Token, SecretString),
    /// An access token, and the presented refresh token stays the one to use.
    Kept(Token),
    /// The server answered with an error and issued nothing: the presented refresh token was
    /// not consumed (it may be invalid, as with `invalid_grant`, but nothing replaced it).
    Refused(FetchError),
    /// No answer: the server may or may not have consumed the presented refresh token.
    Unknown(FetchError),
}

/// The fleet's side of a [`RefreshToken`](crate::RefreshToken): this replica's copy of the
/// refresh token and its view of the store.
pub(crate) struct Fleet {
    store: Arc<dyn RefreshTokenStore>,
    key: StoreKey,
    config: FleetConfig,
    settle: Duration,
    /// How long a replica watches the store before its first presentation: one jittered
    /// check of every other replica, so that a replica holding a newer copy than the store
    /// (after a restore from an old backup, say) has put it back.
    watch_first: Duration,
    /// The name this replica's intents carry.
    holder: String,
    when_unavailable: WhenStoreUnavailable,
    local: Mutex<Local>,
    /// Held by a refresh, and by a check: one at a time in this replica.
    turn: tokio::sync::Mutex<()>,
    checking: AtomicBool,
}

/// This replica's copy and what it knows of the store.
struct Local {
    refresh_token: SecretString,
    /// The copy's generation: 0 for the configured one until the store says otherwise.
    generation: u64,
    /// The copy is a rotation of ours that the store may not hold yet; our intent stands on
    /// the previous generation meanwhile.
    unpublished: bool,
    /// Our intent on `generation` stands and its outcome is unknown: we present it again.
    unknown_outcome: bool,
    /// Another replica's intent this replica is waiting on, and since when it saw it.
    waiting_on: Option<(String, u64, Instant)>,
    /// When a foreign value was last reported.
    reported_foreign: Option<Instant>,
    /// When this replica first read a record from the store.
    first_seen: Option<Instant>,
}

impl Local {
    /// The server rotated the copy of `presented` we presented: the new one is newer than
    /// anything stored, and ours to publish.
    fn rotated(&mut self, rotated: &SecretString, presented: u64) {
        self.refresh_token = rotated.clone();
        self.generation = presented + 1;
        self.unpublished = true;
        self.unknown_outcome = false;
    }
}

/// What the store's state asks of a refreshing replica.
enum Next {
    Present { generation: u64 },
    Wait(String),
    Fail(FetchError),
}

impl Fleet {
    pub(crate) fn new(
        store: Arc<dyn RefreshTokenStore>,
        key: StoreKey,
        config: FleetConfig,
        longest_refresh: Duration,
        when_unavailable: WhenStoreUnavailable,
        configured: SecretString,
    ) -> Self {
        let holder = config
            .replica_id
            .clone()
            .unwrap_or_else(|| format!("replica-{:016x}", fastrand::u64(..)));
        Fleet {
            settle: config.settle_for(longest_refresh),
            watch_first: config.watch_first(),
            store,
            key,
            config,
            holder,
            when_unavailable,
            local: Mutex::new(Local {
                refresh_token: configured,
                generation: 0,
                unpublished: false,
                unknown_outcome: false,
                waiting_on: None,
                reported_foreign: None,
                first_seen: None,
            }),
            turn: tokio::sync::Mutex::new(()),
            checking: AtomicBool::new(false),
        }
    }

    pub(crate) fn key(&self) -> &StoreKey {
        &self.key
    }

    /// This replica's copy of the refresh token.
    pub(crate) fn refresh_token(&self) -> SecretString {
        self.local().refresh_token.clone()
    }

    /// The generation of this replica's copy.
    #[cfg(test)]
    pub(crate) fn generation(&self) -> u64 {
        self.local().generation
    }

    /// Waits for this replica's turn, so nothing refreshes meanwhile (revocation).
    pub(crate) async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    /// One refresh for the fleet: presents the fleet's refresh token through `present` once
    /// this replica may, and returns the access token and, on rotation, the new refresh
    /// token (already this replica's copy).
    ///
    /// It runs on a task of its own, so a caller that goes away (a dropped cache, a
    /// timeout) cannot cut a presentation off between the server's rotation and the
    /// publication of its result, which would lose the grant.
    pub(crate) async fn refresh<F, Fut>(
        self: &Arc<Self>,
        present: F,
    ) -> Result<(Token, Option<SecretString>), FetchError>
    where
        F: Fn(SecretString) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Presentation> + Send,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.refresh_here(present).await;
        };
        let fleet = self.clone();
        on_own_task(runtime, async move { fleet.refresh_here(present).await }).await
    }

    async fn refresh_here<F, Fut>(
        &self,
        present: F,
    ) -> Result<(Token, Option<SecretString>), FetchError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Presentation>,
    {
        let _turn = self.turn.lock().await;
        let deadline = Instant::now() + self.config.max_wait;
        let mut pause = self.config.poll_interval;
        loop {
            if self.local().unpublished {
                self.publish().await;
            }
            let state = match self.timed(self.store.refresh_record(&self.key)).await {
                Ok(state) => state,
                Err(error) => return self.without_store(error, &present).await,
            };
            match self.assess(state).await {
                Next::Present { generation } => {
                    match self
                        .timed(
                            self.store
                                .begin_presenting(&self.key, generation, &self.holder),
                        )
                        .await
                    {
                        Ok(true) => return self.present_as_holder(generation, &present).await,
                        Ok(false) => {
                            // Another replica began first, or a settle did: look again soon.
                            tokio::time::sleep(jittered(self.config.poll_interval)).await;
                        }
                        Err(error) => return Err(unavailable(error)),
                    }
                }
                Next::Wait(why) if Instant::now() >= deadline => {
                    return Err(FetchError::transient(format!(
                        "not refreshing yet: {why}; waited {:?}, trying again after a \
                         backoff",
                        self.config.max_wait
                    )))
                }
                Next::Wait(_) => {
                    tokio::time::sleep(jittered(pause)).await;
                    pause = pause.saturating_mul(2).min(self.config.max_poll_interval);
                }
                Next::Fail(error) => return Err(error),
            }
        }
    }

    /// Reads what the store holds and brings this replica's copy in line with it: adopts a
    /// newer refresh token, puts ours back after a data loss. Says whether to present.
    async fn assess(&self, state: RefreshState) -> Next {
        let Some(record) = state.record else {
            if self.local().unpublished {
                self.publish().await;
                return Next::Wait("publishing this replica's rotated refresh token".into());
            }
            let generation = self.restore(None).await;
            return Next::Wait(format!(
                "the store did not hold the fleet's refresh token (a new fleet, or lost \
                 data: a restart, a flush, an eviction); this replica put back its copy of \
                 generation {generation}, and nobody refreshes until every replica had the \
                 chance to put back a newer one"
            ));
        };
        let RefreshRecord {
            generation,
            value,
            presenting,
        } = record;
        let stored = match value {
            RefreshValue::Readable(stored) => stored,
            RefreshValue::Damaged(error) => {
                tracing::warn!(
                    key = %self.key,
                    %error,
                    generation,
                    "the store holds a damaged refresh-token value; putting this replica's \
                     copy back"
                );
                self.restore(Some(generation)).await;
                return Next::Wait(format!(
                    "the store held a damaged refresh-token value at generation {generation}, \
                     replaced by a good copy; nobody refreshes until every replica had the \
                     chance to put back a newer one"
                ));
            }
            RefreshValue::Foreign(error) => {
                // Newest-wins holds for values this replica cannot read too: one older than
                // our copy (put back by a replica with other keys after a data loss) gets
                // ours over it; a newer one may be the fleet's newest, and is left alone.
                if generation < self.local().generation {
                    self.restore(None).await;
                    return Next::Wait(format!(
                        "the store held generation {generation} of the fleet's refresh token \
                         sealed with a key this replica does not hold, older than this \
                         replica's copy, which replaced it"
                    ));
                }
                return Next::Fail(self.foreign(error));
            }
        };
        // `Some(ours)`: the store holds an older generation than our copy's.
        let older_than = {
            let mut local = self.local();
            if generation > local.generation
                || (generation == local.generation
                    && !local.unpublished
                    && stored.expose_secret() != local.refresh_token.expose_secret())
            {
                // Newer, or put back first at our generation: the store's copy wins.
                local.refresh_token = stored;
                local.generation = generation;
                local.unpublished = false;
                local.unknown_outcome = false;
            }
            (generation < local.generation).then_some((local.generation, local.unpublished))
        };
        match older_than {
            Some((_, true)) => {
                // Our rotation, not stored yet: ours is the newest anywhere, and nobody can
                // be presenting, so it goes in without a settle.
                self.publish().await;
                return Next::Wait("publishing this replica's rotated refresh token".into());
            }
            Some((ours, false)) => {
                tracing::warn!(
                    key = %self.key,
                    found = generation,
                    ours,
                    "the store holds an older refresh token than this replica (lost data, or \
                     rolled back); putting this replica's copy back"
                );
                self.restore(None).await;
                return Next::Wait(format!(
                    "the store held generation {generation} of the fleet's refresh token, \
                     older than this replica's {ours}; nobody refreshes until every replica \
                     had the chance to put back a newer one"
                ));
            }
            None => {}
        }
        let mut local = self.local();
        let now = Instant::now();
        let watched = now.duration_since(*local.first_seen.get_or_insert(now));
        if watched < self.watch_first {
            return Next::Wait(format!(
                "this replica has watched the store for {watched:?}; it presents the fleet's \
                 refresh token only after {:?}, once every replica had the chance to put \
                 back a newer copy than the store's",
                self.watch_first
            ));
        }
        if state.settling {
            return Next::Wait(
                "the fleet is settling after a data loss, while replicas put back their copies"
                    .into(),
            );
        }
        match presenting {
            Some(other) if other != self.holder => {
                let seen = match &local.waiting_on {
                    Some((holder, at, since)) if *holder == other && *at == generation => *since,
                    _ => {
                        let now = Instant::now();
                        local.waiting_on = Some((other.clone(), generation, now));
                        now
                    }
                };
                Next::Wait(format!(
                    "replica `{other}` announced {:?} ago (as seen here) that it is presenting \
                     generation {generation} and has not published the rotated refresh token \
                     yet; presenting it again could get the grant revoked. If that replica is \
                     gone for good, see `FleetConfig::replica_id`",
                    seen.elapsed()
                ))
            }
            _ => {
                local.waiting_on = None;
                Next::Present { generation }
            }
        }
    }

    /// Under our intent on `generation`: presents it and resolves the intent.
    async fn present_as_holder<F, Fut>(
        &self,
        generation: u64,
        present: &F,
    ) -> Result<(Token, Option<SecretString>), FetchError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Presentation>,
    {
        let presented = self.refresh_token();
        match present(presented).await {
            Presentation::Rotated(token, rotated) => {
                self.local().rotated(&rotated, generation);
                self.publish().await;
                Ok((token, Some(rotated)))
            }
            Presentation::Kept(token) => {
                self.local().unknown_outcome = false;
                self.end_presenting(generation).await;
                Ok((token, None))
            }
            Presentation::Refused(error) => {
                self.local().unknown_outcome = false;
                self.end_presenting(generation).await;
                Err(error)
            }
            Presentation::Unknown(error) => {
                self.local().unknown_outcome = true;
                tracing::warn!(
                    key = %self.key,
                    generation,
                    "no answer to presenting the fleet's refresh token; the other replicas \
                     wait while this one presents it again at its next refresh"
                );
                Err(error)
            }
        }
    }

    /// The store cannot be reached: refresh only where no other replica can have used our
    /// copy.
    async fn without_store<F, Fut>(
        &self,
        error: StoreError,
        present: &F,
    ) -> Result<(Token, Option<SecretString>), FetchError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Presentation>,
    {
        let (ours_alone, generation) = {
            let local = self.local();
            (local.unpublished, local.generation)
        };
        if !ours_alone && self.when_unavailable == WhenStoreUnavailable::Wait {
            return Err(unavailable(error));
        }
        if !ours_alone {
            tracing::warn!(key = %self.key, %error, "refreshing with this replica's own refresh token");
        }
        // Our unpublished rotation: the store still holds our intent on the generation before
        // it, so nobody else has this one. Whatever comes of it stays ours to publish.
        let presented = self.refresh_token();
        match present(presented).await {
            Presentation::Rotated(token, rotated) => {
                self.local().rotated(&rotated, generation);
                Ok((token, Some(rotated)))
            }
            Presentation::Kept(token) => Ok((token, None)),
            Presentation::Refused(error) | Presentation::Unknown(error) => Err(error),
        }
    }

    /// Stores our unpublished rotation, newest-wins; on failure it stays unpublished, for the
    /// next refresh or check to try again.
    async fn publish(&self) {
        let (generation, refresh_token) = {
            let local = self.local();
            (local.generation, local.refresh_token.clone())
        };
        let write = RefreshWrite {
            generation,
            refresh_token: &refresh_token,
            replacing_damaged: None,
            settle: None,
        };
        match self.timed(self.store.store_refresh(&self.key, write)).await {
            Ok(true) => self.published(generation),
            // Nothing older to overwrite: our earlier write got through and only its answer
            // was lost, or the store holds something we have to look at.
            Ok(false) => self.published_or_not(write).await,
            Err(error) => tracing::warn!(
                key = %self.key,
                %error,
                generation,
                "could not store the rotated refresh token for the fleet; the other replicas \
                 wait, and this replica keeps trying"
            ),
        }
    }

    /// After a refused publication of `write`: done if the store holds it already (only the
    /// answer to an earlier write was lost), a damaged value is replaced by it, anything
    /// else is reported.
    async fn published_or_not(&self, write: RefreshWrite<'_>) {
        let generation = write.generation;
        let Ok(RefreshState {
            record:
                Some(RefreshRecord {
                    generation: stored,
                    value,
                    ..
                }),
            ..
        }) = self.timed(self.store.refresh_record(&self.key)).await
        else {
            return;
        };
        match value {
            RefreshValue::Readable(token)
                if stored == generation
                    && token.expose_secret() == write.refresh_token.expose_secret() =>
            {
                self.published(generation)
            }
            RefreshValue::Damaged(_) => {
                let write = RefreshWrite {
                    replacing_damaged: Some(stored),
                    ..write
                };
                if let Ok(true) = self.timed(self.store.store_refresh(&self.key, write)).await {
                    self.published(generation);
                }
            }
            _ => tracing::error!(
                key = %self.key,
                stored,
                ours = generation,
                "the store holds another refresh token at or above this replica's unpublished \
                 rotation; this replica keeps its own"
            ),
        }
    }

    fn published(&self, generation: u64) {
        let mut local = self.local();
        if local.generation == generation {
            local.unpublished = false;
        }
    }

    async fn end_presenting(&self, generation: u64) {
        let ended = self
            .timed(
                self.store
                    .end_presenting(&self.key, generation, &self.holder),
            )
            .await;
        if ended.is_err() {
            // The intent stays until the next check clears it.
            tracing::debug!(key = %self.key, "could not clear this replica's intent yet");
        }
    }

    /// Puts our copy back (newest-wins) and starts a settle if it was written; returns our
    /// generation.
    async fn restore(&self, replacing_damaged: Option<u64>) -> u64 {
        let (generation, refresh_token) = {
            let local = self.local();
            (local.generation, local.refresh_token.clone())
        };
        let write = RefreshWrite {
            generation,
            refresh_token: &refresh_token,
            replacing_damaged,
            settle: Some(self.settle),
        };
        if let Ok(true) = self.timed(self.store.store_refresh(&self.key, write)).await {
            tracing::info!(
                key = %self.key,
                generation,
                settle = ?self.settle,
                "put this replica's refresh token back in the store; the fleet settles"
            );
        }
        generation
    }

    fn foreign(&self, error: StoreError) -> FetchError {
        let now = Instant::now();
        let mut local = self.local();
        let report = local
            .reported_foreign
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60));
        if report {
            local.reported_foreign = Some(now);
            tracing::error!(
                key = %self.key,
                %error,
                "the store holds the fleet's refresh token sealed with a key this replica does \
                 not hold; not presenting nor replacing it"
            );
        }
        FetchError::permanent(
            "the fleet's refresh token in the store is sealed with a key this replica does \
             not hold; give every replica the same encryption keys (see the store's \
             `decryption_key`)",
        )
        .with_source(error)
    }

    /// Starts this replica's background check, once; it ends when the fleet is dropped.
    pub(crate) fn start_checking(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let fleet = Arc::downgrade(self);
        // The first check comes at a random point of the first interval, so that a fleet
        // started at once spreads its reads.
        let first = self.config.check_interval.mul_f64(fastrand::f64());
        runtime.spawn(check_loop(fleet, first));
    }

    /// Between refreshes: adopts a newer refresh token, finishes what a lost answer left
    /// undone, and puts our copy back after a data loss.
    pub(crate) async fn check(&self) {
        let Ok(_turn) = self.turn.try_lock() else {
            // A refresh is reading the store itself.
            return;
        };
        if self.local().unpublished {
            self.publish().await;
        }
        let Ok(state) = self.timed(self.store.refresh_record(&self.key)).await else {
            return;
        };
        let ours = state.record.as_ref().is_some_and(|record| {
            record.presenting.as_deref() == Some(self.holder.as_str())
                && record.generation == self.local().generation
        });
        match self.assess(state).await {
            // Our intent, and no presentation of ours in flight (we hold the turn) nor
            // unknown: a lost answer to `begin_presenting`, or a refusal whose clearing
            // failed. Clear it so the others need not wait.
            Next::Present { generation } if ours && !self.local().unknown_outcome => {
                self.end_presenting(generation).await;
            }
            _ => {}
        }
    }

    async fn timed<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.config.store_timeout;
        tokio::time::timeout(limit, operation)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::new(
                    StoreErrorKind::Timeout,
                    format!("no answer within {limit:?}"),
                ))
            })
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        // Fields are replaced whole, so a panic elsewhere cannot leave them half-written.
        self.local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs `refresh` on a task of its own and waits for it: a caller that goes away does not
/// cut it short. A panic inside goes on in the caller, as if it had run there.
pub(crate) async fn on_own_task<T: Send + 'static>(
    runtime: tokio::runtime::Handle,
    refresh: impl Future<Output = Result<T, FetchError>> + Send + 'static,
) -> Result<T, FetchError> {
    match runtime.spawn(refresh).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(FetchError::transient(
            "the refresh task was cancelled before it finished (the runtime is shutting down)",
        )
        .with_source(error)),
    }
}

async fn check_loop(fleet: Weak<Fleet>, first: Duration) {
    let mut pause = first;
    loop {
        tokio::time::sleep(pause).await;
        let Some(fleet) = fleet.upgrade() else {
            return;
        };
        fleet.check().await;
        pause = jittered(fleet.config.check_interval);
    }
}

/// `interval` scaled by a random factor in [0.8, 1.2).
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.8 + 0.4 * fastrand::f64())
}

fn unavailable(error: StoreError) -> FetchError {
    FetchError::transient(
        "the fleet's refresh-token store cannot be reached or read, so this replica does not \
         refresh: another replica may have rotated its refresh token, and presenting that \
         one again could get the fleet's grant revoked; it tries again after a backoff",
    )
    .with_source(error)
}
