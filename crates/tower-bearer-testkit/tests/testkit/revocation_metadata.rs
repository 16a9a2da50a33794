//! The revocation endpoint, the metadata document, refresh token seeding and reuse
//! detection, and restricting client authentication methods.

use http::{Request, StatusCode};
use http_body_util::Full;
use tower_bearer_testkit::{AuthServer, ClientAuthMethod};

use crate::support::{access_token, basic, form, send, token_request, Reply};

async fn revoke(auth: &AuthServer, authorization: &str, params: &[(&str, &str)]) -> Reply {
    let request = Request::post(auth.revocation_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", authorization)
        .body(Full::from(form(params)))
        .unwrap();
    send(request).await.expect("a response")
}

fn default_basic() -> String {
    basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )
}

#[tokio::test]
async fn revocation_revokes_own_tokens_only_and_answers_200_for_unknown_ones() {
    let auth = AuthServer::builder()
        .client("client", "secret")
        .client("other", "other-secret")
        .start()
        .await
        .unwrap();
    let token = access_token(&auth, None).await;

    let by_other = revoke(&auth, &basic("other", "other-secret"), &[("token", &token)]).await;
    assert_eq!(by_other.status, StatusCode::OK);
    assert!(
        auth.is_valid(&token),
        "another client's revocation is ignored"
    );

    let reply = revoke(
        &auth,
        &default_basic(),
        &[("token", &token), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!auth.is_valid(&token));
    let unknown = revoke(&auth, &default_basic(), &[("token", "never-issued")]).await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!((auth.revocation_requests(), auth.tokens_revoked()), (3, 1));
    assert_eq!(auth.token_requests(), 1);

    let bad_hint = revoke(
        &auth,
        &default_basic(),
        &[("token", &token), ("token_type_hint", "id_token")],
    )
    .await;
    assert_eq!(bad_hint.oauth_error(), "unsupported_token_type");
    let wrong_secret = revoke(&auth, &basic("client", "nope"), &[("token", &token)]).await;
    assert_eq!(wrong_secret.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_secret.oauth_error(), "invalid_client");
}

#[tokio::test]
async fn seeded_refresh_tokens_rotate_and_can_be_revoked() {
    let auth = AuthServer::start().await.unwrap();
    let seeded = auth.issue_refresh_token("client", Some("read"));
    assert!(auth.is_refresh_token_valid(&seeded));

    let reply = token_request(
        &auth,
        Some(&default_basic()),
        &[("grant_type", "refresh_token"), ("refresh_token", &seeded)],
    )
    .await;
    let body = reply.json();
    let rotated = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(body["scope"], "read");
    assert!(!auth.is_refresh_token_valid(&seeded));
    assert!(auth.is_refresh_token_valid(&rotated));

    let reply = revoke(
        &auth,
        &default_basic(),
        &[("token", &rotated), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!auth.is_refresh_token_valid(&rotated));
    assert_eq!(auth.tokens_revoked(), 1);
}

#[tokio::test]
async fn reuse_detection_revokes_the_successor() {
    let auth = AuthServer::builder()
        .detect_refresh_token_reuse(true)
        .start()
        .await
        .unwrap();
    let first = auth.issue_refresh_token("client", None);
    let refresh = |token: String| {
        let auth = auth.clone();
        async move {
            token_request(
                &auth,
                Some(&default_basic()),
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };
    let second = refresh(first.clone()).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = refresh(first).await;
    assert_eq!(replay.oauth_error(), "invalid_grant");
    assert!(!auth.is_refresh_token_valid(&second));
    assert_eq!(refresh(second).await.oauth_error(), "invalid_grant");
}

#[tokio::test]
async fn without_rotation_the_refresh_token_stays_and_none_is_sent() {
    let auth = AuthServer::builder()
        .rotate_refresh_tokens(false)
        .start()
        .await
        .unwrap();
    let token = auth.issue_refresh_token("client", None);
    for _ in 0..2 {
        let body = token_request(
            &auth,
            Some(&default_basic()),
            &[("grant_type", "refresh_token"), ("refresh_token", &token)],
        )
        .await
        .json();
        assert!(body["access_token"].is_string(), "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
    }
    assert!(auth.is_refresh_token_valid(&token));
}

#[tokio::test]
async fn metadata_names_the_endpoints_and_the_accepted_methods() {
    let auth = AuthServer::builder()
        .client_auth_methods(&[ClientAuthMethod::Post])
        .start()
        .await
        .unwrap();
    let request = Request::get(auth.metadata_url())
        .body(Full::default())
        .unwrap();
    let reply = send(request).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let metadata = reply.json();
    assert_eq!(metadata["issuer"], auth.url());
    assert_eq!(metadata["token_endpoint"], auth.token_url());
    assert_eq!(metadata["revocation_endpoint"], auth.revocation_url());
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_post"])
    );
    assert_eq!(auth.metadata_requests(), 1);

    // Basic is refused; the form parameters work.
    let basic_reply = token_request(
        &auth,
        Some(&default_basic()),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(basic_reply.oauth_error(), "invalid_client");
    let post_reply = token_request(
        &auth,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "client"),
            ("client_secret", "secret"),
        ],
    )
    .await;
    assert_eq!(post_reply.status, StatusCode::OK);
}
