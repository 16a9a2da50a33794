//! The JSON record an access token is stored as, before sealing.
//!
//! The record holds no instant: replicas' wall clocks differ, so none trusts another's. The
//! remaining lifetime of a token read back is the Redis key's own time to live (`PTTL`, read
//! with the value), which Redis counts down on one clock for every reader. The record keeps
//! the lifetime the token had when it was written (`lifetime_ms`), which only says that the
//! token expires and caps what the key's time to live may claim.

use std::time::Duration;

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
    /// The token's lifetime when written, in milliseconds; absent for a token that does not
    /// expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    lifetime_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    /// For a DPoP-bound token: the thumbprint of its key (RFC 9449), which the reader's
    /// store key must carry. The key itself is never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    jkt: Option<&'a str>,
}

#[derive(Deserialize)]
struct RecordIn {
    access_token: String,
    token_type: String,
    lifetime_ms: Option<u64>,
    scope: Option<String>,
    jkt: Option<String>,
}

/// `token`, whose remaining lifetime is `lifetime` (`None`: it does not expire), as JSON;
/// the buffer is zeroed when dropped.
pub(crate) fn encode(token: &Token, lifetime: Option<Duration>) -> Zeroizing<Vec<u8>> {
    let record = RecordOut {
        access_token: token.secret().expose_secret(),
        token_type: token.token_type().as_str(),
        lifetime_ms: lifetime.map(millis),
        scope: token.scope(),
        jkt: token.dpop_key().map(DpopKey::thumbprint),
    };
    // Serializing strings and integers into a Vec cannot fail.
    Zeroizing::new(serde_json::to_vec(&record).unwrap_or_default())
}

/// The token in `json`, or `None` if it has expired.
///
/// `time_to_live` is the Redis key's (`None`: the key does not expire), the authority on
/// how long the token has left. A DPoP-bound token is built with `dpop_key`, the key the
/// reader's store key carries, if its thumbprint is the one the record names.
pub(crate) fn decode(
    json: &[u8],
    time_to_live: Option<Duration>,
    dpop_key: Option<&DpopKey>,
) -> Result<Option<Token>, StoreError> {
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
        builder = builder.dpop_key(bound_key(record.jkt.as_deref(), dpop_key)?);
    }
    if let Some(lifetime_ms) = record.lifetime_ms {
        let time_to_live = time_to_live.ok_or_else(|| {
            unreadable(
                "the stored token expires but its Redis key does not; it was not written by \
                 this crate",
            )
        })?;
        let remaining = time_to_live.min(Duration::from_millis(lifetime_ms));
        if remaining.is_zero() {
            return Ok(None);
        }
        builder = builder.expires_in(remaining);
    }
    if let Some(scope) = record.scope {
        builder = builder.scope(scope);
    }
    builder
        .build()
        .map(Some)
        .map_err(|_| unreadable("the stored token value is not a valid token"))
}

/// The key a stored DPoP-bound token is bound to: the reader's, if it is that key.
fn bound_key(jkt: Option<&str>, carried: Option<&DpopKey>) -> Result<DpopKey, StoreError> {
    let jkt = jkt.ok_or_else(|| unreadable("the stored DPoP token does not name its key"))?;
    let config = |message: String| StoreError::new(StoreErrorKind::Config, message);
    match carried {
        Some(key) if key.thumbprint() == jkt => Ok(key.clone()),
        Some(key) => Err(config(format!(
            "the stored token is bound to the DPoP key with thumbprint {jkt}, but the store \
             key carries the DPoP key with thumbprint {}: replicas that share tokens under \
             one store key must load the same DPoP key",
            key.thumbprint()
        ))),
        None => Err(config(format!(
            "the stored token is bound to the DPoP key with thumbprint {jkt}, but the store \
             key carries no DPoP key: build it with `StoreKeyBuilder::dpop_key`"
        ))),
    }
}

/// Whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn expires_in(token: &Token) -> Duration {
        token.expires_at().unwrap() - tokio::time::Instant::now()
    }

    #[test]
    fn round_trip_keeps_type_scope_and_expiry() {
        let token = Token::builder("abc")
            .expires_in(MINUTE)
            .scope("read")
            .build()
            .unwrap();
        let back = decode(&encode(&token, Some(MINUTE)), Some(MINUTE), None)
            .unwrap()
            .unwrap();
        assert_eq!(back.secret().expose_secret(), "abc");
        assert_eq!(back.scope(), Some("read"));
        assert!(expires_in(&back) <= MINUTE);
        assert!(expires_in(&back) > MINUTE - Duration::from_secs(5));
    }

    #[test]
    fn the_keys_time_to_live_decides_the_remaining_lifetime() {
        let token = Token::builder("abc").expires_in(MINUTE).build().unwrap();
        // The writer claims 630 s; Redis drops the key in 60 s.
        let record = encode(&token, Some(Duration::from_secs(630)));
        let text = String::from_utf8(record.to_vec()).unwrap();
        assert!(text.contains(r#""lifetime_ms":630000"#), "{text}");
        assert!(!text.contains("expires_at"), "no instant is stored: {text}");
        let back = decode(&record, Some(MINUTE), None).unwrap().unwrap();
        assert!(expires_in(&back) <= MINUTE, "{:?}", expires_in(&back));
        // ... and a key that claims longer than the record is capped by the record.
        let back = decode(&encode(&token, Some(MINUTE)), Some(MINUTE * 10), None)
            .unwrap()
            .unwrap();
        assert!(expires_in(&back) <= MINUTE);
        // Expired in Redis's eyes: none.
        assert!(decode(&record, Some(Duration::ZERO), None)
            .unwrap()
            .is_none());
        // An expiring token in a key without a time to live was not written by us.
        assert_eq!(
            decode(&record, None, None).unwrap_err().kind(),
            StoreErrorKind::Unreadable
        );
    }

    #[test]
    fn a_token_without_expiry_reads_without_expiry() {
        let token = Token::builder("abc").build().unwrap();
        let record = encode(&token, None);
        for time_to_live in [Some(MINUTE), None] {
            let back = decode(&record, time_to_live, None).unwrap().unwrap();
            assert!(back.expires_at().is_none());
        }
    }

    #[test]
    fn a_dpop_token_is_built_with_the_key_the_store_key_carries_and_no_other() {
        let key = DpopKey::generate_es256().unwrap();
        let token = Token::builder("abc")
            .expires_in(MINUTE)
            .dpop_key(key.clone())
            .build()
            .unwrap();
        let record = encode(&token, Some(MINUTE));
        let text = String::from_utf8(record.to_vec()).unwrap();
        assert!(text.contains(key.thumbprint()), "{text}");
        assert!(
            !text.contains("\"d\""),
            "no private key in the record: {text}"
        );
        let back = decode(&record, Some(MINUTE), Some(&key)).unwrap().unwrap();
        assert_eq!(back.dpop_key().unwrap().thumbprint(), key.thumbprint());
        assert_eq!(back.token_type(), &TokenType::DPoP);

        // A record that says DPoP but names no key is unreadable, not a bearer token.
        let unnamed = text.replace(&format!(r#","jkt":"{}""#, key.thumbprint()), "");
        assert_eq!(
            decode(unnamed.as_bytes(), Some(MINUTE), Some(&key))
                .unwrap_err()
                .kind(),
            StoreErrorKind::Unreadable
        );

        // No key carried, or another one: a Config error naming thumbprints, never the token.
        let other = DpopKey::generate_es256().unwrap();
        for carried in [None, Some(&other)] {
            let error = decode(&record, Some(MINUTE), carried).unwrap_err();
            assert_eq!(error.kind(), StoreErrorKind::Config);
            let text = error.to_string();
            assert!(text.contains(key.thumbprint()), "{text}");
            assert!(!text.contains("abc"), "{text}");
        }
        let error = decode(&record, Some(MINUTE), Some(&other)).unwrap_err();
        assert!(error.to_string().contains(other.thumbprint()), "{error}");
    }

    #[test]
    fn bad_records_are_unreadable_without_the_secret() {
        let bad_type = br#"{"access_token":"sekrit","token_type":"Magic"}"#;
        let error = decode(bad_type, None, None).unwrap_err();
        assert!(!error.to_string().contains("sekrit"));
        assert!(decode(b"{not json", None, None).is_err());
        let bad_value = br#"{"access_token":"a b\n","token_type":"Bearer"}"#;
        assert!(!decode(bad_value, None, None)
            .unwrap_err()
            .to_string()
            .contains("a b"));
    }
}
