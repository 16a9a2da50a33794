//! Token exchange (RFC 8693) against the testkit's mock authorization server, over loopback
//! sockets: the form on the wire, a subject token fetched for each exchange, the response
//! rules of section 2.2.1, error paths, and the subject token kept out of every output.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use secrecy::ExposeSecret;
use tower_bearer::source::{from_fn, FileToken, StaticToken};
use tower_bearer::{FetchError, Token, TokenCache, TokenSource};
use tower_bearer_oauth2::{
    token_type, AuthMethod, ClientAuth, ClientCredentials, Endpoint, TokenExchange,
    TokenExchangeBuilder, TokenParams,
};
use tower_bearer_testkit::{
    capture_tracing, AuthServer, AuthServerBuilder, ClientAuthMethod, Fault, TestKey,
};

use crate::support::{
    assert_each_cause_once, everything_printed, oauth_error, private_key,
    tokens_for_concurrent_callers, TestResult,
};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const CLIENT_ID: &str = "workload";
const CLIENT_SECRET: &str = "cl1ent-5ecr3t";
const SUBJECT: &str = "k8s-sa-token-5ecr3t";
const ACTOR: &str = "actor-token-5ecr3t";

fn endpoint(server: &AuthServer) -> Endpoint {
    Endpoint::builder(server.token_url())
        .build()
        .expect("a valid endpoint")
}

fn client() -> ClientAuth {
    ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET).expect("a valid client")
}

fn exchange_for(server: &AuthServer, subject: impl TokenSource) -> TokenExchangeBuilder {
    TokenExchange::builder(endpoint(server), client(), subject, token_type::JWT)
}

/// A server with our client registered.
fn auth() -> AuthServerBuilder {
    AuthServer::builder().client(CLIENT_ID, CLIENT_SECRET)
}

async fn server() -> std::io::Result<AuthServer> {
    auth()
        .subject_token(SUBJECT)
        .subject_token(ACTOR)
        .start()
        .await
}

/// The server, and what an exchange asking it for `requested_token_type` gives.
async fn exchange_requesting(
    requested_token_type: &str,
) -> Result<(AuthServer, Result<Token, FetchError>), Box<dyn std::error::Error + Send + Sync>> {
    let server = server().await?;
    let source = exchange_for(&server, StaticToken::new(SUBJECT)?)
        .requested_token_type(requested_token_type)
        .build()?;
    let outcome = source.fetch().await;
    Ok((server, outcome))
}

#[tokio::test]
async fn the_form_carries_every_rfc_8693_parameter() -> TestResult {
    let server = server().await?;
    let source = exchange_for(&server, StaticToken::new(SUBJECT)?)
        .actor_token(StaticToken::new(ACTOR)?, token_type::ACCESS_TOKEN)
        .requested_token_type(token_type::ACCESS_TOKEN)
        .params(
            TokenParams::new()
                .audience("ledger")
                .audience("billing")
                .resource("https://ledger.example.com/")
                .resource("https://billing.example.com/")
                .scope("read  write"),
        )
        .build()?;

    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    let sent = server.last_request().expect("a request");
    assert_eq!(sent.grant_type, GRANT_TYPE);
    assert_eq!(sent.auth_method, ClientAuthMethod::Basic);
    assert_eq!(sent.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(sent.param("subject_token"), Some(SUBJECT));
    assert_eq!(
        sent.param("subject_token_type"),
        Some("urn:ietf:params:oauth:token-type:jwt")
    );
    assert_eq!(sent.param("actor_token"), Some(ACTOR));
    assert_eq!(
        sent.param("actor_token_type"),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    assert_eq!(
        sent.param("requested_token_type"),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    assert_eq!(sent.param_values("audience"), ["ledger", "billing"]);
    assert_eq!(
        sent.param_values("resource"),
        [
            "https://ledger.example.com/",
            "https://billing.example.com/"
        ]
    );
    assert_eq!(sent.scope.as_deref(), Some("read write"));
    Ok(())
}

#[tokio::test]
async fn the_subject_token_is_read_fresh_for_each_exchange() -> TestResult {
    let server = auth()
        .subject_token("projected-token-1")
        .subject_token("projected-token-2")
        .start()
        .await?;
    let path = std::env::temp_dir().join(format!(
        "tower-bearer-exchange-{}-subject",
        std::process::id()
    ));
    std::fs::write(&path, "projected-token-1\n")?;
    let source = exchange_for(&server, FileToken::new(&path)).build()?;

    source.fetch().await?;
    assert_eq!(
        server.last_request().unwrap().param("subject_token"),
        Some("projected-token-1")
    );
    // The kubelet rotates the projected token in place.
    std::fs::write(&path, "projected-token-2\n")?;
    source.fetch().await?;
    assert_eq!(
        server.last_request().unwrap().param("subject_token"),
        Some("projected-token-2")
    );
    std::fs::remove_file(&path)?;
    assert_eq!(server.token_requests(), 2);
    Ok(())
}

#[tokio::test]
async fn a_public_client_exchanges_an_access_token_the_server_issued() -> TestResult {
    let server = auth().start().await?;
    let upstream = ClientCredentials::builder(endpoint(&server), client()).build()?;
    let source = TokenExchange::builder(
        endpoint(&server),
        ClientAuth::public("spa"),
        upstream,
        token_type::ACCESS_TOKEN,
    )
    .build()?;
    assert_eq!(source.client_auth().method(), AuthMethod::None);

    let token = source.fetch().await?;
    assert!(server.is_valid(token.secret().expose_secret()));
    let sent = server.last_request().unwrap();
    assert_eq!(sent.auth_method, ClientAuthMethod::None);
    assert_eq!(sent.client_id.as_deref(), Some("spa"));
    assert_eq!(
        server.tokens_issued(),
        2,
        "one upstream token, one exchanged"
    );
    Ok(())
}

#[tokio::test]
async fn private_key_jwt_authenticates_the_exchange() -> TestResult {
    let key = TestKey::es256();
    let server = AuthServer::builder()
        .private_key_jwt_client("workload", &key)
        .subject_token(SUBJECT)
        .start()
        .await?;
    let source = TokenExchange::builder(
        endpoint(&server),
        ClientAuth::private_key_jwt("workload", private_key(&key))?,
        StaticToken::new(SUBJECT)?,
        token_type::JWT,
    )
    .build()?;
    source.fetch().await?;
    let sent = server.last_request().unwrap();
    assert_eq!(sent.auth_method, ClientAuthMethod::PrivateKeyJwt);
    assert_eq!(sent.param("subject_token"), Some(SUBJECT));
    Ok(())
}

#[tokio::test]
async fn a_response_without_issued_token_type_is_a_permanent_error() -> TestResult {
    let server = auth()
        .subject_token(SUBJECT)
        .omit_issued_token_type(true)
        .start()
        .await?;
    let source = exchange_for(&server, StaticToken::new(SUBJECT)?).build()?;
    let error = source.fetch().await.expect_err("not RFC 8693");
    assert!(error.is_permanent(), "{error}");
    let chain = assert_each_cause_once(&error);
    assert!(chain.contains("issued_token_type"), "{chain}");
    assert!(chain.contains("RFC 8693 section 2.2.1"), "{chain}");
    assert_eq!(server.token_requests(), 1, "not retried");
    Ok(())
}

#[tokio::test]
async fn n_a_is_accepted_for_a_jwt_and_sent_as_bearer() -> TestResult {
    let (server, outcome) = exchange_requesting(token_type::JWT).await?;
    let token = outcome?;
    let value = token.secret().expose_secret().to_owned();
    assert!(server.is_valid(&value));
    assert_eq!(token.header_value(), format!("Bearer {value}").as_str());
    Ok(())
}

#[tokio::test]
async fn n_a_for_an_id_token_is_refused_with_advice() -> TestResult {
    let (server, outcome) = exchange_requesting(token_type::ID_TOKEN).await?;
    let error = outcome.expect_err("an ID token is not a bearer credential");
    assert!(error.is_permanent(), "{error}");
    let chain = assert_each_cause_once(&error);
    assert!(chain.contains(token_type::ID_TOKEN), "{chain}");
    assert!(chain.contains("bearer credential"), "{chain}");
    assert!(chain.contains("requested_token_type"), "{chain}");
    assert_eq!(server.token_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn an_unknown_subject_token_is_invalid_grant_never_retried_never_printed() -> TestResult {
    let server = server().await?;
    let stolen = "unknown-subject-5ecr3t";
    let source = exchange_for(&server, StaticToken::new(stolen)?)
        .actor_token(StaticToken::new(ACTOR)?, token_type::ACCESS_TOKEN)
        .build()?;
    let capture = capture_tracing();
    let error = source.fetch().await.expect_err("unknown subject");
    assert!(error.is_permanent(), "{error}");
    assert!(oauth_error(&error).is_invalid_grant(), "{error}");
    assert!(
        error.to_string().contains("subject or actor token"),
        "{error}"
    );
    assert_eq!(server.token_requests(), 1, "never retried");
    let printed = everything_printed(&error, &source, &capture);
    for secret in [stolen, ACTOR, CLIENT_SECRET] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    Ok(())
}

#[tokio::test]
async fn a_refused_audience_is_invalid_target_and_permanent() -> TestResult {
    let server = auth()
        .subject_token(SUBJECT)
        .exchange_target_allowed("ledger")
        .start()
        .await?;
    let source = exchange_for(&server, StaticToken::new(SUBJECT)?)
        .params(TokenParams::new().audience("ledger").audience("payroll"))
        .build()?;
    let error = source.fetch().await.expect_err("payroll is not allowed");
    assert!(error.is_permanent(), "{error}");
    assert_eq!(oauth_error(&error).error(), "invalid_target");
    assert!(error.to_string().contains("audience"), "{error}");
    assert_eq!(server.token_requests(), 1);

    let allowed = exchange_for(&server, StaticToken::new(SUBJECT)?)
        .params(TokenParams::new().audience("ledger"))
        .build()?;
    allowed.fetch().await?;
    Ok(())
}

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_subject() -> TestResult {
    let server = server().await?;
    server.fail_next(1, Fault::Status(http::StatusCode::SERVICE_UNAVAILABLE));
    let source = exchange_for(&server, StaticToken::new(SUBJECT)?).build()?;
    source.fetch().await?;
    assert_eq!(server.token_requests(), 2);
    assert_eq!(
        server.last_request().unwrap().param("subject_token"),
        Some(SUBJECT)
    );
    Ok(())
}

#[tokio::test]
async fn a_subject_source_failure_sends_nothing_and_keeps_its_kind() -> TestResult {
    let server = server().await?;
    let source = exchange_for(
        &server,
        from_fn(|| async { Err::<Token, _>(FetchError::transient("token file not mounted yet")) }),
    )
    .build()?;
    let error = source.fetch().await.expect_err("no subject token");
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("subject token"), "{error}");
    let chain = assert_each_cause_once(&error);
    assert_eq!(chain.matches("not mounted yet").count(), 1, "{chain}");
    assert_eq!(server.token_requests(), 0);
    Ok(())
}

#[tokio::test]
async fn concurrent_callers_through_a_cache_cause_one_exchange() -> TestResult {
    let server = server().await?;
    let subject_fetches = Arc::new(AtomicUsize::new(0));
    let counter = subject_fetches.clone();
    let source = exchange_for(
        &server,
        from_fn(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Token::bearer(SUBJECT).map_err(FetchError::from) }
        }),
    )
    .build()?;
    let cache = TokenCache::new(source);
    for token in tokens_for_concurrent_callers(&cache, 64).await? {
        assert!(server.is_valid(token.secret().expose_secret()));
    }
    assert_eq!(server.token_requests(), 1);
    assert_eq!(subject_fetches.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn build_refuses_what_the_crate_sets_and_empty_token_types() -> TestResult {
    let server = server().await?;
    let error = exchange_for(&server, StaticToken::new(SUBJECT)?)
        .params(TokenParams::new().param("subject_token", "x"))
        .build()
        .expect_err("reserved");
    assert!(error.to_string().contains("subject_token"), "{error}");

    let error = TokenExchange::builder(endpoint(&server), client(), StaticToken::new(SUBJECT)?, "")
        .build()
        .expect_err("empty type");
    assert!(error.to_string().contains("subject_token_type"), "{error}");

    let error = exchange_for(&server, StaticToken::new(SUBJECT)?)
        .params(TokenParams::new().resource("not a uri"))
        .build()
        .expect_err("bad resource");
    assert!(error.to_string().contains("RFC 8707"), "{error}");

    let builder = exchange_for(&server, StaticToken::new(SUBJECT)?);
    let printed = format!("{builder:?}");
    assert!(!printed.contains(SUBJECT), "{printed}");
    assert!(!printed.contains(CLIENT_SECRET), "{printed}");
    Ok(())
}
