//! Configuring an [`AuthServer`] before it starts.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use super::{AuthServer, AuthState};
use crate::client_certificate::{self, TlsClient};
use crate::dpop::DpopVerifier;
use crate::server::Https;
use crate::{ClientAuthMethod, DpopOptions, TestCertificate, TestKey, TestPki};

/// Configures an [`AuthServer`]; from [`AuthServer::builder`].
///
/// ```
/// use std::time::Duration;
/// use tower_bearer_testkit::AuthServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let auth = AuthServer::builder()
///     .client("my client:1", "p@ss:w%rd+ ü")
///     .client("other", "other-secret")
///     .token_lifetime(Duration::from_secs(60))
///     .scope_allowed("read write admin")
///     .issue_refresh_tokens(true)
///     .start()
///     .await?;
/// # drop(auth);
/// # Ok(())
/// # }
/// ```
pub struct AuthServerBuilder {
    clients: Vec<(String, String)>,
    key_clients: Vec<(String, TestKey)>,
    token_lifetime: Duration,
    allowed_scopes: Option<HashSet<String>>,
    issue_refresh_tokens: bool,
    rotate_refresh_tokens: bool,
    detect_refresh_token_reuse: bool,
    auth_methods: Option<Vec<ClientAuthMethod>>,
    jwt_bearer_issuers: Vec<(String, TestKey)>,
    subject_tokens: Vec<String>,
    exchange_targets: Option<HashSet<String>>,
    omit_issued_token_type: bool,
    https: Option<Https>,
    tls_clients: Vec<(String, TlsClient)>,
    /// `None` ignores DPoP.
    dpop: Option<DpopOptions>,
}

impl AuthServerBuilder {
    pub(super) fn new() -> Self {
        Self {
            clients: Vec::new(),
            key_clients: Vec::new(),
            token_lifetime: AuthServer::DEFAULT_TOKEN_LIFETIME,
            allowed_scopes: None,
            issue_refresh_tokens: false,
            rotate_refresh_tokens: true,
            detect_refresh_token_reuse: false,
            auth_methods: None,
            jwt_bearer_issuers: Vec::new(),
            subject_tokens: Vec::new(),
            exchange_targets: None,
            omit_issued_token_type: false,
            https: None,
            tls_clients: Vec::new(),
            dpop: Some(DpopOptions::new()),
        }
    }

    /// Registers a confidential client. Call it once per client; registering any client
    /// replaces the default `client` / `secret`. A later registration of the same id wins.
    #[must_use]
    pub fn client(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.clients.push((client_id.into(), client_secret.into()));
        self
    }

    /// Registers a client that authenticates with `private_key_jwt` (RFC 7523 section 2.2)
    /// using `key`. The server checks each `client_assertion`: signature and `alg`, `iss` and
    /// `sub` equal to the client id, `aud` naming the token or revocation endpoint or the
    /// issuer ([`AuthServer::url`]), `exp` in the future (wall clock), and a `jti` it has not
    /// seen before. Does not replace the default secret client.
    #[must_use]
    pub fn private_key_jwt_client(mut self, client_id: impl Into<String>, key: &TestKey) -> Self {
        self.key_clients.push((client_id.into(), key.clone()));
        self
    }

    /// Trusts JWT bearer assertions (RFC 7523 section 2.1) whose `iss` is `issuer`, signed
    /// with `key`. The server checks each `assertion` as it checks client assertions:
    /// signature and `alg`, `aud` naming the token endpoint or the issuer
    /// ([`AuthServer::url`]), `exp` in the future (wall clock), a `jti` not seen before, and a
    /// `sub`; a failure is 400 `invalid_grant`. The token is issued to the assertion's `sub`.
    #[must_use]
    pub fn jwt_bearer_issuer(mut self, issuer: impl Into<String>, key: &TestKey) -> Self {
        self.jwt_bearer_issuers.push((issuer.into(), key.clone()));
        self
    }

    /// Accepts `token` as a `subject_token` or `actor_token` in token exchange (RFC 8693),
    /// besides the live access tokens this server issued. Repeatable.
    #[must_use]
    pub fn subject_token(mut self, token: impl Into<String>) -> Self {
        self.subject_tokens.push(token.into());
        self
    }

    /// Token exchange issues tokens only for these `audience` and `resource` values; any
    /// other gets 400 `invalid_target` (RFC 8693 section 2.2.2). Repeatable; without a call,
    /// every target is allowed.
    #[must_use]
    pub fn exchange_target_allowed(mut self, target: impl Into<String>) -> Self {
        self.exchange_targets
            .get_or_insert_with(HashSet::new)
            .insert(target.into());
        self
    }

    /// Leaves `issued_token_type` out of token exchange responses, as a server that breaks
    /// RFC 8693 section 2.2.1 would (default: sent).
    #[must_use]
    pub fn omit_issued_token_type(mut self, omit: bool) -> Self {
        self.omit_issued_token_type = omit;
        self
    }

    /// Serves HTTPS instead of HTTP, with `pki`'s server certificate (for `127.0.0.1` and
    /// `localhost`), and requires every client to present a certificate: a connection
    /// without one fails in the TLS handshake. Which certificate authenticates which client
    /// is up to [`tls_client`](Self::tls_client) and
    /// [`self_signed_tls_client`](Self::self_signed_tls_client); secret clients still
    /// authenticate with their secret (any certificate will do for them).
    ///
    /// The metadata then lists `tls_client_auth` and `self_signed_tls_client_auth` and
    /// names `/mtls/token` and `/mtls/revoke` as `mtls_endpoint_aliases` (RFC 8705 section
    /// 5); they behave as `/token` and `/revoke` and are counted in
    /// [`AuthServer::mtls_alias_requests`].
    #[must_use]
    pub fn https(mut self, pki: &TestPki) -> Self {
        self.https = Some(client_certificate::https(pki));
        self
    }

    /// Registers a `tls_client_auth` client (RFC 8705 section 2.1): it sends its
    /// `client_id` and no secret, and is authenticated by a TLS client certificate issued
    /// by the [`https`](Self::https) CA whose subject is `subject_dn` (RFC 4514 text, e.g.
    /// [`TestCertificate::subject_dn`]). Another certificate gets 401 `invalid_client`.
    #[must_use]
    pub fn tls_client(
        mut self,
        client_id: impl Into<String>,
        subject_dn: impl Into<String>,
    ) -> Self {
        self.tls_clients
            .push((client_id.into(), TlsClient::SubjectDn(subject_dn.into())));
        self
    }

    /// Registers a `self_signed_tls_client_auth` client (RFC 8705 section 2.2),
    /// authenticated by exactly `certificate` (matched by its SHA-256 thumbprint).
    #[must_use]
    pub fn self_signed_tls_client(
        mut self,
        client_id: impl Into<String>,
        certificate: &TestCertificate,
    ) -> Self {
        self.tls_clients.push((
            client_id.into(),
            TlsClient::SelfSigned(certificate.sha256_thumbprint()),
        ));
        self
    }

    /// The lifetime of issued access tokens, sent as `expires_in` in whole seconds.
    /// Defaults to one hour; [`AuthServer::set_token_lifetime`] changes it later.
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Allows the space-separated scope values in `scope`; may be called several times.
    ///
    /// Without any call every scope is allowed. With one, a request for any other scope
    /// value fails with 400 `invalid_scope` (RFC 6749 section 5.2).
    #[must_use]
    pub fn scope_allowed(mut self, scope: &str) -> Self {
        self.allowed_scopes
            .get_or_insert_with(HashSet::new)
            .extend(scope.split_whitespace().map(str::to_owned));
        self
    }

    /// Whether `client_credentials` responses carry a `refresh_token` as well. Off by
    /// default, as RFC 6749 section 4.4.3 advises; the `refresh_token` grant works either way
    /// and always rotates the refresh token.
    #[must_use]
    pub fn issue_refresh_tokens(mut self, issue: bool) -> Self {
        self.issue_refresh_tokens = issue;
        self
    }

    /// Whether the `refresh_token` grant rotates: issues a new refresh token and retires the
    /// presented one (default `true`). With `false` the response has no `refresh_token` and
    /// the presented one stays valid, as with servers that do not rotate.
    #[must_use]
    pub fn rotate_refresh_tokens(mut self, rotate: bool) -> Self {
        self.rotate_refresh_tokens = rotate;
        self
    }

    /// Reuse detection (RFC 9700 section 4.14.2, off by default): a refresh token that was
    /// rotated away and is presented again gets `invalid_grant` and also revokes the refresh
    /// token that replaced it, as servers do that take reuse as a sign of theft.
    #[must_use]
    pub fn detect_refresh_token_reuse(mut self, detect: bool) -> Self {
        self.detect_refresh_token_reuse = detect;
        self
    }

    /// Accepts only these client authentication methods at `/token` and `/revoke`, and
    /// advertises only them in the metadata (default: Basic and form parameters). A client
    /// using another one gets 401 `invalid_client`.
    #[must_use]
    pub fn client_auth_methods(mut self, methods: &[ClientAuthMethod]) -> Self {
        self.auth_methods = Some(methods.to_vec());
        self
    }

    /// How the token endpoint checks DPoP proofs (RFC 9449 section 5); replaces an earlier
    /// `dpop` or [`without_dpop`](Self::without_dpop).
    ///
    /// Without a call the server uses [`DpopOptions::new`]: a token request that carries a
    /// `DPoP` header must hold a valid proof, and then gets `"token_type": "DPoP"` and a
    /// token bound to the proof's key ([`AuthServer::token_jkt`]); requests without one get
    /// `Bearer` tokens. A refused proof is 400 `invalid_dpop_proof`, or `use_dpop_nonce`
    /// with a `DPoP-Nonce` header when the options require nonces; a successful response
    /// carries `DPoP-Nonce` when the proof's nonce was not the current one (it rotated). The
    /// metadata lists `dpop_signing_alg_values_supported`.
    #[must_use]
    pub fn dpop(mut self, options: DpopOptions) -> Self {
        self.dpop = Some(options);
        self
    }

    /// Makes the server one that predates DPoP: it ignores `DPoP` headers, issues `Bearer`
    /// tokens and advertises no DPoP support, so a test can check how a DPoP client copes.
    /// Requests with the header are still counted in
    /// [`AuthServer::dpop_proofs_received`]. A later [`dpop`](Self::dpop) turns DPoP on
    /// again.
    #[must_use]
    pub fn without_dpop(mut self) -> Self {
        self.dpop = None;
        self
    }

    /// Binds `127.0.0.1` on a free port and starts serving on a spawned tokio task.
    pub async fn start(self) -> io::Result<AuthServer> {
        let mut clients: HashMap<String, String> = self.clients.into_iter().collect();
        if clients.is_empty() {
            clients.insert(
                AuthServer::DEFAULT_CLIENT_ID.to_owned(),
                AuthServer::DEFAULT_CLIENT_SECRET.to_owned(),
            );
        }
        AuthServer::spawn(
            self.https,
            AuthState {
                clients,
                tls_clients: self.tls_clients.into_iter().collect(),
                key_clients: self.key_clients.into_iter().collect(),
                seen_jtis: Default::default(),
                allowed_scopes: self.allowed_scopes,
                issue_refresh_tokens: self.issue_refresh_tokens,
                rotate_refresh_tokens: self.rotate_refresh_tokens,
                detect_refresh_token_reuse: self.detect_refresh_token_reuse,
                auth_methods: self.auth_methods,
                jwt_bearer_issuers: self.jwt_bearer_issuers.into_iter().collect(),
                subject_tokens: self.subject_tokens.into_iter().collect(),
                exchange_targets: self.exchange_targets,
                omit_issued_token_type: self.omit_issued_token_type,
                issuer: Default::default(),
                addr: Default::default(),
                dpop: self.dpop.map(DpopVerifier::new),
                token_lifetime: Mutex::new(self.token_lifetime),
                tokens: Default::default(),
                faults: Default::default(),
                token_requests: Default::default(),
                revocation_requests: Default::default(),
                metadata_requests: Default::default(),
                tokens_issued: Default::default(),
                tokens_revoked: Default::default(),
                mtls_alias_requests: Default::default(),
                dpop_proofs_received: Default::default(),
                dpop_refusals: Default::default(),
                last_request: Default::default(),
                token_auth_methods: Default::default(),
            },
        )
        .await
    }
}

impl fmt::Debug for AuthServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client_ids: Vec<&str> = self.clients.iter().map(|(id, _)| id.as_str()).collect();
        let issuers: Vec<&str> = self
            .jwt_bearer_issuers
            .iter()
            .map(|(iss, _)| iss.as_str())
            .collect();
        f.debug_struct("AuthServerBuilder")
            .field("client_ids", &client_ids)
            .field("token_lifetime", &self.token_lifetime)
            .field("allowed_scopes", &self.allowed_scopes)
            .field("issue_refresh_tokens", &self.issue_refresh_tokens)
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field(
                "detect_refresh_token_reuse",
                &self.detect_refresh_token_reuse,
            )
            .field("auth_methods", &self.auth_methods)
            .field("jwt_bearer_issuers", &issuers)
            .field("subject_tokens", &self.subject_tokens.len())
            .field("exchange_targets", &self.exchange_targets)
            .field("omit_issued_token_type", &self.omit_issued_token_type)
            .field("https", &self.https.is_some())
            .field("tls_clients", &self.tls_clients)
            .field("dpop", &self.dpop)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_clients_but_not_their_secrets() {
        let builder = AuthServer::builder().client("alice", "hunter2");
        let printed = format!("{builder:?}");
        assert!(printed.contains("alice"));
        assert!(!printed.contains("hunter2"));
    }
}
