//! What a client sent to the token endpoint, kept for assertions.

/// How a token request authenticated its client (RFC 6749 section 2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: an `Authorization: Basic` header.
    ///
    /// Also reported when the request used the header *and* a `client_secret` form
    /// parameter; the server rejected such a request with `invalid_request`.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` form parameters.
    Post,
    /// `private_key_jwt`: a `client_assertion` JWT (RFC 7523 section 2.2).
    PrivateKeyJwt,
    /// No client secret at all (at most a `client_id` form parameter).
    None,
}

/// A token request as the mock authorization server parsed it; see
/// [`AuthServer::last_request`](crate::AuthServer::last_request).
///
/// It never holds the client secret, so it is safe to print.
///
/// ```
/// use http_body_util::Full;
/// use tower_bearer_testkit::{http_client, AuthServer, ClientAuthMethod};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = AuthServer::start().await?;
/// let request = http::Request::post(auth.token_url())
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(Full::from("grant_type=client_credentials&scope=read&client_id=client&client_secret=secret"))?;
/// http_client().request(request).await?;
///
/// let sent = auth.last_request().unwrap();
/// assert_eq!(sent.auth_method, ClientAuthMethod::Post);
/// assert_eq!(sent.scope.as_deref(), Some("read"));
/// assert_eq!(sent.param("client_secret"), None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The `grant_type` form parameter; empty when the request had none.
    pub grant_type: String,
    /// The client identifier, form-url-decoded, from the `Basic` header or else the
    /// `client_id` form parameter.
    pub client_id: Option<String>,
    /// How the client authenticated.
    pub auth_method: ClientAuthMethod,
    /// The `scope` form parameter.
    pub scope: Option<String>,
    /// Every form parameter except `client_secret`, decoded, in the order sent. A
    /// `client_assertion` is kept, so tests can read its claims.
    pub params: Vec<(String, String)>,
}

impl TokenRequest {
    /// The first value of the form parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of the form parameter `name`, in the order sent (`audience` and
    /// `resource` may repeat in token exchange).
    pub fn param_values(&self, name: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}
