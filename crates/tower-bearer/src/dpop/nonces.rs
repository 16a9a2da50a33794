//! The nonces servers have handed the client (RFC 9449 sections 8 and 9), one per origin.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Uri};

use super::proof::check_nonce;

/// `DPoP-Nonce`, the header a server sends a nonce in (RFC 9449 section 8.1).
pub(crate) const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// The most origins whose nonces are kept. A client talks to a handful of servers; past
/// this, the map starts over rather than grow without bound (a forgotten nonce costs one
/// `use_dpop_nonce` round trip).
const MAX_ORIGINS: usize = 256;

/// The latest nonce from each origin.
#[derive(Default)]
pub(super) struct Nonces {
    by_origin: Mutex<HashMap<String, Arc<str>>>,
    /// Whether any server has sent one: most never do, and then a proof costs no lock.
    any: AtomicBool,
}

impl Nonces {
    pub(super) fn get(&self, uri: &Uri) -> Option<Arc<str>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let origin = origin(uri)?;
        crate::sync::lock(&self.by_origin).get(&origin).cloned()
    }

    /// Keeps the nonce in `headers`, if they carry a valid one; whether it is new.
    pub(super) fn update(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers
            .get(DPOP_NONCE)
            .and_then(|value| value.to_str().ok())
            .filter(|nonce| check_nonce(nonce).is_ok())
        else {
            return false;
        };
        let Some(origin) = origin(uri) else {
            return false;
        };
        let mut by_origin = crate::sync::lock(&self.by_origin);
        if by_origin
            .get(&origin)
            .is_some_and(|known| **known == *nonce)
        {
            return false;
        }
        if by_origin.len() >= MAX_ORIGINS && !by_origin.contains_key(&origin) {
            by_origin.clear();
        }
        by_origin.insert(origin, Arc::from(nonce));
        self.any.store(true, Ordering::Release);
        true
    }
}

/// `scheme://host:port`, lowercased, with the scheme's default port filled in.
fn origin(uri: &Uri) -> Option<String> {
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    })?;
    Some(format!("{scheme}://{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_nonce(nonce: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(DPOP_NONCE, nonce.parse().unwrap());
        headers
    }

    #[test]
    fn a_nonce_is_kept_per_origin() {
        let nonces = Nonces::default();
        let api: Uri = "https://API.example.com/orders?x=1".parse().unwrap();
        assert!(nonces.update(&api, &with_nonce("n-1")));
        assert!(!nonces.update(&api, &with_nonce("n-1")), "not new");
        assert_eq!(
            nonces
                .get(&"https://api.example.com:443/other".parse().unwrap())
                .as_deref(),
            Some("n-1")
        );
        assert_eq!(
            nonces.get(&"https://auth.example.com/token".parse().unwrap()),
            None
        );
        assert!(nonces.update(&api, &with_nonce("n-2")));
        assert_eq!(nonces.get(&api).as_deref(), Some("n-2"));
    }

    #[test]
    fn a_nonce_that_is_not_nqchar_is_ignored() {
        let nonces = Nonces::default();
        let api: Uri = "https://api.example.com/".parse().unwrap();
        assert!(!nonces.update(&api, &with_nonce("has space")));
        assert!(!nonces.update(&api, &with_nonce("quote\"")));
        assert!(!nonces.update(&api, &HeaderMap::new()));
        assert_eq!(nonces.get(&api), None);
        assert!(!nonces.update(&"/relative".parse().unwrap(), &with_nonce("n")));
    }

    #[test]
    fn the_map_is_bounded() {
        let nonces = Nonces::default();
        for port in 0..(MAX_ORIGINS as u16 + 10) {
            let uri: Uri = format!("https://host:{}/", 1000 + port).parse().unwrap();
            nonces.update(&uri, &with_nonce("n"));
        }
        assert!(crate::sync::lock(&nonces.by_origin).len() <= MAX_ORIGINS);
    }
}
