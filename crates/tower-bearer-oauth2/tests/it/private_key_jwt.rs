//! `private_key_jwt` client authentication (RFC 7523 section 2.2) against the testkit's mock
//! authorization server, which verifies each assertion's signature and claims.

use std::error::Error as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use secrecy::ExposeSecret;
use serde_json::Value;
use tower_bearer::TokenSource;
use tower_bearer_oauth2::{
    AuthMethod, ClientAuth, ClientCredentials, Endpoint, EndpointBuilder, OAuthError, RefreshToken,
};
use tower_bearer_testkit::{AuthServer, ClientAuthMethod, TestKey};

use crate::support::{private_key, TestResult};

const CLIENT: &str = "jwt-client";

async fn server_for(key: &TestKey) -> std::io::Result<AuthServer> {
    AuthServer::builder()
        .client("client", "secret")
        .private_key_jwt_client(CLIENT, key)
        .issue_refresh_tokens(false)
        .start()
        .await
}

/// A source for `CLIENT` signing with `key`, over `endpoint`.
fn source_over(
    endpoint: EndpointBuilder,
    key: &TestKey,
) -> Result<ClientCredentials, Box<dyn std::error::Error + Send + Sync>> {
    let client = ClientAuth::private_key_jwt(CLIENT, private_key(key))?;
    Ok(ClientCredentials::builder(endpoint.build()?, client).build()?)
}

fn assertion_claims(server: &AuthServer) -> Value {
    let request = server.last_request().expect("a request");
    assert_eq!(request.auth_method, ClientAuthMethod::PrivateKeyJwt);
    assert_eq!(
        request.param("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(request.param("client_secret"), None);
    let assertion = request.param("client_assertion").expect("an assertion");
    let claims = assertion.split('.').nth(1).expect("a JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
}

#[tokio::test]
async fn rs256_and_es256_assertions_get_tokens() -> TestResult {
    for key in [TestKey::rs256(), TestKey::es256()] {
        let server = server_for(&key).await?;
        let endpoint =
            Endpoint::builder(server.token_url()).revocation_url(server.revocation_url());
        let source = source_over(endpoint, &key)?;
        assert_eq!(source.client_auth().method(), AuthMethod::PrivateKeyJwt);

        let token = source.fetch().await?;
        assert!(
            server.is_valid(token.secret().expose_secret()),
            "{}",
            key.algorithm()
        );
        let first = assertion_claims(&server);
        assert_eq!(first["iss"], CLIENT);
        assert_eq!(first["sub"], CLIENT);
        assert_eq!(first["aud"], server.token_url());

        // The server refuses a jti it has seen, so a second token proves a fresh assertion.
        source.fetch().await?;
        let second = assertion_claims(&server);
        assert_ne!(first["jti"], second["jti"]);

        // The revocation endpoint takes the same kind of assertion.
        source.revoke(&token).await?;
        assert!(!server.is_valid(token.secret().expose_secret()));
        assert_eq!(
            server.last_request().unwrap().auth_method,
            ClientAuthMethod::PrivateKeyJwt
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_audience_can_be_the_issuer() -> TestResult {
    let key = TestKey::es256();
    let server = server_for(&key).await?;
    let source = source_over(
        Endpoint::builder(server.token_url()).assertion_audience(server.url()),
        &key,
    )?;
    source.fetch().await?;
    assert_eq!(assertion_claims(&server)["aud"], server.url());

    let elsewhere = source_over(
        Endpoint::builder(server.token_url()).assertion_audience("https://other.example.com/token"),
        &key,
    )?;
    let error = elsewhere.fetch().await.expect_err("wrong audience");
    assert!(error.is_permanent(), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_key_the_server_does_not_know_is_invalid_client() -> TestResult {
    let registered = TestKey::es256();
    let server = server_for(&registered).await?;
    let other = TestKey::es256();
    let source = source_over(Endpoint::builder(server.token_url()), &other)?;
    let error = source.fetch().await.expect_err("not the registered key");
    assert!(error.is_permanent(), "{error}");
    let oauth = error
        .source()
        .and_then(|source| source.downcast_ref::<OAuthError>())
        .expect("an OAuth error");
    assert!(oauth.is_invalid_client(), "{oauth}");
    assert!(error.to_string().contains("private_key_jwt"), "{error}");
    assert!(!format!("{error:?}").contains("PRIVATE KEY"));
    Ok(())
}

#[tokio::test]
async fn refresh_token_grant_with_a_private_key() -> TestResult {
    let key = TestKey::rs256();
    let server = server_for(&key).await?;
    let seeded = server.issue_refresh_token(CLIENT, None);
    let source = RefreshToken::builder(
        Endpoint::builder(server.token_url()).build()?,
        ClientAuth::private_key_jwt(CLIENT, private_key(&key))?,
        seeded.as_str(),
    )
    .build()?;
    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    assert_ne!(source.refresh_token().expose_secret(), seeded);
    assert_eq!(assertion_claims(&server)["iss"], CLIENT);
    Ok(())
}

#[tokio::test]
async fn the_server_refuses_a_replayed_assertion() -> TestResult {
    let key = TestKey::es256();
    let server = server_for(&key).await?;
    source_over(Endpoint::builder(server.token_url()), &key)?
        .fetch()
        .await?;
    let sent = server.last_request().expect("a request");
    let form: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(sent.params.iter())
        .finish();
    let replay = http::Request::post(server.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::from(form))?;
    let response = tower_bearer_testkit::http_client().request(replay).await?;
    assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(server.tokens_issued(), 1);
    Ok(())
}

/// `private_key_jwt` without a key cannot be written any more: the key is the
/// constructor's argument. The id is checked there.
#[test]
fn private_key_jwt_without_a_client_id_is_refused() {
    let error =
        ClientAuth::private_key_jwt("", private_key(&TestKey::es256())).expect_err("no client id");
    assert!(error.is_invalid_credentials(), "{error}");
    assert!(error.to_string().contains("client id"), "{error}");
}
