//! The axum gateway over real sockets on 127.0.0.1: handlers that share one authorized
//! client through `State`, and the statuses its failures map to.

use examples::gateway::Gateway;
use reqwest::StatusCode;
use tower_bearer::TokenCache;
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_testkit::{ApiServer, AuthServer};

fn cache(auth: &AuthServer, secret: &str) -> TokenCache {
    let endpoint = Endpoint::builder(auth.token_url()).build().unwrap();
    let client = ClientAuth::secret_basic(AuthServer::DEFAULT_CLIENT_ID, secret).unwrap();
    TokenCache::new(
        ClientCredentials::builder(endpoint, client)
            .build()
            .unwrap(),
    )
}

async fn serve(gateway: Gateway) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, gateway.router()).await });
    url
}

async fn get(url: &str) -> (StatusCode, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn concurrent_handlers_share_one_client_and_one_token() {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    let gateway =
        serve(Gateway::new(cache(&auth, AuthServer::DEFAULT_CLIENT_SECRET), &api.url()).unwrap())
            .await;
    let calls: Vec<_> = (0..100)
        .map(|n| {
            let url = format!("{gateway}/orders/{n}");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    }
    assert_eq!(auth.token_requests(), 1);
    assert_eq!(api.authorized(), 100);
}

#[tokio::test]
async fn a_revoked_token_is_replaced_inside_the_gateway() {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    let gateway =
        serve(Gateway::new(cache(&auth, AuthServer::DEFAULT_CLIENT_SECRET), &api.url()).unwrap())
            .await;
    assert_eq!(get(&format!("{gateway}/orders/1")).await.0, StatusCode::OK);
    auth.revoke_all();
    assert_eq!(get(&format!("{gateway}/orders/2")).await.0, StatusCode::OK);
    assert_eq!(auth.token_requests(), 2);
    assert_eq!(
        api.requests(),
        3,
        "the first call, the refused one, its replay"
    );
}

#[tokio::test]
async fn no_token_is_503_and_the_api_never_sees_the_request() {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    let gateway = serve(Gateway::new(cache(&auth, "not-the-secret"), &api.url()).unwrap()).await;
    let (status, body) = get(&format!("{gateway}/orders/1")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.contains("not-the-secret"), "{body}");
    assert_eq!(api.requests(), 0);
}

#[tokio::test]
async fn an_api_that_is_down_is_502() {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    let url = api.url();
    api.shutdown().await;
    let gateway =
        serve(Gateway::new(cache(&auth, AuthServer::DEFAULT_CLIENT_SECRET), &url).unwrap()).await;
    assert_eq!(
        get(&format!("{gateway}/orders/1")).await.0,
        StatusCode::BAD_GATEWAY
    );
}
