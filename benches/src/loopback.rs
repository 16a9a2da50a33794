//! The loopback benches' server and load generator.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::{BoxError, Service, ServiceExt};

/// Requests kept in flight at once.
pub const IN_FLIGHT: u64 = 32;

/// A server on 127.0.0.1 answering every request with `200 ok`.
pub async fn server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Sends `total` GETs to `url` through `client`, `IN_FLIGHT` at a time; the elapsed time.
pub async fn run<S>(client: &S, url: &str, total: u64) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let started = Instant::now();
    let mut in_flight = JoinSet::new();
    for sent in 0..total {
        if sent >= IN_FLIGHT {
            in_flight
                .join_next()
                .await
                .expect("a request in flight")
                .expect("no panic");
        }
        let request = Request::get(url)
            .body(Full::default())
            .expect("valid request");
        let call = client.clone().oneshot(request);
        in_flight.spawn(async move {
            let response = call.await.map_err(Into::into).expect("request succeeds");
            assert!(response.status().is_success());
            response.into_body().collect().await.expect("body read");
        });
    }
    while let Some(done) = in_flight.join_next().await {
        done.expect("no panic");
    }
    started.elapsed()
}
