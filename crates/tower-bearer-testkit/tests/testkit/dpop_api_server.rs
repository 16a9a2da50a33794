//! DPoP (RFC 9449 section 7) at the protected API: proofs with `ath`, key binding, the
//! `DPoP` challenges, nonces.

use http::{Request, StatusCode};
use http_body_util::Full;
use tower_bearer_testkit::{
    ApiRefusal, ApiServer, AuthServer, DpopNoncePolicy, DpopOptions, DpopProblem,
};

use crate::dpop_proof::ProofKey;
use crate::support::{access_token, basic, post_form, send, Reply};

const ALGS: &str = r#"algs="ES256 EdDSA""#;

/// A DPoP token for `key` from the default client.
async fn dpop_token(auth: &AuthServer, key: &ProofKey) -> String {
    let authorization = basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    );
    let proof = key.proof("POST", &auth.token_url()).sign();
    let headers = [
        ("authorization", authorization.as_str()),
        ("dpop", proof.as_str()),
    ];
    let reply = post_form(
        &auth.token_url(),
        &headers,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(reply.json()["token_type"], "DPoP", "{:?}", reply.body);
    reply.access_token()
}

/// A GET of `url` with these headers.
async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(Full::default()).unwrap()).await.unwrap()
}

/// A GET of `url` presenting `token` with the DPoP scheme and `proof`.
async fn get_dpop(url: &str, token: &str, proof: &str) -> Reply {
    let authorization = format!("DPoP {token}");
    get(url, &[("authorization", &authorization), ("dpop", proof)]).await
}

/// The one `WWW-Authenticate` challenge of a 401.
fn challenge(reply: &Reply) -> &str {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    reply.header("www-authenticate").expect("a challenge")
}

async fn servers(api_dpop: DpopOptions) -> (AuthServer, ApiServer) {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::builder(&auth)
        .dpop(api_dpop)
        .start()
        .await
        .unwrap();
    (auth, api)
}

#[tokio::test]
async fn a_dpop_token_with_a_good_proof_is_accepted() {
    let (auth, api) = servers(DpopOptions::new()).await;
    for key in [ProofKey::es256(), ProofKey::ed25519()] {
        let token = dpop_token(&auth, &key).await;
        let url = format!("{}/things", api.url());
        let proof = key.proof("GET", &url).ath(&token).sign();
        let reply = get_dpop(&url, &token, &proof).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.headers);
        assert_eq!(reply.body, "hello");
        assert_eq!(reply.header("dpop-nonce"), None);

        // The request's query is not part of htu.
        let proof = key.proof("GET", &url).ath(&token).sign();
        let reply = get_dpop(&format!("{url}?page=2"), &token, &proof).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.headers);
    }
    assert_eq!(
        (api.requests(), api.authorized(), api.dpop_requests()),
        (4, 4, 4)
    );
    assert_eq!(api.refusals(), []);
}

#[tokio::test]
async fn a_bad_proof_is_invalid_dpop_proof() {
    let (auth, api) = servers(DpopOptions::new()).await;
    let key = ProofKey::es256();
    let token = dpop_token(&auth, &key).await;
    let other_token = dpop_token(&auth, &key).await;
    let url = format!("{}/things", api.url());

    let reused = key.proof("GET", &url).ath(&token).sign();
    assert_eq!(get_dpop(&url, &token, &reused).await.status, StatusCode::OK);
    let cases = [
        (
            key.proof("GET", &url).ath(&other_token).sign(),
            DpopProblem::WrongAccessTokenHash,
        ),
        (
            key.proof("GET", &url).sign(),
            DpopProblem::MissingClaim("ath"),
        ),
        (
            key.proof("POST", &url).ath(&token).sign(),
            DpopProblem::WrongMethod,
        ),
        (
            key.proof("GET", &auth.token_url()).ath(&token).sign(),
            DpopProblem::WrongUri,
        ),
        (
            key.proof("GET", &url).ath(&token).iat_offset(-300).sign(),
            DpopProblem::IssuedTooLongAgo,
        ),
        (
            key.proof("GET", &url).ath(&token).bad_signature().sign(),
            DpopProblem::BadSignature,
        ),
        (reused, DpopProblem::Replayed),
        ("garbage".to_owned(), DpopProblem::Malformed),
    ];
    let mut expected = Vec::new();
    for (proof, problem) in cases {
        let reply = get_dpop(&url, &token, &proof).await;
        assert_eq!(
            challenge(&reply),
            format!(r#"DPoP error="invalid_dpop_proof", error_description="{problem}", {ALGS}"#),
            "{problem:?}"
        );
        expected.push(ApiRefusal::Proof(problem));
    }
    let authorization = format!("DPoP {token}");
    let reply = get(&url, &[("authorization", &authorization)]).await;
    assert!(challenge(&reply).starts_with(r#"DPoP error="invalid_dpop_proof""#));
    expected.push(ApiRefusal::Proof(DpopProblem::Missing));

    assert_eq!(api.refusals(), expected);
    assert_eq!(api.rejected(), 9);
}

#[tokio::test]
async fn tokens_the_proof_key_does_not_hold_are_invalid_token() {
    let (auth, api) = servers(DpopOptions::new()).await;
    let (key, other) = (ProofKey::es256(), ProofKey::ed25519());
    let url = format!("{}/things", api.url());

    let bound_to_other = dpop_token(&auth, &other).await;
    let proof = key.proof("GET", &url).ath(&bound_to_other).sign();
    let reply = get_dpop(&url, &bound_to_other, &proof).await;
    let challenge_text = challenge(&reply);
    assert!(
        challenge_text.starts_with(r#"DPoP error="invalid_token", error_description=""#),
        "{challenge_text}"
    );
    assert!(
        challenge_text.contains("another DPoP key"),
        "{challenge_text}"
    );
    assert!(challenge_text.ends_with(ALGS), "{challenge_text}");

    let unbound = access_token(&auth, None).await;
    let proof = key.proof("GET", &url).ath(&unbound).sign();
    let reply = get_dpop(&url, &unbound, &proof).await;
    assert!(
        challenge(&reply).contains("not DPoP-bound"),
        "{:?}",
        reply.headers
    );

    let revoked = dpop_token(&auth, &key).await;
    auth.revoke(&revoked);
    let proof = key.proof("GET", &url).ath(&revoked).sign();
    let reply = get_dpop(&url, &revoked, &proof).await;
    assert_eq!(
        challenge(&reply),
        format!(
            r#"DPoP error="invalid_token", error_description="the access token was revoked", {ALGS}"#
        )
    );

    let proof = key.proof("GET", &url).ath("made-up").sign();
    let reply = get_dpop(&url, "made-up", &proof).await;
    assert!(challenge(&reply).contains("unknown"), "{:?}", reply.headers);

    assert_eq!(
        api.refusals(),
        [
            ApiRefusal::KeyMismatch,
            ApiRefusal::UnboundTokenAsDpop,
            ApiRefusal::RevokedToken,
            ApiRefusal::UnknownToken,
        ]
    );
}

#[tokio::test]
async fn a_dpop_token_sent_as_bearer_is_invalid_token() {
    let (auth, api) = servers(DpopOptions::new()).await;
    let key = ProofKey::es256();
    let token = dpop_token(&auth, &key).await;
    let url = format!("{}/things", api.url());
    let authorization = format!("Bearer {token}");
    // A proof alongside does not make it a DPoP request.
    let proof = key.proof("GET", &url).ath(&token).sign();
    let reply = get(&url, &[("authorization", &authorization), ("dpop", &proof)]).await;

    let challenges: Vec<&str> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(
        challenges[0].starts_with(r#"Bearer realm="testkit", error="invalid_token""#),
        "{challenges:?}"
    );
    assert!(challenges[0].contains("DPoP-bound"), "{challenges:?}");
    assert_eq!(challenges[1], format!("DPoP {ALGS}"));
    assert_eq!(api.refusals(), [ApiRefusal::DpopBoundTokenAsBearer]);

    // Unbound tokens keep working as Bearer tokens.
    let bearer = access_token(&auth, None).await;
    let reply = get(&url, &[("authorization", &format!("Bearer {bearer}"))]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(api.dpop_requests(), 0);
}

#[tokio::test]
async fn the_admin_scope_is_checked_for_dpop_tokens_too() {
    let (auth, api) = servers(DpopOptions::new()).await;
    let key = ProofKey::ed25519();
    let token = dpop_token(&auth, &key).await;
    let url = format!("{}/admin", api.url());
    let proof = key.proof("GET", &url).ath(&token).sign();
    let reply = get_dpop(&url, &token, &proof).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with(r#"DPoP error="insufficient_scope""#),
        "{challenge}"
    );
    assert_eq!(api.refusals(), [ApiRefusal::InsufficientScope]);
}

#[tokio::test]
async fn an_api_that_requires_dpop_refuses_bearer_tokens() {
    let (auth, api) = servers(DpopOptions::new().require_proof(true)).await;
    let url = format!("{}/things", api.url());
    let reply = get(&url, &[]).await;
    assert_eq!(challenge(&reply), format!("DPoP {ALGS}"));

    let bearer = access_token(&auth, None).await;
    let reply = get(&url, &[("authorization", &format!("Bearer {bearer}"))]).await;
    assert!(
        challenge(&reply).starts_with(r#"DPoP error="invalid_token""#),
        "{:?}",
        reply.headers
    );

    let key = ProofKey::es256();
    let token = dpop_token(&auth, &key).await;
    let proof = key.proof("GET", &url).ath(&token).sign();
    assert_eq!(get_dpop(&url, &token, &proof).await.status, StatusCode::OK);
    assert_eq!(
        api.refusals(),
        [ApiRefusal::NoToken, ApiRefusal::BearerNotAccepted]
    );
}

#[tokio::test]
async fn an_api_that_requires_nonces_answers_use_dpop_nonce() {
    let policy = DpopNoncePolicy::new().rotate_after_uses(2);
    let (auth, api) = servers(DpopOptions::new().require_nonce(policy)).await;
    let key = ProofKey::es256();
    let token = dpop_token(&auth, &key).await;
    let url = format!("{}/things", api.url());
    let proof = |nonce: Option<&str>| {
        let proof = key.proof("GET", &url).ath(&token);
        match nonce {
            Some(nonce) => proof.nonce(nonce).sign(),
            None => proof.sign(),
        }
    };

    let reply = get_dpop(&url, &token, &proof(None)).await;
    let description = DpopProblem::MissingNonce.to_string();
    assert_eq!(
        challenge(&reply),
        format!(r#"DPoP error="use_dpop_nonce", error_description="{description}", {ALGS}"#)
    );
    let nonce = reply.header("dpop-nonce").expect("a DPoP-Nonce").to_owned();
    assert_eq!(api.dpop_nonce().as_deref(), Some(nonce.as_str()));
    assert_ne!(
        auth.dpop_nonce(),
        Some(nonce.clone()),
        "the API has nonces of its own"
    );

    let reply = get_dpop(&url, &token, &proof(Some(&nonce))).await;
    assert_eq!(
        (reply.status, reply.header("dpop-nonce")),
        (StatusCode::OK, None)
    );
    // The second use rotates: the answer names the new nonce.
    let reply = get_dpop(&url, &token, &proof(Some(&nonce))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let next = reply.header("dpop-nonce").expect("rotated").to_owned();
    assert_ne!(next, nonce);

    let reply = get_dpop(&url, &token, &proof(Some("made-up"))).await;
    assert!(challenge(&reply).starts_with(r#"DPoP error="use_dpop_nonce""#));
    assert_eq!(reply.header("dpop-nonce"), Some(next.as_str()));
    assert_eq!(
        api.refusals(),
        [
            ApiRefusal::Proof(DpopProblem::MissingNonce),
            ApiRefusal::Proof(DpopProblem::StaleNonce),
        ]
    );
}
