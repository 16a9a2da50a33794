//! The server's metadata document (RFC 8414).

use http::StatusCode;

use super::rejection::HttpResponse;
use super::router::{MTLS_REVOCATION_PATH, MTLS_TOKEN_PATH, REVOCATION_PATH, TOKEN_PATH};
use super::token_endpoint::{JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT};
use super::AuthState;
use crate::dpop::SIGNING_ALGS;
use crate::response::token_json;
use crate::ClientAuthMethod;

impl AuthState {
    /// RFC 8414 section 3.2: this server's metadata.
    pub(super) fn metadata(&self) -> HttpResponse {
        let issuer = self.issuer.get().cloned().unwrap_or_default();
        let mut body = serde_json::json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
            "revocation_endpoint": format!("{issuer}{REVOCATION_PATH}"),
            "token_endpoint_auth_methods_supported": self.auth_methods_supported(),
            "revocation_endpoint_auth_methods_supported": self.auth_methods_supported(),
            "grant_types_supported": [
                "client_credentials",
                "refresh_token",
                TOKEN_EXCHANGE_GRANT,
                JWT_BEARER_GRANT,
            ],
            "response_types_supported": [],
        });
        if self.dpop.is_some() {
            body["dpop_signing_alg_values_supported"] = SIGNING_ALGS.as_slice().into();
        }
        if issuer.starts_with("https://") {
            let methods = &mut body["token_endpoint_auth_methods_supported"];
            if let Some(methods) = methods.as_array_mut() {
                methods.push("tls_client_auth".into());
                methods.push("self_signed_tls_client_auth".into());
            }
            body["mtls_endpoint_aliases"] = serde_json::json!({
                "token_endpoint": format!("{issuer}{MTLS_TOKEN_PATH}"),
                "revocation_endpoint": format!("{issuer}{MTLS_REVOCATION_PATH}"),
            });
        }
        token_json(StatusCode::OK, &body)
    }

    fn auth_methods_supported(&self) -> Vec<&'static str> {
        [
            ClientAuthMethod::Basic,
            ClientAuthMethod::Post,
            ClientAuthMethod::PrivateKeyJwt,
        ]
        .into_iter()
        .filter(|method| self.accepts(*method))
        .map(|method| match method {
            ClientAuthMethod::Basic => "client_secret_basic",
            ClientAuthMethod::Post => "client_secret_post",
            _ => "private_key_jwt",
        })
        .collect()
    }
}
