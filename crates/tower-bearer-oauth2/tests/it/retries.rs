//! Retries inside one token request, against the testkit's mock authorization server over
//! real loopback sockets with the default hyper client.
//!
//! The tests run on paused tokio time, so backoffs and `Retry-After` waits cost nothing and
//! are measured exactly with `tokio::time::Instant`. Paused time stays put while loopback I/O
//! is in progress: the runtime only auto-advances the clock when no task was woken, and a
//! write on loopback makes the peer readable before the runtime next looks for work.

use std::time::Duration;

use http::StatusCode;
use secrecy::ExposeSecret;
use tokio::time::Instant;
use tower_bearer::{FetchError, TokenCache, TokenSource};
use tower_bearer_oauth2::{
    BuildError, ClientAuth, ClientCredentials, Endpoint, EndpointBuilder, RetryPolicy,
};
use tower_bearer_testkit::{capture_tracing, AuthServer, Fault};

use crate::support::{assert_each_cause_once, default_client, endpoint_error};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A source for the server's default client, with the default retry policy.
fn source_for(server: &AuthServer) -> Result<ClientCredentials, BuildError> {
    source_with(server, |endpoint| endpoint)
}

/// A source for the server's default client, over an endpoint `configure` changed.
fn source_with(
    server: &AuthServer,
    configure: impl FnOnce(EndpointBuilder) -> EndpointBuilder,
) -> Result<ClientCredentials, BuildError> {
    let endpoint = configure(Endpoint::builder(server.token_url())).build()?;
    ClientCredentials::builder(endpoint, default_client()).build()
}

fn endpoint_status(error: &FetchError) -> Option<StatusCode> {
    endpoint_error(error).status()
}

#[tokio::test(start_paused = true)]
async fn two_503s_then_a_token_take_three_requests() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(2, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    let source = source_for(&server)?;

    let started = Instant::now();
    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    assert_eq!(server.token_requests(), 3);
    assert_eq!(server.tokens_issued(), 1);
    // Two backoffs with equal jitter: 50..=100 ms, then 100..=200 ms.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited <= Duration::from_millis(300),
        "{waited:?}"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_is_waited_out() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(1, Fault::StatusRetryAfter(StatusCode::TOO_MANY_REQUESTS, 7));
    let source = source_for(&server)?;

    let started = Instant::now();
    source.fetch().await?;
    // The first request goes out at once; the second no earlier than 7 s later. The
    // backoff (at most 100 ms) is shorter, so the wait is exactly the Retry-After.
    assert_eq!(server.token_requests(), 2);
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_an_http_date_is_waited_out() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(
        1,
        Fault::StatusRetryAfterDate(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(8)),
    );
    let source = source_for(&server)?;

    let started = Instant::now();
    source.fetch().await?;
    assert_eq!(server.token_requests(), 2);
    // The date has whole seconds and the wall clock runs on while tokio's is paused, so the
    // client reads a little under 8 s; far above the 100 ms backoff it would wait otherwise.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited <= Duration::from_secs(8),
        "{waited:?}"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn oauth_errors_that_need_a_fix_are_never_retried() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server)?;
    for (status, code) in [
        (StatusCode::UNAUTHORIZED, "invalid_client"),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        (StatusCode::BAD_REQUEST, "unauthorized_client"),
        (StatusCode::BAD_REQUEST, "invalid_scope"),
        // Not even when a server sends them with a status that is otherwise retried.
        (StatusCode::SERVICE_UNAVAILABLE, "invalid_client"),
        (StatusCode::TOO_MANY_REQUESTS, "invalid_grant"),
    ] {
        server.fail_always(Fault::oauth_error(status, code));
        let before = server.token_requests();
        let error = source.fetch().await.expect_err(code);
        assert_eq!(server.token_requests() - before, 1, "{status} {code}");
        let chain = assert_each_cause_once(&error);
        assert_eq!(chain.matches(code).count(), 1, "{chain}");
    }
    server.heal();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn other_4xx_answers_are_not_retried() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server)?;
    for fault in [
        Fault::oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        Fault::oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        // Transient for the cache, which backs off, but not retried inside the fetch.
        Fault::oauth_error(StatusCode::BAD_REQUEST, "temporarily_unavailable"),
        Fault::Status(StatusCode::NOT_FOUND),
        Fault::Status(StatusCode::CONFLICT),
        Fault::Status(StatusCode::FORBIDDEN),
    ] {
        server.fail_always(fault.clone());
        let before = server.token_requests();
        source.fetch().await.expect_err("faulted");
        assert_eq!(server.token_requests() - before, 1, "{fault:?}");
    }
    Ok(())
}

/// 408 is transient like 429 and 5xx (RFC 9110 section 15.5.9), for the retry policy as
/// for the error the cache sees.
#[tokio::test(start_paused = true)]
async fn a_408_is_retried_and_transient() -> TestResult {
    let server = AuthServer::start().await?;
    let source = source_for(&server)?;
    server.fail_next(1, Fault::Status(StatusCode::REQUEST_TIMEOUT));
    source.fetch().await?;
    assert_eq!(server.token_requests(), 2);

    server.fail_always(Fault::Status(StatusCode::REQUEST_TIMEOUT));
    let error = source.fetch().await.expect_err("408s");
    assert!(error.is_transient(), "{error}");
    assert_eq!(
        server.token_requests(),
        2 + 3,
        "every attempt of the policy"
    );
    server.heal();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_is_retried() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(1, Fault::DropConnection);
    let source = source_for(&server)?;

    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    assert_eq!(server.token_requests(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_retried() -> TestResult {
    let server = AuthServer::start().await?;
    // The first answer would come after 60 s; the client gives up after 1 s and asks again.
    server.fail_next(1, Fault::Delay(Duration::from_secs(60)));
    let source = source_with(&server, |endpoint| endpoint.timeout(Duration::from_secs(1)))?;

    let started = Instant::now();
    source.fetch().await?;
    assert_eq!(server.token_requests(), 2);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited <= Duration::from_millis(1100),
        "{waited:?}"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn exhausted_attempts_return_the_last_transient_error() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(1, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    server.fail_next(1, Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    server.fail_next(1, Fault::Status(StatusCode::BAD_GATEWAY));
    let source = source_for(&server)?;

    let error = source.fetch().await.expect_err("three failures");
    assert_eq!(
        server.token_requests(),
        u64::from(RetryPolicy::DEFAULT_MAX_ATTEMPTS)
    );
    assert!(error.is_transient(), "{error}");
    assert_eq!(endpoint_status(&error), Some(StatusCode::BAD_GATEWAY));
    let chain = assert_each_cause_once(&error);
    assert_eq!(chain.matches("HTTP 502").count(), 1, "{chain}");

    // A larger budget makes exactly that many requests.
    server.fail_always(Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    let five = source_with(&server, |endpoint| {
        endpoint.retry(RetryPolicy::new().max_attempts(5))
    })?;
    let before = server.token_requests();
    five.fetch().await.expect_err("always 503");
    assert_eq!(server.token_requests() - before, 5);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_after_above_the_maximum_ends_the_fetch() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(
        1,
        Fault::StatusRetryAfter(StatusCode::SERVICE_UNAVAILABLE, 60),
    );
    let source = source_for(&server)?;

    let started = Instant::now();
    let error = source.fetch().await.expect_err("asked to wait 60 s");
    assert_eq!(server.token_requests(), 1);
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(
        endpoint_status(&error),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );

    // The limit is the policy's to set.
    server.fail_next(
        1,
        Fault::StatusRetryAfter(StatusCode::SERVICE_UNAVAILABLE, 60),
    );
    let patient = source_with(&server, |endpoint| {
        endpoint.retry(RetryPolicy::new().max_retry_after(Duration::from_secs(60)))
    })?;
    let before = server.token_requests();
    patient.fetch().await?;
    assert_eq!(server.token_requests() - before, 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_last_attempt_keeps_the_retry_after_for_the_cache() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_always(Fault::StatusRetryAfter(StatusCode::TOO_MANY_REQUESTS, 3));
    let source = source_with(&server, |endpoint| {
        endpoint.retry(RetryPolicy::new().max_attempts(2))
    })?;

    let started = Instant::now();
    let error = source.fetch().await.expect_err("always 429");
    assert_eq!(server.token_requests(), 2);
    // One wait between the two attempts, none after the last.
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn no_retries_with_retry_policy_none() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(1, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    let source = source_with(&server, |endpoint| endpoint.retry(RetryPolicy::none()))?;

    let error = source.fetch().await.expect_err("503");
    assert!(error.is_transient(), "{error}");
    assert_eq!(server.token_requests(), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_cache_sees_one_fetch_for_a_retried_request() -> TestResult {
    let server = AuthServer::start().await?;
    server.fail_next(2, Fault::Status(StatusCode::BAD_GATEWAY));
    let cache = TokenCache::new(source_for(&server)?);

    let token = cache.token().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    assert_eq!(cache.stats().fetches, 1);
    assert_eq!(server.token_requests(), 3);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn each_retry_is_logged_without_secrets() -> TestResult {
    const SECRET: &str = "s3cr3t-for-retries";
    let server = AuthServer::builder()
        .client("retrying-client", SECRET)
        .start()
        .await?;
    server.fail_next(2, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    let endpoint = Endpoint::builder(server.token_url()).build()?;
    let client = ClientAuth::secret_post("retrying-client", SECRET)?;
    let source = ClientCredentials::builder(endpoint, client).build()?;

    let logs = capture_tracing();
    let token = source.fetch().await?;
    let printed = logs.contents();
    assert_eq!(
        printed.matches("token request failed, retrying").count(),
        2,
        "{printed}"
    );
    for expected in [
        "attempt=1",
        "attempt=2",
        "max_attempts=3",
        "HTTP 503",
        "WARN",
    ] {
        assert!(
            printed.contains(expected),
            "{expected} missing in {printed}"
        );
    }
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(
        !printed.contains(token.secret().expose_secret()),
        "{printed}"
    );
    Ok(())
}
