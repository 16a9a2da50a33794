//! Checking a JWT assertion (RFC 7523 section 3), as a `private_key_jwt` client
//! authentication (section 2.2) and as a JWT bearer grant (section 2.1).

use std::collections::HashMap;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::rejection::{Answer, Rejection};
use super::router::{REVOCATION_PATH, TOKEN_PATH};
use super::AuthState;
use crate::{lock, TestKey};

impl AuthState {
    /// Checks a JWT assertion (RFC 7523 section 3) from one of `issuers`: signature and
    /// `alg`, `aud` naming this server, `exp` ahead, a `jti` never seen. Returns its claims;
    /// failures are rejected with `reject`.
    pub(super) fn verify_jwt(
        &self,
        assertion: &str,
        issuers: &HashMap<String, TestKey>,
        reject: fn(&'static str) -> Rejection,
    ) -> Answer<serde_json::Value> {
        let mut parts = assertion.split('.');
        let (Some(header_part), Some(claims_part), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(reject("the assertion is not a compact JWS"));
        };
        let decode_json = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        };
        let header = decode_json(header_part).ok_or(reject("the assertion header is not JSON"))?;
        let claims = decode_json(claims_part).ok_or(reject("the assertion claims are not JSON"))?;
        let issuer = claims["iss"]
            .as_str()
            .ok_or(reject("the assertion has no iss"))?;
        let key = issuers
            .get(issuer)
            .ok_or(reject("the assertion's iss is not a trusted issuer"))?;
        if header["alg"] != key.algorithm() {
            return Err(reject(
                "the assertion alg is not the issuer's key algorithm",
            ));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| reject("the assertion signature is not base64url"))?;
        let signed = &assertion[..header_part.len() + 1 + claims_part.len()];
        if !key.verify(signed.as_bytes(), &signature) {
            return Err(reject("the assertion signature does not verify"));
        }
        let server = self.issuer.get().cloned().unwrap_or_default();
        let accepted = [
            format!("{server}{TOKEN_PATH}"),
            format!("{server}{REVOCATION_PATH}"),
            server,
        ];
        let audience_ok = match &claims["aud"] {
            serde_json::Value::String(aud) => accepted.contains(aud),
            serde_json::Value::Array(auds) => auds.iter().any(|aud| {
                aud.as_str()
                    .is_some_and(|aud| accepted.iter().any(|a| a == aud))
            }),
            _ => false,
        };
        if !audience_ok {
            return Err(reject("the assertion aud does not name this server"));
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if claims["exp"].as_u64().is_none_or(|exp| exp <= now) {
            return Err(reject("the assertion is expired or has no exp"));
        }
        let jti = claims["jti"]
            .as_str()
            .ok_or(reject("the assertion has no jti"))?;
        if !lock(&self.seen_jtis).insert(jti.to_owned()) {
            return Err(reject("the assertion jti was used before"));
        }
        Ok(claims)
    }
}
