//! What identifies a shared token, without the secret.

use std::fmt;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// Identifies one token in a [`TokenStore`](super::TokenStore): the same key means "any
/// replica may use this token".
///
/// Built from what makes two token requests interchangeable: the token endpoint, the
/// client id, the scope, the audience and resource indicators, and any other parameter that
/// changes what the server issues. Never from the client secret. The parts are hashed
/// (SHA-256), so the key shows neither the client id nor the scopes to someone browsing the
/// store; scopes are compared as a set, in any order.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreKey {
    hex: String,
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
        }
    }

    /// A key for something else about the same token, named by `purpose`: a different key,
    /// the same on every replica. The refresh-token grant takes its fleet lease under
    /// `derive("refresh")`, apart from the lease a `StoreSource` takes for the access token.
    #[must_use]
    pub fn derive(&self, purpose: &str) -> StoreKey {
        let mut hash = Sha256::new();
        hash.update(b"tower-bearer derived key v1\0");
        hash.update(self.hex.as_bytes());
        hash.update([0]);
        hash.update(purpose.as_bytes());
        StoreKey {
            hex: hex(&hash.finalize()),
        }
    }

    /// The key as 64 lowercase hex digits, for building the store's own key names.
    pub fn as_str(&self) -> &str {
        &self.hex
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreKey").field(&self.hex).finish()
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
        StoreKey {
            hex: hex(&hash.finalize()),
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

    #[test]
    fn key_is_hex_and_hides_the_client_id() {
        let key = key().build();
        assert_eq!(key.as_str().len(), 64);
        assert!(key.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!format!("{key:?}").contains("client"));
    }
}
