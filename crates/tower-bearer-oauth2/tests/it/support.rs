//! Helpers shared by the test files that need the oauth2 crate's own types (the testkit
//! cannot depend on this crate).

// Each test file uses its own subset.
#![allow(dead_code)]

use std::error::Error as _;
use std::fmt::Debug;

use tower_bearer::{FetchError, Token, TokenCache};
use tower_bearer_oauth2::{ClientAuth, EndpointError, OAuthError, PrivateKey};
use tower_bearer_testkit::{AuthServer, TestKey, TracingCapture};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The mock server's default client, authenticating with `client_secret_basic`.
pub(crate) fn default_client() -> ClientAuth {
    ClientAuth::secret_basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )
    .expect("the default client's id and secret are not empty")
}

/// The testkit key as a signing key for this crate, with its `kid`.
pub(crate) fn private_key(key: &TestKey) -> PrivateKey {
    let private = match key.algorithm() {
        "RS256" => PrivateKey::rs256_from_pem(key.pkcs8_pem()),
        _ => PrivateKey::es256_from_pem(key.pkcs8_pem()),
    };
    private.expect("a valid test key").key_id(key.key_id())
}

/// The endpoint error behind a fetch error.
pub(crate) fn endpoint_error(error: &FetchError) -> &EndpointError {
    error
        .source()
        .and_then(|source| source.downcast_ref::<EndpointError>())
        .unwrap_or_else(|| panic!("no EndpointError source: {error:?}"))
}

/// The server's error response behind a fetch error.
pub(crate) fn oauth_error(error: &FetchError) -> &OAuthError {
    error
        .source()
        .and_then(|source| source.downcast_ref::<OAuthError>())
        .expect("an OAuthError source")
}

/// Everything a user could see of a failed fetch: the error, its `Debug` and source, the
/// source's `Debug`, and the captured logs.
pub(crate) fn everything_printed(
    error: &FetchError,
    source: &dyn Debug,
    capture: &TracingCapture,
) -> String {
    format!(
        "{error} {error:?} {:?} {source:?} {}",
        error.source(),
        capture.contents()
    )
}

/// The error and its causes as chain printers (anyhow's `{:#}`, eyre) show them: each
/// `Display` in `source()` order, joined with `: `.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        chain.push_str(": ");
        chain.push_str(&error.to_string());
        cause = error.source();
    }
    chain
}

/// Asserts that each error in the chain of `error` says something of its own: no
/// `Display` repeats a cause's, so a chain printer shows every cause once. Returns the
/// rendered chain.
pub(crate) fn assert_each_cause_once(error: &(dyn std::error::Error + 'static)) -> String {
    let chain = error_chain(error);
    let mut cause = Some(error);
    while let Some(error) = cause {
        let own = error.to_string();
        if let Some(inner) = error.source() {
            let inner = inner.to_string();
            assert!(
                !own.contains(&inner),
                "`{own}` repeats its cause `{inner}`; the chain prints: {chain}"
            );
        }
        assert_eq!(
            chain.matches(own.as_str()).count(),
            1,
            "`{own}` is printed more than once: {chain}"
        );
        cause = error.source();
    }
    chain
}

/// `callers` tasks asking `cache` for a token at once; their tokens.
pub(crate) async fn tokens_for_concurrent_callers(
    cache: &TokenCache,
    callers: usize,
) -> Result<Vec<Token>, Box<dyn std::error::Error + Send + Sync>> {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        })
        .collect();
    let mut tokens = Vec::with_capacity(callers);
    for task in tasks {
        tokens.push(task.await??);
    }
    Ok(tokens)
}

/// Fleet timings for tests: checks every 20 ms, a settle of 300 ms.
pub(crate) fn quick_fleet() -> tower_bearer_oauth2::FleetConfig {
    tower_bearer_oauth2::FleetConfig::new()
        .check_interval(std::time::Duration::from_millis(20))
        .store_timeout(std::time::Duration::from_millis(200))
        .settle(std::time::Duration::from_millis(300))
}

/// The generation and refresh token `store` holds for `key`; panics if it holds none it can
/// read.
pub(crate) async fn stored_refresh(
    store: &impl tower_bearer::store::RefreshTokenStore,
    key: &tower_bearer::store::StoreKey,
) -> (u64, String) {
    use secrecy::ExposeSecret;
    let state = store.refresh_record(key).await.expect("the store answers");
    let record = state.record.expect("a shared refresh token");
    match record.value {
        tower_bearer::store::RefreshValue::Readable(token) => {
            (record.generation, token.expose_secret().to_owned())
        }
        other => panic!("an unreadable refresh token: {other:?}"),
    }
}
