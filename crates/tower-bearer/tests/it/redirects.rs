//! tower-http's `FollowRedirect` with our layers, over real sockets on 127.0.0.1: which
//! server receives the token on each kind of redirect, for each composition the docs show.
//! Every server records the `Authorization` value of each request; the tests assert on that.

use std::io;
use std::iter;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::util::BoxCloneService;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_bearer::auth::InvalidOrigin;
use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
use tower_bearer_testkit::{http_client, ApiServer, AuthServer, TestPki};
use tower_http::follow_redirect::policy::{Limited, PolicyExt, SameOrigin};
use tower_http::follow_redirect::FollowRedirectLayer;

use crate::support::{current_token, get, oauth_source, transport, Inner};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Every redirect status `FollowRedirect` follows.
const REDIRECTS: [StatusCode; 5] = [
    StatusCode::MOVED_PERMANENTLY,
    StatusCode::FOUND,
    StatusCode::SEE_OTHER,
    StatusCode::TEMPORARY_REDIRECT,
    StatusCode::PERMANENT_REDIRECT,
];

/// The compositions the docs show.
#[derive(Clone, Copy, Debug)]
enum Stack {
    /// Retry, auth, then `FollowRedirect` following same-origin redirects only: the
    /// documented order.
    AuthOutside,
    /// The documented order, with `allow_origins` naming the API.
    AuthOutsideAllowList,
    /// Retry, auth, then `FollowRedirect` with tower-http's default policy, which follows
    /// redirects to other origins without `Authorization` (0.7 never puts it back).
    AuthOutsideDefaultPolicy,
    /// `FollowRedirect` (default policy) outside both: `allow_origins` decides each hop.
    RedirectsOutsideAllowList,
}

const STACKS: [Stack; 4] = [
    Stack::AuthOutside,
    Stack::AuthOutsideAllowList,
    Stack::AuthOutsideDefaultPolicy,
    Stack::RedirectsOutsideAllowList,
];

impl Stack {
    /// This composition over `transport`, with tokens from `cache` and, where the stack has
    /// an allow-list, only `api_origin` on it.
    fn build(
        self,
        cache: &TokenCache,
        api_origin: &str,
        transport: Inner<Full<Bytes>>,
    ) -> Result<Inner<Full<Bytes>>, InvalidOrigin> {
        let auth = BearerAuthLayer::new(cache.clone());
        let same_origin = Limited::default().and::<_, (), ()>(SameOrigin::new());
        let stack = match self {
            Stack::AuthOutside => BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(RetryOn401Layer::new())
                    .layer(auth)
                    .layer(FollowRedirectLayer::with_policy(same_origin))
                    .service(transport),
            ),
            Stack::AuthOutsideAllowList => BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(RetryOn401Layer::new())
                    .layer(auth.allow_origins([api_origin])?)
                    .layer(FollowRedirectLayer::with_policy(same_origin))
                    .service(transport),
            ),
            Stack::AuthOutsideDefaultPolicy => BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(RetryOn401Layer::new())
                    .layer(auth)
                    .layer(FollowRedirectLayer::new())
                    .service(transport),
            ),
            Stack::RedirectsOutsideAllowList => BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(FollowRedirectLayer::new())
                    .layer(RetryOn401Layer::new())
                    .layer(auth.allow_origins([api_origin])?)
                    .service(transport),
            ),
        };
        Ok(stack)
    }

    /// Whether this stack follows a redirect to another origin (without the token) rather
    /// than hand it back to the caller.
    fn follows_cross_origin(self) -> bool {
        matches!(
            self,
            Stack::RedirectsOutsideAllowList | Stack::AuthOutsideDefaultPolicy
        )
    }
}

/// The `Authorization` values `server` received for `path`, in order.
fn authorizations(server: &ApiServer, path: &str) -> Vec<Option<String>> {
    server
        .received()
        .into_iter()
        .filter(|(received, _)| received == path)
        .map(|(_, authorization)| authorization)
        .collect()
}

/// Sends a request through `client` for each redirect status to `api`, which redirects it
/// to `landing`, the `/landing` of another origin served by `other`. Asserts that `api` got
/// the token, `other` never did, and the caller got `other`'s answer (401, as it came
/// without a token) or, where cross-origin redirects are not followed, the redirect itself.
/// That 401 is the other origin's answer to a request without our token: the token stays
/// cached and nothing is replayed (the other origin gets one request per redirect).
async fn redirect_across_origins(
    stack: Stack,
    (client, cache): (&Inner<Full<Bytes>>, &TokenCache),
    api: &ApiServer,
    (landing, other): (&str, &ApiServer),
) -> TestResult {
    let landed_before = authorizations(other, "/landing").len();
    for (i, status) in REDIRECTS.into_iter().enumerate() {
        let path = redirect_from(api, status, landing);
        let response = client
            .clone()
            .oneshot(get(&format!("{}{path}", api.url())))
            .await?;
        let sent = authorizations(api, &path);
        assert!(
            !sent.is_empty() && sent.iter().all(Option::is_some),
            "{stack:?}, {status}: {path} should get our token: {sent:?}"
        );
        let landed = authorizations(other, "/landing");
        assert!(
            landed.iter().all(Option::is_none),
            "{stack:?}, {status}: the other origin got a token: {landed:?}"
        );
        if stack.follows_cross_origin() {
            assert_eq!(
                landed.len(),
                landed_before + i + 1,
                "{stack:?}, {status}: followed once, and not replayed"
            );
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{stack:?}, {status}"
            );
            let first = sent.first().cloned().flatten();
            assert_eq!(
                first,
                Some(format!("Bearer {}", current_token(cache))),
                "{stack:?}, {status}: the token that went out is still the cached one"
            );
            assert_eq!(sent.len(), 1, "{stack:?}, {status}: {path} got one request");
        } else {
            assert_eq!(response.status(), status, "{stack:?}: back to the caller");
        }
    }
    Ok(())
}

/// A plain HTTP client that resolves every host name to 127.0.0.1, so `localhost` names
/// another origin on the same socket without any connection leaving 127.0.0.1.
fn loopback_transport() -> Inner<Full<Bytes>> {
    let resolver = service_fn(|_: Name| async {
        Ok::<_, io::Error>(iter::once(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))
    });
    let connector = HttpConnector::new_with_resolver(resolver);
    transport(Client::builder(TokioExecutor::new()).build(connector))
}

/// `/{status}` on `server` answers with that redirect to `location`; returns the path.
fn redirect_from(server: &ApiServer, status: StatusCode, location: &str) -> String {
    let path = format!("/{}", status.as_u16());
    server.redirect(&path, status, location);
    path
}

#[tokio::test]
async fn a_redirect_to_another_port_carries_no_token() -> TestResult {
    let auth = AuthServer::start().await?;
    for stack in STACKS {
        let api = ApiServer::start(&auth).await?;
        let elsewhere = ApiServer::start(&auth).await?;
        let cache = TokenCache::new(oauth_source(&auth));
        let client = stack.build(&cache, &api.url(), transport(http_client()))?;
        redirect_across_origins(
            stack,
            (&client, &cache),
            &api,
            (&format!("{}/landing", elsewhere.url()), &elsewhere),
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_redirect_from_127_0_0_1_to_localhost_carries_no_token() -> TestResult {
    let auth = AuthServer::start().await?;
    for stack in STACKS {
        let api = ApiServer::start(&auth).await?;
        let localhost = format!("http://localhost:{}/landing", api.addr().port());
        let cache = TokenCache::new(oauth_source(&auth));
        let client = stack.build(&cache, &api.url(), loopback_transport())?;
        redirect_across_origins(stack, (&client, &cache), &api, (&localhost, &api)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_redirect_from_https_to_http_carries_no_token() -> TestResult {
    let auth = AuthServer::start().await?;
    let pki = TestPki::new();
    let certificate = pki.client_certificate("api-client");
    for stack in STACKS {
        let api = ApiServer::start_https(&auth, &pki).await?;
        let plain = ApiServer::start(&auth).await?;
        let cache = TokenCache::new(oauth_source(&auth));
        let https = transport(pki.https_client(Some(&certificate)));
        let client = stack.build(&cache, &api.url(), https)?;
        redirect_across_origins(
            stack,
            (&client, &cache),
            &api,
            (&format!("{}/landing", plain.url()), &plain),
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_the_token() -> TestResult {
    let auth = AuthServer::start().await?;
    for stack in STACKS {
        let api = ApiServer::start(&auth).await?;
        let cache = TokenCache::new(oauth_source(&auth));
        let client = stack.build(&cache, &api.url(), transport(http_client()))?;
        for status in REDIRECTS {
            let path = redirect_from(&api, status, "/landing");
            let response = client
                .clone()
                .oneshot(get(&format!("{}{path}", api.url())))
                .await?;
            assert_eq!(response.status(), StatusCode::OK, "{stack:?}, {status}");
            assert_eq!(
                response.body(),
                "hello",
                "{stack:?}, {status}: the final answer"
            );
            let ours = Some(format!("Bearer {}", current_token(&cache)));
            assert_eq!(authorizations(&api, &path).last(), Some(&ours), "{stack:?}");
            assert_eq!(
                authorizations(&api, "/landing").last(),
                Some(&ours),
                "{stack:?}"
            );
        }
        assert_eq!(
            api.requests(),
            10,
            "{stack:?}: each redirect and its landing, once"
        );
        assert_eq!(api.authorized(), 5, "{stack:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_through_a_redirect() -> TestResult {
    let auth = AuthServer::start().await?;
    for stack in STACKS {
        let api = ApiServer::start(&auth).await?;
        api.redirect("/start", StatusCode::TEMPORARY_REDIRECT, "/landing");
        let cache = TokenCache::new(oauth_source(&auth));
        let client = stack.build(&cache, &api.url(), transport(http_client()))?;
        let warm_up = client.clone().oneshot(get(&api.url())).await?;
        assert_eq!(warm_up.status(), StatusCode::OK);
        let revoked = Some(format!("Bearer {}", current_token(&cache)));
        auth.revoke(&current_token(&cache));
        let token_requests = auth.token_requests();

        let response = client
            .clone()
            .oneshot(get(&format!("{}/start", api.url())))
            .await?;
        assert_eq!(response.status(), StatusCode::OK, "{stack:?}");
        assert_eq!(response.body(), "hello", "{stack:?}");
        assert_eq!(
            auth.token_requests(),
            token_requests + 1,
            "{stack:?}: one new token"
        );
        let renewed = Some(format!("Bearer {}", current_token(&cache)));
        assert_ne!(renewed, revoked);
        assert_eq!(
            authorizations(&api, "/landing"),
            [revoked.clone(), renewed.clone()],
            "{stack:?}: rejected once, then accepted with the new token"
        );
        let start = match stack {
            // The replay starts over from the caller's URI.
            Stack::AuthOutside | Stack::AuthOutsideAllowList | Stack::AuthOutsideDefaultPolicy => {
                vec![revoked, renewed]
            }
            // The retry layer sees each hop on its own: only the rejected hop is replayed.
            Stack::RedirectsOutsideAllowList => vec![revoked],
        };
        assert_eq!(authorizations(&api, "/start"), start, "{stack:?}");
    }
    Ok(())
}

/// tower-http's default policy strips the header on the hop that leaves the origin, but
/// puts it back on the next same-origin hop: a server that redirects to itself would get
/// the token. The documented stacks never let it: see the `auth` module docs.
#[tokio::test]
async fn a_chain_that_leaves_the_origin_never_brings_the_token_back() -> TestResult {
    let auth = AuthServer::start().await?;
    let pki = TestPki::new();
    let certificate = pki.client_certificate("api-client");
    for stack in STACKS {
        let cache = TokenCache::new(oauth_source(&auth));
        // To another port, and from https to http on the same host.
        let apis = [
            (ApiServer::start(&auth).await?, transport(http_client())),
            (
                ApiServer::start_https(&auth, &pki).await?,
                transport(pki.https_client(Some(&certificate))),
            ),
        ];
        for (api, transport) in apis {
            let elsewhere = ApiServer::start(&auth).await?;
            let client = stack.build(&cache, &api.url(), transport)?;
            api.redirect(
                "/start",
                StatusCode::FOUND,
                &format!("{}/hop", elsewhere.url()),
            );
            elsewhere.redirect("/hop", StatusCode::FOUND, "/landing");
            let _ = client.oneshot(get(&format!("{}/start", api.url()))).await?;
            let elsewhere_got = elsewhere.received();
            assert!(
                elsewhere_got
                    .iter()
                    .all(|(_, authorization)| authorization.is_none()),
                "{stack:?}, {}: {elsewhere_got:?}",
                api.url()
            );
            assert_eq!(elsewhere_got.is_empty(), !stack.follows_cross_origin());
        }
    }
    Ok(())
}
