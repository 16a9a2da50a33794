//! A gRPC `greeter.Greeter/SayHello` service and client written by hand, as `tonic-build`
//! would generate them from this `.proto` (these machines have no `protoc`):
//!
//! ```text
//! syntax = "proto3";
//! package greeter;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; }
//! ```
//!
//! The server accepts only access tokens its authorization server says are valid, and
//! answers any other with `UNAUTHENTICATED` from an interceptor, before the request body is
//! read: what a gRPC server with token checks does.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic::codegen::StdError;
use tonic::server::{NamedService, UnaryService};
use tonic::{IntoRequest, Request, Response, Status};
use tonic_prost::ProstCodec;
use tower_bearer_testkit::AuthServer;

/// `greeter.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `greeter.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

const SAY_HELLO: &str = "/greeter.Greeter/SayHello";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A client for `greeter.Greeter` over any gRPC service: a tonic `Channel`, or one wrapped
/// in tower-bearer's layers.
#[derive(Clone, Debug)]
pub struct GreeterClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> GreeterClient<T>
where
    T: GrpcService<Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<StdError> + Send,
{
    /// Calls through `service`, with path-only request URIs (`/greeter.Greeter/SayHello`),
    /// as tonic's generated clients do by default.
    pub fn new(service: T) -> Self {
        GreeterClient {
            inner: tonic::client::Grpc::new(service),
        }
    }

    /// Calls through `service`, with request URIs under `origin`
    /// (`http://127.0.0.1:50051/greeter.Greeter/SayHello`), as generated clients'
    /// `with_origin` does: what an origin allow-list needs.
    pub fn with_origin(service: T, origin: http::Uri) -> Self {
        GreeterClient {
            inner: tonic::client::Grpc::with_origin(service, origin),
        }
    }

    /// `SayHello`.
    pub async fn say_hello(
        &mut self,
        request: impl IntoRequest<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|error| Status::from_error(error.into()))?;
        let path = PathAndQuery::from_static(SAY_HELLO);
        self.inner
            .unary(request.into_request(), path, ProstCodec::default())
            .await
    }
}

/// What the server saw, for tests and the example's output.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Every access token presented, in order (`None` for a call without one).
    pub tokens: Vec<Option<String>>,
    /// Calls refused with `UNAUTHENTICATED`.
    pub refused: usize,
    /// Calls answered.
    pub answered: usize,
    refuse_all: bool,
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running greeter server on 127.0.0.1.
#[derive(Debug)]
pub struct GreeterServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl GreeterServer {
    /// Serves on an ephemeral port of 127.0.0.1, accepting tokens `auth` has issued and
    /// not revoked.
    pub async fn start(auth: Arc<AuthServer>) -> std::io::Result<GreeterServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let check = {
            let seen = Arc::clone(&seen);
            move |request: Request<()>| check_token(&auth, &seen, request)
        };
        let service = tonic::service::interceptor::InterceptedService::new(
            Greeter {
                seen: Arc::clone(&seen),
            },
            check,
        );
        let (shutdown, stop) = tokio::sync::oneshot::channel();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop.await;
                }),
        );
        Ok(GreeterServer {
            addr,
            seen,
            shutdown: Some(shutdown),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the server has seen so far.
    pub fn seen(&self) -> Seen {
        lock(&self.seen).clone()
    }

    /// Refuses every token from now on (or, with `false`, goes back to checking them).
    pub fn refuse_all(&self, refuse: bool) {
        lock(&self.seen).refuse_all = refuse;
    }
}

impl Drop for GreeterServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The interceptor: `authorization: Bearer <token>` with a token the authorization server
/// vouches for, or `UNAUTHENTICATED`.
fn check_token(
    auth: &AuthServer,
    seen: &Mutex<Seen>,
    request: Request<()>,
) -> Result<Request<()>, Status> {
    let token = request
        .metadata()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut seen = lock(seen);
    let valid = !seen.refuse_all && token.as_deref().is_some_and(|token| auth.is_valid(token));
    seen.tokens.push(token);
    if valid {
        Ok(request)
    } else {
        seen.refused += 1;
        Err(Status::unauthenticated("the access token is not valid"))
    }
}

/// The service behind the interceptor.
#[derive(Clone, Debug)]
struct Greeter {
    seen: Arc<Mutex<Seen>>,
}

impl NamedService for Greeter {
    const NAME: &'static str = "greeter.Greeter";
}

impl<B> tower_service::Service<http::Request<B>> for Greeter
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != SAY_HELLO {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let say_hello = SayHello {
            seen: Arc::clone(&self.seen),
        };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
            Ok(grpc.unary(say_hello, request).await)
        })
    }
}

struct SayHello {
    seen: Arc<Mutex<Seen>>,
}

impl UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<Result<Response<HelloReply>, Status>>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        lock(&self.seen).answered += 1;
        let name = request.into_inner().name;
        Box::pin(async move {
            Ok(Response::new(HelloReply {
                message: format!("Hello, {name}!"),
            }))
        })
    }
}
