//! One token for a burst, one replay on a rejected token, and never more.

use std::io;

use bytes::Bytes;
use http::StatusCode;
use tower_bearer_testkit::{ApiServer, AuthServer};

use crate::support::{burst, cache, client, current_token, INVALID_TOKEN};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_of_200_calls_makes_one_token_request() -> TestResult {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let client = client(&cache(&auth));
    for status in burst(&client, &api.url(), 200).await? {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(auth.token_requests(), 1);
    assert_eq!(api.requests(), 200);
    assert_eq!(api.authorized(), 200);
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_is_replayed_once_with_a_new_one() -> TestResult {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let cache = cache(&auth);
    let client = client(&cache);
    assert_eq!(client.get(api.url()).send().await?.status(), StatusCode::OK);
    let first = current_token(&cache);

    auth.revoke(&first);
    let response = client.get(api.url()).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await?, "hello");
    assert_ne!(current_token(&cache), first);
    assert_eq!(auth.token_requests(), 2);
    // The first call, the rejected one, its replay.
    assert_eq!(api.requests(), 3);
    assert_eq!(api.rejected(), 1);
    Ok(())
}

#[tokio::test]
async fn a_persistent_401_is_replayed_once_then_returned() -> TestResult {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let client = client(&cache(&auth));
    api.respond_next(2, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));

    let response = client.get(api.url()).send().await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], INVALID_TOKEN);
    assert_eq!(api.requests(), 2);
    Ok(())
}

#[tokio::test]
async fn insufficient_scope_and_403_are_not_replayed() -> TestResult {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let client = client(&cache(&auth));

    let scope = r#"Bearer error="insufficient_scope", scope="admin""#;
    api.respond_next(1, StatusCode::UNAUTHORIZED, Some(scope));
    let response = client.get(api.url()).send().await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.requests(), 1);

    api.respond_next(1, StatusCode::FORBIDDEN, Some(INVALID_TOKEN));
    let response = client.get(api.url()).send().await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(api.requests(), 2);

    // Neither invalidated the token.
    assert_eq!(client.get(api.url()).send().await?.status(), StatusCode::OK);
    assert_eq!(auth.token_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn a_streaming_body_is_not_replayed_but_its_token_is_invalidated() -> TestResult {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let cache = cache(&auth);
    let client = client(&cache);
    assert_eq!(client.get(api.url()).send().await?.status(), StatusCode::OK);
    let first = current_token(&cache);

    api.respond_next(1, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    let chunks = ["one ", "two"].map(|chunk| Ok::<_, io::Error>(Bytes::from(chunk)));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = client.post(api.url()).body(body).send().await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.requests(), 2);
    assert!(
        cache.cached().is_none(),
        "the rejected token was invalidated"
    );

    // The next call fetches a new token.
    assert_eq!(client.get(api.url()).send().await?.status(), StatusCode::OK);
    assert_eq!(auth.token_requests(), 2);
    assert_ne!(current_token(&cache), first);
    Ok(())
}
