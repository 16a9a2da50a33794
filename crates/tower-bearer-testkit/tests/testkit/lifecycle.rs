//! Starting, sharing and stopping the servers; logs.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tower_bearer_testkit::{capture_tracing, ApiServer, AuthServer};

use crate::support::{basic, fetch_token, token_request};

/// Whether nothing accepts connections at `addr` any more, waiting up to a second for the
/// aborted server task to be dropped.
async fn stopped(addr: SocketAddr) -> bool {
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn servers_listen_on_loopback_at_their_urls() {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    assert!(auth.addr().ip().is_loopback());
    assert_ne!(auth.addr().port(), 0);
    assert_eq!(
        auth.url(),
        format!("http://127.0.0.1:{}", auth.addr().port())
    );
    assert_eq!(auth.token_url(), format!("{}/token", auth.url()));
    assert_eq!(api.url(), format!("http://{}", api.addr()));
    assert_ne!(api.addr(), auth.addr());
}

#[tokio::test]
async fn shutdown_stops_the_server_for_every_clone() {
    let auth = AuthServer::start().await.unwrap();
    let clone = auth.clone();
    let addr = auth.addr();
    fetch_token(&auth).await;
    assert_eq!(clone.token_requests(), 1);
    auth.shutdown().await;
    assert!(stopped(addr).await);
    assert_eq!(clone.token_requests(), 1);
}

// Paused time: a sleep ends only once the runtime is idle, so after it everything the drop
// set in motion has run (and any timer it started within the minute has fired).
#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_stops_the_server() {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    let (auth_addr, api_addr) = (auth.addr(), api.addr());
    let clone = auth.clone();
    drop(auth);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(fetch_token(&clone).await.status, http::StatusCode::OK);

    drop(clone);
    drop(api);
    assert!(stopped(auth_addr).await);
    assert!(stopped(api_addr).await);
}

#[tokio::test]
async fn api_shutdown_stops_it() {
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::start(&auth).await.unwrap();
    let addr = api.addr();
    api.clone().shutdown().await;
    assert!(stopped(addr).await);
}

#[tokio::test]
async fn nothing_the_servers_do_shows_up_in_captured_logs() {
    let logs = capture_tracing();
    let auth = AuthServer::builder()
        .client("client", "hunter2-secret")
        .start()
        .await
        .unwrap();
    let reply = token_request(
        &auth,
        Some(&basic("client", "hunter2-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let token = reply.access_token();
    tracing::info!(client_id = "client", "fetched a token");
    tokio::spawn(async { tracing::trace!("from a task on this thread") })
        .await
        .unwrap();

    let contents = logs.contents();
    assert!(contents.contains("fetched a token"), "{contents}");
    assert!(
        contents.contains("from a task on this thread"),
        "{contents}"
    );
    assert!(!contents.contains("hunter2"), "{contents}");
    assert!(!contents.contains(&token), "{contents}");
    assert!(!format!("{auth:?} {logs:?}").contains("hunter2"));
}
