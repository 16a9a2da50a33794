//! Tokens the mock authorization server issued, shared with the mock API that checks them.

use std::collections::HashMap;
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
    refresh: Mutex<HashMap<String, RefreshGrant>>,
}

#[derive(Debug)]
struct AccessGrant {
    scope: Option<String>,
    // The tokio clock, so tests on paused time can expire tokens by advancing it.
    expires_at: Instant,
    revoked: bool,
}

#[derive(Debug)]
struct RefreshGrant {
    client_id: String,
    scope: Option<String>,
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
    /// Never issued, revoked, or already rotated away.
    Unknown,
    /// Issued to another client (RFC 6749 section 6).
    OtherClient,
    /// The request asked for a scope the refresh token was not granted.
    ScopeExceeded,
}

impl TokenStore {
    /// Issues an access token for `scope` that expires `lifetime` from now.
    pub(crate) fn issue_access(&self, scope: Option<String>, lifetime: Duration) -> String {
        let token = random_token();
        let grant = AccessGrant {
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
        lock(&self.refresh).remove(token);
    }

    /// Revokes every access token issued so far; refresh tokens stay usable.
    pub(crate) fn revoke_all_access(&self) {
        for grant in lock(&self.access).values_mut() {
            grant.revoked = true;
        }
    }

    /// Issues a refresh token bound to `client_id` and `scope`.
    pub(crate) fn issue_refresh(&self, client_id: &str, scope: Option<String>) -> String {
        let token = random_token();
        let grant = RefreshGrant {
            client_id: client_id.to_owned(),
            scope,
        };
        lock(&self.refresh).insert(token.clone(), grant);
        token
    }

    /// Redeems a refresh token once: on success it is gone (rotation) and the caller
    /// issues a new one for the returned scope.
    ///
    /// `requested_scope` may narrow the granted scope, never widen it (RFC 6749
    /// section 6); without it the granted scope carries over. A rejected token stays usable.
    pub(crate) fn redeem_refresh(
        &self,
        token: &str,
        client_id: &str,
        requested_scope: Option<&str>,
    ) -> Result<Option<String>, RefreshRejected> {
        let mut refresh = lock(&self.refresh);
        let grant = refresh.get(token).ok_or(RefreshRejected::Unknown)?;
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
        refresh.remove(token);
        Ok(scope)
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
        let token = store.issue_access(Some("read".into()), Duration::from_secs(60));
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
        let first = store.issue_access(None, Duration::from_secs(60));
        let second = store.issue_access(None, Duration::from_secs(60));
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
        let token = store.issue_refresh("alice", Some("read write".into()));
        assert_eq!(
            store.redeem_refresh(&token, "bob", None),
            Err(RefreshRejected::OtherClient)
        );
        assert_eq!(
            store.redeem_refresh(&token, "alice", Some("read admin")),
            Err(RefreshRejected::ScopeExceeded)
        );
        assert_eq!(
            store.redeem_refresh(&token, "alice", Some("write")),
            Ok(Some("write".into()))
        );
        assert_eq!(
            store.redeem_refresh(&token, "alice", None),
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
