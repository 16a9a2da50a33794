//! Authorization server metadata (RFC 8414, and OpenID Connect Discovery 1.0): learning the
//! token, revocation and introspection endpoints and the accepted client authentication
//! methods from the issuer URL alone.
//!
//! One concept a file: `fetch` has [`Discovery`], which asks the issuer's well-known URLs;
//! `metadata` has [`AuthServerMetadata`], the document read and checked, and the endpoint
//! configured from it; `error` has [`DiscoveryError`].

mod error;
mod fetch;
mod metadata;
#[cfg(test)]
mod test_support;

pub use error::DiscoveryError;
pub use fetch::Discovery;
pub use metadata::AuthServerMetadata;
