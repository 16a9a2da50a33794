//! Configuring an [`ApiServer`] before it starts.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::ApiServer;
use crate::client_certificate;
use crate::server::Https;
use crate::token_store::TokenStore;
use crate::{DpopOptions, TestPki};

/// Configures an [`ApiServer`]; from [`ApiServer::builder`].
///
/// ```
/// use tower_bearer_testkit::{ApiServer, AuthServer, DpopNoncePolicy, DpopOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let auth = AuthServer::start().await?;
/// let api = ApiServer::builder(&auth)
///     .dpop(DpopOptions::new().require_proof(true).require_nonce(DpopNoncePolicy::new()))
///     .start()
///     .await?;
/// assert!(api.dpop_nonce().is_some());
/// # Ok(())
/// # }
/// ```
pub struct ApiServerBuilder {
    tokens: Arc<TokenStore>,
    https: Option<Https>,
    dpop: DpopOptions,
}

impl ApiServerBuilder {
    pub(super) fn new(tokens: Arc<TokenStore>) -> ApiServerBuilder {
        ApiServerBuilder {
            tokens,
            https: None,
            dpop: DpopOptions::new(),
        }
    }

    /// Serves HTTPS with `pki`'s server certificate (for `127.0.0.1` and `localhost`) and
    /// requires a client certificate, as [`ApiServer::start_https`] does.
    #[must_use]
    pub fn https(mut self, pki: &TestPki) -> ApiServerBuilder {
        self.https = Some(client_certificate::https(pki));
        self
    }

    /// How the API checks DPoP proofs (RFC 9449 section 7). Without a call it uses
    /// [`DpopOptions::new`]: `DPoP` tokens with valid proofs are accepted beside `Bearer`
    /// tokens, and no nonce is required. With
    /// [`require_proof`](DpopOptions::require_proof) a `Bearer` token (or none) gets 401 with
    /// a `DPoP` challenge; with [`require_nonce`](DpopOptions::require_nonce) a proof without
    /// the current nonce gets 401 `use_dpop_nonce` and a `DPoP-Nonce` header, and a success
    /// carries `DPoP-Nonce` when the proof's nonce was not the current one.
    #[must_use]
    pub fn dpop(mut self, options: DpopOptions) -> ApiServerBuilder {
        self.dpop = options;
        self
    }

    /// Binds `127.0.0.1` on a free port and starts serving on a spawned tokio task.
    pub async fn start(self) -> io::Result<ApiServer> {
        ApiServer::spawn(self.tokens, self.https, self.dpop).await
    }
}

impl fmt::Debug for ApiServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServerBuilder")
            .field("https", &self.https.is_some())
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}
