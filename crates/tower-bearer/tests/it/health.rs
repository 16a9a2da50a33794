//! What a readiness probe sees as the authorization server goes down and comes back, and
//! what the metrics facade receives. Paused time, an in-process source.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower_bearer::cache::{FailureKind, HealthState};
use tower_bearer::source::TokenFuture;
use tower_bearer::{CacheConfig, FetchError, Token, TokenCache, TokenSource};

/// Hands out 100 s tokens, or fails while `down` is set.
#[derive(Clone, Default)]
struct Server {
    down: Arc<AtomicBool>,
    fetches: Arc<AtomicU64>,
}

impl TokenSource for Server {
    fn fetch(&self) -> TokenFuture<'_> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move {
            if down {
                return Err(FetchError::transient(
                    "authorization server unavailable (secret-in-message)",
                ));
            }
            Ok(Token::builder(format!("token-{n}"))
                .expires_in(Duration::from_secs(100))
                .build()?)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_cache_walks_from_healthy_to_degraded_to_failing_and_back() {
    let server = Server::default();
    let cache = TokenCache::with_config(server.clone(), CacheConfig::new().refresh_jitter(0.0));
    assert_eq!(cache.health().state, HealthState::Starting);
    assert!(!cache.health().is_ready());

    cache.token().await.unwrap();
    let health = cache.health();
    assert_eq!(health.state, HealthState::Healthy);
    // 100 s, less a quarter of it for the skew.
    assert_eq!(health.token_valid_for, Some(Duration::from_secs(75)));
    assert_eq!(
        (health.consecutive_failures, health.last_failure),
        (0, None)
    );

    // The authorization server goes down; inside the refresh window (from 50 s) the
    // background refresh fails, and callers are still served.
    server.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(51)).await;
    cache.token().await.unwrap();
    // Let the background refresh run and fail.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let health = cache.health();
    assert_eq!(health.state, HealthState::Degraded, "{health:?}");
    assert!(health.is_ready());
    assert!(health.consecutive_failures >= 1);
    assert_eq!(health.last_failure, Some(FailureKind::Transient));
    assert!(health.next_attempt_in.is_some());
    assert!(health.token_valid_for.unwrap() <= Duration::from_secs(24));
    assert!(!format!("{health:?}").contains("secret-in-message"));

    // Past expiry: requests fail now.
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(cache.token().await.is_err());
    let health = cache.health();
    assert_eq!(health.state, HealthState::Failing, "{health:?}");
    assert!(!health.is_ready());
    assert_eq!(health.token_valid_for, None);

    // Back up: after the backoff, a fetch succeeds and the cache is healthy again.
    server.down.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(61)).await;
    cache.token().await.unwrap();
    let health = cache.health();
    assert_eq!(health.state, HealthState::Healthy, "{health:?}");
    assert_eq!(
        (health.consecutive_failures, health.last_failure),
        (0, None)
    );
}

#[test]
fn fetches_waits_and_invalidations_reach_the_metrics_facade() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = Server::default();
            let cache = TokenCache::new(server.clone());
            let token = cache.token().await.unwrap();
            assert!(cache.invalidate(&token));
            server.down.store(true, Ordering::SeqCst);
            assert!(cache.token().await.is_err());
        });
    });
    let mut seen = Vec::new();
    for (key, _unit, _description, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let value = match value {
            DebugValue::Counter(n) => n.to_string(),
            DebugValue::Histogram(samples) => format!("{} samples", samples.len()),
            DebugValue::Gauge(g) => g.to_string(),
        };
        seen.push(format!("{}{{{}}} {value}", key.name(), labels.join(",")));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "tower_bearer_token_fetch_duration_seconds{outcome=success} 1 samples",
            "tower_bearer_token_fetch_duration_seconds{outcome=transient} 1 samples",
            "tower_bearer_token_fetches_total{outcome=success} 1",
            "tower_bearer_token_fetches_total{outcome=transient} 1",
            "tower_bearer_token_invalidations_total{reason=explicit} 1",
            "tower_bearer_token_waits_total{} 2",
        ]
    );
}
