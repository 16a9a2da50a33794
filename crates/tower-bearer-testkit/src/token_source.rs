//! A client-credentials [`TokenSource`] written against the wire, for tests of the core and
//! of adapters that should not depend on the OAuth crate.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower_bearer::{source, FetchError, Token, TokenSource};

use crate::{http_client, AuthServer};

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
/// use tower_bearer_testkit::{client_credentials_source, AuthServer};
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
    let client = http_client();
    let token_url = auth.token_url();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_secret", client_secret)
        .finish();
    source::from_fn(move || {
        let client = client.clone();
        let token_url = token_url.clone();
        let form = form.clone();
        async move {
            let request = http::Request::post(token_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form)))
                .map_err(|e| FetchError::permanent("bad token request").with_source(e))?;
            let response = client
                .request(request)
                .await
                .map_err(|e| FetchError::transient("token endpoint unreachable").with_source(e))?;
            let status = response.status();
            let body = response
                .collect()
                .await
                .map_err(|e| FetchError::transient("token response cut short").with_source(e))?
                .to_bytes();
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
            let json: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| FetchError::transient("token response is not JSON").with_source(e))?;
            let value = json["access_token"].as_str().unwrap_or_default();
            let lifetime = json["expires_in"].as_u64().unwrap_or(60);
            Token::builder(value)
                .expires_in(Duration::from_secs(lifetime))
                .build()
                .map_err(FetchError::from)
        }
    })
}
