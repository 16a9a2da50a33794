//! Counters and a histogram through the `metrics` facade (feature `metrics`); without the
//! feature every function here is empty and compiles away.
//!
//! Names follow the facade's conventions for Prometheus-style exporters: snake case,
//! prefixed `tower_bearer_`, counters ending in `_total`, durations in seconds:
//!
//! - `tower_bearer_token_fetches_total{outcome}`: fetches that ended, by outcome
//!   (`success`, `transient`, `permanent`, `panic`, `timeout`, `cancelled`);
//! - `tower_bearer_token_fetch_duration_seconds{outcome}`: how long they took;
//! - `tower_bearer_token_waits_total`: callers that had to wait for a fetch;
//! - `tower_bearer_token_invalidations_total{reason}`: cached tokens invalidated, because
//!   a server rejected them (`rejected`) or by [`TokenCache::invalidate`](crate::TokenCache::invalidate)
//!   (`explicit`);
//! - `tower_bearer_store_fallbacks_total`: fetches a `StoreSource` made on its own because
//!   its store failed.
//!
//! Only slow paths record: the fresh-token path records nothing.

use std::time::Duration;

#[cfg(feature = "metrics")]
pub(crate) fn fetched(outcome: &'static str, took: Duration) {
    metrics::counter!("tower_bearer_token_fetches_total", "outcome" => outcome).increment(1);
    metrics::histogram!("tower_bearer_token_fetch_duration_seconds", "outcome" => outcome)
        .record(took.as_secs_f64());
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn fetched(_outcome: &'static str, _took: Duration) {}

#[cfg(feature = "metrics")]
pub(crate) fn waited() {
    metrics::counter!("tower_bearer_token_waits_total").increment(1);
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn waited() {}

#[cfg(feature = "metrics")]
pub(crate) fn invalidated(reason: &'static str) {
    metrics::counter!("tower_bearer_token_invalidations_total", "reason" => reason).increment(1);
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn invalidated(_reason: &'static str) {}

#[cfg(feature = "metrics")]
pub(crate) fn store_fell_back() {
    metrics::counter!("tower_bearer_store_fallbacks_total").increment(1);
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn store_fell_back() {}
