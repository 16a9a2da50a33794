//! The token endpoint: client authentication, grants, counters, inspection.

use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::Full;
use tower_bearer_testkit::{AuthServer, ClientAuthMethod, TokenRequest};

use crate::support::{access_token, basic, fetch_token, send, token_request};

const AWKWARD_ID: &str = "my client:1";
const AWKWARD_SECRET: &str = "p@ss:w%rd+ ü";

async fn awkward_server() -> AuthServer {
    AuthServer::builder()
        .client(AWKWARD_ID, AWKWARD_SECRET)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn basic_auth_with_form_encoded_special_characters_gets_a_token() {
    let auth = awkward_server().await;
    let reply = token_request(
        &auth,
        Some(&basic(AWKWARD_ID, AWKWARD_SECRET)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
        ],
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read write");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.len() >= 32, "{token}");
    assert!(token
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'));
    assert!(auth.is_valid(token));
    assert!(!auth.is_valid("something-else"));
    assert_eq!((auth.token_requests(), auth.tokens_issued()), (1, 1));

    assert_eq!(
        auth.last_request(),
        Some(TokenRequest {
            grant_type: "client_credentials".into(),
            client_id: Some(AWKWARD_ID.into()),
            auth_method: ClientAuthMethod::Basic,
            scope: Some("read write".into()),
            params: vec![
                ("grant_type".into(), "client_credentials".into()),
                ("scope".into(), "read write".into()),
            ],
        })
    );
}

#[tokio::test]
async fn basic_credentials_that_skip_the_form_encoding_are_refused() {
    use base64::Engine as _;
    let auth = awkward_server().await;
    let raw =
        base64::engine::general_purpose::STANDARD.encode(format!("{AWKWARD_ID}:{AWKWARD_SECRET}"));
    let reply = token_request(
        &auth,
        Some(&format!("Basic {raw}")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.oauth_error(), "invalid_client");
    assert_eq!(auth.tokens_issued(), 0);
}

#[tokio::test]
async fn client_secret_post_gets_a_token_and_the_secret_is_not_recorded() {
    let auth = awkward_server().await;
    let reply = token_request(
        &auth,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", AWKWARD_ID),
            ("client_secret", AWKWARD_SECRET),
        ],
    )
    .await;
    assert!(auth.is_valid(&reply.access_token()));

    let recorded = auth.last_request().unwrap();
    assert_eq!(recorded.auth_method, ClientAuthMethod::Post);
    assert_eq!(recorded.client_id.as_deref(), Some(AWKWARD_ID));
    assert_eq!(recorded.scope, None);
    assert_eq!(recorded.param("client_id"), Some(AWKWARD_ID));
    assert_eq!(recorded.param("client_secret"), None);
    assert!(!format!("{recorded:?}").contains("w%rd"));
    assert!(!format!("{auth:?}").contains("w%rd"));
}

#[tokio::test]
async fn a_wrong_secret_or_unknown_client_is_invalid_client() {
    let auth = AuthServer::start().await.unwrap();
    let attempts = [
        (Some(basic("client", "wrong")), vec![]),
        (Some(basic("stranger", "secret")), vec![]),
        (
            None,
            vec![("client_id", "client"), ("client_secret", "wrong")],
        ),
        (None, vec![("client_id", "client")]),
        (None, vec![]),
        (Some("Bearer some-token".to_owned()), vec![]),
    ];
    for (authorization, mut params) in attempts {
        params.push(("grant_type", "client_credentials"));
        let reply = token_request(&auth, authorization.as_deref(), &params).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{params:?}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Basic realm="testkit""#)
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.oauth_error(), "invalid_client", "{params:?}");
    }
    assert_eq!((auth.token_requests(), auth.tokens_issued()), (6, 0));
    assert_eq!(
        auth.last_request().unwrap().auth_method,
        ClientAuthMethod::None
    );
}

#[tokio::test]
async fn malformed_requests_are_invalid_request_or_unsupported_grant_type() {
    let auth = AuthServer::start().await.unwrap();
    let authorization = basic("client", "secret");
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "invalid_request"),
        (&[("grant_type", "password")], "unsupported_grant_type"),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", "secret"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            "invalid_request",
        ),
        (&[("grant_type", "refresh_token")], "invalid_request"),
    ];
    for (params, error) in cases {
        let reply = token_request(&auth, Some(&authorization), params).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{params:?}");
        assert_eq!(reply.oauth_error(), error, "{params:?}");
    }
    assert_eq!(auth.last_request().unwrap().grant_type, "refresh_token");

    let empty = token_request(&auth, Some(&authorization), &[]).await;
    assert_eq!(empty.oauth_error(), "invalid_request");
    assert_eq!(auth.last_request().unwrap().grant_type, "");
    assert_eq!(auth.tokens_issued(), 0);
}

#[tokio::test]
async fn only_a_form_post_to_the_token_path_is_a_token_request() {
    let auth = AuthServer::start().await.unwrap();
    let json = Request::post(auth.token_url())
        .header("content-type", "application/json")
        .header("authorization", basic("client", "secret"))
        .body(Full::from(r#"{"grant_type":"client_credentials"}"#))
        .unwrap();
    let reply = send(json).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.oauth_error(), "invalid_request");
    assert_eq!(auth.last_request(), None);

    let get = Request::get(auth.token_url())
        .body(Full::default())
        .unwrap();
    let reply = send(get).await.unwrap();
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("POST"));

    let elsewhere = Request::post(format!("{}/oauth/token", auth.url()))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(elsewhere).await.unwrap().status, StatusCode::NOT_FOUND);

    assert_eq!((auth.token_requests(), auth.tokens_issued()), (2, 0));
}

#[tokio::test]
async fn scopes_outside_the_allowed_set_are_invalid_scope() {
    let auth = AuthServer::builder()
        .scope_allowed("read write")
        .scope_allowed("admin")
        .start()
        .await
        .unwrap();
    let authorization = basic("client", "secret");
    let refused = token_request(
        &auth,
        Some(&authorization),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read delete"),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.oauth_error(), "invalid_scope");
    assert!(auth.is_valid(&access_token(&auth, Some("admin read")).await));
}

#[tokio::test]
async fn the_token_lifetime_can_change_while_running() {
    let auth = AuthServer::builder()
        .token_lifetime(Duration::from_secs(120))
        .start()
        .await
        .unwrap();
    assert_eq!(fetch_token(&auth).await.json()["expires_in"], 120);
    auth.set_token_lifetime(Duration::from_secs(5));
    let reply = fetch_token(&auth).await;
    assert_eq!(reply.json()["expires_in"], 5);
    assert!(auth.is_valid(&reply.access_token()));

    auth.set_token_lifetime(Duration::ZERO);
    let reply = fetch_token(&auth).await;
    assert_eq!(reply.json()["expires_in"], 0);
    assert!(!auth.is_valid(&reply.access_token()));
}

#[tokio::test(start_paused = true)]
async fn tokens_expire_on_paused_tokio_time() {
    let auth = AuthServer::builder()
        .token_lifetime(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let token = access_token(&auth, None).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(auth.is_valid(&token));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!auth.is_valid(&token));
    // The sockets still work on the paused clock.
    assert!(auth.is_valid(&access_token(&auth, None).await));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_the_old_one_dies() {
    let auth = AuthServer::builder()
        .issue_refresh_tokens(true)
        .client("other", "other-secret")
        .client("client", "secret")
        .start()
        .await
        .unwrap();
    let authorization = basic("client", "secret");
    let first = token_request(
        &auth,
        Some(&authorization),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
        ],
    )
    .await
    .json();
    let first_refresh = first["refresh_token"].as_str().unwrap();

    let refresh = |refresh_token: String, scope: Option<&'static str>| {
        let auth = auth.clone();
        let authorization = authorization.clone();
        async move {
            let mut params = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.as_str()),
            ];
            params.extend(scope.map(|scope| ("scope", scope)));
            token_request(&auth, Some(&authorization), &params).await
        }
    };

    let second = refresh(first_refresh.to_owned(), None).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    let second = second.json();
    let second_refresh = second["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, first_refresh);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["scope"], "read write");
    assert!(auth.is_valid(second["access_token"].as_str().unwrap()));
    assert_eq!(auth.last_request().unwrap().grant_type, "refresh_token");

    let reused = refresh(first_refresh.to_owned(), None).await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert_eq!(reused.oauth_error(), "invalid_grant");

    let wider = refresh(second_refresh.to_owned(), Some("read admin")).await;
    assert_eq!(wider.oauth_error(), "invalid_scope");

    let by_other_client = token_request(
        &auth,
        Some(&basic("other", "other-secret")),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", second_refresh),
        ],
    )
    .await;
    assert_eq!(by_other_client.oauth_error(), "invalid_grant");

    // Still usable after the refusals above, and the scope can narrow.
    let narrower = refresh(second_refresh.to_owned(), Some("read"))
        .await
        .json();
    assert_eq!(narrower["scope"], "read");

    let third_refresh = narrower["refresh_token"].as_str().unwrap().to_owned();
    auth.revoke(&third_refresh);
    assert_eq!(
        refresh(third_refresh, None).await.oauth_error(),
        "invalid_grant"
    );
    assert_eq!(auth.tokens_issued(), 3);
}

#[tokio::test]
async fn client_credentials_carry_no_refresh_token_by_default() {
    let auth = AuthServer::start().await.unwrap();
    let body = fetch_token(&auth).await.json();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("scope").is_none(), "{body}");
}

#[tokio::test]
async fn revoking_invalidates_exactly_the_tokens_named() {
    let auth = AuthServer::start().await.unwrap();
    let first = access_token(&auth, None).await;
    let second = access_token(&auth, None).await;
    auth.revoke(&first);
    assert!(!auth.is_valid(&first));
    assert!(auth.is_valid(&second));
    auth.revoke_all();
    assert!(!auth.is_valid(&second));
    assert!(auth.is_valid(&access_token(&auth, None).await));
}
