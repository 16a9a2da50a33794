//! What the tests share: a client-credentials token source written against the wire (so
//! these tests do not depend on the oauth2 crate; it lives in the test-support crate), and
//! the client a user builds.

#![allow(dead_code, unreachable_pub)]

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower_bearer::{TokenCache, TokenSource};
use tower_bearer_reqwest::BearerAuthMiddleware;
use tower_bearer_test_support::client_credentials_source;
pub use tower_bearer_test_support::current_token;
use tower_bearer_testkit::AuthServer;

/// Client credentials against the wire, from the test kit: a 400 or 401 from the token
/// endpoint (`invalid_client`, say) is permanent, anything else transient.
pub fn oauth_source(auth: &AuthServer, client_id: &str, client_secret: &str) -> impl TokenSource {
    client_credentials_source(auth, client_id, client_secret)
}

/// A cache over the testkit's default client.
pub fn cache(auth: &AuthServer) -> TokenCache {
    TokenCache::new(oauth_source(auth, "client", "secret"))
}

/// A reqwest client with the middleware over `cache`.
pub fn client(cache: &TokenCache) -> ClientWithMiddleware {
    with(BearerAuthMiddleware::new(cache.clone()))
}

/// A reqwest client with this middleware.
pub fn with(auth: BearerAuthMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build()
}

/// `WWW-Authenticate` for a token the server does not accept (RFC 6750 section 3.1).
pub const INVALID_TOKEN: &str = r#"Bearer realm="testkit", error="invalid_token""#;

/// Sends `calls` GETs to `url` through `client` at once, each on its own task; their
/// statuses, or the first error.
pub async fn burst(
    client: &ClientWithMiddleware,
    url: &str,
    calls: u64,
) -> reqwest_middleware::Result<Vec<http::StatusCode>> {
    let calls = (0..calls).map(|_| {
        let client = client.clone();
        let url = url.to_owned();
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    });
    let mut statuses = Vec::new();
    for call in futures_util::future::join_all(calls).await {
        statuses.push(call.expect("the call's task ran to its end")?);
    }
    Ok(statuses)
}
