//! What the tests share: a client-credentials token source written against the wire (so
//! these tests do not depend on the oauth2 crate), and the client a user builds.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use secrecy::ExposeSecret;
use tower_bearer::{source, FetchError, Token, TokenCache, TokenSource};
use tower_bearer_reqwest::BearerAuthMiddleware;
use tower_bearer_testkit::{http_client, AuthServer};

/// Client credentials sent as `client_secret_post`; the testkit's default client is
/// `client` / `secret`. A 400 or 401 from the token endpoint (`invalid_client`, say) is
/// permanent, anything else transient.
pub fn oauth_source(auth: &AuthServer, client_id: &str, client_secret: &str) -> impl TokenSource {
    let client = http_client();
    let token_url = auth.token_url();
    let form = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}"
    );
    source::from_fn(move || {
        let client = client.clone();
        let token_url = token_url.clone();
        let form = form.clone();
        async move {
            let request = http::Request::post(token_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form)))
                .map_err(|e| FetchError::permanent("bad token request").with_source(e))?;
            let response = client
                .request(request)
                .await
                .map_err(|e| FetchError::transient("token endpoint unreachable").with_source(e))?;
            let status = response.status();
            let body = response
                .collect()
                .await
                .map_err(|e| FetchError::transient("token response cut short").with_source(e))?
                .to_bytes();
            if status == 400 || status == 401 {
                return Err(FetchError::permanent(format!(
                    "the token endpoint refused the client ({status})"
                )));
            }
            if !status.is_success() {
                return Err(FetchError::transient(format!(
                    "token endpoint answered {status}"
                )));
            }
            let json: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| FetchError::transient("token response is not JSON").with_source(e))?;
            let value = json["access_token"].as_str().unwrap_or_default();
            let lifetime = json["expires_in"].as_u64().unwrap_or(60);
            Token::builder(value)
                .expires_in(Duration::from_secs(lifetime))
                .build()
                .map_err(FetchError::from)
        }
    })
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

/// The value of the token the cache holds now.
pub fn current_token(cache: &TokenCache) -> String {
    cache
        .cached()
        .expect("a token is cached")
        .secret()
        .expose_secret()
        .to_owned()
}

/// `WWW-Authenticate` for a token the server does not accept (RFC 6750 section 3.1).
pub const INVALID_TOKEN: &str = r#"Bearer realm="testkit", error="invalid_token""#;
