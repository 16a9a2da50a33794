//! The nonces servers have handed the client (RFC 9449 sections 8 and 9), one per origin.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Uri};
use tokio::sync::watch;

use super::proof::check_nonce;

/// `DPoP-Nonce`, the header a server sends a nonce in (RFC 9449 section 8.1).
pub(crate) const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// The most origins whose nonces are kept. A client talks to a handful of servers; past
/// this, the map starts over rather than grow without bound (a forgotten nonce costs one
/// `use_dpop_nonce` round trip).
const MAX_ORIGINS: usize = 256;

/// The latest nonce from each origin, and whether a first request to it is out.
#[derive(Default)]
pub(super) struct Nonces {
    by_origin: Mutex<HashMap<String, OriginNonce>>,
    /// Whether any server has sent one: most never do, and then a proof costs no lock.
    any: AtomicBool,
    /// The fingerprint of the last origin the gate found answered: while no server has sent
    /// a nonce, requests to it pass the gate without the lock. (A fingerprint that two
    /// origins share would let a request to the other pass unheld: it may then pay a nonce
    /// replay, nothing worse.)
    open: AtomicU64,
}

#[derive(Default)]
struct OriginNonce {
    nonce: Option<Arc<str>>,
    /// Whether a response from the origin has been read: from then on, requests to it go
    /// with whatever nonce is known (none, for a server that wants none).
    answered: bool,
    /// While the origin's first request is out: dropped when its response is read or it
    /// is abandoned, which wakes the requests subscribed to it.
    probe: Option<watch::Sender<()>>,
}

/// Where a request stands at its origin's nonce gate (see [`Nonces::gate`]).
pub(crate) enum Gate {
    /// Send it now, with this nonce (the latest the origin sent, if any).
    Open(Option<Arc<str>>),
    /// Send it now: it is the origin's first request, and others wait for its response.
    /// Call [`Nonces::release`] when its response is read or it is abandoned.
    Probe,
    /// Wait: the origin's first request is out. This wakes when it is answered or
    /// abandoned; then ask again.
    Wait(watch::Receiver<()>),
}

impl Nonces {
    pub(super) fn get(&self, uri: &Uri) -> Option<Arc<str>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let origin = origin(uri)?;
        crate::sync::lock(&self.by_origin)
            .get(&origin)
            .and_then(|known| known.nonce.clone())
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
        let known = entry(&mut by_origin, origin);
        if known.nonce.as_deref() == Some(nonce) {
            return false;
        }
        known.nonce = Some(Arc::from(nonce));
        self.any.store(true, Ordering::Release);
        true
    }

    /// Whether a request to `uri` should wait for the nonce its origin's first response may
    /// bring. Until one response from the origin has been read, the first request goes
    /// alone (it is the [probe](Gate::Probe)) and the others wait; a burst of cold requests
    /// to a server that wants nonces then costs one `use_dpop_nonce` round trip, not one
    /// each. A relative URI has no origin, and is never held.
    pub(crate) fn gate(&self, uri: &Uri) -> Gate {
        let fingerprint = crate::authorizer::fingerprint(uri);
        if !self.any.load(Ordering::Acquire)
            && fingerprint != 0
            && self.open.load(Ordering::Relaxed) == fingerprint
        {
            return Gate::Open(None);
        }
        let Some(origin) = origin(uri) else {
            return Gate::Open(None);
        };
        let mut by_origin = crate::sync::lock(&self.by_origin);
        let known = entry(&mut by_origin, origin);
        if known.answered || known.nonce.is_some() {
            if known.answered {
                self.open.store(fingerprint, Ordering::Relaxed);
            }
            return Gate::Open(known.nonce.clone());
        }
        match &known.probe {
            Some(probe) => Gate::Wait(probe.subscribe()),
            None => {
                known.probe = Some(watch::channel(()).0);
                Gate::Probe
            }
        }
    }

    /// The probe to `uri`'s origin is done: `answered` if its response was read. Wakes the
    /// requests waiting for it.
    pub(crate) fn release(&self, uri: &Uri, answered: bool) {
        let Some(origin) = origin(uri) else {
            return;
        };
        let mut by_origin = crate::sync::lock(&self.by_origin);
        if let Some(known) = by_origin.get_mut(&origin) {
            known.answered |= answered;
            known.probe = None;
        }
    }
}

/// The origin's entry, made if need be. Past `MAX_ORIGINS` the map starts over (which
/// wakes every waiting request: their probes are forgotten).
fn entry(by_origin: &mut HashMap<String, OriginNonce>, origin: String) -> &mut OriginNonce {
    if by_origin.len() >= MAX_ORIGINS && !by_origin.contains_key(&origin) {
        by_origin.clear();
    }
    by_origin.entry(origin).or_default()
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
    fn the_first_request_to_an_origin_goes_alone_until_it_is_answered() {
        let nonces = Nonces::default();
        let api: Uri = "https://api.example.com/a".parse().unwrap();
        let other: Uri = "https://other.example.com/a".parse().unwrap();
        assert!(matches!(nonces.gate(&api), Gate::Probe));
        let Gate::Wait(waiting) = nonces.gate(&api) else {
            panic!("a second request waits");
        };
        assert!(
            matches!(nonces.gate(&other), Gate::Probe),
            "origins are apart"
        );
        // Abandoned: the waiting request wakes and becomes the probe.
        nonces.release(&api, false);
        assert!(waiting.has_changed().is_err(), "woken");
        assert!(matches!(nonces.gate(&api), Gate::Probe));
        nonces.update(&api, &with_nonce("n-1"));
        nonces.release(&api, true);
        assert!(matches!(nonces.gate(&api), Gate::Open(Some(_))));
        // A server that sends no nonce opens the gate once answered.
        nonces.release(&other, true);
        assert!(matches!(nonces.gate(&other), Gate::Open(None)));
        assert!(matches!(
            nonces.gate(&"/relative".parse().unwrap()),
            Gate::Open(None)
        ));
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
