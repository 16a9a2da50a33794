//! No access token reaches `Debug`, `Display`, an error or a log line, across a whole run:
//! a fetch, a 401 and its replay, and a failed refresh.

use std::time::Duration;

use http::StatusCode;
use tower::{Service, ServiceExt};
use tower_bearer::{CacheConfig, TokenCache};
use tower_bearer_test_support::assert_no_secret;
use tower_bearer_testkit::{capture_tracing, ApiServer, AuthServer, Fault};

use crate::support::{client, current_token, get, oauth_source};

#[tokio::test]
async fn tokens_never_show_in_debug_display_errors_or_logs() -> Result<(), tower_bearer::BoxError> {
    let logs = capture_tracing();
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    // A short backoff, so that the second token can be invalidated soon after the first.
    let config = CacheConfig::new().backoff(Duration::from_millis(10), Duration::from_millis(20));
    let cache = TokenCache::with_config(oauth_source(&auth), config);
    let mut client = client(&cache, 4);
    let mut seen = Vec::new();

    assert_eq!(
        client.ready().await?.call(get(&api.url())).await?.status(),
        200
    );
    let first = current_token(&cache);

    // A rejected token, a replay with a new one.
    auth.revoke(&first);
    assert_eq!(
        client.ready().await?.call(get(&api.url())).await?.status(),
        200
    );
    let second = current_token(&cache);
    assert_ne!(first, second);

    // Debug of everything a user might print while a token is cached.
    seen.push(format!("{client:?}"));
    seen.push(format!("{cache:?}"));
    seen.push(format!("{:?}", cache.cached()));
    let future = client.ready().await?.call(get(&api.url()));
    seen.push(format!("{future:?}"));
    assert_eq!(future.await?.status(), StatusCode::OK);

    // The token is rejected again and the authorization server is down: an error.
    tokio::time::sleep(Duration::from_millis(50)).await;
    auth.revoke(&second);
    auth.fail_always(Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    let error = client
        .ready()
        .await?
        .call(get(&api.url()))
        .await
        .unwrap_err();
    seen.push(error.to_string());
    seen.push(format!("{error:?}"));
    let mut source = error.source();
    while let Some(cause) = source {
        seen.push(cause.to_string());
        source = cause.source();
    }

    let logs = logs.contents();
    assert!(
        logs.contains("replaying with a new one"),
        "the capture works:\n{logs}"
    );
    assert!(logs.contains("token fetch failed"), "{logs}");
    seen.push(logs);
    assert_no_secret(&seen, &[first, second]);
    Ok(())
}
