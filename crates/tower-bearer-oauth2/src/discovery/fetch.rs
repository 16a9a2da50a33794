//! Fetching an authorization server's metadata from its issuer URL: [`Discovery`], the two
//! well-known URLs it asks, and how it reads their answers.

use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value};

use super::error::Kind;
use crate::redact::{sanitize, Redactor};
use crate::response::ErrorResponse;
use crate::server_url::{ServerUrl, MAX_URL_CHARS};
use crate::transport::{StatusClass, Transport, TransportError};
use crate::{AuthServerMetadata, DiscoveryError, HttpClient, HttpSettings};

/// The RFC 8414 well-known path, inserted between the host and the issuer's path.
pub(super) const OAUTH_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// The OpenID Connect Discovery path, appended to the issuer.
const OPENID_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// Fetches an authorization server's metadata from its issuer URL.
///
/// [`fetch`](Self::fetch) first asks for the RFC 8414 document
/// (`https://host/.well-known/oauth-authorization-server/path`), and when the server has
/// none (404 and other 4xx answers), the OpenID Connect one
/// (`https://host/path/.well-known/openid-configuration`), which most OpenID providers
/// serve instead. The metadata's `issuer` must be exactly the issuer asked for (RFC 8414
/// section 3.3): that check is what stops a document served from one place from sending
/// your client secret to another.
///
/// Discovery makes one request per document, without retries: it usually runs at startup,
/// where failing loudly beats waiting. Call it again if
/// [`DiscoveryError::is_transient`] says that may help: it reads statuses as the token
/// requests do, so 5xx, 429 and 408 are transient.
///
/// ```
/// use tower_bearer::TokenCache;
/// use tower_bearer_oauth2::{ClientCredentials, Discovery, TokenParams};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let auth = tower_bearer_testkit::AuthServer::builder().client("my-service", "s3cret").start().await?;
/// # std::env::set_var("CLIENT_SECRET", "s3cret");
/// let issuer = "https://auth.example.com";
/// # let issuer = auth.url();
/// let metadata = Discovery::new().fetch(&issuer).await?;
/// // Token requests go over the client discovery used, and share its connection pool.
/// let endpoint = metadata.endpoint().build()?;
/// let client = metadata.client_secret_auth("my-service", std::env::var("CLIENT_SECRET")?)?;
/// let source = ClientCredentials::builder(endpoint, client)
///     .params(TokenParams::new().scope("orders:read"))
///     .build()?;
/// let cache = TokenCache::new(source);
/// # cache.token().await?;
/// # assert_eq!((auth.metadata_requests(), auth.tokens_issued()), (1, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a Discovery does nothing until `fetch` is called"]
pub struct Discovery {
    http: HttpSettings,
}

impl Discovery {
    /// The default [`timeout`](Self::timeout) of each request:
    /// [`HttpSettings::DEFAULT_TIMEOUT`], 30 seconds.
    pub const DEFAULT_TIMEOUT: Duration = HttpSettings::DEFAULT_TIMEOUT;
    /// The default [`max_response_size`](Self::max_response_size): 256 KiB, as OpenID
    /// providers' documents list many algorithms and claims.
    pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 256 * 1024;

    /// Discovery with the default [`HttpSettings`]: the default HTTP client (from the
    /// `hyper-client` feature) and limits.
    pub fn new() -> Self {
        Discovery {
            http: HttpSettings::new(),
        }
    }

    /// How requests reach the issuer: the HTTP client, the timeout, the size limit and
    /// whether plain `http://` is allowed (default: [`HttpSettings::new`]). The metadata
    /// fetched keeps them, client included, and its
    /// [`endpoint`](AuthServerMetadata::endpoint) uses them for the token and revocation
    /// requests. Replaces the four settings as set so far;
    /// [`http_client`](Self::http_client), [`timeout`](Self::timeout),
    /// [`max_response_size`](Self::max_response_size) and
    /// [`allow_insecure_http`](Self::allow_insecure_http) change one of them.
    pub fn http_settings(mut self, settings: HttpSettings) -> Self {
        self.http = settings;
        self
    }

    /// The HTTP client to fetch the metadata with; see [`HttpSettings::http_client`]. Give
    /// one made [`with_tls`](HttpClient::with_tls) for an issuer with a certificate from a
    /// private CA or one that requires a client certificate on every connection.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = self.http.http_client(client);
        self
    }

    /// How long each request may take (default 30 s); see [`HttpSettings::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http = self.http.timeout(timeout);
        self
    }

    /// The largest response read, in bytes (default for metadata documents 256 KiB); see
    /// [`HttpSettings::max_response_size`].
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.http = self.http.max_response_size(bytes);
        self
    }

    /// Allows a plain `http://` issuer and endpoints that are not loopback (default:
    /// refused); see [`HttpSettings::allow_insecure_http`].
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.http = self.http.allow_insecure_http(allow);
        self
    }

    /// Fetches and checks the metadata of `issuer`, an `https://` URL without query or
    /// fragment (RFC 8414 section 2), such as `https://auth.example.com` or
    /// `https://login.example.com/tenant-1`.
    pub async fn fetch(&self, issuer: &str) -> Result<AuthServerMetadata, DiscoveryError> {
        let issuer_url = ServerUrl::parse(issuer, "issuer", self.http.allows_insecure_http())
            .map_err(|error| {
                DiscoveryError::invalid_issuer(
                    "the issuer URL cannot be used for discovery".to_owned(),
                )
                .with_source(error)
            })?;
        // Checked as a URL, so printable; capped all the same.
        let shown_issuer = shown(issuer);
        if issuer_url.uri().query().is_some() || issuer.contains('#') {
            return Err(DiscoveryError::invalid_issuer(format!(
                "the issuer `{shown_issuer}` has a query or fragment, which RFC 8414 section 2 \
                 does not allow; give the issuer URL exactly as the server names it"
            )));
        }
        let http = self.http.client_or_default().map_err(|error| {
            DiscoveryError::new(
                Kind::HttpClient,
                "cannot set up the default HTTP client for discovery".to_owned(),
            )
            .with_source(error)
        })?;
        let transport = Transport::new(http, self.http.request_timeout());
        let mut not_found = Vec::new();
        for url in well_known_urls(issuer) {
            let fetched = self.get(&transport, &url).await?;
            let url = shown(&url);
            match fetched {
                Fetched::Document(document) => {
                    // The metadata's endpoint talks to the server as discovery did, over the
                    // same client and pool even when that is the default one.
                    let settings = self.http.clone().http_client(transport.http().clone());
                    let metadata = AuthServerMetadata::from_document(&url, document, settings)?;
                    if metadata.issuer() != issuer {
                        return Err(DiscoveryError::new(
                            Kind::IssuerMismatch,
                            format!(
                                "the metadata at {url} names the issuer `{}`, not \
                                 `{shown_issuer}` as asked; RFC 8414 section 3.3 requires them \
                                 to be identical, so it is not used (if that server is the one \
                                 you mean, configure the issuer exactly as it names itself)",
                                shown(metadata.issuer())
                            ),
                        ));
                    }
                    tracing::debug!(
                        issuer = %shown_issuer,
                        metadata_url = %url,
                        token_endpoint = %shown(metadata.token_endpoint()),
                        "fetched authorization server metadata"
                    );
                    return Ok(metadata);
                }
                Fetched::NotThere(status) => not_found.push(format!("{url} (HTTP {status})")),
            }
        }
        Err(DiscoveryError::new(
            Kind::NotFound,
            format!(
                "the issuer `{shown_issuer}` serves no authorization server metadata: {}; check the \
                 issuer URL, or configure the token URL directly",
                not_found.join(", ")
            ),
        ))
    }

    /// Fetches one well-known document. `url` is made from a checked issuer URL, so it is
    /// printable, but it is capped like any other text in a message.
    async fn get(&self, transport: &Transport, url: &str) -> Result<Fetched, DiscoveryError> {
        let request = Transport::request(Method::GET, url)
            .body(Full::default())
            .map_err(|error| {
                DiscoveryError::new(
                    Kind::InvalidIssuer,
                    format!("cannot build a request for {}", shown(url)),
                )
                .with_source(error)
            })?;
        let url = shown(url);
        let response = match transport
            .send(
                request,
                self.http
                    .max_response_size_or(Self::DEFAULT_MAX_RESPONSE_SIZE),
                Redactor::default(),
            )
            .await
        {
            Ok(response) => response,
            // An error page over the limit says as much as a small one.
            Err(TransportError::TooLarge { status, .. }) if !status.is_success() => {
                return not_metadata(&url, status, None);
            }
            Err(error) => return Err(self.transport_error(&url, error)),
        };
        if !response.status.is_success() {
            let refusal = ErrorResponse::read(&response);
            return not_metadata(&url, refusal.status, refusal.oauth);
        }
        match serde_json::from_slice::<Value>(&response.body) {
            Ok(Value::Object(document)) => Ok(Fetched::Document(document)),
            _ => Err(DiscoveryError::new(
                Kind::InvalidMetadata,
                format!("the metadata at {url} is not a JSON object"),
            )),
        }
    }

    fn transport_error(&self, url: &str, error: TransportError) -> DiscoveryError {
        match error {
            TransportError::Connect(source) | TransportError::Send(source) => DiscoveryError::new(
                Kind::Transport,
                format!("cannot reach {url} for the authorization server metadata"),
            )
            .with_source(source),
            TransportError::Read(source) => DiscoveryError::new(
                Kind::Transport,
                format!("reading the metadata from {url} failed"),
            )
            .with_source(source),
            TransportError::Timeout(after) => DiscoveryError::new(
                Kind::Timeout,
                format!(
                    "{url} did not answer within {after:?} with the authorization server metadata"
                ),
            ),
            TransportError::TooLarge { limit, .. } => DiscoveryError::new(
                Kind::InvalidMetadata,
                format!(
                    "the metadata at {url} is larger than {limit} bytes; raise \
                     `max_response_size` if that is expected"
                ),
            ),
        }
    }
}

/// What an answer other than a success says: a client error that there is no document
/// here (the next well-known URL may have one); a [transient](StatusClass::of) status that
/// the server cannot answer now; anything else that this is no metadata endpoint. `oauth`
/// is the error response in the body, if any.
fn not_metadata(
    url: &str,
    status: StatusCode,
    oauth: Option<crate::OAuthError>,
) -> Result<Fetched, DiscoveryError> {
    let kind = match StatusClass::of(status) {
        StatusClass::ClientError => return Ok(Fetched::NotThere(status)),
        StatusClass::Transient => Kind::Unavailable,
        _ => Kind::InvalidMetadata,
    };
    let error = DiscoveryError::new(
        kind,
        format!(
            "{url} answered HTTP {} instead of the authorization server metadata",
            status.as_u16()
        ),
    );
    Err(match oauth {
        Some(oauth) => error.with_source(oauth),
        None => error,
    })
}

/// Server or user text as a message quotes it: printable, one line, capped.
fn shown(text: &str) -> String {
    sanitize(text, MAX_URL_CHARS, &Redactor::default())
}

enum Fetched {
    Document(Map<String, Value>),
    NotThere(StatusCode),
}

/// The RFC 8414 URL (well-known path before the issuer's path), then the OpenID Connect one
/// (well-known path after it). For an issuer without a path both are the same but the name.
fn well_known_urls(issuer: &str) -> [String; 2] {
    let trimmed = issuer.trim_end_matches('/');
    // After "scheme://", the first '/' starts the path.
    let path_start = trimmed
        .find("://")
        .map(|scheme_end| scheme_end + 3)
        .and_then(|authority_start| {
            trimmed[authority_start..]
                .find('/')
                .map(|slash| authority_start + slash)
        })
        .unwrap_or(trimmed.len());
    let (origin, path) = trimmed.split_at(path_start);
    [
        format!("{origin}{OAUTH_WELL_KNOWN}{path}"),
        format!("{trimmed}{OPENID_WELL_KNOWN}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_one_bounded_line, document, fake};
    use super::*;
    use crate::AuthMethod;

    #[test]
    fn well_known_urls_follow_rfc_8414_and_openid() {
        assert_eq!(
            well_known_urls("https://auth.example.com"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            well_known_urls("https://auth.example.com/"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            well_known_urls("https://login.example.com/tenant/1"),
            [
                "https://login.example.com/.well-known/oauth-authorization-server/tenant/1",
                "https://login.example.com/tenant/1/.well-known/openid-configuration",
            ]
        );
    }

    #[tokio::test]
    async fn rfc_8414_document_comes_first() {
        let issuer = "https://auth.example.com";
        let (discovery, seen) = fake(vec![(
            OAUTH_WELL_KNOWN,
            200,
            document(
                issuer,
                r#","revocation_endpoint":"https://auth.example.com/revoke",
                   "token_endpoint_auth_methods_supported":["private_key_jwt","client_secret_post"]"#,
            ),
        )]);
        let metadata = discovery.fetch(issuer).await.unwrap();
        assert_eq!(metadata.issuer(), issuer);
        assert_eq!(metadata.token_endpoint(), "https://auth.example.com/token");
        assert_eq!(
            metadata.revocation_endpoint(),
            Some("https://auth.example.com/revoke")
        );
        assert_eq!(metadata.introspection_endpoint(), None);
        assert_eq!(
            metadata.preferred_client_auth(),
            Some(AuthMethod::ClientSecretPost)
        );
        assert_eq!(
            metadata.revocation_endpoint_auth_methods_supported(),
            ["client_secret_basic"]
        );
        assert_eq!(*seen.lock().unwrap(), [OAUTH_WELL_KNOWN]);
        assert_eq!(metadata.mtls_token_endpoint(), None);
        let client = metadata.client_secret_auth("id", "secret").unwrap();
        assert_eq!(client.method(), AuthMethod::ClientSecretPost);
        let endpoint = metadata.endpoint().build().unwrap();
        assert_eq!(
            endpoint
                .revocation_url()
                .map(ToString::to_string)
                .as_deref(),
            Some("https://auth.example.com/revoke")
        );
    }

    #[tokio::test]
    async fn openid_document_is_the_fallback() {
        let issuer = "https://auth.example.com/tenant";
        let (discovery, seen) = fake(vec![(
            "/tenant/.well-known/openid-configuration",
            200,
            document(issuer, ""),
        )]);
        let metadata = discovery.fetch(issuer).await.unwrap();
        assert_eq!(
            metadata.token_endpoint(),
            "https://auth.example.com/tenant/token"
        );
        // Nothing said: client_secret_basic, as RFC 8414 has it.
        assert_eq!(
            metadata.preferred_client_auth(),
            Some(AuthMethod::ClientSecretBasic)
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "/.well-known/oauth-authorization-server/tenant",
                "/tenant/.well-known/openid-configuration"
            ]
        );
    }

    #[tokio::test]
    async fn issuer_must_match_exactly() {
        let (discovery, _) = fake(vec![(
            OAUTH_WELL_KNOWN,
            200,
            document("https://evil.example.com", ""),
        )]);
        let error = discovery
            .fetch("https://auth.example.com")
            .await
            .unwrap_err();
        assert!(error.is_issuer_mismatch(), "{error}");
        assert!(error.to_string().contains("evil.example.com"), "{error}");
        assert!(!error.is_transient());

        // A trailing slash is a different issuer (RFC 8414 section 3.3: identical).
        let (discovery, _) = fake(vec![(
            OAUTH_WELL_KNOWN,
            200,
            document("https://auth.example.com", ""),
        )]);
        let error = discovery
            .fetch("https://auth.example.com/")
            .await
            .unwrap_err();
        assert!(error.is_issuer_mismatch(), "{error}");
    }

    #[tokio::test]
    async fn missing_or_malformed_documents_are_reported() {
        let (discovery, _) = fake(vec![]);
        let error = discovery
            .fetch("https://auth.example.com")
            .await
            .unwrap_err();
        assert!(error.is_not_found(), "{error}");
        assert!(
            error.to_string().contains("openid-configuration"),
            "{error}"
        );

        let (discovery, _) = fake(vec![(OAUTH_WELL_KNOWN, 200, "<html></html>".to_owned())]);
        let error = discovery
            .fetch("https://auth.example.com")
            .await
            .unwrap_err();
        assert!(error.is_invalid_metadata(), "{error}");

        let (discovery, _) = fake(vec![(OAUTH_WELL_KNOWN, 503, String::new())]);
        let error = discovery
            .fetch("https://auth.example.com")
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
    }

    /// The statuses token requests take as transient are transient here too, not "no
    /// document": 429 and 408 stop discovery at the first URL.
    #[tokio::test]
    async fn transient_statuses_are_transient_not_missing() {
        for status in [408, 429, 500, 502, 503, 504] {
            let (discovery, seen) = fake(vec![(
                OAUTH_WELL_KNOWN,
                status,
                r#"{"error":"temporarily_unavailable"}"#.to_owned(),
            )]);
            let error = discovery
                .fetch("https://auth.example.com")
                .await
                .unwrap_err();
            assert!(error.is_transient(), "{status}: {error}");
            assert!(!error.is_not_found(), "{status}: {error}");
            assert_eq!(seen.lock().unwrap().len(), 1, "{status}");
            let oauth = std::error::Error::source(&error)
                .and_then(|source| source.downcast_ref::<crate::OAuthError>());
            assert!(oauth.is_some_and(|oauth| oauth.error() == "temporarily_unavailable"));
        }
        for status in [400, 401, 403, 404, 410] {
            let (discovery, seen) = fake(vec![(OAUTH_WELL_KNOWN, status, String::new())]);
            let error = discovery
                .fetch("https://auth.example.com")
                .await
                .unwrap_err();
            assert!(error.is_not_found(), "{status}: {error}");
            assert_eq!(seen.lock().unwrap().len(), 2, "{status}");
        }
    }

    #[tokio::test]
    async fn bad_issuers_are_refused_before_any_request() {
        let (discovery, seen) = fake(vec![]);
        for issuer in [
            "http://auth.example.com",
            "https://auth.example.com?tenant=1",
            "https://auth.example.com#x",
            "auth.example.com",
        ] {
            let error = discovery.fetch(issuer).await.unwrap_err();
            assert!(error.is_invalid_issuer(), "{issuer}: {error}");
        }
        assert!(seen.lock().unwrap().is_empty());
    }

    /// The message of the issuer mismatch a server naming itself `issuer` causes.
    async fn mismatch_message(issuer: &str) -> String {
        let body = serde_json::json!({"issuer": issuer, "token_endpoint": "https://a.example/t"});
        let (discovery, _) = fake(vec![(OAUTH_WELL_KNOWN, 200, body.to_string())]);
        let error = discovery
            .fetch("https://auth.example.com")
            .await
            .unwrap_err();
        assert!(error.is_issuer_mismatch(), "{error}");
        let message = error.to_string();
        assert_one_bounded_line(&message);
        message
    }

    #[tokio::test]
    async fn a_mismatched_issuer_is_quoted_on_one_line() {
        let message =
            mismatch_message("https://evil.example.com\nINFO token fetch succeeded\r\u{1b}[2K")
                .await;
        assert!(
            message.contains(r"evil.example.com\nINFO token fetch succeeded\r\u{1b}[2K"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_huge_issuer_is_cut() {
        let huge = format!("https://evil.example.com/{}", "a".repeat(200 * 1024));
        let message = mismatch_message(&huge).await;
        assert!(message.contains("aaa..."), "{message}");
    }
}
