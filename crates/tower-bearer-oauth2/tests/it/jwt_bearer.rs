//! The JWT bearer grant (RFC 7523 section 2.1) against the testkit's mock authorization
//! server, which verifies each assertion with the issuer's registered public key and checks
//! `aud`, `exp` and a single-use `jti`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tower_bearer::{TokenCache, TokenSource};
use tower_bearer_oauth2::{
    AuthMethod, ClientAuth, Endpoint, JwtBearer, JwtBearerBuilder, TokenParams,
};
use tower_bearer_testkit::{capture_tracing, AuthServer, ClientAuthMethod, TestKey};

use crate::support::{
    everything_printed, oauth_error, private_key, tokens_for_concurrent_callers, TestResult,
};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ISSUER: &str = "reporting@example.iam";
const SUBJECT: &str = "user-42";
const CLIENT_ID: &str = "reporting";
const CLIENT_SECRET: &str = "cl1ent-5ecr3t";

/// A server with our client, trusting `key` to sign for `ISSUER`; and the key.
async fn trusting(key: TestKey) -> std::io::Result<(AuthServer, TestKey)> {
    let server = AuthServer::builder()
        .client(CLIENT_ID, CLIENT_SECRET)
        .jwt_bearer_issuer(ISSUER, &key)
        .start()
        .await?;
    Ok((server, key))
}

/// The claims of the assertion the server last received.
fn sent_claims(server: &AuthServer) -> Value {
    let request = server.last_request().expect("a request");
    let assertion = request.param("assertion").expect("an assertion");
    let claims = assertion.split('.').nth(1).expect("a compact JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
}

/// A source signing its own assertions with `key` as `ISSUER` about `SUBJECT`.
fn signed_by(server: &AuthServer, key: &TestKey) -> JwtBearerBuilder {
    JwtBearer::builder(
        endpoint(&server.token_url()),
        private_key(key),
        ISSUER,
        SUBJECT,
    )
}

fn endpoint(token_url: &str) -> Endpoint {
    Endpoint::builder(token_url)
        .build()
        .expect("a valid endpoint")
}

/// Signs an ES256 JWT with `claims` by hand, as a user's own signer (a KMS) would.
fn sign_es256(key: &TestKey, claims: &Value) -> String {
    let der = PrivatePkcs8KeyDer::from_pem_slice(key.pkcs8_pem().as_bytes()).unwrap();
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der.secret_pkcs8_der(),
        &rng,
    )
    .unwrap();
    let header = serde_json::json!({ "alg": "ES256", "typ": "JWT" });
    let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = pair.sign(&rng, jwt.as_bytes()).unwrap();
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
    jwt
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn signed_assertions_carry_the_rfc_7523_claims() -> TestResult {
    for key in [TestKey::rs256(), TestKey::es256()] {
        let (server, key) = trusting(key).await?;
        let source = signed_by(&server, &key)
            .claim("tenant", "acme")
            .params(TokenParams::new().scope("reports.read"))
            .build()?;
        assert_eq!(source.client_auth().method(), AuthMethod::None);

        let token = source.fetch().await?;
        assert!(server.is_valid(token.secret().expose_secret()));
        let sent = server.last_request().unwrap();
        assert_eq!(sent.grant_type, GRANT_TYPE);
        assert_eq!(sent.auth_method, ClientAuthMethod::None);
        assert_eq!(sent.client_id, None, "no client authentication by default");
        assert_eq!(sent.scope.as_deref(), Some("reports.read"));
        let first = sent_claims(&server);
        assert_eq!(first["iss"], ISSUER, "{}", key.algorithm());
        assert_eq!(first["sub"], SUBJECT);
        assert_eq!(first["aud"], server.token_url());
        assert_eq!(first["tenant"], "acme");
        let (iat, exp) = (
            first["iat"].as_u64().unwrap(),
            first["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, 60, "a short-lived assertion");

        // The server refuses a jti it has seen: a second token proves a fresh assertion.
        source.fetch().await?;
        assert_ne!(first["jti"], sent_claims(&server)["jti"]);
        assert_eq!(server.token_requests(), 2);
    }
    Ok(())
}

#[tokio::test]
async fn audience_and_lifetime_are_configurable() -> TestResult {
    let (server, key) = trusting(TestKey::es256()).await?;
    let source = signed_by(&server, &key)
        .audience(server.url())
        .assertion_lifetime(std::time::Duration::from_secs(300))
        .build()?;
    source.fetch().await?;
    let claims = sent_claims(&server);
    assert_eq!(claims["aud"], server.url());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );
    Ok(())
}

#[tokio::test]
async fn a_closure_assertion_is_used_and_a_replayed_one_is_invalid_grant() -> TestResult {
    let (server, key) = trusting(TestKey::es256()).await?;
    // One assertion, handed out every time: the server takes it once, then sees its jti again.
    let assertion = sign_es256(
        &key,
        &serde_json::json!({
            "iss": ISSUER,
            "sub": SUBJECT,
            "aud": server.token_url(),
            "iat": now(),
            "exp": now() + 60,
            "jti": "only-once",
        }),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let handed_out = assertion.clone();
    let source = JwtBearer::builder_with_assertion(endpoint(&server.token_url()), move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let assertion = SecretString::from(handed_out.clone());
        async move { Ok(assertion) }
    })
    .build()?;

    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    assert_eq!(
        server.last_request().unwrap().param("assertion"),
        Some(assertion.as_str())
    );

    let capture = capture_tracing();
    let error = source.fetch().await.expect_err("a replayed jti");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    assert_eq!(server.token_requests(), 2, "invalid_grant is not retried");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one assertion per fetch");
    let printed = everything_printed(&error, &source, &capture);
    assert!(!printed.contains(&assertion), "{printed}");
    Ok(())
}

#[tokio::test]
async fn expired_or_misaddressed_assertions_are_invalid_grant() -> TestResult {
    let (server, key) = trusting(TestKey::es256()).await?;
    let cases = [
        ("expired", server.token_url(), now() - 10),
        (
            "wrong-aud",
            "https://elsewhere.example.com/token".to_owned(),
            now() + 60,
        ),
    ];
    for (jti, audience, exp) in cases {
        let assertion = sign_es256(
            &key,
            &serde_json::json!({
                "iss": ISSUER, "sub": SUBJECT, "aud": audience,
                "iat": now() - 20, "exp": exp, "jti": jti,
            }),
        );
        let source = JwtBearer::builder_with_assertion(endpoint(&server.token_url()), move || {
            let assertion = SecretString::from(assertion.clone());
            async move { Ok(assertion) }
        })
        .build()?;
        let error = source.fetch().await.expect_err(jti);
        assert!(oauth_error(&error).is_invalid_grant(), "{jti}: {error}");
    }
    Ok(())
}

#[tokio::test]
async fn an_untrusted_issuer_is_invalid_grant() -> TestResult {
    let (server, _) = trusting(TestKey::es256()).await?;
    let other = TestKey::es256();
    let source = JwtBearer::builder(
        endpoint(&server.token_url()),
        private_key(&other),
        "stranger",
        SUBJECT,
    )
    .build()?;
    let error = source.fetch().await.expect_err("unknown issuer");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    assert_eq!(server.token_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn client_authentication_is_optional_and_checked_when_given() -> TestResult {
    let (server, key) = trusting(TestKey::es256()).await?;
    let source = signed_by(&server, &key)
        .client_auth(ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET)?)
        .build()?;
    assert_eq!(source.client_auth().method(), AuthMethod::ClientSecretBasic);
    source.fetch().await?;
    let sent = server.last_request().unwrap();
    assert_eq!(sent.auth_method, ClientAuthMethod::Basic);
    assert_eq!(sent.client_id.as_deref(), Some(CLIENT_ID));

    let posted = signed_by(&server, &key)
        .client_auth(ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET)?)
        .build()?;
    posted.fetch().await?;
    assert_eq!(
        server.last_request().unwrap().auth_method,
        ClientAuthMethod::Post
    );

    let public = signed_by(&server, &key)
        .client_auth(ClientAuth::public(CLIENT_ID))
        .build()?;
    public.fetch().await?;
    let sent = server.last_request().unwrap();
    assert_eq!(sent.auth_method, ClientAuthMethod::None);
    assert_eq!(sent.client_id.as_deref(), Some(CLIENT_ID));

    let wrong = signed_by(&server, &key)
        .client_auth(ClientAuth::secret_basic(CLIENT_ID, "wrong-5ecr3t")?)
        .build()?;
    let error = wrong.fetch().await.expect_err("wrong secret");
    assert!(oauth_error(&error).is_invalid_client(), "{error}");
    assert!(!format!("{error} {error:?} {wrong:?}").contains("wrong-5ecr3t"));
    Ok(())
}

#[tokio::test]
async fn concurrent_callers_through_a_cache_cause_one_token_request() -> TestResult {
    let (server, key) = trusting(TestKey::rs256()).await?;
    let source = signed_by(&server, &key).build()?;
    let cache = TokenCache::new(source);
    tokens_for_concurrent_callers(&cache, 64).await?;
    assert_eq!(server.token_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn build_refuses_registered_claims_and_empty_parties() -> TestResult {
    let key = private_key(&TestKey::es256());
    let url = endpoint("https://auth.example.com/token");
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti"] {
        let error = JwtBearer::builder(url.clone(), key.clone(), ISSUER, SUBJECT)
            .claim(claim, "x")
            .build()
            .expect_err(claim);
        assert!(error.to_string().contains(claim), "{error}");
    }
    let error = JwtBearer::builder(url.clone(), key.clone(), "", SUBJECT)
        .build()
        .expect_err("empty iss");
    assert!(error.to_string().contains("iss"), "{error}");
    let error = JwtBearer::builder(url.clone(), key.clone(), ISSUER, SUBJECT)
        .params(TokenParams::new().param("assertion", "x"))
        .build()
        .expect_err("reserved");
    assert!(error.to_string().contains("assertion"), "{error}");
    let error = ClientAuth::secret_basic(CLIENT_ID, "").expect_err("empty secret");
    assert!(error.to_string().contains("secret"), "{error}");
    Ok(())
}
