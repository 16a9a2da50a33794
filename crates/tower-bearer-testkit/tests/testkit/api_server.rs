//! The protected API: bearer tokens, scope, injected responses, counters.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_bearer_testkit::{ApiServer, AuthServer, StreamingBody};

use crate::support::{access_token, send, Reply};

async fn servers() -> (AuthServer, ApiServer) {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    (auth, api)
}

async fn call(
    api: &ApiServer,
    path: &str,
    authorization: Option<&str>,
    body: &'static str,
) -> Reply {
    let mut request = Request::post(format!("{}{path}", api.url()));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    send(request.body(Full::from(body)).unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_valid_token_gets_hello_and_the_body_is_kept() {
    let (auth, api) = servers().await;
    let token = access_token(&auth, None).await;
    let reply = call(&api, "/things", Some(&format!("Bearer {token}")), "payload").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "hello");
    assert_eq!(api.last_body(), Some(Bytes::from_static(b"payload")));

    // The scheme is case-insensitive (RFC 7235 section 2.1).
    let reply = call(&api, "/", Some(&format!("bearer {token}")), "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(api.last_body(), Some(Bytes::new()));
    assert_eq!(
        (api.requests(), api.authorized(), api.rejected()),
        (2, 2, 0)
    );
}

#[tokio::test]
async fn no_token_gets_a_bare_bearer_challenge() {
    let (_auth, api) = servers().await;
    for authorization in [None, Some("Basic Y2xpZW50OnNlY3JldA==")] {
        let reply = call(&api, "/things", authorization, "kept anyway").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="testkit""#)
        );
    }
    assert_eq!(api.last_body(), Some(Bytes::from_static(b"kept anyway")));
    assert_eq!(
        (api.requests(), api.authorized(), api.rejected()),
        (2, 0, 2)
    );
}

#[tokio::test]
async fn unknown_expired_and_revoked_tokens_are_invalid_token() {
    let (auth, api) = servers().await;
    let revoked = access_token(&auth, None).await;
    auth.revoke(&revoked);
    auth.set_token_lifetime(std::time::Duration::ZERO);
    let expired = access_token(&auth, None).await;

    for (token, description) in [
        ("made-up", "unknown"),
        (revoked.as_str(), "revoked"),
        (expired.as_str(), "expired"),
    ] {
        let reply = call(&api, "/things", Some(&format!("Bearer {token}")), "").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(
            challenge.starts_with(
                r#"Bearer realm="testkit", error="invalid_token", error_description=""#
            ),
            "{challenge}"
        );
        assert!(challenge.contains(description), "{challenge}");
    }
    assert_eq!(
        (api.requests(), api.authorized(), api.rejected()),
        (3, 0, 3)
    );
}

#[tokio::test]
async fn revoke_all_rejects_every_earlier_token() {
    let (auth, api) = servers().await;
    let tokens = [
        access_token(&auth, None).await,
        access_token(&auth, None).await,
    ];
    auth.revoke_all();
    for token in &tokens {
        let reply = call(&api, "/", Some(&format!("Bearer {token}")), "").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let fresh = access_token(&auth, None).await;
    let reply = call(&api, "/", Some(&format!("Bearer {fresh}")), "").await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn admin_needs_the_admin_scope() {
    let (auth, api) = servers().await;
    let reader = access_token(&auth, Some("read")).await;
    let admin = access_token(&auth, Some("read admin")).await;

    let reply = call(&api, "/admin", Some(&format!("Bearer {reader}")), "").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="admin""#), "{challenge}");
    let reply = call(&api, "/admin/users", Some(&format!("Bearer {reader}")), "").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = call(
        &api,
        "/administrator",
        Some(&format!("Bearer {reader}")),
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    let reply = call(&api, "/admin", Some(&format!("Bearer {admin}")), "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        (api.requests(), api.authorized(), api.rejected()),
        (4, 2, 0)
    );
}

#[tokio::test]
async fn respond_next_overrides_the_token_check_for_that_many_requests() {
    let (auth, api) = servers().await;
    let token = access_token(&auth, None).await;
    let authorization = format!("Bearer {token}");
    let challenge = r#"Bearer realm="testkit", error="invalid_token""#;
    api.respond_next(2, StatusCode::UNAUTHORIZED, Some(challenge));
    api.respond_next(1, StatusCode::SERVICE_UNAVAILABLE, None);

    let mut seen = Vec::new();
    for body in ["one", "two", "three", "four"] {
        let reply = call(&api, "/things", Some(&authorization), body).await;
        seen.push((
            reply.status,
            reply.header("www-authenticate").map(str::to_owned),
        ));
        assert_eq!(api.last_body(), Some(Bytes::from_static(body.as_bytes())));
    }
    assert_eq!(
        seen,
        [
            (StatusCode::UNAUTHORIZED, Some(challenge.to_owned())),
            (StatusCode::UNAUTHORIZED, Some(challenge.to_owned())),
            (StatusCode::SERVICE_UNAVAILABLE, None),
            (StatusCode::OK, None),
        ]
    );
    assert_eq!(
        (api.requests(), api.authorized(), api.rejected()),
        (4, 1, 2)
    );
}

#[tokio::test]
async fn a_streaming_body_arrives_whole() {
    let (auth, api) = servers().await;
    let token = access_token(&auth, None).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<StreamingBody>();
    let request = Request::put(format!("{}/upload", api.url()))
        .header("authorization", format!("Bearer {token}"))
        .body(StreamingBody::from_static(&["first ", "second ", "third"]))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        api.last_body(),
        Some(Bytes::from_static(b"first second third"))
    );
}

#[tokio::test]
async fn the_api_keeps_checking_tokens_after_the_auth_server_stops() {
    let (auth, api) = servers().await;
    let token = access_token(&auth, None).await;
    auth.shutdown().await;
    let reply = call(&api, "/", Some(&format!("Bearer {token}")), "").await;
    assert_eq!(reply.status, StatusCode::OK);
}
