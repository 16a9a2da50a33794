//! [`DiscoveryError`]: why no usable metadata came from the issuer.

use tower_bearer::BoxError;

/// Fetching or checking authorization server metadata failed.
///
/// The message says which URL and what to do; it never contains a secret (discovery sends
/// none).
#[derive(Debug)]
#[non_exhaustive]
pub struct DiscoveryError {
    kind: Kind,
    message: String,
    source: Option<BoxError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    InvalidIssuer,
    HttpClient,
    Transport,
    Timeout,
    Unavailable,
    NotFound,
    InvalidMetadata,
    IssuerMismatch,
}

impl DiscoveryError {
    pub(super) fn new(kind: Kind, message: String) -> Self {
        DiscoveryError {
            kind,
            message,
            source: None,
        }
    }

    pub(super) fn invalid_issuer(message: String) -> Self {
        Self::new(Kind::InvalidIssuer, message)
    }

    pub(super) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Whether asking again later may succeed: the server could not be reached, timed out,
    /// or answered 5xx, 429 or 408.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            Kind::Transport | Kind::Timeout | Kind::Unavailable
        )
    }

    /// The issuer URL is malformed, has a query or fragment, or is plain `http://` to a host
    /// that is not loopback.
    pub fn is_invalid_issuer(&self) -> bool {
        self.kind == Kind::InvalidIssuer
    }

    /// Neither well-known document exists at the issuer.
    pub fn is_not_found(&self) -> bool {
        self.kind == Kind::NotFound
    }

    /// A document was found but is not usable metadata (not JSON, `token_endpoint` missing,
    /// a field of the wrong type, too large).
    pub fn is_invalid_metadata(&self) -> bool {
        self.kind == Kind::InvalidMetadata
    }

    /// The metadata names another issuer than the one asked for (RFC 8414 section 3.3).
    pub fn is_issuer_mismatch(&self) -> bool {
        self.kind == Kind::IssuerMismatch
    }
}

crate::error::message_error!(DiscoveryError);
