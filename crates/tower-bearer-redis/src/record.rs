//! The JSON record a token is stored as, before sealing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tower_bearer::dpop::DpopKey;
use tower_bearer::store::{StoreError, StoreErrorKind};
use tower_bearer::{Token, TokenType};
use zeroize::Zeroizing;

use crate::envelope::unreadable;

#[derive(Serialize)]
struct RecordOut<'a> {
    access_token: &'a str,
    token_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    /// For a DPoP-bound token: the thumbprint of its key (RFC 9449), which a replica must
    /// hold to use it. The key itself is never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    jkt: Option<&'a str>,
}

#[derive(Deserialize)]
struct RecordIn {
    access_token: String,
    token_type: String,
    expires_at_ms: Option<u64>,
    scope: Option<String>,
    jkt: Option<String>,
}

/// `token` as JSON; the buffer is zeroed when dropped.
pub(crate) fn encode(token: &Token) -> Zeroizing<Vec<u8>> {
    let record = RecordOut {
        access_token: token.secret().expose_secret(),
        token_type: token.token_type().as_str(),
        expires_at_ms: token.expires_at_system().map(unix_ms),
        scope: token.scope(),
        jkt: token.dpop_key().map(DpopKey::thumbprint),
    };
    // Serializing strings and integers into a Vec cannot fail.
    Zeroizing::new(serde_json::to_vec(&record).unwrap_or_default())
}

/// The token in `json`, or `None` if it has expired.
pub(crate) fn decode(json: &[u8]) -> Result<Option<Token>, StoreError> {
    let record: RecordIn = serde_json::from_slice(json).map_err(|_| {
        unreadable("the stored token record is not valid JSON of the expected shape")
    })?;
    let mut secret = Zeroizing::new(record.access_token);
    let token_type = TokenType::parse(&record.token_type).ok_or_else(|| {
        unreadable(format!(
            "the stored token has an unknown token type {:?}",
            record.token_type
        ))
    })?;
    let mut builder = Token::builder(std::mem::take(&mut *secret)).token_type(token_type.clone());
    if token_type == TokenType::DPoP {
        builder = builder.dpop_key(held_key(record.jkt.as_deref())?);
    }
    if let Some(at) = record.expires_at_ms {
        let remaining = at.saturating_sub(unix_ms(SystemTime::now()));
        if remaining == 0 {
            return Ok(None);
        }
        builder = builder.expires_in(Duration::from_millis(remaining));
    }
    if let Some(scope) = record.scope {
        builder = builder.scope(scope);
    }
    builder
        .build()
        .map(Some)
        .map_err(|_| unreadable("the stored token value is not a valid token"))
}

/// The key a stored DPoP-bound token is bound to, if this process holds it.
fn held_key(jkt: Option<&str>) -> Result<DpopKey, StoreError> {
    let jkt = jkt.ok_or_else(|| unreadable("the stored DPoP token does not name its key"))?;
    DpopKey::held(jkt).ok_or_else(|| {
        StoreError::new(
            StoreErrorKind::Config,
            format!(
                "the stored token is bound to the DPoP key with thumbprint {jkt}, which this \
                 replica does not hold: replicas that share tokens under one store key must \
                 load the same DPoP key, or use store keys of their own"
            ),
        )
    })
}

/// Milliseconds since the Unix epoch; `0` for times before it.
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_type_scope_and_expiry() {
        let token = Token::builder("abc")
            .expires_in(Duration::from_secs(60))
            .scope("read")
            .build()
            .unwrap();
        let back = decode(&encode(&token)).unwrap().unwrap();
        assert_eq!(back.secret().expose_secret(), "abc");
        assert_eq!(back.scope(), Some("read"));
        let (a, b) = (
            unix_ms(token.expires_at_system().unwrap()),
            unix_ms(back.expires_at_system().unwrap()),
        );
        assert!(a.abs_diff(b) < 1000);
    }

    #[test]
    fn a_dpop_token_keeps_its_key_for_a_replica_that_holds_it_and_no_other() {
        let key = DpopKey::generate_es256().unwrap();
        let token = Token::builder("abc")
            .expires_in(Duration::from_secs(60))
            .dpop_key(key.clone())
            .build()
            .unwrap();
        let record = encode(&token);
        let text = String::from_utf8(record.to_vec()).unwrap();
        assert!(text.contains(key.thumbprint()), "{text}");
        assert!(
            !text.contains("\"d\""),
            "no private key in the record: {text}"
        );
        let back = decode(&record).unwrap().unwrap();
        assert_eq!(back.dpop_key().unwrap().thumbprint(), key.thumbprint());

        // A record that says DPoP but names no key is unreadable, not a bearer token.
        let text = text.replace(&format!(r#","jkt":"{}""#, key.thumbprint()), "");
        assert_eq!(
            decode(text.as_bytes()).unwrap_err().kind(),
            StoreErrorKind::Unreadable
        );

        let jkt = key.thumbprint().to_owned();
        drop((key, token, back));
        let error = decode(&record).unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Config);
        assert!(error.to_string().contains(&jkt), "{error}");
        assert!(!error.to_string().contains("abc"));
    }

    #[test]
    fn expired_records_read_as_none() {
        let json = br#"{"access_token":"abc","token_type":"Bearer","expires_at_ms":1}"#;
        assert!(decode(json).unwrap().is_none());
    }

    #[test]
    fn bad_records_are_unreadable_without_the_secret() {
        let bad_type = br#"{"access_token":"sekrit","token_type":"Magic"}"#;
        let error = decode(bad_type).unwrap_err();
        assert!(!error.to_string().contains("sekrit"));
        assert!(decode(b"{not json").is_err());
        let bad_value = br#"{"access_token":"a b\n","token_type":"Bearer"}"#;
        assert!(!decode(bad_value).unwrap_err().to_string().contains("a b"));
    }
}
