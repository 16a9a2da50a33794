//! The revocation endpoint (RFC 7009).

use std::sync::atomic::Ordering;

use http::StatusCode;

use super::client_auth::HeaderCredentials;
use super::form::{param, reject_repeated, Params};
use super::rejection::{Answer, Rejection};
use super::AuthState;
use crate::client_certificate::PeerCertificate;
use crate::response::text;

impl AuthState {
    /// RFC 7009 section 2: revokes `token` (access or refresh, whatever the hint says) and
    /// answers 200 with an empty body, also for tokens it does not know (section 2.2).
    pub(super) fn revocation(
        &self,
        params: &Params,
        header: Option<HeaderCredentials>,
        peer: Option<&PeerCertificate>,
    ) -> Answer {
        reject_repeated(params)?;
        let client_id = self.authenticate(params, header, peer)?;
        let token = param(params, "token")
            .ok_or_else(|| Rejection::invalid_request("the token parameter is missing"))?;
        match param(params, "token_type_hint") {
            None | Some("access_token" | "refresh_token") => {}
            Some(_) => {
                return Err(Rejection::bad_request(
                    "unsupported_token_type",
                    "this server revokes access_token and refresh_token",
                ))
            }
        }
        if self.tokens.revoke_as(token, &client_id) {
            self.tokens_revoked.fetch_add(1, Ordering::SeqCst);
        }
        Ok(text(StatusCode::OK, ""))
    }
}
