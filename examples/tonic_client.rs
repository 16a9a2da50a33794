//! gRPC with tonic: a `Channel` wrapped in tower-bearer's two layers, calling a gRPC service
//! that checks tokens. The part to copy is `authorize(channel, cache)` below
//! (`tower-bearer-tonic`).
//!
//! ```sh
//! cargo run -p examples --bin tonic_client
//! ```
//!
//! It starts the testkit's mock authorization server and a greeter gRPC server on
//! 127.0.0.1, calls the server, has the authorization server revoke the token so the next
//! call is refused with `UNAUTHENTICATED` (`grpc-status: 16`) and replayed once with a new
//! one, then shows the status a wrong client secret gives. It exits when done.
//!
//! gRPC refuses a token with HTTP `200` and `grpc-status: 16`, not a 401: the auth layer
//! inside `authorize` reads that from the headers of the trailers-only response (no body is
//! read to decide), invalidates exactly the token it sent, and the retry layer replays the
//! call once. The request message (up to 64 KiB) is read before the first send, so the
//! replay does not depend on how much of it the server read before refusing.

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use examples::greeter::{GreeterClient, GreeterServer, HelloRequest};
use tower_bearer::TokenCache;
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_testkit::AuthServer;
use tower_bearer_tonic::{authorize, fetch_error};

mod report;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    report::exit_code(run().await)
}

async fn run() -> Result<(), BoxError> {
    let auth = Arc::new(AuthServer::start().await?);
    let server = GreeterServer::start(Arc::clone(&auth)).await?;
    let channel = tonic::transport::Endpoint::from_shared(server.url())?
        .connect()
        .await?;

    let cache = TokenCache::new(credentials(&auth, AuthServer::DEFAULT_CLIENT_SECRET)?);
    let mut client = GreeterClient::new(authorize(channel.clone(), cache));
    let hello = || HelloRequest {
        name: "tonic".into(),
    };

    let reply = client.say_hello(hello()).await?;
    println!("first call: {}", reply.get_ref().message);

    // The authorization server forgets the token: the next call is refused with
    // UNAUTHENTICATED, and replayed once with a new token.
    auth.revoke_all();
    let reply = client.say_hello(hello()).await?;
    let (refused, answered) = {
        let seen = server.seen();
        (seen.refused, seen.answered)
    };
    println!(
        "after revocation: {} ({} token requests, {refused} call refused, {answered} answered)",
        reply.get_ref().message,
        auth.token_requests(),
    );

    // A wrong secret: no token, so the call is not sent; the status is UNAUTHENTICATED (a
    // fetch that failed for now would be UNAVAILABLE), with the FetchError as its source.
    let wrong = TokenCache::new(credentials(&auth, "not-the-secret")?);
    let calls_before = server.seen().tokens.len();
    match GreeterClient::new(authorize(channel, wrong))
        .say_hello(hello())
        .await
    {
        Ok(_) => return Err("expected an error".into()),
        Err(status) => match fetch_error(&status) {
            Some(fetch) => println!(
                "wrong secret: {:?}: {fetch} (permanent: {}, calls sent: {})",
                status.code(),
                fetch.is_permanent(),
                server.seen().tokens.len() - calls_before
            ),
            None => return Err(status.into()),
        },
    }
    Ok(())
}

fn credentials(auth: &AuthServer, secret: &str) -> Result<ClientCredentials, BoxError> {
    let endpoint = Endpoint::builder(auth.token_url()).build()?;
    let client = ClientAuth::secret_basic(AuthServer::DEFAULT_CLIENT_ID, secret)?;
    Ok(ClientCredentials::builder(endpoint, client).build()?)
}
