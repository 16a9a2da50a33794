//! Injected faults on the token endpoint.

use std::time::{Duration, Instant};

use http::StatusCode;
use tower_bearer_testkit::{AuthServer, Fault};

use crate::support::{basic, fetch_token, try_token_request};

#[tokio::test]
async fn delay_answers_normally_but_late() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_next(1, Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    let reply = fetch_token(&auth).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(auth.is_valid(&reply.access_token()));
    assert_eq!(auth.tokens_issued(), 1);
}

#[tokio::test(start_paused = true)]
async fn delay_follows_paused_tokio_time() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_next(1, Fault::Delay(Duration::from_secs(3600)));
    let started = tokio::time::Instant::now();
    let reply = fetch_token(&auth).await;
    assert!(started.elapsed() >= Duration::from_secs(3600));
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn status_answers_with_that_status_and_no_token() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_next(1, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    let reply = fetch_token(&auth).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(serde_json::from_slice::<serde_json::Value>(&reply.body).is_err());
    assert_eq!(reply.header("retry-after"), None);
    assert_eq!((auth.token_requests(), auth.tokens_issued()), (1, 0));
    // Faults are recorded like any other request.
    assert_eq!(
        auth.last_request().unwrap().grant_type,
        "client_credentials"
    );
}

#[tokio::test]
async fn status_retry_after_sets_the_header() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_next(1, Fault::StatusRetryAfter(StatusCode::TOO_MANY_REQUESTS, 7));
    let reply = fetch_token(&auth).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.header("retry-after"), Some("7"));
}

#[tokio::test]
async fn status_retry_after_date_sets_an_http_date() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_next(
        1,
        Fault::StatusRetryAfterDate(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(120)),
    );
    let before = std::time::SystemTime::now();
    let reply = fetch_token(&auth).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let date = httpdate::parse_http_date(reply.header("retry-after").expect("Retry-After"))
        .expect("an HTTP date");
    // Whole seconds: the date is at most a second before `before + 120 s`.
    let ahead = date.duration_since(before).expect("in the future");
    assert!(ahead > Duration::from_secs(60), "{ahead:?}");
    assert!(ahead <= Duration::from_secs(180), "{ahead:?}");
}

#[tokio::test]
async fn oauth_error_sends_an_rfc_6749_error_body() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_next(
        1,
        Fault::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
    );
    auth.fail_next(
        1,
        Fault::OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client".into(),
        },
    );

    let reply = fetch_token(&auth).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.oauth_error(), "invalid_grant");
    assert_eq!(reply.header("www-authenticate"), None);

    let reply = fetch_token(&auth).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.oauth_error(), "invalid_client");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Basic realm="testkit""#)
    );
    assert_eq!(auth.tokens_issued(), 0);
}

#[tokio::test]
async fn bad_json_is_a_200_that_does_not_parse() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_next(1, Fault::BadJson);
    let reply = fetch_token(&auth).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(serde_json::from_slice::<serde_json::Value>(&reply.body).is_err());
    assert_eq!(auth.tokens_issued(), 0);
}

#[tokio::test]
async fn drop_connection_closes_without_a_response() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_next(1, Fault::DropConnection);
    let authorization = basic("client", "secret");
    let error = try_token_request(
        &auth,
        Some(&authorization),
        &[("grant_type", "client_credentials")],
    )
    .await
    .expect_err("no response");
    assert!(!error.is_connect(), "{error:?}");
    assert_eq!((auth.token_requests(), auth.tokens_issued()), (1, 0));
    // The server itself is fine.
    assert_eq!(fetch_token(&auth).await.status, StatusCode::OK);
}

#[tokio::test]
async fn fail_next_counts_down_in_order_then_heals_itself() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_next(2, Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    auth.fail_next(0, Fault::DropConnection);
    auth.fail_next(1, Fault::BadJson);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let reply = fetch_token(&auth).await;
        statuses.push((reply.status, reply.json_is_valid()));
    }
    assert_eq!(
        statuses,
        [
            (StatusCode::INTERNAL_SERVER_ERROR, false),
            (StatusCode::INTERNAL_SERVER_ERROR, false),
            (StatusCode::OK, false),
            (StatusCode::OK, true),
        ]
    );
    assert_eq!((auth.token_requests(), auth.tokens_issued()), (4, 1));
}

#[tokio::test]
async fn fail_always_lasts_until_heal_and_yields_to_fail_next() {
    let auth = AuthServer::start().await.unwrap();
    auth.fail_always(Fault::Status(StatusCode::BAD_GATEWAY));
    for _ in 0..3 {
        assert_eq!(fetch_token(&auth).await.status, StatusCode::BAD_GATEWAY);
    }
    auth.fail_next(
        1,
        Fault::StatusRetryAfter(StatusCode::SERVICE_UNAVAILABLE, 1),
    );
    assert_eq!(
        fetch_token(&auth).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(fetch_token(&auth).await.status, StatusCode::BAD_GATEWAY);

    auth.fail_next(5, Fault::BadJson);
    auth.heal();
    assert_eq!(fetch_token(&auth).await.status, StatusCode::OK);
    assert_eq!((auth.token_requests(), auth.tokens_issued()), (6, 1));
}
