//! No token or client secret reaches `Debug`, an error or a log line, across a fetch, a
//! rejected token and its replay, and a failed fetch.

use std::error::Error as _;

use http::StatusCode;
use tower_bearer::TokenCache;
use tower_bearer_reqwest::BearerAuthMiddleware;
use tower_bearer_test_support::assert_no_secret;
use tower_bearer_testkit::{capture_tracing, ApiServer, AuthServer};

use crate::support::{current_token, oauth_source, with};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const SECRET: &str = "s3cr3t-client-value";

#[tokio::test]
async fn tokens_and_secrets_never_show_in_debug_errors_or_logs() -> TestResult {
    let logs = capture_tracing();
    let auth = AuthServer::builder().client("app", SECRET).start().await?;
    let api = ApiServer::start(&auth).await?;
    let cache = TokenCache::new(oauth_source(&auth, "app", SECRET));
    let middleware = BearerAuthMiddleware::new(cache.clone());
    let client = with(middleware.clone());
    let mut seen = Vec::new();

    assert_eq!(client.get(api.url()).send().await?.status(), StatusCode::OK);
    let first = current_token(&cache);
    auth.revoke(&first);
    assert_eq!(client.get(api.url()).send().await?.status(), StatusCode::OK);
    let second = current_token(&cache);
    assert_ne!(first, second);
    seen.push(format!("{middleware:?}"));
    seen.push(format!("{client:?}"));

    // Another client of the same server with the secret's neighbour: a failed fetch.
    let wrong = TokenCache::new(oauth_source(&auth, "app", &format!("{SECRET}-not")));
    let error = with(BearerAuthMiddleware::new(wrong))
        .get(api.url())
        .send()
        .await
        .unwrap_err();
    seen.push(error.to_string());
    seen.push(format!("{error:?}"));
    let mut source = error.source();
    while let Some(cause) = source {
        seen.push(format!("{cause} / {cause:?}"));
        source = cause.source();
    }
    seen.push(logs.contents());

    assert!(
        logs.contains("replaying the request once"),
        "the replay is logged: {}",
        logs.contents()
    );
    assert_no_secret(&seen, &[first.as_str(), second.as_str(), SECRET]);
    Ok(())
}
