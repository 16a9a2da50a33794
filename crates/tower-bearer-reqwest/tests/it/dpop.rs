//! DPoP-bound tokens (RFC 9449) through the middleware, against the test kit's API, which
//! verifies every proof (signature, `htm`, `htu`, `iat`, `jti`, `ath`, nonce, key binding):
//! the same behaviour as the tower layers (`tower-bearer`'s `tests/it/dpop.rs`).

use http::StatusCode;
use secrecy::ExposeSecret;
use tower_bearer::dpop::DpopKey;
use tower_bearer::TokenCache;
use tower_bearer_test_support::dpop_client_credentials_source;
use tower_bearer_testkit::{capture_tracing, ApiRefusal, ApiServer, AuthServer, DpopOptions};

use crate::support::{burst, client};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn servers(api_options: DpopOptions) -> Result<(AuthServer, ApiServer), std::io::Error> {
    let auth = AuthServer::start().await?;
    let api = ApiServer::builder(&auth).dpop(api_options).start().await?;
    Ok((auth, api))
}

fn dpop_cache(auth: &AuthServer, key: &DpopKey) -> TokenCache {
    TokenCache::new(dpop_client_credentials_source(auth, key.clone()))
}

#[tokio::test]
async fn each_request_carries_a_proof_for_its_method_uri_and_token() -> TestResult {
    for key in [DpopKey::generate_es256()?, DpopKey::generate_ed25519()?] {
        let (auth, api) = servers(DpopOptions::new().require_proof(true)).await?;
        let cache = dpop_cache(&auth, &key);
        let client = client(&cache);
        for path in ["/orders", "/orders/7?expand=lines", "/invoices"] {
            let response = client.get(format!("{}{path}", api.url())).send().await?;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{path}: {:?}",
                api.refusals()
            );
        }
        let response = client
            .post(format!("{}/orders", api.url()))
            .body("{}")
            .send()
            .await?;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "POST: {:?}",
            api.refusals()
        );
        let token = cache.cached().ok_or("a token is cached")?;
        assert_eq!(
            auth.token_jkt(token.secret().expose_secret()).as_deref(),
            Some(key.thumbprint()),
            "the token is bound to the key"
        );
        assert_eq!(api.dpop_requests(), 4, "every request carried a proof");
        assert_eq!(api.requests(), 4, "and none was refused");
        assert_eq!(auth.token_requests(), 1);
    }
    Ok(())
}

#[tokio::test]
async fn a_resource_server_nonce_costs_one_replay_and_is_remembered() -> TestResult {
    let (auth, api) = servers(DpopOptions::strict()).await?;
    let key = DpopKey::generate_es256()?;
    let cache = dpop_cache(&auth, &key);
    let client = client(&cache);
    let url = format!("{}/orders", api.url());

    let response = client.get(&url).send().await?;
    assert_eq!(response.status(), StatusCode::OK, "{:?}", api.refusals());
    assert_eq!(
        api.requests(),
        2,
        "the first proof had no nonce; the replay had it"
    );
    assert!(
        matches!(api.refusals()[..], [ApiRefusal::Proof(problem)] if problem.is_nonce_problem()),
        "{:?}",
        api.refusals()
    );
    assert_eq!(
        auth.token_requests(),
        1,
        "a nonce is not a reason for a new token"
    );

    client.get(&url).send().await?;
    assert_eq!(
        api.requests(),
        3,
        "the remembered nonce went with the next proof"
    );

    // The server rotates its nonce and still accepts the previous one for a moment: the
    // request goes through, and the new nonce comes back in `DPoP-Nonce` for the next proof.
    let rotated = api.rotate_dpop_nonce().ok_or("the API uses nonces")?;
    assert_eq!(client.get(&url).send().await?.status(), StatusCode::OK);
    assert_eq!(api.requests(), 4);
    let uri: http::Uri = url.parse()?;
    assert_eq!(key.nonce_for(&uri).as_deref(), Some(rotated.as_str()));
    Ok(())
}

#[tokio::test]
async fn a_revoked_dpop_token_is_replaced_and_the_request_replayed_once() -> TestResult {
    let (auth, api) = servers(DpopOptions::new().require_proof(true)).await?;
    let key = DpopKey::generate_es256()?;
    let cache = dpop_cache(&auth, &key);
    let client = client(&cache);
    let url = format!("{}/orders", api.url());
    client.get(&url).send().await?;

    auth.revoke_all();
    let response = client.get(&url).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(auth.token_requests(), 2);
    assert_eq!(api.requests(), 3);
    assert!(
        matches!(api.refusals()[..], [ApiRefusal::RevokedToken]),
        "{:?}",
        api.refusals()
    );
    Ok(())
}

/// An API that rejects every token: one replay with a new token, then its answer comes
/// back. Nothing loops.
#[tokio::test]
async fn an_api_that_rejects_every_dpop_token_gets_exactly_one_replay() -> TestResult {
    let (auth, api) = servers(DpopOptions::new().require_proof(true)).await?;
    let key = DpopKey::generate_es256()?;
    let client = client(&dpop_cache(&auth, &key));
    api.respond_next(
        10,
        StatusCode::UNAUTHORIZED,
        Some(r#"DPoP error="invalid_token", algs="ES256 EdDSA""#),
    );
    let response = client.get(format!("{}/orders", api.url())).send().await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.requests(), 2, "the request and one replay");
    assert_eq!(auth.token_requests(), 2, "the replay carried a new token");
    Ok(())
}

/// N cold calls at an API that wants nonces cost N requests and one `use_dpop_nonce`
/// replay: while the origin's first response is out, the others wait for its nonce. (Before
/// the authorizer, this middleware sent no proof at all, and every call was refused.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_at_a_nonce_requiring_api_costs_one_nonce_replay() -> TestResult {
    const CALLS: u64 = 300;
    let (auth, api) = servers(DpopOptions::strict()).await?;
    let key = DpopKey::generate_es256()?;
    let client = client(&dpop_cache(&auth, &key));
    for status in burst(&client, &format!("{}/orders", api.url()), CALLS).await? {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(auth.token_requests(), 1);
    assert_eq!(
        api.requests(),
        CALLS + 1,
        "one nonce replay: {:?}",
        api.refusals().len()
    );
    Ok(())
}

#[tokio::test]
async fn neither_the_proof_nor_the_token_is_logged() -> TestResult {
    let (auth, api) = servers(DpopOptions::strict()).await?;
    let key = DpopKey::generate_es256()?;
    let cache = dpop_cache(&auth, &key);
    let logs = capture_tracing();
    let response = client(&cache)
        .get(format!("{}/orders", api.url()))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let token = cache.cached().ok_or("a token is cached")?;
    let text = logs.contents();
    assert!(
        text.contains("replaying the request once"),
        "the nonce replay is logged: {text}"
    );
    assert!(!text.contains(token.secret().expose_secret()), "{text}");
    assert!(!text.contains("eyJ"), "no JWS in the logs: {text}");
    Ok(())
}
