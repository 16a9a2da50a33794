//! DPoP (RFC 9449) at the token endpoint against the testkit's mock authorization server,
//! which verifies every proof for real: tokens bound to the client's key for each grant,
//! server nonces (section 8) with one retry, the refresh token's binding, the errors when
//! key and token type do not fit (section 5), and no proof, nonce or token in any output.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use secrecy::ExposeSecret;
use serde_json::Value;
use tower::service_fn;
use tower_bearer::dpop::DpopKey;
use tower_bearer::store::{MemoryStore, StoreKey};
use tower_bearer::{BoxError, FetchError, Token, TokenCache, TokenSource, TokenType};
use tower_bearer_oauth2::{
    token_type, ClientAuth, ClientCredentials, Endpoint, EndpointBuilder, HttpClient, JwtBearer,
    RefreshToken, RetryPolicy, TokenExchange,
};
use tower_bearer_testkit::{
    capture_tracing, http_client, AuthServer, AuthServerBuilder, DpopNoncePolicy, DpopOptions,
    DpopProblem, TestKey,
};

use crate::support::{
    assert_each_cause_once, default_client, endpoint_error, error_chain, oauth_error, private_key,
    TestResult,
};

/// The two kinds of key `DpopKey` makes.
fn keys() -> [DpopKey; 2] {
    [
        DpopKey::generate_es256().expect("a new ES256 key"),
        DpopKey::generate_ed25519().expect("a new Ed25519 key"),
    ]
}

/// The server's default client, proving possession of `key`.
fn dpop_client(key: &DpopKey) -> ClientAuth {
    default_client().dpop(key.clone())
}

/// One token request and its answer, as they went over the wire.
#[derive(Clone, Debug)]
struct Exchange {
    /// The request's `DPoP` header.
    proof: Option<String>,
    /// The answer's `DPoP-Nonce` header.
    nonce: Option<String>,
    /// The answer's body, which holds the token on success.
    body: String,
}

impl Exchange {
    /// The claims of the request's proof.
    fn claims(&self) -> Value {
        let proof = self.proof.as_deref().expect("a DPoP proof");
        let claims = proof.split('.').nth(1).expect("a compact JWS");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("base64url"))
            .expect("JSON claims")
    }
}

/// Every token request a source sends, through a plain HTTP client that records them.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Exchange>>>);

impl Recorder {
    fn endpoint(&self, server: &AuthServer) -> EndpointBuilder {
        self.endpoint_adding(server, |_| {})
    }

    /// Like [`endpoint`](Self::endpoint), with `adjust` changing each request on its way.
    fn endpoint_adding(
        &self,
        server: &AuthServer,
        adjust: impl Fn(&mut Request<Full<Bytes>>) + Clone + Send + Sync + 'static,
    ) -> EndpointBuilder {
        let log = Arc::clone(&self.0);
        let client = http_client();
        let recording = service_fn(move |mut request: Request<Full<Bytes>>| {
            let (log, client, adjust) = (Arc::clone(&log), client.clone(), adjust.clone());
            async move {
                adjust(&mut request);
                let proof = header(request.headers().get("dpop"));
                let response = client.request(request).await?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await?.to_bytes();
                log.lock().unwrap().push(Exchange {
                    proof,
                    nonce: header(parts.headers.get("dpop-nonce")),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                Ok::<_, BoxError>(Response::from_parts(parts, Full::new(body)))
            }
        });
        Endpoint::builder(server.token_url()).http_client(HttpClient::from_service(recording))
    }

    fn exchanges(&self) -> Vec<Exchange> {
        self.0.lock().unwrap().clone()
    }

    /// Every proof, nonce and token that crossed the wire.
    fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for exchange in self.exchanges() {
            secrets.extend(exchange.proof.clone());
            secrets.extend(exchange.nonce.clone());
            if let Ok(body) = serde_json::from_str::<Value>(&exchange.body) {
                for field in ["access_token", "refresh_token"] {
                    secrets.extend(body[field].as_str().map(str::to_owned));
                }
            }
        }
        secrets
    }
}

fn header(value: Option<&HeaderValue>) -> Option<String> {
    value
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Everything of an error a user could see: its chain and its `Debug`.
fn printed(error: &FetchError) -> String {
    format!("{} {error:?}", error_chain(error))
}

fn assert_bound(server: &AuthServer, token: &Token, key: &DpopKey) {
    assert_eq!(token.token_type(), &TokenType::DPoP);
    let value = token.secret().expose_secret();
    assert_eq!(token.header_value(), format!("DPoP {value}").as_str());
    assert!(token.header_value().is_sensitive());
    assert_eq!(
        token.dpop_key().map(DpopKey::thumbprint),
        Some(key.thumbprint())
    );
    assert_eq!(
        server.token_jkt(value).as_deref(),
        Some(key.thumbprint()),
        "{}",
        key.algorithm()
    );
}

async fn nonce_server(policy: DpopNoncePolicy) -> std::io::Result<AuthServer> {
    AuthServer::builder()
        .dpop(DpopOptions::new().require_nonce(policy))
        .start()
        .await
}

#[tokio::test]
async fn client_credentials_with_an_es256_or_ed25519_key_gets_a_token_bound_to_it() -> TestResult {
    for key in keys() {
        let server = AuthServer::start().await?;
        let recorder = Recorder::default();
        let source =
            ClientCredentials::builder(recorder.endpoint(&server).build()?, dpop_client(&key))
                .build()?;
        assert_eq!(
            source.client_auth().dpop_key().map(DpopKey::thumbprint),
            Some(key.thumbprint())
        );
        let token = source.fetch().await?;
        assert_bound(&server, &token, &key);
        assert_eq!(server.token_requests(), 1);
        assert_eq!(server.dpop_proofs_received(), 1);
        assert_eq!(server.dpop_refusals(), []);

        // RFC 9449 section 4.2 at a token endpoint: the method and URL, no `ath`, and no
        // nonce until the server sends one.
        let claims = recorder.exchanges()[0].claims();
        assert_eq!(claims["htm"], "POST", "{claims}");
        assert_eq!(claims["htu"], server.token_url(), "{claims}");
        assert!(claims.get("ath").is_none(), "{claims}");
        assert!(claims.get("nonce").is_none(), "{claims}");
    }
    Ok(())
}

#[tokio::test]
async fn a_required_nonce_costs_one_retry_outside_the_retry_policy_and_is_remembered() -> TestResult
{
    let server = nonce_server(DpopNoncePolicy::new()).await?;
    let key = DpopKey::generate_es256()?;
    let recorder = Recorder::default();
    // One attempt per fetch: the nonce retry is not one of the policy's.
    let endpoint = recorder
        .endpoint(&server)
        .retry(RetryPolicy::none())
        .build()?;
    let source = ClientCredentials::builder(endpoint, dpop_client(&key)).build()?;

    let token = source.fetch().await?;
    assert_bound(&server, &token, &key);
    assert_eq!(server.token_requests(), 2, "use_dpop_nonce, then the retry");
    assert_eq!(server.dpop_refusals(), [DpopProblem::MissingNonce]);
    let nonce = server.dpop_nonce().expect("the server requires nonces");
    let exchanges = recorder.exchanges();
    assert!(exchanges[0].claims().get("nonce").is_none());
    assert_eq!(exchanges[0].nonce.as_deref(), Some(nonce.as_str()));
    assert_eq!(exchanges[1].claims()["nonce"], nonce.as_str());
    assert_eq!(
        key.nonce_for(source.token_url()).as_deref(),
        Some(nonce.as_str())
    );

    // The next fetch sends the remembered nonce at once.
    let token = source.fetch().await?;
    assert_bound(&server, &token, &key);
    assert_eq!(server.token_requests(), 3, "one request");
    assert_eq!(recorder.exchanges()[2].claims()["nonce"], nonce.as_str());
    assert_eq!(server.dpop_refusals().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_rotated_nonce_costs_one_extra_request_and_one_sent_on_success_is_kept() -> TestResult {
    // The previous nonce refused at once: a rotation costs a round trip.
    let strict = nonce_server(DpopNoncePolicy::new().previous_accepted_for(Duration::ZERO)).await?;
    let key = DpopKey::generate_ed25519()?;
    let source = ClientCredentials::builder(
        Endpoint::builder(strict.token_url()).build()?,
        dpop_client(&key),
    )
    .build()?;
    source.fetch().await?;
    assert_eq!(strict.token_requests(), 2);
    let rotated = strict.rotate_dpop_nonce().expect("nonces are required");
    let token = source.fetch().await?;
    assert_bound(&strict, &token, &key);
    assert_eq!(
        strict.token_requests(),
        4,
        "the stale nonce, then the new one"
    );
    assert_eq!(
        strict.dpop_refusals(),
        [DpopProblem::MissingNonce, DpopProblem::StaleNonce]
    );
    assert_eq!(
        key.nonce_for(source.token_url()).as_deref(),
        Some(rotated.as_str())
    );

    // The previous nonce still accepted for a while: the success carries the new one in
    // `DPoP-Nonce` (the server rotated), and the next proof uses it with no extra request.
    let lenient = nonce_server(DpopNoncePolicy::new()).await?;
    let key = DpopKey::generate_es256()?;
    let recorder = Recorder::default();
    let source =
        ClientCredentials::builder(recorder.endpoint(&lenient).build()?, dpop_client(&key))
            .build()?;
    source.fetch().await?;
    let rotated = lenient.rotate_dpop_nonce().expect("nonces are required");
    source.fetch().await?;
    assert_eq!(
        lenient.token_requests(),
        3,
        "no extra request for the rotation"
    );
    assert_eq!(
        recorder.exchanges()[2].nonce.as_deref(),
        Some(rotated.as_str())
    );
    source.fetch().await?;
    assert_eq!(lenient.token_requests(), 4);
    assert_eq!(recorder.exchanges()[3].claims()["nonce"], rotated.as_str());
    assert_eq!(lenient.dpop_refusals(), [DpopProblem::MissingNonce]);
    Ok(())
}

#[tokio::test]
async fn a_server_that_asks_for_a_new_nonce_every_time_gets_one_retry_and_a_clear_error(
) -> TestResult {
    // A nonce that is stale by the time it comes back: `use_dpop_nonce` every time.
    let server = nonce_server(
        DpopNoncePolicy::new()
            .rotate_every(Duration::ZERO)
            .previous_accepted_for(Duration::ZERO),
    )
    .await?;
    let key = DpopKey::generate_es256()?;
    // The default policy, with attempts to spare: the error is not one it retries.
    let source = ClientCredentials::builder(
        Endpoint::builder(server.token_url()).build()?,
        dpop_client(&key),
    )
    .build()?;
    let error = source.fetch().await.expect_err("every nonce is stale");
    assert_eq!(server.token_requests(), 2, "one retry, never a loop");
    assert_eq!(
        server.dpop_refusals(),
        [DpopProblem::MissingNonce, DpopProblem::StaleNonce]
    );
    assert!(
        error.is_transient(),
        "the next fetch may fare better: {error}"
    );
    assert!(oauth_error(&error).is_use_dpop_nonce(), "{error}");
    let message = error.to_string();
    assert!(message.contains("use_dpop_nonce"), "{message}");
    assert!(message.contains("again"), "{message}");
    assert_each_cause_once(&error);

    // Through a cache: one fetch's worth of requests, then the backoff.
    let cache = TokenCache::new(source);
    cache.token().await.expect_err("still stale");
    assert_eq!(server.token_requests(), 4);
    Ok(())
}

#[tokio::test]
async fn refresh_with_a_dpop_bound_refresh_token_keeps_the_key_and_another_key_is_refused(
) -> TestResult {
    let server = AuthServer::builder()
        .issue_refresh_tokens(true)
        .start()
        .await?;
    let key = DpopKey::generate_es256()?;
    let endpoint = || Endpoint::builder(server.token_url()).build();
    // A refresh token issued with a proof is bound to the proof's key.
    let first = ClientCredentials::builder(endpoint()?, dpop_client(&key))
        .build()?
        .fetch()
        .await?;
    let refresh_token = first
        .refresh_token()
        .expect("the server issues refresh tokens")
        .expose_secret()
        .to_owned();
    assert_eq!(
        server.token_jkt(&refresh_token).as_deref(),
        Some(key.thumbprint())
    );

    let source =
        RefreshToken::builder(endpoint()?, dpop_client(&key), refresh_token.as_str()).build()?;
    let mut presented = refresh_token;
    for round in 1..=2 {
        let token = source.fetch().await?;
        assert_bound(&server, &token, &key);
        let rotated = source.refresh_token().expose_secret().to_owned();
        assert_ne!(rotated, presented, "round {round}: rotated");
        assert_eq!(
            server.token_jkt(&rotated).as_deref(),
            Some(key.thumbprint()),
            "round {round}: the rotated refresh token keeps the binding"
        );
        presented = rotated;
    }

    for (client, what) in [
        (dpop_client(&DpopKey::generate_es256()?), "another key"),
        (default_client(), "no key"),
    ] {
        let error = RefreshToken::builder(endpoint()?, client, presented.as_str())
            .build()?
            .fetch()
            .await
            .expect_err(what);
        assert!(error.is_permanent(), "{what}: {error}");
        assert!(oauth_error(&error).is_invalid_grant(), "{what}: {error}");
        assert!(!printed(&error).contains(&presented), "{what}");
    }
    // Neither refusal used it up.
    assert!(server.is_refresh_token_valid(&presented));
    Ok(())
}

#[tokio::test]
async fn replicas_with_one_key_share_a_dpop_bound_refresh_token_through_a_store() -> TestResult {
    let server = AuthServer::builder()
        .issue_refresh_tokens(true)
        .detect_refresh_token_reuse(true)
        .start()
        .await?;
    let key = DpopKey::generate_ed25519()?;
    let endpoint = || Endpoint::builder(server.token_url()).build();
    let initial = ClientCredentials::builder(endpoint()?, dpop_client(&key))
        .build()?
        .fetch()
        .await?
        .refresh_token()
        .expect("a refresh token")
        .expose_secret()
        .to_owned();
    let store = MemoryStore::new();
    let store_key = StoreKey::builder(server.token_url(), AuthServer::DEFAULT_CLIENT_ID).build();
    let replica = || {
        RefreshToken::builder(endpoint()?, dpop_client(&key), initial.as_str())
            .share_through(store.clone(), store_key.clone())
            .fleet(crate::support::quick_fleet())
            .build()
    };
    let (a, b) = (replica()?, replica()?);
    for _ in 0..2 {
        assert_bound(&server, &a.fetch().await?, &key);
        assert_bound(&server, &b.fetch().await?, &key);
    }
    let current = b.refresh_token().expose_secret().to_owned();
    assert!(server.is_refresh_token_valid(&current));
    assert_eq!(
        server.token_jkt(&current).as_deref(),
        Some(key.thumbprint())
    );
    Ok(())
}

#[tokio::test]
async fn token_exchange_and_jwt_bearer_send_proofs_and_get_bound_tokens() -> TestResult {
    const SUBJECT: &str = "subject-5ecr3t";
    let signer = TestKey::es256();
    let server = AuthServer::builder()
        .subject_token(SUBJECT)
        .jwt_bearer_issuer("reporting@example.iam", &signer)
        .start()
        .await?;
    let key = DpopKey::generate_es256()?;
    let endpoint = || Endpoint::builder(server.token_url()).build();

    let exchanged = TokenExchange::builder(
        endpoint()?,
        dpop_client(&key),
        tower_bearer::source::StaticToken::new(SUBJECT)?,
        token_type::ACCESS_TOKEN,
    )
    .build()?
    .fetch()
    .await?;
    assert_bound(&server, &exchanged, &key);

    // The JWT bearer grant needs no client authentication; the key rides on a public one.
    let asserted = JwtBearer::builder(
        endpoint()?,
        private_key(&signer),
        "reporting@example.iam",
        "user-42",
    )
    .client_auth(ClientAuth::public("").dpop(key.clone()))
    .build()?
    .fetch()
    .await?;
    assert_bound(&server, &asserted, &key);
    assert_eq!(server.dpop_proofs_received(), 2);
    Ok(())
}

#[tokio::test]
async fn without_a_key_a_dpop_token_is_an_error_that_says_how_to_configure_one() -> TestResult {
    // A proxy on the way adds proofs of its own key: the server issues DPoP tokens that this
    // client, which has no key, could never use.
    let server = AuthServer::start().await?;
    let proxy_key = DpopKey::generate_es256()?;
    let token_url: http::Uri = server.token_url().parse()?;
    let recorder = Recorder::default();
    let endpoint = recorder
        .endpoint_adding(&server, move |request| {
            let proof = proxy_key.proof(&Method::POST, &token_url, None, None);
            request
                .headers_mut()
                .insert("dpop", proof.expect("a proof"));
        })
        .build()?;
    let error = ClientCredentials::builder(endpoint, default_client())
        .build()?
        .fetch()
        .await
        .expect_err("a DPoP token without a key");
    assert_eq!(server.tokens_issued(), 1, "the server did issue one");
    assert!(error.is_permanent(), "{error}");
    let source = endpoint_error(&error);
    assert!(source.is_dpop_key_missing(), "{source}");
    assert!(source.is_invalid_response(), "{source}");
    let message = error.to_string();
    assert!(message.contains("ClientAuth::dpop"), "{message}");
    assert!(message.contains("no DPoP key"), "{message}");
    assert_each_cause_once(&error);
    for secret in recorder.secrets() {
        assert!(!printed(&error).contains(&secret));
    }

    // A server that requires proofs says so before it issues anything.
    let strict = AuthServer::builder()
        .dpop(DpopOptions::new().require_proof(true))
        .start()
        .await?;
    let error = ClientCredentials::builder(
        Endpoint::builder(strict.token_url()).build()?,
        default_client(),
    )
    .build()?
    .fetch()
    .await
    .expect_err("no proof");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_dpop_proof(), "{error}");
    assert!(error.to_string().contains("ClientAuth::dpop"), "{error}");
    assert_eq!(strict.dpop_refusals(), [DpopProblem::Missing]);
    Ok(())
}

#[tokio::test]
async fn a_bearer_token_in_answer_to_a_proof_is_the_rfc_9449_section_5_error() -> TestResult {
    let server = AuthServer::builder().without_dpop().start().await?;
    let key = DpopKey::generate_es256()?;
    let recorder = Recorder::default();
    let source = ClientCredentials::builder(recorder.endpoint(&server).build()?, dpop_client(&key))
        .build()?;
    let cache = TokenCache::new(source);
    let error = cache.token().await.expect_err("a Bearer token is refused");
    assert_eq!(server.dpop_proofs_received(), 1);
    assert_eq!(server.tokens_issued(), 1, "the server ignored the proof");
    assert!(error.is_permanent(), "{error}");
    let source = endpoint_error(&error);
    assert!(source.is_dpop_downgrade(), "{source}");
    assert!(!source.is_dpop_key_missing(), "{source}");
    let message = error.to_string();
    assert!(message.contains("Bearer"), "{message}");
    assert!(message.contains("RFC 9449 section 5"), "{message}");
    assert!(message.contains("dpop_bound_access_tokens"), "{message}");
    assert!(cache.cached().is_none(), "the bearer token is never used");
    assert_each_cause_once(&error);
    Ok(())
}

#[tokio::test]
async fn no_proof_nonce_or_token_reaches_errors_or_logs() -> TestResult {
    let logs = capture_tracing();
    let recorder = Recorder::default();
    let mut errors = Vec::new();
    let servers: [(AuthServerBuilder, &str); 3] = [
        (
            AuthServer::builder().dpop(
                DpopOptions::new().require_nonce(
                    DpopNoncePolicy::new()
                        .rotate_every(Duration::ZERO)
                        .previous_accepted_for(Duration::ZERO),
                ),
            ),
            "always a new nonce",
        ),
        (AuthServer::builder().without_dpop(), "Bearer tokens"),
        (
            AuthServer::builder()
                .issue_refresh_tokens(true)
                .dpop(DpopOptions::new().require_nonce(DpopNoncePolicy::new())),
            "a success after a nonce",
        ),
    ];
    for (builder, what) in servers {
        let server = builder.start().await?;
        let source = ClientCredentials::builder(
            recorder.endpoint(&server).build()?,
            dpop_client(&DpopKey::generate_es256()?),
        )
        .build()?;
        let cache = TokenCache::new(source);
        match cache.token().await {
            Ok(token) => {
                tracing::info!(?token, "the test logs the token as an app would");
                // A refresh with another key: invalid_grant, with the refresh token echoed
                // nowhere.
                let refresh = token.refresh_token().expect("a refresh token");
                let other = dpop_client(&DpopKey::generate_ed25519()?);
                let endpoint = recorder.endpoint(&server).build()?;
                let error = RefreshToken::builder(endpoint, other, refresh.clone())
                    .build()?
                    .fetch()
                    .await
                    .expect_err("another key");
                errors.push(error);
            }
            Err(error) => errors.push(error),
        }
        assert!(!recorder.exchanges().is_empty(), "{what}");
    }
    for error in &errors {
        tracing::warn!(error = %error, detail = ?error, "the test logs the error as an app would");
    }
    let printed: String = errors.iter().map(printed).collect();
    let logs = logs.contents();
    let secrets = recorder.secrets();
    assert!(secrets.len() >= 8, "{secrets:?}");
    for secret in secrets {
        assert!(!printed.contains(&secret), "{secret} in {printed}");
        assert!(!logs.contains(&secret), "{secret} in {logs}");
    }
    Ok(())
}
