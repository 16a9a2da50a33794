//! The accept loop both mock servers share: HTTP/1.1 with keep-alive on a loopback socket,
//! plain or over TLS with a client certificate, one task per connection, all of it stopped
//! together.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::client_certificate::{ChainCheck, PeerCertificate};
use crate::lock;

/// TLS for an HTTPS server: the acceptor, and what tells the handler about the client's
/// certificate.
#[derive(Clone)]
pub(crate) struct Https {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) check: Arc<ChainCheck>,
}

/// What a handler answers: a response, or [`DropConnection`] to close the socket unanswered.
pub(crate) type Reply = Result<Response<Full<Bytes>>, DropConnection>;

/// Returned by a handler to close the connection without writing any response.
///
/// hyper ends an HTTP/1 connection, unanswered, when its service fails.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// Binds `127.0.0.1:0`, the only address the test kit ever listens on.
pub(crate) async fn bind_loopback() -> io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
}

/// Serves `handler` on `listener` from a spawned task until the returned [`ServerTask`] is
/// shut down or dropped.
pub(crate) fn spawn<H, F>(listener: TcpListener, handler: H) -> ServerTask
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    spawn_with_tls(listener, None, handler)
}

/// [`spawn`], over TLS when `https` is given: each request then carries the client's
/// [`PeerCertificate`] in its extensions.
pub(crate) fn spawn_with_tls<H, F>(
    listener: TcpListener,
    https: Option<Https>,
    handler: H,
) -> ServerTask
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let accept_loop = tokio::spawn(accept_loop(listener, https, handler));
    ServerTask {
        abort: accept_loop.abort_handle(),
        join: Mutex::new(Some(accept_loop)),
    }
}

async fn accept_loop<H, F>(listener: TcpListener, https: Option<Https>, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    // Connections live in this set so that aborting the accept loop drops the set, which
    // aborts every connection task with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, https.clone(), handler.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection<H, F>(stream: tokio::net::TcpStream, https: Option<Https>, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let Some(https) = https else {
        return serve_http(TokioIo::new(stream), None, handler).await;
    };
    // A failed handshake (no client certificate, an untrusted server) ends the connection.
    let Ok(stream) = https.acceptor.accept(stream).await else {
        return;
    };
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| https.check.peer(chain));
    serve_http(TokioIo::new(stream), peer, handler).await;
}

async fn serve_http<I, H, F>(io: I, peer: Option<PeerCertificate>, handler: H)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let service = service_fn(move |mut request: Request<Incoming>| {
        if let Some(peer) = &peer {
            request.extensions_mut().insert(peer.clone());
        }
        handler(request)
    });
    // Errors here are clients going away or an injected dropped connection: nothing to do.
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
}

/// Owns a running accept loop; dropping it stops the server.
pub(crate) struct ServerTask {
    abort: AbortHandle,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl ServerTask {
    /// Stops accepting, closes every open connection and waits until the loop has ended.
    pub(crate) async fn shutdown(&self) {
        self.abort.abort();
        let join = lock(&self.join).take();
        if let Some(join) = join {
            // The only possible error is the cancellation we just asked for.
            let _ = join.await;
        }
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

impl fmt::Debug for ServerTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTask")
            .field("finished", &self.abort.is_finished())
            .finish()
    }
}
