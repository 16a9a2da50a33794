//! No token, no request: the cache's error comes back typed.

use reqwest_middleware::Error;
use tower_bearer::{FetchError, TokenCache};
use tower_bearer_reqwest::fetch_error;
use tower_bearer_testkit::{ApiServer, AuthServer};

use crate::support::{client, oauth_source};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn a_wrong_client_secret_is_a_permanent_fetch_error_and_nothing_is_sent() -> TestResult {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let client = client(&TokenCache::new(oauth_source(&auth, "client", "wrong")));

    let error = client.get(api.url()).send().await.unwrap_err();
    let Error::Middleware(ref middleware) = error else {
        panic!("expected the middleware's error, got {error:?}");
    };
    let fetch = middleware
        .downcast_ref::<FetchError>()
        .expect("a FetchError inside the anyhow error");
    assert!(fetch.is_permanent(), "{fetch:?}");
    assert!(fetch_error(&error).is_some_and(FetchError::is_permanent));
    assert_eq!(auth.token_requests(), 1);
    assert_eq!(api.requests(), 0);
    Ok(())
}
