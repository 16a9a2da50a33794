//! What the socket tests share: a token source that talks to the testkit authorization
//! server over HTTP (from the test-support crate), and a client stack over hyper.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tower::util::BoxCloneService;
use tower::{service_fn, ServiceBuilder};
use tower_bearer::{
    BearerAuth, BearerAuthLayer, BoxError, RetryOn401, RetryOn401Layer, TokenCache, TokenSource,
};
use tower_bearer_test_support::client_credentials_source;
pub use tower_bearer_test_support::current_token;
use tower_bearer_testkit::AuthServer;

/// The service the auth layers wrap: responses come back with their body read.
pub type Inner<B> = BoxCloneService<Request<B>, Response<Bytes>, BoxError>;

/// A client-credentials token source for the testkit server's default client, written
/// against the wire so these tests do not depend on the oauth2 crate.
pub fn oauth_source(auth: &AuthServer) -> impl TokenSource {
    client_credentials_source(
        auth,
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )
}

/// hyper's client with at most `connections` requests on the wire at once. The limit is
/// taken inside the call, not in `poll_ready`, so every caller still reaches the auth layer
/// concurrently; it only keeps the test under the open-file limit.
pub fn capped_client<B>(connections: usize) -> Inner<B>
where
    B: Body<Data = Bytes> + Send + 'static + Unpin,
    B::Error: Into<BoxError>,
{
    let client: Client<HttpConnector, B> = Client::builder(TokioExecutor::new()).build_http();
    let permits = Arc::new(Semaphore::new(connections));
    let service = service_fn(move |request: Request<B>| {
        let client = client.clone();
        let permits = Arc::clone(&permits);
        async move {
            let _permit = permits.acquire().await?;
            read_body(client.request(request).await?).await
        }
    });
    BoxCloneService::new(service)
}

/// Any hyper-util `client` (plain, over TLS, with its own resolver) as the service the auth
/// layers wrap.
pub fn transport<C, B>(client: Client<C, B>) -> Inner<B>
where
    C: Connect + Clone + Send + Sync + 'static,
    B: Body<Data = Bytes> + Send + 'static + Unpin,
    B::Error: Into<BoxError>,
{
    let service = service_fn(move |request: Request<B>| {
        let client = client.clone();
        async move { read_body(client.request(request).await?).await }
    });
    BoxCloneService::new(service)
}

async fn read_body(response: Response<Incoming>) -> Result<Response<Bytes>, BoxError> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// The stack a user builds: retry outside auth, over hyper with `connections` at most.
pub fn client(
    cache: &TokenCache,
    connections: usize,
) -> RetryOn401<BearerAuth<Inner<Full<Bytes>>>> {
    ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(capped_client(connections))
}

/// A GET request to `url` with an empty body.
pub fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url)
        .body(Full::default())
        .expect("a valid URL")
}

/// A FIFO in a directory of its own, removed on drop. Nobody writes to it unless the test
/// does, so reading it blocks as a file on a hung network mount does.
#[cfg(unix)]
pub struct Fifo {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

#[cfg(unix)]
impl Fifo {
    /// Makes the FIFO with `mkfifo` (POSIX). A machine without it fails the test: a test that
    /// cannot run must not count as passed.
    pub fn new(name: &str) -> Fifo {
        let dir =
            std::env::temp_dir().join(format!("tower-bearer-fifo-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("token");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(
            made.as_ref().is_ok_and(|status| status.success()),
            "mkfifo {} failed ({made:?}); this test needs a FIFO",
            path.display()
        );
        Fifo { dir, path }
    }

    /// Where the FIFO is.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[cfg(unix)]
impl Drop for Fifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `future` once, so that whatever it starts on its first poll has started.
pub async fn poll_once<F: std::future::Future + Unpin>(
    future: &mut F,
) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx)))
        .await
}
