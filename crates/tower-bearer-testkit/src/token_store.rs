//! Tokens the mock authorization server issued, shared with the mock API that checks them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokio::time::Instant;

use crate::lock;

/// Access and refresh tokens by value.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    access: Mutex<HashMap<String, AccessGrant>>,
    refresh: Mutex<RefreshTokens>,
    families: AtomicU64,
}

/// Live refresh tokens, and the ones rotated away, remembered for reuse detection.
#[derive(Debug, Default)]
struct RefreshTokens {
    live: HashMap<String, RefreshGrant>,
    /// Rotated-away tokens and the family (chain of rotations) each belonged to.
    used: HashMap<String, u64>,
}

#[derive(Debug)]
struct AccessGrant {
    client_id: String,
    scope: Option<String>,
    // The tokio clock, so tests on paused time can expire tokens by advancing it.
    expires_at: Instant,
    revoked: bool,
}

#[derive(Debug)]
struct RefreshGrant {
    client_id: String,
    scope: Option<String>,
    family: u64,
}

/// A redeemed refresh token: the scope to issue, and the family a rotated token joins.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Redeemed {
    pub(crate) scope: Option<String>,
    pub(crate) family: u64,
}

/// What the store knows about an access token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AccessStatus {
    /// Issued by us, not expired, not revoked; with the scope it was granted.
    Valid {
        scope: Option<String>,
    },
    Expired,
    Revoked,
    Unknown,
}

/// Why a refresh token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefreshRejected {
    /// Never issued or revoked.
    Unknown,
    /// Already rotated away: presented again, it revokes its whole family (RFC 9700
    /// section 4.14.2), so the live successor dies too.
    Reused,
    /// Issued to another client (RFC 6749 section 6).
    OtherClient,
    /// The request asked for a scope the refresh token was not granted.
    ScopeExceeded,
}

impl TokenStore {
    /// Issues an access token for `scope` that expires `lifetime` from now.
    pub(crate) fn issue_access(
        &self,
        client_id: &str,
        scope: Option<String>,
        lifetime: Duration,
    ) -> String {
        let token = random_token();
        let grant = AccessGrant {
            client_id: client_id.to_owned(),
            scope,
            expires_at: Instant::now() + lifetime,
            revoked: false,
        };
        lock(&self.access).insert(token.clone(), grant);
        token
    }

    pub(crate) fn access_status(&self, token: &str) -> AccessStatus {
        match lock(&self.access).get(token) {
            None => AccessStatus::Unknown,
            Some(grant) if grant.revoked => AccessStatus::Revoked,
            Some(grant) if Instant::now() >= grant.expires_at => AccessStatus::Expired,
            Some(grant) => AccessStatus::Valid {
                scope: grant.scope.clone(),
            },
        }
    }

    pub(crate) fn is_valid(&self, token: &str) -> bool {
        matches!(self.access_status(token), AccessStatus::Valid { .. })
    }

    /// Revokes an access token or a refresh token, whichever `token` is.
    pub(crate) fn revoke(&self, token: &str) {
        if let Some(grant) = lock(&self.access).get_mut(token) {
            grant.revoked = true;
        }
        lock(&self.refresh).live.remove(token);
    }

    /// Revokes `token` if it was issued to `client_id`; whether a live token was revoked.
    /// Tokens of other clients are left alone, as RFC 7009 section 2.1 requires.
    pub(crate) fn revoke_as(&self, token: &str, client_id: &str) -> bool {
        if let Some(grant) = lock(&self.access).get_mut(token) {
            if grant.client_id == client_id && !grant.revoked {
                grant.revoked = true;
                return true;
            }
            return false;
        }
        let mut refresh = lock(&self.refresh);
        if refresh
            .live
            .get(token)
            .is_some_and(|grant| grant.client_id == client_id)
        {
            refresh.live.remove(token);
            return true;
        }
        false
    }

    /// Whether `token` is a refresh token that can be redeemed now.
    pub(crate) fn is_refresh_live(&self, token: &str) -> bool {
        lock(&self.refresh).live.contains_key(token)
    }

    /// A new family for a refresh token issued outside a rotation.
    pub(crate) fn new_family(&self) -> u64 {
        self.families.fetch_add(1, Ordering::SeqCst)
    }

    /// Revokes every access token issued so far; refresh tokens stay usable.
    pub(crate) fn revoke_all_access(&self) {
        for grant in lock(&self.access).values_mut() {
            grant.revoked = true;
        }
    }

    /// Issues a refresh token bound to `client_id` and `scope`, in `family`.
    pub(crate) fn issue_refresh(
        &self,
        client_id: &str,
        scope: Option<String>,
        family: u64,
    ) -> String {
        let token = random_token();
        let grant = RefreshGrant {
            client_id: client_id.to_owned(),
            scope,
            family,
        };
        lock(&self.refresh).live.insert(token.clone(), grant);
        token
    }

    /// Redeems a refresh token. With `rotate` it is used up (the caller issues a new one in
    /// the returned family); presenting it again is refused, and with `detect_reuse` also
    /// revokes the family.
    ///
    /// `requested_scope` may narrow the granted scope, never widen it (RFC 6749
    /// section 6); without it the granted scope carries over. A rejected token stays usable.
    pub(crate) fn redeem_refresh(
        &self,
        token: &str,
        client_id: &str,
        requested_scope: Option<&str>,
        rotate: bool,
        detect_reuse: bool,
    ) -> Result<Redeemed, RefreshRejected> {
        let mut refresh = lock(&self.refresh);
        if let Some(&family) = refresh.used.get(token) {
            if !detect_reuse {
                return Err(RefreshRejected::Unknown);
            }
            refresh.live.retain(|_, grant| grant.family != family);
            return Err(RefreshRejected::Reused);
        }
        let grant = refresh.live.get(token).ok_or(RefreshRejected::Unknown)?;
        if grant.client_id != client_id {
            return Err(RefreshRejected::OtherClient);
        }
        let scope = match requested_scope {
            None => grant.scope.clone(),
            Some(requested) => {
                let granted = grant.scope.as_deref().unwrap_or_default();
                let within_grant = requested
                    .split_whitespace()
                    .all(|item| granted.split_whitespace().any(|held| held == item));
                if !within_grant {
                    return Err(RefreshRejected::ScopeExceeded);
                }
                Some(requested.to_owned())
            }
        };
        let family = grant.family;
        if rotate {
            refresh.live.remove(token);
            refresh.used.insert(token.to_owned(), family);
        }
        Ok(Redeemed { scope, family })
    }
}

/// 256 random bits, base64url without padding: 43 URL-safe characters.
///
/// `fastrand` is not a cryptographic generator; these tokens only have to be unique.
fn random_token() -> String {
    let mut bytes = [0_u8; 32];
    fastrand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn access_tokens_expire_on_the_tokio_clock() {
        let store = TokenStore::default();
        let token = store.issue_access("c", Some("read".into()), Duration::from_secs(60));
        assert_eq!(
            store.access_status(&token),
            AccessStatus::Valid {
                scope: Some("read".into())
            }
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(store.access_status(&token), AccessStatus::Expired);
        assert_eq!(store.access_status("never-issued"), AccessStatus::Unknown);
    }

    #[test]
    fn revoked_access_tokens_are_reported_as_revoked() {
        let store = TokenStore::default();
        let first = store.issue_access("c", None, Duration::from_secs(60));
        let second = store.issue_access("c", None, Duration::from_secs(60));
        store.revoke(&first);
        assert_eq!(store.access_status(&first), AccessStatus::Revoked);
        assert_eq!(
            store.access_status(&second),
            AccessStatus::Valid { scope: None }
        );
        store.revoke_all_access();
        assert_eq!(store.access_status(&second), AccessStatus::Revoked);
    }

    #[test]
    fn refresh_tokens_are_single_use_and_bound_to_their_client() {
        let store = TokenStore::default();
        let family = store.new_family();
        let token = store.issue_refresh("alice", Some("read write".into()), family);
        assert_eq!(
            store.redeem_refresh(&token, "bob", None, true, true),
            Err(RefreshRejected::OtherClient)
        );
        assert_eq!(
            store.redeem_refresh(&token, "alice", Some("read admin"), true, true),
            Err(RefreshRejected::ScopeExceeded)
        );
        assert_eq!(
            store.redeem_refresh(&token, "alice", Some("write"), true, true),
            Ok(Redeemed {
                scope: Some("write".into()),
                family
            })
        );
        let successor = store.issue_refresh("alice", Some("write".into()), family);
        assert_eq!(
            store.redeem_refresh(&token, "alice", None, true, true),
            Err(RefreshRejected::Reused)
        );
        assert_eq!(
            store.redeem_refresh(&successor, "alice", None, true, true),
            Err(RefreshRejected::Unknown),
            "reuse revoked the whole family"
        );
        assert_eq!(
            store.redeem_refresh("never-issued", "alice", None, true, true),
            Err(RefreshRejected::Unknown)
        );
    }

    #[test]
    fn tokens_are_long_url_safe_and_distinct() {
        let first = random_token();
        assert!(first.len() >= 32);
        assert!(first
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'));
        assert_ne!(first, random_token());
    }
}
