//! Whose requests get the token: allowed origins only, and never over the caller's own.

use http::StatusCode;
use tower_bearer_reqwest::BearerAuthMiddleware;
use tower_bearer_testkit::{ApiServer, AuthServer};

use crate::support::{cache, client, current_token, with, INVALID_TOKEN};

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

/// A POST that the API redirects (307) to another origin, which answers 401 with a Bearer
/// `invalid_token` challenge: reqwest followed the redirect without our token (it drops
/// `Authorization` when the origin changes), so the 401 is not about our token. The token
/// stays, and the POST is not sent again.
#[tokio::test]
async fn a_401_from_another_origin_after_a_redirect_is_not_a_rejection_of_our_token() -> TestResult
{
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let elsewhere = ApiServer::start(&auth).await?;
    api.redirect(
        "/submit",
        StatusCode::TEMPORARY_REDIRECT,
        &format!("{}/target", elsewhere.url()),
    );
    elsewhere.respond_next(1, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    let cache = cache(&auth);
    let client = client(&cache);

    let response = client
        .post(format!("{}/submit", api.url()))
        .body("an order, to be placed once")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.url().as_str(),
        format!("{}/target", elsewhere.url())
    );
    let sent = api.received();
    assert_eq!(sent.len(), 1, "the POST went out once: {sent:?}");
    assert!(sent[0].1.is_some(), "with our token");
    assert_eq!(
        elsewhere.received(),
        vec![("/target".to_owned(), None)],
        "the other origin never saw the token"
    );
    assert_eq!(auth.token_requests(), 1);
    let kept = current_token(&cache);
    assert_eq!(
        sent[0].1.as_deref(),
        Some(format!("Bearer {kept}").as_str()),
        "still cached"
    );
    Ok(())
}
