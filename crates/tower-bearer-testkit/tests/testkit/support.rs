//! Requests the tests send, and reading what comes back.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower_bearer_testkit::{http_client, AuthServer};

/// A response read in full.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", self.body))
    }

    pub(crate) fn json_is_valid(&self) -> bool {
        serde_json::from_slice::<serde_json::Value>(&self.body).is_ok()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("ASCII header"))
    }

    /// The `error` of an RFC 6749 error body, asserting the body has the right shape.
    pub(crate) fn oauth_error(&self) -> String {
        let body = self.json();
        assert!(body["error_description"].is_string(), "{body}");
        body["error"].as_str().expect("an error code").to_owned()
    }

    pub(crate) fn access_token(&self) -> String {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        self.json()["access_token"]
            .as_str()
            .expect("an access_token")
            .to_owned()
    }
}

/// `client_secret_basic` as RFC 6749 section 2.3.1 has it: form-encode each part, then
/// base64 the pair.
pub(crate) fn basic(client_id: &str, client_secret: &str) -> String {
    let encode = |part: &str| form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(client_secret));
    format!("Basic {}", STANDARD.encode(pair))
}

pub(crate) fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

pub(crate) async fn send(
    request: Request<Full<Bytes>>,
) -> Result<Reply, hyper_util::client::legacy::Error> {
    let response = http_client().request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a whole body").to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// POSTs `params` as a form to the token endpoint, with an `Authorization` header if given.
pub(crate) async fn token_request(
    auth: &AuthServer,
    authorization: Option<&str>,
    params: &[(&str, &str)],
) -> Reply {
    try_token_request(auth, authorization, params)
        .await
        .expect("a response")
}

pub(crate) async fn try_token_request(
    auth: &AuthServer,
    authorization: Option<&str>,
    params: &[(&str, &str)],
) -> Result<Reply, hyper_util::client::legacy::Error> {
    let mut request =
        Request::post(auth.token_url()).header("content-type", "application/x-www-form-urlencoded");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    send(request.body(Full::from(form(params))).unwrap()).await
}

/// POSTs `params` as a form to `url` with `headers` (each name may repeat).
pub(crate) async fn post_form(
    url: &str,
    headers: &[(&str, &str)],
    params: &[(&str, &str)],
) -> Reply {
    let mut request =
        Request::post(url).header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(Full::from(form(params))).unwrap())
        .await
        .expect("a response")
}

/// A `client_credentials` request from the default client.
pub(crate) async fn fetch_token(auth: &AuthServer) -> Reply {
    let authorization = basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    );
    token_request(
        auth,
        Some(&authorization),
        &[("grant_type", "client_credentials")],
    )
    .await
}

/// A `client_credentials` request from the default client for `scope`; the access token.
pub(crate) async fn access_token(auth: &AuthServer, scope: Option<&str>) -> String {
    let authorization = basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    );
    let mut params = vec![("grant_type", "client_credentials")];
    params.extend(scope.map(|scope| ("scope", scope)));
    token_request(auth, Some(&authorization), &params)
        .await
        .access_token()
}
