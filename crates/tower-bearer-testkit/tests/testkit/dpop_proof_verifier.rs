//! `DpopProofVerifier`: the servers' proof checks, for a server a test writes itself.

use http::{HeaderMap, HeaderValue, Method};
use tower_bearer_testkit::{DpopNoncePolicy, DpopOptions, DpopProblem, DpopProofVerifier};

use crate::dpop_proof::ProofKey;

const URI: &str = "http://127.0.0.1:8080/things";
const TOKEN: &str = "an-access-token";

fn with_proof(proof: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("dpop", HeaderValue::from_str(proof).unwrap());
    headers
}

#[test]
fn accepts_a_proof_for_the_request_and_returns_its_keys_thumbprint() {
    let verifier = DpopProofVerifier::new(DpopOptions::new());
    for key in [ProofKey::es256(), ProofKey::ed25519()] {
        let proof = key.proof("GET", URI).ath(TOKEN).sign();
        let headers = with_proof(&proof);
        // The query is not part of `htu`.
        let uri = format!("{URI}?page=2");
        assert_eq!(
            verifier.verify(&Method::GET, &uri, &headers, Some(TOKEN)),
            Ok(key.thumbprint()),
            "{}",
            key.algorithm()
        );
        assert_eq!(
            verifier.verify(&Method::GET, URI, &headers, Some(TOKEN)),
            Err(DpopProblem::Replayed),
            "{}",
            key.algorithm()
        );
    }
}

#[test]
fn refuses_what_the_servers_refuse() {
    let verifier = DpopProofVerifier::new(DpopOptions::new());
    let key = ProofKey::es256();
    let check = |proof: String, method: &Method, uri: &str, token: Option<&str>| {
        verifier.verify(method, uri, &with_proof(&proof), token)
    };
    assert_eq!(
        verifier.verify(&Method::GET, URI, &HeaderMap::new(), Some(TOKEN)),
        Err(DpopProblem::Missing)
    );
    assert_eq!(
        check(key.proof("GET", URI).sign(), &Method::GET, URI, Some(TOKEN)),
        Err(DpopProblem::MissingClaim("ath"))
    );
    assert_eq!(
        check(
            key.proof("GET", URI).ath("another-token").sign(),
            &Method::GET,
            URI,
            Some(TOKEN)
        ),
        Err(DpopProblem::WrongAccessTokenHash)
    );
    assert_eq!(
        check(
            key.proof("GET", URI).ath(TOKEN).sign(),
            &Method::POST,
            URI,
            Some(TOKEN)
        ),
        Err(DpopProblem::WrongMethod)
    );
    assert_eq!(
        check(
            key.proof("GET", URI).ath(TOKEN).sign(),
            &Method::GET,
            "http://127.0.0.1:8080/other",
            Some(TOKEN)
        ),
        Err(DpopProblem::WrongUri)
    );
    assert_eq!(
        check(
            key.proof("GET", URI).ath(TOKEN).sign(),
            &Method::GET,
            "/things",
            Some(TOKEN)
        ),
        Err(DpopProblem::WrongUri),
        "a relative URI"
    );
    assert_eq!(
        check(
            key.proof("GET", URI).ath(TOKEN).bad_signature().sign(),
            &Method::GET,
            URI,
            Some(TOKEN)
        ),
        Err(DpopProblem::BadSignature)
    );
    // At a token endpoint, no token and no `ath`.
    assert_eq!(
        check(key.proof("POST", URI).sign(), &Method::POST, URI, None),
        Ok(key.thumbprint())
    );
}

#[test]
fn with_nonces_required_a_proof_needs_the_current_one() {
    let verifier = DpopProofVerifier::new(DpopOptions::new().require_nonce(DpopNoncePolicy::new()));
    let nonce = verifier.nonce().expect("nonces are required");
    let key = ProofKey::ed25519();
    let without = key.proof("GET", URI).ath(TOKEN).sign();
    assert_eq!(
        verifier.verify(&Method::GET, URI, &with_proof(&without), Some(TOKEN)),
        Err(DpopProblem::MissingNonce)
    );
    let with = key.proof("GET", URI).ath(TOKEN).nonce(&nonce).sign();
    assert_eq!(
        verifier.verify(&Method::GET, URI, &with_proof(&with), Some(TOKEN)),
        Ok(key.thumbprint())
    );
    assert_eq!(DpopProofVerifier::new(DpopOptions::new()).nonce(), None);
}
