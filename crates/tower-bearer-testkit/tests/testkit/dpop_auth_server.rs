//! DPoP (RFC 9449) at the token endpoint: binding, each refused proof, nonces, refresh.

use http::StatusCode;
use serde_json::json;
use tower_bearer_testkit::{jwk_thumbprint, AuthServer, DpopNoncePolicy, DpopOptions, DpopProblem};

use crate::dpop_proof::ProofKey;
use crate::support::{basic, post_form, send, Reply};

fn default_basic() -> String {
    basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )
}

/// A `client_credentials` request from the default client with `proof` in a `DPoP` header.
async fn with_proof(auth: &AuthServer, proof: Option<&str>) -> Reply {
    grant(auth, proof, &[("grant_type", "client_credentials")]).await
}

async fn grant(auth: &AuthServer, proof: Option<&str>, params: &[(&str, &str)]) -> Reply {
    let authorization = default_basic();
    let mut headers = vec![("authorization", authorization.as_str())];
    headers.extend(proof.map(|proof| ("dpop", proof)));
    post_form(&auth.token_url(), &headers, params).await
}

/// Asserts `reply` is the 400 the server sends for `problem`.
fn assert_refused(reply: &Reply, problem: DpopProblem) {
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{problem:?}: {:?}",
        reply.body
    );
    let body = reply.json();
    assert_eq!(body["error"], problem.error_code(), "{problem:?}: {body}");
    assert_eq!(body["error_description"], problem.to_string(), "{body}");
}

#[tokio::test]
async fn a_valid_proof_gets_a_dpop_token_bound_to_its_key() {
    let auth = AuthServer::start().await.unwrap();
    for key in [ProofKey::es256(), ProofKey::ed25519()] {
        let proof = key.proof("POST", &auth.token_url()).sign();
        let reply = with_proof(&auth, Some(&proof)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: {:?}",
            key.algorithm(),
            reply.body
        );
        assert_eq!(reply.header("dpop-nonce"), None, "no nonces configured");
        let body = reply.json();
        assert_eq!(body["token_type"], "DPoP", "{body}");
        let token = body["access_token"].as_str().unwrap();
        assert!(auth.is_valid(token));
        assert_eq!(auth.token_jkt(token), Some(key.thumbprint()));
        assert_eq!(jwk_thumbprint(&key.jwk()).unwrap(), key.thumbprint());
    }

    let bearer = with_proof(&auth, None).await;
    assert_eq!(bearer.json()["token_type"], "Bearer");
    assert_eq!(auth.token_jkt(&bearer.access_token()), None);
    assert_eq!(auth.token_jkt("never-issued"), None);
    assert_eq!(
        (
            auth.token_requests(),
            auth.dpop_proofs_received(),
            auth.tokens_issued()
        ),
        (3, 2, 3)
    );
    assert_eq!(auth.dpop_refusals(), []);
}

#[tokio::test]
async fn each_bad_proof_is_refused_with_its_own_reason() {
    let auth = AuthServer::start().await.unwrap();
    let key = ProofKey::es256();
    let token_url = auth.token_url();
    let proof = || key.proof("POST", &token_url);
    let mut jwk_with_d = key.jwk();
    jwk_with_d["d"] = "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE".into();
    let other_port = format!("http://127.0.0.1:{}/token", auth.addr().port() ^ 1);

    let cases = [
        (
            proof().claim("htm", "GET".into()).sign(),
            DpopProblem::WrongMethod,
        ),
        (
            proof().claim("htm", "post".into()).sign(),
            DpopProblem::WrongMethod,
        ),
        (
            proof()
                .claim("htu", format!("{}/revoke", auth.url()).into())
                .sign(),
            DpopProblem::WrongUri,
        ),
        (
            proof().claim("htu", other_port.into()).sign(),
            DpopProblem::WrongUri,
        ),
        (
            proof().claim("htu", "/token".into()).sign(),
            DpopProblem::WrongUri,
        ),
        (
            proof().iat_offset(-120).sign(),
            DpopProblem::IssuedTooLongAgo,
        ),
        (
            proof().iat_offset(120).sign(),
            DpopProblem::IssuedInTheFuture,
        ),
        (proof().bad_signature().sign(), DpopProblem::BadSignature),
        (
            proof().header("jwk", jwk_with_d).sign(),
            DpopProblem::PrivateKey,
        ),
        (
            proof().header("typ", "JWT".into()).sign(),
            DpopProblem::WrongType,
        ),
        (
            proof().header("alg", "RS256".into()).sign(),
            DpopProblem::UnsupportedAlgorithm,
        ),
        (
            proof().header("alg", "EdDSA".into()).sign(),
            DpopProblem::AlgorithmKeyMismatch,
        ),
        (
            proof().header("jwk", ProofKey::ed25519().jwk()).sign(),
            DpopProblem::AlgorithmKeyMismatch,
        ),
        (
            proof().header("jwk", ProofKey::es256().jwk()).sign(),
            DpopProblem::BadSignature,
        ),
        (
            proof().without_claim("jti").sign(),
            DpopProblem::MissingClaim("jti"),
        ),
        (
            proof().claim("iat", "now".into()).sign(),
            DpopProblem::MissingClaim("iat"),
        ),
        ("not.a.jws".to_owned(), DpopProblem::Malformed),
        (String::new(), DpopProblem::Malformed),
    ];
    let mut expected = Vec::new();
    for (proof, problem) in cases {
        assert_refused(&with_proof(&auth, Some(&proof)).await, problem);
        expected.push(problem);
    }

    let once = proof().sign();
    assert_eq!(with_proof(&auth, Some(&once)).await.status, StatusCode::OK);
    assert_refused(&with_proof(&auth, Some(&once)).await, DpopProblem::Replayed);
    expected.push(DpopProblem::Replayed);

    let authorization = default_basic();
    let (first, second) = (proof().sign(), proof().sign());
    let headers = [
        ("authorization", authorization.as_str()),
        ("dpop", first.as_str()),
        ("dpop", second.as_str()),
    ];
    let reply = post_form(
        &auth.token_url(),
        &headers,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_refused(&reply, DpopProblem::Multiple);
    expected.push(DpopProblem::Multiple);

    assert_eq!(auth.dpop_refusals(), expected);
    assert_eq!(auth.tokens_issued(), 1, "only the one good proof");
    assert_eq!(auth.dpop_proofs_received(), auth.token_requests());
}

#[tokio::test]
async fn htu_is_compared_without_query_and_fragment_and_ignoring_case() {
    let auth = AuthServer::start().await.unwrap();
    let key = ProofKey::ed25519();
    let with_query = format!("{}?tenant=a", auth.token_url());
    let shouting = auth.token_url().replacen("http://", "HTTP://", 1);
    for htu in [
        auth.token_url(),
        format!("{}#section", auth.token_url()),
        with_query.clone(),
        format!("{}?other=b", auth.token_url()),
        shouting,
    ] {
        let proof = key.proof("POST", &htu).sign();
        let authorization = default_basic();
        let headers = [
            ("authorization", authorization.as_str()),
            ("dpop", proof.as_str()),
        ];
        // The request itself has a query string: htu names the URI without it.
        let reply = post_form(
            &with_query,
            &headers,
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{htu}: {:?}", reply.body);
        assert_eq!(reply.json()["token_type"], "DPoP");
    }
    let localhost = auth.token_url().replacen("127.0.0.1", "localhost", 1);
    let proof = key.proof("POST", &localhost).sign();
    assert_refused(
        &with_proof(&auth, Some(&proof)).await,
        DpopProblem::WrongUri,
    );
}

#[tokio::test]
async fn every_grant_binds_to_the_proof_key() {
    let auth = AuthServer::builder()
        .subject_token("external-subject")
        .start()
        .await
        .unwrap();
    let key = ProofKey::es256();
    let proof = key.proof("POST", &auth.token_url()).sign();
    let params = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", "external-subject"),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ];
    let reply = grant(&auth, Some(&proof), &params).await;
    assert_eq!(reply.json()["token_type"], "DPoP");
    assert_eq!(
        auth.token_jkt(&reply.access_token()),
        Some(key.thumbprint())
    );
}

#[tokio::test]
async fn a_server_without_dpop_ignores_proofs_and_issues_bearer_tokens() {
    let auth = AuthServer::builder().without_dpop().start().await.unwrap();
    let reply = with_proof(&auth, Some("not a proof at all")).await;
    assert_eq!(reply.json()["token_type"], "Bearer");
    assert_eq!(auth.token_jkt(&reply.access_token()), None);
    assert_eq!(auth.dpop_proofs_received(), 1);
    assert_eq!(auth.dpop_refusals(), []);
    assert_eq!(auth.dpop_nonce(), None);

    let metadata = send(
        http::Request::get(auth.metadata_url())
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await
    .unwrap()
    .json();
    assert!(
        metadata.get("dpop_signing_alg_values_supported").is_none(),
        "{metadata}"
    );

    let dpop = AuthServer::start().await.unwrap();
    let metadata = send(
        http::Request::get(dpop.metadata_url())
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await
    .unwrap()
    .json();
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
}

#[tokio::test]
async fn a_server_that_requires_dpop_refuses_requests_without_a_proof() {
    let auth = AuthServer::builder()
        .dpop(DpopOptions::new().require_proof(true))
        .start()
        .await
        .unwrap();
    assert_refused(&with_proof(&auth, None).await, DpopProblem::Missing);
    let key = ProofKey::es256();
    let proof = key.proof("POST", &auth.token_url()).sign();
    assert_eq!(
        with_proof(&auth, Some(&proof)).await.json()["token_type"],
        "DPoP"
    );
    assert_eq!(auth.dpop_refusals(), [DpopProblem::Missing]);
    assert_eq!(auth.tokens_issued(), 1);
}

#[tokio::test]
async fn a_nonce_server_answers_use_dpop_nonce_then_accepts_the_retry() {
    let auth = AuthServer::builder()
        .dpop(DpopOptions::new().require_nonce(DpopNoncePolicy::new()))
        .start()
        .await
        .unwrap();
    let key = ProofKey::es256();

    let first = with_proof(&auth, Some(&key.proof("POST", &auth.token_url()).sign())).await;
    assert_refused(&first, DpopProblem::MissingNonce);
    assert_eq!(first.oauth_error(), "use_dpop_nonce");
    let nonce = first
        .header("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_owned();
    assert_eq!(auth.dpop_nonce().as_deref(), Some(nonce.as_str()));

    let retry = key.proof("POST", &auth.token_url()).nonce(&nonce).sign();
    let reply = with_proof(&auth, Some(&retry)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header("dpop-nonce"), None, "the nonce did not change");
    assert_eq!(
        auth.token_jkt(&reply.access_token()),
        Some(key.thumbprint())
    );

    let made_up = key.proof("POST", &auth.token_url()).nonce("made-up").sign();
    let stale = with_proof(&auth, Some(&made_up)).await;
    assert_refused(&stale, DpopProblem::StaleNonce);
    assert_eq!(stale.header("dpop-nonce"), Some(nonce.as_str()));

    // A request without any proof is not a DPoP request: Bearer, as before.
    let bearer = with_proof(&auth, None).await;
    assert_eq!(bearer.json()["token_type"], "Bearer");
    assert_eq!(bearer.header("dpop-nonce"), None);
    assert_eq!(
        auth.dpop_refusals(),
        [DpopProblem::MissingNonce, DpopProblem::StaleNonce]
    );
}

#[tokio::test]
async fn nonces_rotate_and_the_previous_one_is_accepted_briefly() {
    let auth = AuthServer::builder()
        .dpop(DpopOptions::new().require_nonce(DpopNoncePolicy::new().rotate_after_uses(2)))
        .start()
        .await
        .unwrap();
    let key = ProofKey::ed25519();
    let proof = |nonce: &str| key.proof("POST", &auth.token_url()).nonce(nonce).sign();
    let first = auth.dpop_nonce().unwrap();

    let reply = with_proof(&auth, Some(&proof(&first))).await;
    assert_eq!(
        (reply.status, reply.header("dpop-nonce")),
        (StatusCode::OK, None)
    );
    let reply = with_proof(&auth, Some(&proof(&first))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let second = reply
        .header("dpop-nonce")
        .expect("rotated after two uses")
        .to_owned();
    assert_ne!(second, first);
    assert_eq!(auth.dpop_nonce().as_deref(), Some(second.as_str()));

    // The previous nonce is still accepted, and the answer names the current one.
    let reply = with_proof(&auth, Some(&proof(&first))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header("dpop-nonce"), Some(second.as_str()));

    let third = auth.rotate_dpop_nonce().unwrap();
    let stale = with_proof(&auth, Some(&proof(&first))).await;
    assert_refused(&stale, DpopProblem::StaleNonce);
    assert_eq!(stale.header("dpop-nonce"), Some(third.as_str()));
    let reply = with_proof(&auth, Some(&proof(&second))).await;
    assert_eq!(reply.header("dpop-nonce"), Some(third.as_str()));
}

#[tokio::test]
async fn a_dpop_bound_refresh_token_needs_a_proof_from_the_same_key() {
    let auth = AuthServer::builder()
        .issue_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let key = ProofKey::es256();
    let reply = with_proof(&auth, Some(&key.proof("POST", &auth.token_url()).sign())).await;
    let body = reply.json();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(auth.token_jkt(&refresh_token), Some(key.thumbprint()));

    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let other = ProofKey::es256();
    let reply = grant(
        &auth,
        Some(&other.proof("POST", &auth.token_url()).sign()),
        &refresh,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.oauth_error(), "invalid_grant");
    assert!(
        reply.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("DPoP-bound"),
        "{:?}",
        reply.body
    );
    let reply = grant(&auth, None, &refresh).await;
    assert_eq!(reply.oauth_error(), "invalid_grant");
    assert!(
        auth.is_refresh_token_valid(&refresh_token),
        "refusals do not use it up"
    );

    let reply = grant(
        &auth,
        Some(&key.proof("POST", &auth.token_url()).sign()),
        &refresh,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let body = reply.json();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        auth.token_jkt(body["access_token"].as_str().unwrap()),
        Some(key.thumbprint())
    );
    let rotated = body["refresh_token"].as_str().unwrap();
    assert_eq!(auth.token_jkt(rotated), Some(key.thumbprint()));
    assert_eq!(
        auth.dpop_refusals(),
        [],
        "a key mismatch is invalid_grant, not a bad proof"
    );
}

#[tokio::test]
async fn an_unbound_refresh_token_refreshed_with_a_proof_gets_a_bound_access_token() {
    let auth = AuthServer::start().await.unwrap();
    let seeded = auth.issue_refresh_token(AuthServer::DEFAULT_CLIENT_ID, None);
    let key = ProofKey::ed25519();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", seeded.as_str()),
    ];
    let reply = grant(
        &auth,
        Some(&key.proof("POST", &auth.token_url()).sign()),
        &refresh,
    )
    .await;
    let body = reply.json();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    assert_eq!(
        auth.token_jkt(body["access_token"].as_str().unwrap()),
        Some(key.thumbprint())
    );
    // RFC 9449 section 5 binds a refresh token when it is first issued; this one was not.
    assert_eq!(
        auth.token_jkt(body["refresh_token"].as_str().unwrap()),
        None
    );
}
