//! DPoP (RFC 9449): a private key the client holds, and a proof of possession per request.
//!
//! With DPoP, the authorization server binds the access tokens it issues to the client's
//! public key, so a stolen token is useless without the private key. Every request, to the
//! token endpoint and to the API, carries a `DPoP` header: a JWT signed with the key over
//! the request's method and URI (and, to an API, a hash of the access token).
//!
//! - [`DpopKey`] is the key: generated (`ES256` or `EdDSA`) or loaded from PKCS#8. What no
//!   proof changes (its public JWK, its thumbprint, the proof header) is computed once.
//! - [`DpopKey::proof`] makes one proof: fresh random `jti`, the current time, one
//!   signature.
//! - [`htu`] and [`access_token_hash`] are the claims a caller may want on their own, for
//!   example to key server nonces by origin.
//!
//! ```
//! use http::{Method, Uri};
//! use tower_bearer::dpop::DpopKey;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = DpopKey::generate_es256()?;
//! let uri = Uri::from_static("https://api.example.com/orders?page=2");
//! // A server that wants a nonce sends it in `DPoP-Nonce`; until then there is none.
//! let nonce: Option<&str> = None;
//! let proof = key.proof(&Method::GET, &uri, Some("the-access-token"), nonce)?;
//! assert!(proof.is_sensitive());
//! # Ok(())
//! # }
//! ```
//!
//! Keys and proofs are signed with [ring](https://docs.rs/ring).

mod error;
mod jwk;
mod key;
pub(crate) mod nonces;
mod pkcs8;
mod proof;

pub use error::{DpopError, KeyRejected};
pub use key::DpopKey;
pub use proof::{access_token_hash, htu};
