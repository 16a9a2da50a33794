//! What an authorization server says about itself (RFC 8414 section 2): the
//! [`AuthServerMetadata`] read from a document, its fields checked, and the endpoint and
//! client authentication configured from it.

use serde_json::{Map, Value};

use super::error::Kind;
use crate::{
    AuthMethod, BuildError, ClientAuth, DiscoveryError, Endpoint, EndpointBuilder, HttpSettings,
};

/// An authorization server's metadata (RFC 8414 section 2), the parts this crate uses.
///
/// From [`Discovery::fetch`](crate::Discovery::fetch), whose [`HttpSettings`] it keeps.
/// [`endpoint`](Self::endpoint) configures an [`Endpoint`] from it, and
/// [`client_secret_auth`](Self::client_secret_auth) picks the client secret method the
/// server accepts.
///
/// Two metadata are equal when the server said the same; the settings they were fetched
/// with are not compared (an [`HttpClient`](crate::HttpClient) has no equality).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AuthServerMetadata {
    issuer: String,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    jwks_uri: Option<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    revocation_endpoint_auth_methods_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    scopes_supported: Option<Vec<String>>,
    mtls_token_endpoint: Option<String>,
    mtls_revocation_endpoint: Option<String>,
    /// How discovery reached the server, the client it used included.
    http: HttpSettings,
}

impl AuthServerMetadata {
    /// `url` is where the document came from, already made printable (`fetch`'s `shown`).
    pub(super) fn from_document(
        url: &str,
        document: Map<String, Value>,
        http: HttpSettings,
    ) -> Result<Self, DiscoveryError> {
        let invalid = |what: String| {
            DiscoveryError::new(
                Kind::InvalidMetadata,
                format!("the metadata at {url} is not usable: {what}"),
            )
        };
        let string = |name: &str| -> Result<Option<String>, DiscoveryError> {
            match document.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(value)) => Ok(Some(value.clone())),
                Some(_) => Err(invalid(format!("`{name}` is not a string"))),
            }
        };
        let strings = |name: &str| -> Result<Option<Vec<String>>, DiscoveryError> {
            match document.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(value) => Ok(value.clone()),
                        _ => Err(invalid(format!(
                            "`{name}` has an item that is not a string"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(invalid(format!("`{name}` is not an array"))),
            }
        };
        let issuer = string("issuer")?.ok_or_else(|| invalid("`issuer` is missing".into()))?;
        let token_endpoint = string("token_endpoint")?
            .ok_or_else(|| invalid("`token_endpoint` is missing".into()))?;
        // RFC 8414 section 2: when omitted, the default is client_secret_basic.
        let default_auth = || vec![AuthMethod::ClientSecretBasic.as_str().to_owned()];
        let token_auth = strings("token_endpoint_auth_methods_supported")?;
        // RFC 8705 section 5: endpoints to use instead of the plain ones with mutual TLS.
        let mtls_alias = |name: &str| -> Result<Option<String>, DiscoveryError> {
            match document.get("mtls_endpoint_aliases") {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(aliases)) => match aliases.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(value)) => Ok(Some(value.clone())),
                    Some(_) => Err(invalid(format!(
                        "`mtls_endpoint_aliases.{name}` is not a string"
                    ))),
                },
                Some(_) => Err(invalid("`mtls_endpoint_aliases` is not an object".into())),
            }
        };
        let revocation_auth = strings("revocation_endpoint_auth_methods_supported")?;
        Ok(AuthServerMetadata {
            issuer,
            token_endpoint,
            revocation_endpoint: string("revocation_endpoint")?,
            introspection_endpoint: string("introspection_endpoint")?,
            jwks_uri: string("jwks_uri")?,
            token_endpoint_auth_methods_supported: token_auth.unwrap_or_else(default_auth),
            revocation_endpoint_auth_methods_supported: revocation_auth
                .unwrap_or_else(default_auth),
            // RFC 8414 section 2's default.
            grant_types_supported: strings("grant_types_supported")?
                .unwrap_or_else(|| vec!["authorization_code".into(), "implicit".into()]),
            scopes_supported: strings("scopes_supported")?,
            mtls_token_endpoint: mtls_alias("token_endpoint")?,
            mtls_revocation_endpoint: mtls_alias("revocation_endpoint")?,
            http,
        })
    }

    /// Starts configuring an [`Endpoint`] for this server: its token endpoint, its
    /// revocation endpoint if it has one, and its `mtls_endpoint_aliases` (RFC 8705 section
    /// 5), which replace those two for clients that authenticate with mutual TLS. Its
    /// requests go with the [`HttpSettings`] discovery used, over the same HTTP client. A
    /// revocation URL or a setting changed on the builder afterwards is used as given.
    pub fn endpoint(&self) -> EndpointBuilder {
        let mut builder = Endpoint::builder(&self.token_endpoint)
            .http_settings(self.http.clone())
            .mtls_alias(Some(&self.token_endpoint), self.mtls_token_endpoint())
            .mtls_alias(self.revocation_endpoint(), self.mtls_revocation_endpoint());
        if let Some(url) = &self.revocation_endpoint {
            builder = builder.revocation_url(url);
        }
        builder
    }

    /// The client authentication for `client_id` and `client_secret` with the method the
    /// server accepts: [`ClientAuth::secret_basic`] when it lists `client_secret_basic`
    /// (every server must support it, RFC 6749 section 2.3.1) or lists nothing, else
    /// [`ClientAuth::secret_post`] when it lists `client_secret_post`, else
    /// `client_secret_basic` all the same.
    pub fn client_secret_auth(
        &self,
        client_id: impl Into<String>,
        client_secret: impl Into<secrecy::SecretString>,
    ) -> Result<ClientAuth, BuildError> {
        match self.preferred_client_auth() {
            Some(AuthMethod::ClientSecretPost) => ClientAuth::secret_post(client_id, client_secret),
            _ => ClientAuth::secret_basic(client_id, client_secret),
        }
    }

    /// The issuer, exactly as asked for and as the server names itself.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// The revocation endpoint (RFC 7009), if the server has one.
    pub fn revocation_endpoint(&self) -> Option<&str> {
        self.revocation_endpoint.as_deref()
    }

    /// The introspection endpoint (RFC 7662), if the server has one.
    pub fn introspection_endpoint(&self) -> Option<&str> {
        self.introspection_endpoint.as_deref()
    }

    /// Where the server publishes its signing keys, if it does.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref()
    }

    /// The client authentication methods the token endpoint accepts; `client_secret_basic`
    /// alone when the server does not say (RFC 8414 section 2).
    pub fn token_endpoint_auth_methods_supported(&self) -> &[String] {
        &self.token_endpoint_auth_methods_supported
    }

    /// The client authentication methods the revocation endpoint accepts;
    /// `client_secret_basic` alone when the server does not say.
    pub fn revocation_endpoint_auth_methods_supported(&self) -> &[String] {
        &self.revocation_endpoint_auth_methods_supported
    }

    /// The grant types the server supports; `authorization_code` and `implicit` when it
    /// does not say (RFC 8414 section 2).
    pub fn grant_types_supported(&self) -> &[String] {
        &self.grant_types_supported
    }

    /// The scopes the server advertises, if it does (it need not list them all).
    pub fn scopes_supported(&self) -> Option<&[String]> {
        self.scopes_supported.as_deref()
    }

    /// The token endpoint for clients that use mutual TLS, from `mtls_endpoint_aliases`
    /// (RFC 8705 section 5), if the server names one. The builders use it in place of
    /// [`token_endpoint`](Self::token_endpoint) when the client authentication is
    /// [mutual TLS](AuthMethod::is_mutual_tls).
    pub fn mtls_token_endpoint(&self) -> Option<&str> {
        self.mtls_token_endpoint.as_deref()
    }

    /// The revocation endpoint for clients that use mutual TLS, from
    /// `mtls_endpoint_aliases` (RFC 8705 section 5), if the server names one.
    pub fn mtls_revocation_endpoint(&self) -> Option<&str> {
        self.mtls_revocation_endpoint.as_deref()
    }

    /// The client secret method to use at the token endpoint: `client_secret_basic` when
    /// the server accepts it (every server must, per RFC 6749 section 2.3.1), else
    /// `client_secret_post` when it accepts that, else `None`.
    pub fn preferred_client_auth(&self) -> Option<AuthMethod> {
        let supports = |method: AuthMethod| {
            self.token_endpoint_auth_methods_supported
                .iter()
                .any(|name| name == method.as_str())
        };
        [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost]
            .into_iter()
            .find(|method| supports(*method))
    }
}

impl PartialEq for AuthServerMetadata {
    fn eq(&self, other: &Self) -> bool {
        // Destructured, so that a new field cannot be left out unnoticed.
        let AuthServerMetadata {
            issuer,
            token_endpoint,
            revocation_endpoint,
            introspection_endpoint,
            jwks_uri,
            token_endpoint_auth_methods_supported,
            revocation_endpoint_auth_methods_supported,
            grant_types_supported,
            scopes_supported,
            mtls_token_endpoint,
            mtls_revocation_endpoint,
            http: _,
        } = self;
        *issuer == other.issuer
            && *token_endpoint == other.token_endpoint
            && *revocation_endpoint == other.revocation_endpoint
            && *introspection_endpoint == other.introspection_endpoint
            && *jwks_uri == other.jwks_uri
            && *token_endpoint_auth_methods_supported == other.token_endpoint_auth_methods_supported
            && *revocation_endpoint_auth_methods_supported
                == other.revocation_endpoint_auth_methods_supported
            && *grant_types_supported == other.grant_types_supported
            && *scopes_supported == other.scopes_supported
            && *mtls_token_endpoint == other.mtls_token_endpoint
            && *mtls_revocation_endpoint == other.mtls_revocation_endpoint
    }
}

impl Eq for AuthServerMetadata {}

#[cfg(test)]
mod tests {
    use tower_bearer::TokenSource;

    use super::super::test_support::{assert_one_bounded_line, document, fake, OAUTH_WELL_KNOWN};
    use crate::ClientCredentials;

    #[tokio::test]
    async fn the_endpoint_talks_to_the_server_as_discovery_did() {
        let issuer = "http://auth.example.com";
        let (discovery, seen) = fake(vec![(OAUTH_WELL_KNOWN, 200, document(issuer, ""))]);
        let metadata = discovery
            .allow_insecure_http(true)
            .fetch(issuer)
            .await
            .unwrap();
        // Plain http to a host that is not loopback: allowed for discovery, so for its
        // endpoint, unless the builder says otherwise.
        let endpoint = metadata.endpoint().build().unwrap();
        let error = metadata
            .endpoint()
            .allow_insecure_http(false)
            .build()
            .unwrap_err();
        assert!(error.is_insecure_http(), "{error}");

        // Token requests go through the client discovery used.
        let client = metadata.client_secret_auth("id", "secret").unwrap();
        let source = ClientCredentials::builder(endpoint, client)
            .build()
            .unwrap();
        source
            .fetch()
            .await
            .expect_err("the fake has no token endpoint");
        assert_eq!(
            seen.lock().unwrap().last().map(String::as_str),
            Some("/token")
        );

        // Equal when the server said the same, whatever client fetched it.
        let (other, _) = fake(vec![(OAUTH_WELL_KNOWN, 200, document(issuer, ""))]);
        let again = other.allow_insecure_http(true).fetch(issuer).await.unwrap();
        assert_eq!(again, metadata);
    }

    #[tokio::test]
    async fn mtls_endpoint_aliases_are_read() {
        let issuer = "https://auth.example.com";
        let (discovery, _) = fake(vec![(
            OAUTH_WELL_KNOWN,
            200,
            document(
                issuer,
                r#","mtls_endpoint_aliases":{"token_endpoint":"https://mtls.auth.example.com/token",
                   "revocation_endpoint":"https://mtls.auth.example.com/revoke",
                   "userinfo_endpoint":"https://mtls.auth.example.com/userinfo"}"#,
            ),
        )]);
        let metadata = discovery.fetch(issuer).await.unwrap();
        assert_eq!(
            metadata.mtls_token_endpoint(),
            Some("https://mtls.auth.example.com/token")
        );
        assert_eq!(
            metadata.mtls_revocation_endpoint(),
            Some("https://mtls.auth.example.com/revoke")
        );
    }

    #[tokio::test]
    async fn fields_of_the_wrong_type_are_invalid_metadata() {
        for body in [
            r#"{"issuer":"https://auth.example.com"}"#.to_owned(),
            document(
                "https://auth.example.com",
                r#","token_endpoint_auth_methods_supported":"client_secret_basic""#,
            ),
            document("https://auth.example.com", r#","mtls_endpoint_aliases":[]"#),
            document(
                "https://auth.example.com",
                r#","mtls_endpoint_aliases":{"token_endpoint":7}"#,
            ),
        ] {
            let (discovery, _) = fake(vec![(OAUTH_WELL_KNOWN, 200, body.clone())]);
            let error = discovery
                .fetch("https://auth.example.com")
                .await
                .unwrap_err();
            assert!(error.is_invalid_metadata(), "{body}: {error}");
        }
    }

    #[tokio::test]
    async fn invalid_or_huge_endpoint_urls_are_quoted_safely_at_build() {
        let issuer = "https://auth.example.com";
        let huge = format!("https://auth.example.com/{}", "t".repeat(200 * 1024));
        for token_endpoint in [
            "https://auth.example.com/to ken\nforged line".to_owned(),
            "ftp://auth.example.com/\u{202e}root".to_owned(),
            format!("{huge} x"),
            format!("http://{}.example.com/token", "h".repeat(200 * 1024)),
        ] {
            let body = serde_json::json!({"issuer": issuer, "token_endpoint": token_endpoint});
            let (discovery, _) = fake(vec![(OAUTH_WELL_KNOWN, 200, body.to_string())]);
            let metadata = discovery.fetch(issuer).await.unwrap();
            let error = metadata.endpoint().build().unwrap_err();
            assert!(
                error.is_invalid_url() || error.is_insecure_http(),
                "{error}"
            );
            assert_one_bounded_line(&error.to_string());
        }
    }
}
