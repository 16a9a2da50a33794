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
    /// The thumbprint of the DPoP key the token is bound to (RFC 9449 section 6).
    jkt: Option<String>,
}

#[derive(Debug)]
struct RefreshGrant {
    client_id: String,
    scope: Option<String>,
    family: u64,
    /// The DPoP key the grant is bound to: a refresh needs a proof made with it.
    jkt: Option<String>,
}

/// A redeemed refresh token: the scope to issue, the family a rotated token joins, and the
/// DPoP key the grant stays bound to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Redeemed {
    pub(crate) scope: Option<String>,
    pub(crate) family: u64,
    pub(crate) jkt: Option<String>,
}

/// What the store knows about an access token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AccessStatus {
    /// Issued by us, not expired, not revoked; with the scope it was granted and the DPoP
    /// key it is bound to.
    Valid {
        scope: Option<String>,
        jkt: Option<String>,
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
    /// The refresh token is DPoP-bound and the request carried no proof.
    DpopProofMissing,
    /// The refresh token is DPoP-bound to another key than the proof's.
    DpopKeyMismatch,
}

impl TokenStore {
    /// Issues an access token for `scope` that expires `lifetime` from now, bound to the
    /// DPoP key `jkt` if given.
    pub(crate) fn issue_access(
        &self,
        client_id: &str,
        scope: Option<String>,
        lifetime: Duration,
        jkt: Option<String>,
    ) -> String {
        let token = random_token();
        let grant = AccessGrant {
            client_id: client_id.to_owned(),
            scope,
            expires_at: Instant::now() + lifetime,
            revoked: false,
            jkt,
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
                jkt: grant.jkt.clone(),
            },
        }
    }

    pub(crate) fn is_valid(&self, token: &str) -> bool {
        matches!(self.access_status(token), AccessStatus::Valid { .. })
    }

    /// The DPoP key an access or refresh token is bound to; `None` for unbound or unknown
    /// tokens.
    pub(crate) fn jkt_of(&self, token: &str) -> Option<String> {
        if let Some(grant) = lock(&self.access).get(token) {
            return grant.jkt.clone();
        }
        lock(&self.refresh).live.get(token)?.jkt.clone()
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

    /// Issues a refresh token bound to `client_id` and `scope` (and the DPoP key `jkt`, if
    /// given), in `family`.
    pub(crate) fn issue_refresh(
        &self,
        client_id: &str,
        scope: Option<String>,
        family: u64,
        jkt: Option<String>,
    ) -> String {
        let token = random_token();
        let grant = RefreshGrant {
            client_id: client_id.to_owned(),
            scope,
            family,
            jkt,
        };
        lock(&self.refresh).live.insert(token.clone(), grant);
        token
    }

    /// Redeems a refresh token. With `rotate` it is used up (the caller issues a new one in
    /// the returned family); presenting it again is refused, and with `detect_reuse` also
    /// revokes the family.
    ///
    /// `requested_scope` may narrow the granted scope, never widen it (RFC 6749
    /// section 6); without it the granted scope carries over. A DPoP-bound token needs
    /// `proof_jkt` to be its key (RFC 9449 section 5). A rejected token stays usable.
    pub(crate) fn redeem_refresh(
        &self,
        token: &str,
        client_id: &str,
        requested_scope: Option<&str>,
        proof_jkt: Option<&str>,
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
        match (grant.jkt.as_deref(), proof_jkt) {
            (Some(_), None) => return Err(RefreshRejected::DpopProofMissing),
            (Some(bound), Some(proof)) if bound != proof => {
                return Err(RefreshRejected::DpopKeyMismatch)
            }
            _ => {}
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
        let jkt = grant.jkt.clone();
        if rotate {
            refresh.live.remove(token);
            refresh.used.insert(token.to_owned(), family);
        }
        Ok(Redeemed { scope, family, jkt })
    }
}

/// 256 random bits, base64url without padding: 43 URL-safe characters.
///
/// `fastrand` is not a cryptographic generator; these tokens only have to be unique.
pub(crate) fn random_token() -> String {
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
        let token = store.issue_access("c", Some("read".into()), Duration::from_secs(60), None);
        assert_eq!(
            store.access_status(&token),
            AccessStatus::Valid {
                scope: Some("read".into()),
                jkt: None,
            }
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(store.access_status(&token), AccessStatus::Expired);
        assert_eq!(store.access_status("never-issued"), AccessStatus::Unknown);
    }

    #[test]
    fn revoked_access_tokens_are_reported_as_revoked() {
        let store = TokenStore::default();
        let first = store.issue_access("c", None, Duration::from_secs(60), None);
        let second = store.issue_access("c", None, Duration::from_secs(60), None);
        store.revoke(&first);
        assert_eq!(store.access_status(&first), AccessStatus::Revoked);
        assert_eq!(
            store.access_status(&second),
            AccessStatus::Valid {
                scope: None,
                jkt: None
            }
        );
        store.revoke_all_access();
        assert_eq!(store.access_status(&second), AccessStatus::Revoked);
    }

    #[test]
    fn refresh_tokens_are_single_use_and_bound_to_their_client() {
        let store = TokenStore::default();
        let family = store.new_family();
        let token = store.issue_refresh("alice", Some("read write".into()), family, None);
        assert_eq!(
            store.redeem_refresh(&token, "bob", None, None, true, true),
            Err(RefreshRejected::OtherClient)
        );
        assert_eq!(
            store.redeem_refresh(&token, "alice", Some("read admin"), None, true, true),
            Err(RefreshRejected::ScopeExceeded)
        );
        assert_eq!(
            store.redeem_refresh(&token, "alice", Some("write"), None, true, true),
            Ok(Redeemed {
                scope: Some("write".into()),
                family,
                jkt: None,
            })
        );
        let successor = store.issue_refresh("alice", Some("write".into()), family, None);
        assert_eq!(
            store.redeem_refresh(&token, "alice", None, None, true, true),
            Err(RefreshRejected::Reused)
        );
        assert_eq!(
            store.redeem_refresh(&successor, "alice", None, None, true, true),
            Err(RefreshRejected::Unknown),
            "reuse revoked the whole family"
        );
        assert_eq!(
            store.redeem_refresh("never-issued", "alice", None, None, true, true),
            Err(RefreshRejected::Unknown)
        );
    }

    #[test]
    fn dpop_bound_tokens_need_their_key_to_refresh() {
        let store = TokenStore::default();
        let access = store.issue_access("c", None, Duration::from_secs(60), Some("jkt-a".into()));
        assert_eq!(store.jkt_of(&access).as_deref(), Some("jkt-a"));
        let family = store.new_family();
        let token = store.issue_refresh("c", None, family, Some("jkt-a".into()));
        assert_eq!(store.jkt_of(&token).as_deref(), Some("jkt-a"));
        assert_eq!(store.jkt_of("never-issued"), None);
        assert_eq!(
            store.redeem_refresh(&token, "c", None, None, true, false),
            Err(RefreshRejected::DpopProofMissing)
        );
        assert_eq!(
            store.redeem_refresh(&token, "c", None, Some("jkt-b"), true, false),
            Err(RefreshRejected::DpopKeyMismatch)
        );
        assert_eq!(
            store.redeem_refresh(&token, "c", None, Some("jkt-a"), true, false),
            Ok(Redeemed {
                scope: None,
                family,
                jkt: Some("jkt-a".into()),
            })
        );
        let unbound = store.issue_refresh("c", None, family, None);
        assert!(
            store
                .redeem_refresh(&unbound, "c", None, Some("jkt-b"), true, false)
                .is_ok(),
            "an unbound grant may be refreshed with a proof"
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
