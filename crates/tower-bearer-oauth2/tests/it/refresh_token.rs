//! `RefreshToken` against the testkit's mock authorization server, over real loopback
//! sockets with the default hyper client: rotation, the hook, serialization of concurrent
//! refreshes, which failures are retried, revocation.

use std::error::Error as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;
use tower::service_fn;
use tower_bearer::{FetchError, TokenCache, TokenSource};
use tower_bearer_oauth2::{
    ClientAuth, Endpoint, EndpointBuilder, HttpClient, OAuthError, RefreshToken,
    RefreshTokenBuilder, RetryPolicy, TokenParams,
};
use tower_bearer_testkit::{capture_tracing, http_client, AuthServer, Fault};

use crate::support::default_client;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The server's token and revocation endpoints.
fn endpoint_for(server: &AuthServer) -> EndpointBuilder {
    Endpoint::builder(server.token_url()).revocation_url(server.revocation_url())
}

/// A source for the server's default client over `endpoint`, starting from `refresh_token`.
fn source_over(endpoint: EndpointBuilder, refresh_token: &str) -> RefreshTokenBuilder {
    let endpoint = endpoint.build().expect("a valid endpoint");
    RefreshToken::builder(endpoint, default_client(), refresh_token)
}

fn source_for(server: &AuthServer, refresh_token: &str) -> RefreshTokenBuilder {
    source_over(endpoint_for(server), refresh_token)
}

/// Records every refresh token the hook was called with.
#[derive(Clone, Default)]
struct Rotations(Arc<Mutex<Vec<String>>>);

impl Rotations {
    fn attach(&self, builder: RefreshTokenBuilder) -> RefreshTokenBuilder {
        let seen = Arc::clone(&self.0);
        builder.on_rotate(move |new: &SecretString| {
            seen.lock().unwrap().push(new.expose_secret().to_owned());
        })
    }

    fn seen(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn oauth_error(error: &FetchError) -> &OAuthError {
    error
        .source()
        .and_then(|source| source.downcast_ref::<OAuthError>())
        .unwrap_or_else(|| panic!("no OAuthError source: {error:?}"))
}

#[tokio::test]
async fn each_refresh_rotates_the_refresh_token_and_calls_the_hook_once() -> TestResult {
    let server = AuthServer::builder()
        .detect_refresh_token_reuse(true)
        .start()
        .await?;
    let seeded = server.issue_refresh_token("client", Some("read write"));
    let rotations = Rotations::default();
    let source = rotations.attach(source_for(&server, &seeded)).build()?;

    let first = source.fetch().await?;
    assert!(server.is_valid(first.secret().expose_secret()));
    assert_eq!(first.scope(), Some("read write"));
    let after_first = source.refresh_token();
    assert_ne!(after_first.expose_secret(), seeded);
    assert!(!server.is_refresh_token_valid(&seeded), "rotated away");
    assert!(server.is_refresh_token_valid(after_first.expose_secret()));
    assert_eq!(rotations.seen(), [after_first.expose_secret().to_owned()]);

    let request = server.last_request().expect("a refresh request");
    assert_eq!(request.grant_type, "refresh_token");
    assert_eq!(request.param("refresh_token"), Some(seeded.as_str()));

    let second = source.fetch().await?;
    assert!(!second.same_as(&first));
    let after_second = source.refresh_token();
    assert_eq!(
        server.last_request().unwrap().param("refresh_token"),
        Some(after_first.expose_secret())
    );
    assert_eq!(
        rotations.seen(),
        [
            after_first.expose_secret().to_owned(),
            after_second.expose_secret().to_owned()
        ]
    );
    assert!(server.is_refresh_token_valid(after_second.expose_secret()));
    assert_eq!(server.token_requests(), 2);
    Ok(())
}

#[tokio::test]
async fn the_async_hook_gets_the_new_refresh_token() -> TestResult {
    let server = AuthServer::start().await?;
    let seeded = server.issue_refresh_token("client", None);
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let source = source_for(&server, &seeded)
        .on_rotate_async(move |new: SecretString| {
            let sender = sender.clone();
            async move {
                tokio::task::yield_now().await;
                let _ = sender.send(new.expose_secret().to_owned());
            }
        })
        .build()?;
    source.fetch().await?;
    // The hook finished before fetch returned.
    let persisted = receiver.try_recv()?;
    assert_eq!(persisted, source.refresh_token().expose_secret());
    assert!(receiver.try_recv().is_err(), "called once");
    Ok(())
}

#[tokio::test]
async fn without_rotation_the_refresh_token_is_kept_and_the_hook_not_called() -> TestResult {
    let server = AuthServer::builder()
        .rotate_refresh_tokens(false)
        .start()
        .await?;
    let seeded = server.issue_refresh_token("client", None);
    let rotations = Rotations::default();
    let source = rotations.attach(source_for(&server, &seeded)).build()?;
    for _ in 0..2 {
        let token = source.fetch().await?;
        assert!(server.is_valid(token.secret().expose_secret()));
        assert_eq!(source.refresh_token().expose_secret(), seeded);
    }
    assert!(rotations.seen().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_never_present_a_rotated_away_refresh_token() -> TestResult {
    // With reuse detection a single stale refresh token would revoke the grant and fail
    // every later fetch.
    let server = AuthServer::builder()
        .detect_refresh_token_reuse(true)
        .start()
        .await?;
    let seeded = server.issue_refresh_token("client", None);
    let rotations = Rotations::default();
    let source = rotations.attach(source_for(&server, &seeded)).build()?;

    let callers = 20;
    let mut tasks = JoinSet::new();
    for _ in 0..callers {
        let source = source.clone();
        tasks.spawn(async move { source.fetch().await });
    }
    while let Some(result) = tasks.join_next().await {
        let token = result??;
        assert!(server.is_valid(token.secret().expose_secret()));
    }
    assert_eq!(server.token_requests(), callers);
    let seen = rotations.seen();
    assert_eq!(seen.len(), callers as usize, "one hook call per rotation");
    assert_eq!(
        seen.last().map(String::as_str),
        Some(source.refresh_token().expose_secret())
    );
    assert!(server.is_refresh_token_valid(source.refresh_token().expose_secret()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_makes_one_refresh_for_a_burst_of_callers() -> TestResult {
    let server = AuthServer::builder()
        .detect_refresh_token_reuse(true)
        .start()
        .await?;
    let seeded = server.issue_refresh_token("client", None);
    let rotations = Rotations::default();
    let cache = TokenCache::new(rotations.attach(source_for(&server, &seeded)).build()?);

    let mut tasks = JoinSet::new();
    for _ in 0..50 {
        let cache = cache.clone();
        tasks.spawn(async move { cache.token().await });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    assert_eq!(server.token_requests(), 1);
    assert_eq!(rotations.seen().len(), 1);
    Ok(())
}

#[tokio::test]
async fn invalid_grant_is_permanent_and_not_retried() -> TestResult {
    let server = AuthServer::start().await?;
    let seeded = server.issue_refresh_token("client", None);
    server.revoke(&seeded);
    let source = source_over(
        endpoint_for(&server).retry(RetryPolicy::new().max_attempts(5)),
        &seeded,
    )
    .build()?;

    let capture = capture_tracing();
    let error = source.fetch().await.expect_err("revoked");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    assert!(error.to_string().contains("refresh_token grant"), "{error}");
    assert_eq!(server.token_requests(), 1, "never retried");
    let printed = format!(
        "{error} {error:?} {:?} {source:?} {}",
        error.source(),
        capture.contents()
    );
    assert!(!printed.contains(&seeded), "{printed}");
    Ok(())
}

/// 429 and 408 say the server did not act on the request, so even a refresh replays it.
#[tokio::test]
async fn a_429_or_408_is_retried_by_default() -> TestResult {
    for fault in [
        Fault::StatusRetryAfter(StatusCode::TOO_MANY_REQUESTS, 0),
        Fault::Status(StatusCode::REQUEST_TIMEOUT),
    ] {
        let server = AuthServer::builder()
            .detect_refresh_token_reuse(true)
            .start()
            .await?;
        let seeded = server.issue_refresh_token("client", None);
        server.fail_next(1, fault.clone());
        let source = source_for(&server, &seeded).build()?;
        source.fetch().await?;
        assert_eq!(server.token_requests(), 2, "{fault:?}");
    }
    Ok(())
}

#[tokio::test]
async fn failures_after_the_request_was_sent_are_not_retried_by_default() -> TestResult {
    for fault in [
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
        Fault::Status(StatusCode::BAD_GATEWAY),
        Fault::DropConnection,
    ] {
        let server = AuthServer::start().await?;
        let seeded = server.issue_refresh_token("client", None);
        server.fail_next(1, fault.clone());
        let source = source_for(&server, &seeded).build()?;
        let error = source.fetch().await.expect_err("the fault");
        assert!(error.is_transient(), "{fault:?}: {error}");
        assert_eq!(server.token_requests(), 1, "{fault:?}: not replayed");
        // The next fetch (the cache's, after its backoff) works.
        source.fetch().await?;
        assert_eq!(server.token_requests(), 2, "{fault:?}");
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_not_retried_by_default() -> TestResult {
    let server = AuthServer::start().await?;
    let seeded = server.issue_refresh_token("client", None);
    server.fail_next(1, Fault::Delay(Duration::from_secs(60)));
    let source = source_over(
        endpoint_for(&server).timeout(Duration::from_secs(5)),
        &seeded,
    )
    .build()?;
    let error = source.fetch().await.expect_err("timed out");
    assert!(error.is_transient(), "{error}");
    assert_eq!(server.token_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn retry_processed_replays_a_503_when_asked() -> TestResult {
    let server = AuthServer::builder()
        .rotate_refresh_tokens(false)
        .start()
        .await?;
    let seeded = server.issue_refresh_token("client", None);
    server.fail_next(1, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    let source = source_over(endpoint_for(&server).retry(RetryPolicy::new()), &seeded).build()?;
    source.fetch().await?;
    assert_eq!(server.token_requests(), 2);
    Ok(())
}

#[tokio::test]
async fn connection_refused_is_retried() -> TestResult {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let client = http_client();
    let endpoint = Endpoint::builder(format!("http://127.0.0.1:{port}/token"))
        .http_client(HttpClient::from_service(service_fn(
            move |request: Request<Full<Bytes>>| {
                counter.fetch_add(1, Ordering::SeqCst);
                client.request(request)
            },
        )))
        .build()?;
    let source = RefreshToken::builder(
        endpoint,
        ClientAuth::secret_basic("client", "secret")?,
        "refresh-s3cret",
    )
    .build()?;
    let error = source.fetch().await.expect_err("nothing listens");
    assert!(error.is_transient(), "{error}");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        RetryPolicy::DEFAULT_MAX_ATTEMPTS as usize
    );
    assert!(!format!("{error} {error:?}").contains("refresh-s3cret"));
    Ok(())
}

#[tokio::test]
async fn revoking_the_refresh_token_ends_the_grant() -> TestResult {
    let server = AuthServer::start().await?;
    let seeded = server.issue_refresh_token("client", None);
    let source = source_for(&server, &seeded).build()?;
    let cache = TokenCache::new(source.clone());
    let token = cache.token().await?;

    assert!(source.revoke_cached(&cache).await?);
    assert!(!server.is_valid(token.secret().expose_secret()));
    let current = source.refresh_token();
    assert!(server.is_refresh_token_valid(current.expose_secret()));

    source.revoke_refresh_token().await?;
    assert!(!server.is_refresh_token_valid(current.expose_secret()));
    assert_eq!(
        server.last_request().unwrap().param("token_type_hint"),
        Some("refresh_token")
    );
    let error = source.fetch().await.expect_err("the grant is gone");
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    Ok(())
}

#[test]
fn build_checks_the_refresh_token_and_parameters() {
    let endpoint = Endpoint::builder("https://auth.example.com/token")
        .build()
        .unwrap();
    let client = ClientAuth::secret_basic("id", "secret").unwrap();
    let builder = || RefreshToken::builder(endpoint.clone(), client.clone(), "refresh-s3cret");
    let error = RefreshToken::builder(endpoint.clone(), client.clone(), "")
        .build()
        .expect_err("empty refresh token");
    assert!(error.is_invalid_credentials(), "{error}");
    let error = builder()
        .params(TokenParams::new().param("refresh_token", "x"))
        .build()
        .expect_err("reserved");
    assert!(error.is_invalid_parameter(), "{error}");
    let error = builder()
        .params(TokenParams::new().param("grant_type", "x"))
        .build()
        .expect_err("reserved");
    assert!(error.is_invalid_parameter(), "{error}");

    let printed = format!("{:?}", builder().params(TokenParams::new().scope("a b")));
    assert!(!printed.contains("refresh-s3cret"), "{printed}");
    let source = builder().build().unwrap();
    let printed = format!("{source:?}");
    assert!(!printed.contains("refresh-s3cret"), "{printed}");
    assert!(!printed.contains("secret\""), "{printed}");
    assert_eq!(source.client_auth().client_id(), "id");
}

/// What a brand-new fleet's first refresh costs with the default timings, on tokio's
/// paused clock: with nothing in the store, a settle that waits out the longest refresh
/// that may have been in flight (about two minutes with the default endpoint limits);
/// with the grant seeded into the store, only the first-presentation watch.
#[tokio::test(start_paused = true)]
async fn a_brand_new_fleet_settles_before_its_first_refresh_unless_the_grant_was_seeded(
) -> TestResult {
    use tower_bearer::store::{MemoryStore, StoreKey};
    use tower_bearer_oauth2::FleetConfig;

    let server = AuthServer::builder()
        .detect_refresh_token_reuse(true)
        .start()
        .await?;
    let key = StoreKey::builder(server.token_url(), AuthServer::DEFAULT_CLIENT_ID).build();
    let mut waited = Vec::new();
    for seeded in [false, true] {
        let initial = server.issue_refresh_token(AuthServer::DEFAULT_CLIENT_ID, None);
        let store = MemoryStore::new();
        if seeded {
            let seed = SecretString::from(initial.clone());
            assert!(RefreshToken::seed_store(&store, &key, &seed).await?);
            assert!(
                !RefreshToken::seed_store(&store, &key, &seed).await?,
                "a seeded store is not seeded again"
            );
        }
        let replicas: Vec<RefreshToken> = (0..3)
            .map(|_| {
                source_for(&server, &initial)
                    .share_through(store.clone(), key.clone())
                    .fleet(FleetConfig::new())
                    .build()
            })
            .collect::<Result<_, _>>()?;
        let requests = server.token_requests();
        let started = tokio::time::Instant::now();
        // As a cache would: a transient failure (still settling) is tried again later.
        let mut failures = 0;
        while let Err(error) = replicas[0].fetch().await {
            assert!(error.is_transient(), "{error}");
            assert!(error.to_string().contains("settl"), "{error}");
            failures += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        waited.push(started.elapsed());
        assert_eq!(server.token_requests(), requests + 1, "one presentation");
        for replica in &replicas[1..] {
            replica.fetch().await?;
        }
        let (generation, current) = crate::support::stored_refresh(&store, &key).await;
        assert_eq!(generation, 3);
        assert!(server.is_refresh_token_valid(&current));
        println!(
            "seeded: {seeded}: first refresh after {:?} ({failures} transient failures)",
            waited.last().unwrap()
        );
    }
    // Unseeded: 1.5 × 5 s + 0.5 s of watching, plus 3 × 30 s + 2 × 10 s for the longest
    // refresh. Seeded: the watch only.
    assert!(waited[0] >= Duration::from_secs(118), "{:?}", waited[0]);
    assert!(waited[1] >= Duration::from_secs(8), "{:?}", waited[1]);
    assert!(waited[1] < Duration::from_secs(10), "{:?}", waited[1]);
    Ok(())
}

#[tokio::test]
async fn replicas_share_rotated_refresh_tokens_through_a_store() -> TestResult {
    use tower_bearer::store::{MemoryStore, StoreKey};

    let server = AuthServer::builder()
        .detect_refresh_token_reuse(true)
        .start()
        .await?;
    let initial = server.issue_refresh_token(AuthServer::DEFAULT_CLIENT_ID, None);
    let store = MemoryStore::new();
    let key = StoreKey::builder(server.token_url(), AuthServer::DEFAULT_CLIENT_ID).build();
    let replica = || {
        source_for(&server, &initial)
            .share_through(store.clone(), key.clone())
            .fleet(crate::support::quick_fleet())
            .build()
    };
    let (a, b) = (replica()?, replica()?);
    // Taking turns, as the lease of a StoreSource over the same store makes replicas do.
    // Each refresh rotates; each replica starts from the other's newer refresh token.
    for _ in 0..3 {
        a.fetch().await?;
        b.fetch().await?;
    }
    let (generation, stored) = crate::support::stored_refresh(&store, &key).await;
    assert_eq!(generation, 6, "six rotations, each stored once");
    assert_eq!(stored, b.refresh_token().expose_secret());
    assert!(server.is_refresh_token_valid(&stored));
    assert!(!format!("{a:?}").contains(&stored));

    // A replica started later with the stale refresh token from its configuration catches
    // up from the store instead of presenting a dead one.
    let late = replica()?;
    late.fetch().await?;
    assert_eq!(crate::support::stored_refresh(&store, &key).await.0, 7);

    // Without the store, a replica presents the rotated-away refresh token: the server takes
    // it for a stolen one and revokes the grant.
    let alone = source_for(&server, &initial).build()?;
    let error = alone.fetch().await.unwrap_err();
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    let (_, current) = crate::support::stored_refresh(&store, &key).await;
    assert!(!server.is_refresh_token_valid(&current));
    Ok(())
}

#[tokio::test]
async fn a_panicking_rotation_hook_is_a_typed_error_and_the_grant_survives() -> TestResult {
    let server = AuthServer::builder()
        .detect_refresh_token_reuse(true)
        .start()
        .await?;
    let seeded = server.issue_refresh_token("client", None);
    let calls = Arc::new(AtomicUsize::new(0));
    let source = {
        let calls = Arc::clone(&calls);
        source_for(&server, &seeded)
            .on_rotate(move |_: &SecretString| {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the hook's storage is down");
                }
            })
            .build()?
    };
    let config = tower_bearer::CacheConfig::new()
        .backoff(Duration::from_millis(10), Duration::from_millis(20));
    let cache = TokenCache::with_config(source.clone(), config);

    let error = cache.token().await.unwrap_err();
    assert!(error.is_panic(), "{error}");
    // The source kept the rotated refresh token before it called the hook, so the next
    // fetch presents that one: no reuse, and the grant is still valid.
    tokio::time::sleep(Duration::from_millis(50)).await;
    cache.token().await?;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(server.is_refresh_token_valid(source.refresh_token().expose_secret()));
    Ok(())
}

#[tokio::test]
async fn a_cache_dropped_mid_refresh_does_not_lose_the_rotated_refresh_token() -> TestResult {
    // The cache aborts its fetch when it is dropped. The refresh runs on a task of its own,
    // so the rotation the server already made still reaches the source, alone or in a fleet.
    for shared in [false, true] {
        let server = AuthServer::builder()
            .detect_refresh_token_reuse(true)
            .start()
            .await?;
        let seeded = server.issue_refresh_token("client", None);
        let mut builder = source_for(&server, &seeded);
        if shared {
            let store = tower_bearer::store::MemoryStore::new();
            let key = tower_bearer::store::StoreKey::builder(server.token_url(), "client").build();
            builder = builder
                .share_through(store, key)
                .fleet(crate::support::quick_fleet());
        }
        let source = builder.build()?;
        server.fail_next(1, Fault::DelayAnswer(Duration::from_millis(1000)));
        let cache = TokenCache::new(source.clone());
        // Gone while the request is at the server (a new fleet settles for 300 ms first).
        let gave_up = tokio::time::timeout(Duration::from_millis(600), cache.token()).await;
        assert!(gave_up.is_err(), "shared: {shared}");
        drop(cache);
        // Long enough for the delayed answer to arrive.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(server.token_requests(), 1, "shared: {shared}");
        let token = source.fetch().await?;
        assert!(
            server.is_valid(token.secret().expose_secret()),
            "shared: {shared}"
        );
        assert!(
            server.is_refresh_token_valid(source.refresh_token().expose_secret()),
            "shared: {shared}"
        );
    }
    Ok(())
}

/// The runtime of a replica shuts down while it presents the fleet's refresh token (the
/// process is stopping, or crashes): nothing panics or hangs, its intent stands, so the
/// other replicas wait on it and name it rather than present the same refresh token, and
/// the replica, started again under the same `replica_id`, resumes its own refresh.
#[test]
fn a_runtime_shut_down_mid_refresh_leaves_an_intent_that_its_replica_resumes() -> TestResult {
    use tower_bearer::store::{MemoryStore, RefreshTokenStore, StoreKey};
    use tower_bearer_oauth2::FleetConfig;

    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let server = servers.block_on(
        AuthServer::builder()
            .detect_refresh_token_reuse(true)
            .start(),
    )?;
    let initial = server.issue_refresh_token(AuthServer::DEFAULT_CLIENT_ID, None);
    let store = MemoryStore::new();
    let key = StoreKey::builder(server.token_url(), AuthServer::DEFAULT_CLIENT_ID).build();
    let replica = |config: FleetConfig| {
        source_for(&server, &initial)
            .share_through(store.clone(), key.clone())
            .fleet(config)
            .build()
    };
    let named_a = || crate::support::quick_fleet().replica_id("replica-a");
    let seeded = SecretString::from(initial.clone());
    servers.block_on(RefreshToken::seed_store(&store, &key, &seeded))?;

    // A, on a runtime of its own, begins presenting; the server takes 2 s to act on it, and
    // A's runtime is shut down meanwhile.
    server.fail_next(1, Fault::Delay(Duration::from_secs(2)));
    let doomed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    doomed.block_on(async {
        let a = replica(named_a())?;
        tokio::spawn(async move { a.fetch().await });
        // Until the intent is recorded and the request has reached the server.
        loop {
            let record = store.refresh_record(&key).await?.record;
            let intent = record.is_some_and(|record| record.presenting.is_some());
            if intent && server.token_requests() == 1 {
                return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })?;
    doomed.shutdown_timeout(Duration::ZERO);

    servers.block_on(async {
        let b = replica(crate::support::quick_fleet().max_wait(Duration::from_millis(500)))?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let error = b.fetch().await.unwrap_err();
        assert!(
            error.is_transient() && error.to_string().contains("replica-a"),
            "{error}"
        );
        // Nobody else presented the token.
        assert_eq!(server.token_requests(), 1);
        tokio::time::sleep(Duration::from_secs(3)).await;

        // The server dropped the request with its connection, unanswered and not acted on.
        assert!(server.is_refresh_token_valid(&initial));
        let a_again = replica(named_a())?;
        a_again.fetch().await?;
        assert_eq!(server.token_requests(), 2, "A presented generation 0 again");
        let (generation, current) = crate::support::stored_refresh(&store, &key).await;
        assert_eq!(generation, 1);
        assert!(server.is_refresh_token_valid(&current));
        b.fetch().await?;
        assert_eq!(crate::support::stored_refresh(&store, &key).await.0, 2);
        Ok(())
    })
}
