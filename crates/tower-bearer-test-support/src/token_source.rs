//! A client-credentials [`TokenSource`] written against the wire, for tests of the core and
//! of adapters that should not depend on the OAuth crate.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full};
use tower_bearer::dpop::DpopKey;
use tower_bearer::{source, FetchError, Token, TokenSource};

use tower_bearer_testkit::{http_client, AuthServer, HttpClient};

/// Client credentials for `client_id` / `client_secret` at `auth`'s token endpoint, sent as
/// `client_secret_post`, in about as many lines as a user would write by hand.
///
/// A 400 or 401 from the endpoint (`invalid_client`, say) is a permanent error, anything
/// else that is not a success transient. The token's lifetime is the response's
/// `expires_in` (60 s if it has none). Production code should use `tower-bearer-oauth2`,
/// which does all of this to the RFCs.
///
/// ```
/// use tower_bearer::TokenCache;
/// use tower_bearer_test_support::client_credentials_source;
/// use tower_bearer_testkit::AuthServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let auth = AuthServer::start().await?;
/// let source = client_credentials_source(
///     &auth,
///     AuthServer::DEFAULT_CLIENT_ID,
///     AuthServer::DEFAULT_CLIENT_SECRET,
/// );
/// let cache = TokenCache::new(source);
/// cache.token().await?;
/// assert_eq!(auth.token_requests(), 1);
/// # Ok(())
/// # }
/// ```
pub fn client_credentials_source(
    auth: &AuthServer,
    client_id: &str,
    client_secret: &str,
) -> impl TokenSource {
    wire_source(auth, client_id, client_secret, None)
}

/// [`client_credentials_source`] with DPoP (RFC 9449): each token request carries a proof
/// signed with `key` (with the server's nonce, after one `use_dpop_nonce`), and the tokens
/// are bound to the key, so the auth layer sends a proof with each request too.
///
/// ```
/// use tower_bearer::dpop::DpopKey;
/// use tower_bearer::TokenCache;
/// use tower_bearer_test_support::dpop_client_credentials_source;
/// use tower_bearer_testkit::AuthServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let auth = AuthServer::start().await?;
/// let key = DpopKey::generate_es256()?;
/// let cache = TokenCache::new(dpop_client_credentials_source(&auth, key.clone()));
/// let token = cache.token().await?;
/// assert_eq!(auth.token_jkt(&tower_bearer::ExposeSecret::expose_secret(token.secret())).as_deref(), Some(key.thumbprint()));
/// # Ok(())
/// # }
/// ```
pub fn dpop_client_credentials_source(auth: &AuthServer, key: DpopKey) -> impl TokenSource {
    wire_source(
        auth,
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
        Some(key),
    )
}

fn wire_source(
    auth: &AuthServer,
    client_id: &str,
    client_secret: &str,
    key: Option<DpopKey>,
) -> impl TokenSource {
    let client = http_client();
    let token_url: Uri = auth
        .token_url()
        .parse()
        .expect("the kit's token URL is a URI");
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_secret", client_secret)
        .finish();
    source::from_fn(move || {
        let client = client.clone();
        let token_url = token_url.clone();
        let form = form.clone();
        let key = key.clone();
        async move {
            let mut answer = request_token(&client, &token_url, &form, key.as_ref()).await?;
            if let Some(key) = &key {
                // One retry with the server's nonce (RFC 9449 section 8).
                if answer.0 == 400
                    && answer.1["error"] == "use_dpop_nonce"
                    && key.nonce_for(&token_url).is_some()
                {
                    answer = request_token(&client, &token_url, &form, Some(key)).await?;
                }
            }
            let (status, json) = answer;
            if status == 400 || status == 401 {
                return Err(FetchError::permanent(format!(
                    "the token endpoint refused the client ({status})"
                )));
            }
            if !status.is_success() {
                return Err(FetchError::transient(format!(
                    "token endpoint answered {status}"
                )));
            }
            let value = json["access_token"].as_str().unwrap_or_default();
            let lifetime = json["expires_in"].as_u64().unwrap_or(60);
            let mut token = Token::builder(value).expires_in(Duration::from_secs(lifetime));
            if let Some(key) = key {
                if !json["token_type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("dpop"))
                {
                    return Err(FetchError::permanent(
                        "a DPoP proof was sent but the token is not DPoP-bound",
                    ));
                }
                token = token.dpop_key(key);
            }
            token.build().map_err(FetchError::from)
        }
    })
}

/// One token request; the status and the JSON body (`null` if it is not JSON).
async fn request_token(
    client: &HttpClient,
    token_url: &Uri,
    form: &str,
    key: Option<&DpopKey>,
) -> Result<(http::StatusCode, serde_json::Value), FetchError> {
    let mut request = http::Request::post(token_url.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form.to_owned())))
        .map_err(|e| FetchError::permanent("bad token request").with_source(e))?;
    if let Some(key) = key {
        let nonce = key.nonce_for(token_url);
        let proof = key
            .proof(&http::Method::POST, token_url, None, nonce.as_deref())
            .map_err(|e| FetchError::permanent("no DPoP proof").with_source(e))?;
        request.headers_mut().insert("dpop", proof);
    }
    let response = client
        .request(request)
        .await
        .map_err(|e| FetchError::transient("token endpoint unreachable").with_source(e))?;
    if let Some(key) = key {
        key.update_nonce(token_url, response.headers());
    }
    let status = response.status();
    let body = response
        .collect()
        .await
        .map_err(|e| FetchError::transient("token response cut short").with_source(e))?
        .to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or_default()))
}
