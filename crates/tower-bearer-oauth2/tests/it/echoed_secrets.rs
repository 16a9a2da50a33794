//! A server that echoes the request into its error never gets a secret printed: not in
//! the error's `Display` or `Debug`, not anywhere in its `source()` chain, not in the logs
//! of the `TokenCache` whose fetch failed. Every secret kind, every echo encoding.

use std::error::Error as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tower_bearer::source::StaticToken;
use tower_bearer::{FetchError, TokenCache, TokenSource};
use tower_bearer_oauth2::{
    token_type, ClientAuth, ClientCredentials, Endpoint, JwtBearer, RefreshToken, RetryPolicy,
    TokenExchange,
};
use tower_bearer_testkit::{capture_tracing, AuthServer, Echo, Fault, TestKey};

use crate::support::{oauth_error, private_key, TestResult};

const CLIENT_ID: &str = "my client:1";
/// Every character class an encoder treats specially: reserved, `%`, `+`, space, quotes,
/// `/`, non-ASCII, outside the BMP.
const CLIENT_SECRET: &str = "p@ss/w%rd+ \"ü\"😀:x&y=z";
/// Tokens go in headers too, so only visible ASCII.
const REFRESH_TOKEN: &str = "rt/Zk+9%q\"w=&e";
const SUBJECT_TOKEN: &str = "subj/3ct+t0k%n\"=&";
const ACTOR_TOKEN: &str = "act0r/t0k+n%\"=&";
const JWT_ASSERTION: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtZSJ9./sig+na%ture=";

/// Where a secret travels: the `Authorization` header echoes or the form body ones carry it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SentIn {
    Header,
    Body,
}

/// Runs `source` through a cache against a server echoing every request in each encoding,
/// and asserts that none of `secrets` (nor those the server saw as `from_request`
/// parameters) shows, in any form, anywhere printed.
async fn assert_never_printed(
    server: &AuthServer,
    source: impl TokenSource + Clone,
    sent_in: SentIn,
    secrets: &[&str],
    from_request: &[&str],
) -> TestResult {
    for echo in Echo::ALL {
        server.fail_always(Fault::EchoRequest(echo));
        let logs = capture_tracing();
        let cache = TokenCache::new(source.clone());
        let error = cache
            .token()
            .await
            .expect_err("the server echoes, never issues");
        let request = server.last_request().expect("a form request");
        let mut all: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        for name in from_request {
            all.push(
                request
                    .param(name)
                    .expect("the parameter was sent")
                    .to_owned(),
            );
        }

        let printed = everything_printed(&error, &logs.contents());
        for secret in &all {
            for form in forms(secret) {
                assert!(
                    !printed.contains(&form),
                    "{echo:?}: `{form}` (a form of `{secret}`) printed:\n{printed}"
                );
            }
        }
        // The echo did reach the error, so the assertions above saw something.
        let carries_secret = matches!(echo, Echo::AuthorizationHeader | Echo::BasicDecoded)
            == (sent_in == SentIn::Header);
        let description = oauth_error(&error).description().unwrap_or_default();
        if carries_secret {
            assert!(
                description.contains("[redacted]"),
                "{echo:?}: {description}"
            );
        }
        assert!(logs.contains("token fetch failed"), "{}", logs.contents());
    }
    server.heal();
    Ok(())
}

/// The error's `Display` and `Debug`, each source's, and the logs.
fn everything_printed(error: &FetchError, logs: &str) -> String {
    let mut printed = format!("{error}\n{error:?}\n");
    let mut cause = error.source();
    while let Some(error) = cause {
        printed.push_str(&format!("{error}\n{error:?}\n"));
        cause = error.source();
    }
    printed.push_str(logs);
    printed
}

/// Every form of `secret` the echoing server writes, plus pieces of the plain and form
/// encoded ones (a cut must not leave half a secret).
fn forms(secret: &str) -> Vec<String> {
    let mut forms: Vec<String> = Echo::ALL
        .iter()
        .filter_map(|echo| echo.encode(secret))
        .collect();
    for whole in forms.clone().iter().take(2) {
        let chars: Vec<char> = whole.chars().collect();
        forms.extend(chars.windows(10).map(|window| window.iter().collect()));
    }
    forms
}

/// The base64 forms of Basic credentials (RFC 6749 section 2.3.1, and plain `id:secret`).
fn basic_forms(id: &str, secret: &str) -> Vec<String> {
    let encoded = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    [
        format!("{}:{}", encoded(id), encoded(secret)),
        format!("{id}:{secret}"),
    ]
    .iter()
    .map(|credentials| STANDARD.encode(credentials))
    .collect()
}

/// The server's endpoint, with one request per fetch.
fn endpoint(server: &AuthServer) -> Endpoint {
    Endpoint::builder(server.token_url())
        .retry(RetryPolicy::none())
        .build()
        .expect("a valid endpoint")
}

/// The client, authenticating with `client_secret_post`.
fn post_client() -> ClientAuth {
    ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET).expect("a valid client")
}

fn client_credentials(server: &AuthServer, client: ClientAuth) -> ClientCredentials {
    ClientCredentials::builder(endpoint(server), client)
        .build()
        .expect("a valid configuration")
}

#[tokio::test]
async fn client_secret_basic_is_never_printed() -> TestResult {
    let server = AuthServer::start().await?;
    let source = client_credentials(&server, ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET)?);
    let mut secrets = vec![CLIENT_SECRET.to_owned()];
    secrets.extend(basic_forms(CLIENT_ID, CLIENT_SECRET));
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_never_printed(&server, source, SentIn::Header, &secrets, &[]).await
}

#[tokio::test]
async fn client_secret_post_is_never_printed() -> TestResult {
    let server = AuthServer::start().await?;
    let source = client_credentials(&server, post_client());
    assert_never_printed(&server, source, SentIn::Body, &[CLIENT_SECRET], &[]).await
}

#[tokio::test]
async fn refresh_token_is_never_printed() -> TestResult {
    let server = AuthServer::start().await?;
    let source = RefreshToken::builder(endpoint(&server), post_client(), REFRESH_TOKEN).build()?;
    let secrets = [CLIENT_SECRET, REFRESH_TOKEN];
    assert_never_printed(&server, source, SentIn::Body, &secrets, &[]).await
}

#[tokio::test]
async fn private_key_jwt_client_assertion_is_never_printed() -> TestResult {
    let server = AuthServer::start().await?;
    let key = TestKey::rs256();
    let client = ClientAuth::private_key_jwt(CLIENT_ID, private_key(&key))?;
    let source = ClientCredentials::builder(endpoint(&server), client).build()?;
    assert_never_printed(&server, source, SentIn::Body, &[], &["client_assertion"]).await
}

#[tokio::test]
async fn jwt_bearer_assertion_is_never_printed() -> TestResult {
    let server = AuthServer::start().await?;
    let source =
        JwtBearer::builder_with_assertion(endpoint(&server), || async { Ok(JWT_ASSERTION.into()) })
            .build()?;
    assert_never_printed(&server, source, SentIn::Body, &[JWT_ASSERTION], &[]).await?;

    let key = TestKey::es256();
    let signed =
        JwtBearer::builder(endpoint(&server), private_key(&key), "issuer", "me").build()?;
    assert_never_printed(&server, signed, SentIn::Body, &[], &["assertion"]).await
}

#[tokio::test]
async fn subject_and_actor_tokens_are_never_printed() -> TestResult {
    let server = AuthServer::start().await?;
    let source = TokenExchange::builder(
        endpoint(&server),
        post_client(),
        StaticToken::new(SUBJECT_TOKEN)?,
        token_type::ACCESS_TOKEN,
    )
    .actor_token(StaticToken::new(ACTOR_TOKEN)?, token_type::ACCESS_TOKEN)
    .build()?;
    let secrets = [CLIENT_SECRET, SUBJECT_TOKEN, ACTOR_TOKEN];
    assert_never_printed(&server, source, SentIn::Body, &secrets, &[]).await
}
