//! Whose requests get the token: allowed origins only, and never over the caller's own.

use http::StatusCode;
use tower_bearer_reqwest::BearerAuthMiddleware;
use tower_bearer_testkit::{ApiServer, AuthServer};

use crate::support::{cache, client, with};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn origins_outside_the_allow_list_get_no_token() -> TestResult {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let port = api.addr().port();
    let cache = cache(&auth);
    // The API's host on another port, and its port on another host: neither is its origin.
    let elsewhere = port.checked_add(1).unwrap_or(port - 1);
    let client = with(BearerAuthMiddleware::new(cache.clone()).allow_origins([
        format!("http://127.0.0.1:{elsewhere}"),
        format!("http://localhost:{port}"),
    ])?);

    let response = client.get(api.url()).send().await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.received().last().map(|(_, auth)| auth.clone()),
        Some(None)
    );
    assert_eq!(auth.token_requests(), 0);
    assert_eq!(
        api.requests(),
        1,
        "a 401 to a request without our token is not replayed"
    );

    // The API's own origin gets it.
    let client =
        with(BearerAuthMiddleware::new(cache).allow_origins([format!("http://127.0.0.1:{port}")])?);
    assert_eq!(client.get(api.url()).send().await?.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn the_callers_own_authorization_is_left_alone_and_not_replayed() -> TestResult {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let client = client(&cache(&auth));

    let response = client
        .get(api.url())
        .header("authorization", "Bearer the-callers-own")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.received(),
        vec![("/".to_owned(), Some("Bearer the-callers-own".to_owned()))]
    );
    assert_eq!(auth.token_requests(), 0);
    Ok(())
}
