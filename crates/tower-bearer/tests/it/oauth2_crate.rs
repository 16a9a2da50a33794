//! The `oauth2` crate's client-credentials exchange as a token source, through the bridge,
//! against the test kit's authorization server over loopback.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, Scope, TokenUrl};
use tower::ServiceExt;
use tower_bearer::source::{from_fn, oauth2_crate};
use tower_bearer::{BearerAuthLayer, FetchError, TokenCache, TokenSource};
use tower_bearer_testkit::{http_client, ApiServer, AuthServer, Fault};

/// The `oauth2` crate's HTTP client, as a closure over hyper's.
async fn send(request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, std::io::Error> {
    let response = http_client()
        .request(request.map(|body| Full::new(Bytes::from(body))))
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?;
    Ok(http::Response::from_parts(parts, body.to_bytes().to_vec()))
}

/// What a user writes: the `oauth2` client, and the bridge around its exchange.
fn source(auth: &AuthServer, secret: &str) -> impl TokenSource {
    let client = BasicClient::new(ClientId::new(AuthServer::DEFAULT_CLIENT_ID.into()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_token_uri(TokenUrl::new(auth.token_url()).unwrap());
    from_fn(move || {
        let client = client.clone();
        async move {
            let response = client
                .exchange_client_credentials()
                .add_scope(Scope::new("read".into()))
                .request_async(&send)
                .await
                .map_err(oauth2_crate::fetch_error)?;
            oauth2_crate::token(&response)
        }
    })
}

#[tokio::test]
async fn a_burst_of_calls_shares_one_exchange_and_its_expiry_and_scope_carry_over() {
    let auth = AuthServer::builder()
        .token_lifetime(Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    let cache = TokenCache::new(source(&auth, AuthServer::DEFAULT_CLIENT_SECRET));
    let client = tower::Layer::layer(&BearerAuthLayer::new(cache.clone()), http_client());
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            let request = http::Request::get(api.url())
                .body(Full::<Bytes>::default())
                .unwrap();
            tokio::spawn(client.oneshot(request))
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(auth.token_requests(), 1);
    let token = cache.cached().unwrap();
    assert_eq!(token.scope(), Some("read"));
    let left = token
        .expires_at()
        .unwrap()
        .saturating_duration_since(tokio::time::Instant::now());
    assert!(left > Duration::from_secs(500), "{left:?}");
}

#[tokio::test]
async fn a_wrong_secret_is_permanent_and_says_so_without_the_secret() {
    let auth = AuthServer::start().await.unwrap();
    let cache = TokenCache::new(source(&auth, "not-the-secret"));
    let error = cache.token().await.unwrap_err();
    assert!(error.is_permanent(), "{error}");
    assert!(error.to_string().contains("invalid_client"), "{error}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("not-the-secret"), "{shown}");
    assert_eq!(auth.token_requests(), 1);
}

#[tokio::test]
async fn a_server_error_or_an_html_page_is_transient() {
    let auth = AuthServer::start().await.unwrap();
    let source = source(&auth, AuthServer::DEFAULT_CLIENT_SECRET);
    for fault in [
        Fault::Status(http::StatusCode::SERVICE_UNAVAILABLE),
        Fault::BadJson,
        Fault::DropConnection,
    ] {
        auth.fail_next(1, fault.clone());
        let error: FetchError = source.fetch().await.unwrap_err();
        assert!(error.is_transient(), "{fault:?}: {error}");
    }
    source.fetch().await.unwrap();
}
