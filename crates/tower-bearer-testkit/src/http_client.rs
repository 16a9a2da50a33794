//! A plain HTTP/1.1 client for talking to the mock servers.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The client [`http_client`] builds: hyper-util's pooled client over plain TCP.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// An HTTP/1.1 client with keep-alive, for `http://` URLs only, running its connections on
/// the current tokio runtime. Clones share one connection pool.
///
/// ```
/// use http_body_util::Full;
/// use tower_bearer_testkit::{http_client, AuthServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = AuthServer::start().await?;
/// let response = http_client()
///     .request(http::Request::get(format!("{}/elsewhere", auth.url())).body(Full::default())?)
///     .await?;
/// assert_eq!(response.status(), 404);
/// # Ok(())
/// # }
/// ```
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}
