//! Token revocation (RFC 7009): telling the authorization server that a token is no longer
//! needed, so it stops being accepted before it expires.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use secrecy::ExposeSecret;
use tower_bearer::{FetchError, Token, TokenCache};

use crate::messages;
use crate::response::ErrorResponse;
use crate::retry::Failure;
use crate::token_request::TokenEndpoint;
use crate::transport::{RawResponse, Target};
use crate::OAuthError;

/// What kind of token is being revoked, sent as `token_type_hint` (RFC 7009 section 2.1) so
/// the server looks in the right place first. A server that does not find the token there
/// looks elsewhere, so a wrong hint costs time, not correctness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TokenTypeHint {
    AccessToken,
    /// RFC 7009 section 2.1 says a server should also revoke the access tokens issued with
    /// it, when it can.
    RefreshToken,
}

impl TokenTypeHint {
    /// The registered name: `access_token` or `refresh_token`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            TokenTypeHint::AccessToken => "access_token",
            TokenTypeHint::RefreshToken => "refresh_token",
        }
    }
}

impl fmt::Display for TokenTypeHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Revoking a token failed.
///
/// The server answered with an error ([`oauth_error`](Self::oauth_error) says which), could
/// not be reached, or no revocation endpoint was configured
/// ([`is_not_configured`](Self::is_not_configured)). A revocation that found the token
/// already invalid or unknown is not an error: RFC 7009 section 2.2 has the server answer
/// 200 for it, as the token is unusable either way.
///
/// The message never contains the token or the client secret.
#[derive(Debug)]
#[non_exhaustive]
pub struct RevocationError {
    inner: FetchError,
    not_configured: bool,
}

impl RevocationError {
    pub(crate) fn not_configured(client_id: &str) -> Self {
        RevocationError {
            inner: messages::revocation_not_configured(client_id),
            not_configured: true,
        }
    }

    /// Whether trying again later may succeed: the server could not be reached, timed out,
    /// answered 5xx, 429 or 408 (503 is how RFC 7009 section 2.2.1 says "not now").
    pub fn is_transient(&self) -> bool {
        self.inner.is_transient()
    }

    /// Whether the source has no revocation endpoint to send the request to.
    pub fn is_not_configured(&self) -> bool {
        self.not_configured
    }

    /// How long the server asked to wait before trying again (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after()
    }

    /// The server's OAuth error response, such as `unsupported_token_type` or
    /// `invalid_client`, if it sent one.
    pub fn oauth_error(&self) -> Option<&OAuthError> {
        self.inner.source()?.downcast_ref::<OAuthError>()
    }
}

impl fmt::Display for RevocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.message())
    }
}

impl StdError for RevocationError {
    /// An [`OAuthError`] when the server sent an error response, an
    /// [`EndpointError`](crate::EndpointError) when the request failed otherwise.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}

impl From<FetchError> for RevocationError {
    fn from(inner: FetchError) -> Self {
        RevocationError {
            inner,
            not_configured: false,
        }
    }
}

impl TokenEndpoint {
    /// Revokes an access token; what `revoke` on each source does.
    pub(crate) async fn revoke_access_token(&self, token: &Token) -> Result<(), RevocationError> {
        self.revoke(token.secret().expose_secret(), TokenTypeHint::AccessToken)
            .await
    }

    /// Revokes the token `cache` holds, if any, and drops it from the cache; what
    /// `revoke_cached` on each source does.
    pub(crate) async fn revoke_cached(&self, cache: &TokenCache) -> Result<bool, RevocationError> {
        let Some(token) = cache.cached() else {
            return Ok(false);
        };
        self.revoke_access_token(&token).await?;
        cache.invalidate(&token);
        Ok(true)
    }

    /// Revokes `token` at the revocation endpoint with the client's credentials, retrying
    /// per the [`RetryPolicy`](crate::RetryPolicy) (revocation is idempotent, but the
    /// policy's `retry_processed` is honoured all the same).
    pub(crate) async fn revoke(
        &self,
        token: &str,
        hint: TokenTypeHint,
    ) -> Result<(), RevocationError> {
        let Some(url) = &self.revocation_url else {
            return Err(RevocationError::not_configured(self.client.client_id()));
        };
        let target = Target {
            name: "revocation",
            url,
        };
        let form = [("token", token), ("token_type_hint", hint.as_str())];
        let ((), attempt) = self
            .retry
            .run(target, || async {
                let response = self
                    .post_form(&self.client, target, &form, &[token])
                    .await?;
                self.interpret_revocation(target, hint, response)
            })
            .await?;
        tracing::debug!(
            revocation_url = %url,
            client_id = %self.client.client_id(),
            token_type_hint = %hint,
            attempt,
            "token revoked"
        );
        Ok(())
    }

    /// Nothing on success (RFC 7009 section 2.2); otherwise the failure, read as every
    /// error answer is ([`ErrorResponse`]).
    fn interpret_revocation(
        &self,
        target: Target<'_>,
        hint: TokenTypeHint,
        response: RawResponse,
    ) -> Result<(), Failure> {
        if response.status.is_success() {
            return Ok(());
        }
        let refusal = ErrorResponse::read(&response);
        let error = match refusal.oauth.clone() {
            Some(oauth) => messages::revocation_refused(target, hint, &self.client, oauth),
            None => messages::unexpected_status(target, response.status),
        };
        Err(Failure {
            error: refusal.with_retry_after(error),
            retry: refusal.retry(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_have_their_registered_names() {
        assert_eq!(TokenTypeHint::AccessToken.to_string(), "access_token");
        assert_eq!(TokenTypeHint::RefreshToken.as_str(), "refresh_token");
    }

    #[test]
    fn not_configured_says_what_to_do() {
        let error = RevocationError::not_configured("svc");
        assert!(error.is_not_configured());
        assert!(!error.is_transient());
        assert!(error.oauth_error().is_none());
        assert!(error.to_string().contains("revocation_url"), "{error}");
    }
}
