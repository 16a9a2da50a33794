//! What identifies a shared token, without the secret.

use std::fmt;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};

#[cfg(feature = "dpop")]
use crate::dpop::DpopKey;

/// Identifies one token in a [`TokenStore`](super::TokenStore): the same key means "any
/// replica may use this token".
///
/// Built from what makes two token requests interchangeable: the token endpoint, the
/// client id, the scope, the audience and resource indicators, and any other parameter that
/// changes what the server issues. Never from the client secret. The parts are hashed
/// (SHA-256), so the key shows neither the client id nor the scopes to someone browsing the
/// store; scopes are compared as a set, in any order.
///
/// A key for DPoP-bound tokens (RFC 9449) also carries the [`DpopKey`] they are bound to
/// ([`StoreKeyBuilder::dpop_key`]): its thumbprint is one of the hashed
/// parts, and a store that reads a token bound to that thumbprint builds it with the key
/// carried here. Equality, hashing, `Display` and `Debug` see the hash (and, in `Debug`, the
/// thumbprint), never the private key. So a `StoreKey` is a sound map key, although clippy's
/// `mutable_key_type` sees the nonce cache inside the DPoP key and warns.
///
#[cfg_attr(feature = "dpop", doc = "[`DpopKey`]: crate::dpop::DpopKey")]
#[cfg_attr(
    feature = "dpop",
    doc = "[`StoreKeyBuilder::dpop_key`]: StoreKeyBuilder::dpop_key"
)]
#[cfg_attr(not(feature = "dpop"), doc = "[`DpopKey`]: crate#features")]
#[cfg_attr(
    not(feature = "dpop"),
    doc = "[`StoreKeyBuilder::dpop_key`]: crate#features"
)]
#[derive(Clone)]
pub struct StoreKey {
    hex: String,
    #[cfg(feature = "dpop")]
    dpop_key: Option<DpopKey>,
}

impl StoreKey {
    /// Starts a key for tokens from `token_endpoint` issued to `client_id`.
    pub fn builder(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
    ) -> StoreKeyBuilder {
        StoreKeyBuilder {
            token_endpoint: token_endpoint.into(),
            client_id: client_id.into(),
            scopes: Vec::new(),
            params: Vec::new(),
            #[cfg(feature = "dpop")]
            dpop_key: None,
        }
    }

    /// A key for something else about the same token, named by `purpose`: a different key,
    /// the same on every replica. The refresh-token grant takes its fleet lease under
    /// `derive("refresh")`, apart from the lease a `StoreSource` takes for the access token.
    /// The derived key carries the same DPoP key, if any (the `dpop` feature).
    #[must_use]
    pub fn derive(&self, purpose: &str) -> StoreKey {
        let mut hash = Sha256::new();
        hash.update(b"tower-bearer derived key v1\0");
        hash.update(self.hex.as_bytes());
        hash.update([0]);
        hash.update(purpose.as_bytes());
        StoreKey {
            hex: hex(&hash.finalize()),
            #[cfg(feature = "dpop")]
            dpop_key: self.dpop_key.clone(),
        }
    }

    /// The key as 64 lowercase hex digits, for building the store's own key names.
    pub fn as_str(&self) -> &str {
        &self.hex
    }

    /// The DPoP key that tokens stored under this key are bound to, if it was built with
    /// [`StoreKeyBuilder::dpop_key`]. A store that shares tokens between processes builds a
    /// stored DPoP-bound token with this key, and refuses one bound to another.
    #[cfg(feature = "dpop")]
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.dpop_key.as_ref()
    }
}

// The hash covers the DPoP key's thumbprint, so it alone decides identity.
impl PartialEq for StoreKey {
    fn eq(&self, other: &Self) -> bool {
        self.hex == other.hex
    }
}

impl Eq for StoreKey {}

impl Hash for StoreKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hex.hash(state);
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_tuple("StoreKey");
        debug.field(&self.hex);
        #[cfg(feature = "dpop")]
        if let Some(key) = &self.dpop_key {
            debug.field(&format_args!("dpop_jkt={}", key.thumbprint()));
        }
        debug.finish()
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex)
    }
}

/// Builds a [`StoreKey`]; see [`StoreKey::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct StoreKeyBuilder {
    token_endpoint: String,
    client_id: String,
    scopes: Vec<String>,
    params: Vec<(String, String)>,
    #[cfg(feature = "dpop")]
    dpop_key: Option<DpopKey>,
}

impl StoreKeyBuilder {
    /// The requested scope, a space-separated list; order and repeats do not matter.
    pub fn scope(mut self, scope: &str) -> Self {
        self.scopes
            .extend(scope.split_ascii_whitespace().map(str::to_owned));
        self
    }

    /// The requested audience.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.param("audience", audience)
    }

    /// An RFC 8707 resource indicator; call once per resource.
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// Any other request parameter that changes the token issued. Never pass a secret.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Binds the key to the DPoP key (RFC 9449) its tokens are bound to: the key's
    /// [thumbprint](DpopKey::thumbprint) becomes part of the hash, so replicas with
    /// different DPoP keys never share a token they could not send, and the [`StoreKey`]
    /// carries `key`, so a store that reads a token bound to it builds the token with it.
    /// Only the thumbprint is hashed; the private key stays in memory.
    #[cfg(feature = "dpop")]
    pub fn dpop_key(mut self, key: DpopKey) -> Self {
        self.dpop_key = Some(key);
        self
    }

    /// The key.
    pub fn build(mut self) -> StoreKey {
        self.scopes.sort();
        self.scopes.dedup();
        self.params.sort();
        let mut hash = Sha256::new();
        // Every part is length-prefixed, so no two different inputs hash the same bytes.
        let mut part = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        };
        part(b"tower-bearer token key v1");
        part(self.token_endpoint.as_bytes());
        part(self.client_id.as_bytes());
        part(&(self.scopes.len() as u64).to_be_bytes());
        for scope in &self.scopes {
            part(scope.as_bytes());
        }
        part(&(self.params.len() as u64).to_be_bytes());
        for (name, value) in &self.params {
            part(name.as_bytes());
            part(value.as_bytes());
        }
        // After the counted parameters, so it cannot be mistaken for one.
        #[cfg(feature = "dpop")]
        if let Some(key) = &self.dpop_key {
            part(b"dpop_jkt");
            part(key.thumbprint().as_bytes());
        }
        StoreKey {
            hex: hex(&hash.finalize()),
            #[cfg(feature = "dpop")]
            dpop_key: self.dpop_key,
        }
    }
}

fn hex(digest: &[u8]) -> String {
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StoreKeyBuilder {
        StoreKey::builder("https://auth.example.com/token", "client")
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_repeat() {
        let base = key().build();
        assert_ne!(base.derive("refresh"), base);
        assert_ne!(base.derive("refresh"), base.derive("other"));
        assert_eq!(base.derive("refresh"), key().build().derive("refresh"));
        assert_eq!(base.derive("refresh").as_str().len(), 64);
    }

    #[test]
    fn scope_order_and_repeats_do_not_matter() {
        assert_eq!(
            key().scope("b a").build(),
            key().scope("a b a").scope("b").build()
        );
    }

    #[test]
    fn every_part_changes_the_key() {
        let base = key().scope("a").build();
        assert_ne!(base, key().scope("a b").build());
        assert_ne!(base, key().scope("a").audience("x").build());
        assert_ne!(base, key().scope("a").resource("https://r").build());
        assert_ne!(
            base,
            StoreKey::builder("https://auth.example.com/token", "other")
                .scope("a")
                .build()
        );
        assert_ne!(
            base,
            StoreKey::builder("https://auth.example.com/token2", "client")
                .scope("a")
                .build()
        );
    }

    #[test]
    fn parts_cannot_run_into_each_other() {
        let a = StoreKey::builder("https://a/", "bc").build();
        let b = StoreKey::builder("https://a/b", "c").build();
        assert_ne!(a, b);
    }

    #[cfg(feature = "dpop")]
    #[test]
    fn a_dpop_key_is_carried_and_identified_by_its_thumbprint_only() {
        let dpop = DpopKey::generate_es256().unwrap();
        let bound = key().dpop_key(dpop.clone()).build();
        assert_ne!(bound, key().build());
        // Not a parameter: a key cannot be forged by naming the thumbprint as one.
        assert_ne!(bound, key().param("dpop_jkt", dpop.thumbprint()).build());
        assert_eq!(bound.dpop_key().unwrap().thumbprint(), dpop.thumbprint());
        assert!(key().build().dpop_key().is_none());
        assert_eq!(
            bound.derive("refresh").dpop_key().unwrap().thumbprint(),
            dpop.thumbprint()
        );

        // The same key loaded twice (two replicas) gives equal store keys, hashing alike.
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let load = || DpopKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
        let (a, b) = (
            key().dpop_key(load()).build(),
            key().dpop_key(load()).build(),
        );
        assert_eq!(a, b);
        #[expect(
            clippy::mutable_key_type,
            reason = "equality and hashing see the hash only, never the DPoP key's nonces"
        )]
        let set: std::collections::HashSet<StoreKey> = [a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_ne!(a, bound);

        let debug = format!("{bound:?}");
        assert!(debug.contains(dpop.thumbprint()), "{debug}");
        assert!(debug.contains(bound.as_str()), "{debug}");
        assert_eq!(bound.to_string(), bound.as_str());
    }

    #[test]
    fn key_is_hex_and_hides_the_client_id() {
        let key = key().build();
        assert_eq!(key.as_str().len(), 64);
        assert!(key.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!format!("{key:?}").contains("client"));
    }
}
