//! DPoP proofs (RFC 9449 section 4.2): a JWT signed for one request, over its method and URI.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderValue, Method, Uri};
use ring::rand::SecureRandom;
use sha2::{Digest, Sha256};

use super::{DpopError, DpopKey};

/// Random bytes in a `jti`: 128 bits, so that no two proofs share one.
const JTI_BYTES: usize = 16;

/// A SHA-256 digest, as `ath` holds it.
const ATH_DIGEST_BYTES: usize = 32;

/// ES256 (`r || s`) and Ed25519 signatures are both 64 bytes, so the proof gets its exact
/// length up front (and `HeaderValue` takes the buffer without a copy or a reallocation).
const SIGNATURE_BYTES: usize = 64;

impl DpopKey {
    /// A DPoP proof for one request, to send as its `DPoP` header.
    ///
    /// The proof is a JWT signed with this key (RFC 9449 section 4.2). Its claims:
    ///
    /// - `jti`: 128 random bits, new for each proof;
    /// - `htm`: the request method;
    /// - `htu`: the request URI without query and fragment, as [`htu`] writes it;
    /// - `iat`: now, in seconds since the Unix epoch;
    /// - `ath`: with an `access_token`, its hash as [`access_token_hash`] computes it. Pass
    ///   the token on calls to a resource server (section 7), not to the token endpoint;
    /// - `nonce`: with a `nonce`, the value of the server's latest `DPoP-Nonce` header
    ///   (sections 8 and 9).
    ///
    /// The header value is marked [sensitive](HeaderValue::set_sensitive): like a token, a
    /// proof is a credential until the server stops accepting it.
    ///
    /// Fails with [`DpopError::RelativeUri`] if the URI has no scheme or host,
    /// [`DpopError::InvalidNonce`] if the nonce is not `1*NQCHAR`, and
    /// [`DpopError::Randomness`] or [`DpopError::ClockBeforeEpoch`] if the operating system
    /// cannot give randomness or the time.
    ///
    /// ```
    /// use http::{Method, Request};
    /// use tower_bearer::dpop::DpopKey;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let key = DpopKey::generate_es256()?;
    /// let mut request = Request::get("https://api.example.com/orders?page=2").body(())?;
    /// let proof = key.proof(
    ///     request.method(),
    ///     request.uri(),
    ///     Some("the-access-token"),
    ///     None,
    /// )?;
    /// request.headers_mut().insert("dpop", proof);
    /// // A DPoP-bound token goes with the `DPoP` scheme, not `Bearer` (RFC 9449 section 7.1).
    /// request
    ///     .headers_mut()
    ///     .insert("authorization", "DPoP the-access-token".parse()?);
    /// # assert_eq!(request.headers()["dpop"].to_str()?.split('.').count(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<HeaderValue, DpopError> {
        self.proof_with(method, uri, access_token.map(Ath::Token), nonce)
    }

    /// [`proof`](Self::proof) for a request with an access token whose `ath` is already
    /// computed ([`access_token_hash`]): what the auth layer sends with every request, the
    /// hash made once per token.
    pub fn proof_with_ath(
        &self,
        method: &Method,
        uri: &Uri,
        ath: &str,
        nonce: Option<&str>,
    ) -> Result<HeaderValue, DpopError> {
        self.proof_with(method, uri, Some(Ath::Hash(ath)), nonce)
    }

    fn proof_with(
        &self,
        method: &Method,
        uri: &Uri,
        ath: Option<Ath<'_>>,
        nonce: Option<&str>,
    ) -> Result<HeaderValue, DpopError> {
        let htu = TargetUri::new(uri)?;
        if let Some(nonce) = nonce {
            check_nonce(nonce)?;
        }
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| DpopError::ClockBeforeEpoch)?
            .as_secs();
        let mut jti = [0; JTI_BYTES];
        let inner = &self.inner;
        inner
            .rng
            .fill(&mut jti)
            .map_err(|_| DpopError::Randomness)?;
        let claims = Claims {
            jti: &jti,
            htm: method.as_str(),
            htu: &htu,
            iat,
            ath,
            nonce,
        }
        .to_json();

        // The compact JWS: header and claims, which are what is signed, then the signature.
        // Encoded into one buffer of the exact length: `encode_slice` writes bytes in place,
        // where `encode_string` goes through a chunked writer at several times the cost.
        let prefix = inner.header_prefix.len();
        let claims_len = base64_len(claims.len());
        let mut jws = vec![0; prefix + claims_len + 1 + base64_len(SIGNATURE_BYTES)];
        jws[..prefix].copy_from_slice(inner.header_prefix.as_bytes());
        let written = URL_SAFE_NO_PAD
            .encode_slice(claims, &mut jws[prefix..prefix + claims_len])
            .map_err(|_| DpopError::InvalidHeaderValue)?;
        let signed = prefix + written;
        let signature = inner.signer.sign(&inner.rng, &jws[..signed])?;
        jws[signed] = b'.';
        let written = URL_SAFE_NO_PAD
            .encode_slice(signature, &mut jws[signed + 1..])
            .map_err(|_| DpopError::InvalidHeaderValue)?;
        jws.truncate(signed + 1 + written);

        let mut value = HeaderValue::try_from(jws).map_err(|_| DpopError::InvalidHeaderValue)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// The `htu` of a request to this URI (RFC 9449 section 4.2): scheme, host, port and path,
/// without query and fragment.
///
/// The scheme and host are lowercased, user information is left out, and a port is kept
/// unless it is the scheme's default (443 for `https`, 80 for `http`), as RFC 3986 sections
/// 6.2.2 and 6.2.3 normalise a URI; the path is kept as it is, `/` when empty. Servers
/// compare `htu` after the same normalisation (RFC 9449 section 4.3).
///
/// Fails with [`DpopError::RelativeUri`] when the URI has no scheme or no host.
///
/// ```
/// use http::Uri;
/// use tower_bearer::dpop::htu;
///
/// let uri = Uri::from_static("https://API.example.com:8443/a/b?page=2");
/// assert_eq!(htu(&uri)?, "https://api.example.com:8443/a/b");
/// # Ok::<(), tower_bearer::dpop::DpopError>(())
/// ```
pub fn htu(uri: &Uri) -> Result<String, DpopError> {
    let target = TargetUri::new(uri)?;
    let mut htu = String::with_capacity(target.capacity_hint());
    target.write(&mut htu, String::push);
    Ok(htu)
}

/// The `ath` claim for an access token (RFC 9449 section 4.2): base64url, without padding,
/// of the SHA-256 of the token.
///
/// ```
/// use tower_bearer::dpop::access_token_hash;
///
/// // The example of RFC 9449 section 7.1.
/// assert_eq!(
///     access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
///     "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo",
/// );
/// ```
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// The parts of a request URI that make its `htu`.
struct TargetUri<'a> {
    scheme: &'a str,
    host: &'a str,
    /// `None` when absent or the scheme's default.
    port: Option<u16>,
    path: &'a str,
}

impl<'a> TargetUri<'a> {
    fn new(uri: &'a Uri) -> Result<Self, DpopError> {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(DpopError::RelativeUri);
        };
        let default_port = if scheme.eq_ignore_ascii_case("https") {
            Some(443)
        } else if scheme.eq_ignore_ascii_case("http") {
            Some(80)
        } else {
            None
        };
        Ok(TargetUri {
            scheme,
            host,
            port: uri.port_u16().filter(|&port| Some(port) != default_port),
            path: uri.path(),
        })
    }

    /// At least as many bytes as [`write`](Self::write) writes without escaping.
    fn capacity_hint(&self) -> usize {
        self.scheme.len() + "://".len() + self.host.len() + ":65535".len() + self.path.len()
    }

    /// Writes the `htu`, each character of the scheme, host and path through `push_char`
    /// (which may escape it).
    fn write(&self, out: &mut String, push_char: fn(&mut String, char)) {
        for c in self.scheme.chars() {
            push_char(out, c.to_ascii_lowercase());
        }
        out.push_str("://");
        for c in self.host.chars() {
            push_char(out, c.to_ascii_lowercase());
        }
        if let Some(port) = self.port {
            // Writing to a `String` cannot fail.
            let _ = write!(out, ":{port}");
        }
        // `Uri::path` is `/` for an empty path, as RFC 3986 section 6.2.3 normalises it.
        for c in self.path.chars() {
            push_char(out, c);
        }
    }
}

/// The claims of one proof.
struct Claims<'a> {
    jti: &'a [u8],
    htm: &'a str,
    htu: &'a TargetUri<'a>,
    iat: u64,
    ath: Option<Ath<'a>>,
    nonce: Option<&'a str>,
}

/// What the `ath` claim is made from.
#[derive(Clone, Copy)]
enum Ath<'a> {
    /// The access token, to hash.
    Token(&'a str),
    /// Its hash, base64url already.
    Hash(&'a str),
}

impl Claims<'_> {
    /// The claims as JSON. The member names are fixed; the values that come from the
    /// request (`htm`, `htu`, `nonce`) are escaped.
    fn to_json(&self) -> String {
        const FIXED: usize =
            r#"{"jti":"","htm":"","htu":"","iat":18446744073709551615,"ath":"","nonce":""}"#.len();
        let mut json = String::with_capacity(
            FIXED
                + base64_len(self.jti.len())
                + self.htm.len()
                + self.htu.capacity_hint()
                + base64_len(ATH_DIGEST_BYTES)
                + self.nonce.map_or(0, str::len),
        );
        json.push_str(r#"{"jti":""#);
        URL_SAFE_NO_PAD.encode_string(self.jti, &mut json);
        json.push_str(r#"","htm":"#);
        push_json_string(&mut json, self.htm);
        json.push_str(r#","htu":""#);
        self.htu.write(&mut json, push_json_char);
        // Writing to a `String` cannot fail.
        let _ = write!(json, r#"","iat":{}"#, self.iat);
        match self.ath {
            Some(Ath::Token(access_token)) => {
                json.push_str(r#","ath":""#);
                URL_SAFE_NO_PAD.encode_string(Sha256::digest(access_token.as_bytes()), &mut json);
                json.push('"');
            }
            // Made by `access_token_hash`: base64url, nothing to escape.
            Some(Ath::Hash(hash)) => {
                json.push_str(r#","ath":""#);
                json.push_str(hash);
                json.push('"');
            }
            None => {}
        }
        if let Some(nonce) = self.nonce {
            json.push_str(r#","nonce":"#);
            push_json_string(&mut json, nonce);
        }
        json.push('}');
        json
    }
}

/// Checks a nonce is `1*NQCHAR` (RFC 9449 section 8.1), which also makes it JSON that needs
/// no escaping.
pub(super) fn check_nonce(nonce: &str) -> Result<(), DpopError> {
    if nonce.is_empty() {
        return Err(DpopError::InvalidNonce { position: 0 });
    }
    match nonce.bytes().position(|byte| !is_nqchar(byte)) {
        Some(position) => Err(DpopError::InvalidNonce { position }),
        None => Ok(()),
    }
}

/// `NQCHAR = %x21 / %x23-5B / %x5D-7E`: visible ASCII except `"` and `\`.
fn is_nqchar(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x5b | 0x5d..=0x7e)
}

/// Writes a JSON string (RFC 8259 section 7): quoted, with `"`, `\` and control characters
/// escaped.
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        push_json_char(out, c);
    }
    out.push('"');
}

fn push_json_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str(r#"\""#),
        '\\' => out.push_str(r"\\"),
        // Writing to a `String` cannot fail.
        c if c < ' ' => {
            let _ = write!(out, r"\u{:04x}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// The length of `bytes` bytes in unpadded base64.
fn base64_len(bytes: usize) -> usize {
    base64::encoded_len(bytes, false).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};
    use serde_json::Value;

    use super::*;

    const TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

    /// A proof taken apart, as a server would.
    struct Decoded {
        header: Value,
        claims: Value,
        signing_input: String,
        signature: Vec<u8>,
    }

    fn decode(proof: &HeaderValue) -> Decoded {
        let text = proof.to_str().unwrap();
        let parts: Vec<&str> = text.split('.').collect();
        assert_eq!(parts.len(), 3, "{text}");
        let json = |part: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        Decoded {
            header: json(parts[0]),
            claims: json(parts[1]),
            signing_input: format!("{}.{}", parts[0], parts[1]),
            signature: URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        }
    }

    /// Verifies the signature with the public key rebuilt from the header's `jwk`, as a
    /// server does (RFC 9449 section 4.3).
    fn verify(decoded: &Decoded) -> Result<(), ring::error::Unspecified> {
        let jwk = &decoded.header["jwk"];
        let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        let input = decoded.signing_input.as_bytes();
        match decoded.header["alg"].as_str() {
            Some("ES256") => {
                assert_eq!(jwk["crv"], "P-256");
                let mut point = vec![0x04];
                point.extend(coordinate("x"));
                point.extend(coordinate("y"));
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(input, &decoded.signature)
            }
            Some("EdDSA") => {
                assert_eq!(jwk["crv"], "Ed25519");
                UnparsedPublicKey::new(&ED25519, coordinate("x")).verify(input, &decoded.signature)
            }
            other => panic!("unexpected alg {other:?}"),
        }
    }

    fn now() -> i64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        i64::try_from(now.as_secs()).unwrap()
    }

    fn assert_proofs_verify(key: &DpopKey) {
        let uri = Uri::from_static("https://API.example.com/a/b?x=1#f");
        let with_both = decode(
            &key.proof(
                &Method::POST,
                &uri,
                Some(TOKEN),
                Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
            )
            .unwrap(),
        );
        verify(&with_both).unwrap();

        let header = &with_both.header;
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], key.algorithm());
        assert_eq!(header.as_object().unwrap().len(), 3, "{header}");
        assert_eq!(
            header["jwk"],
            serde_json::from_str::<Value>(key.public_jwk()).unwrap()
        );
        assert!(header["jwk"].get("d").is_none(), "{header}");

        let claims = &with_both.claims;
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://api.example.com/a/b");
        let iat = claims["iat"].as_i64().unwrap();
        assert!((iat - now()).abs() <= 5, "iat {iat} is not now");
        assert_eq!(claims["ath"], access_token_hash(TOKEN));
        assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
        assert_eq!(claims["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");
        let jti = URL_SAFE_NO_PAD
            .decode(claims["jti"].as_str().unwrap())
            .unwrap();
        assert!(jti.len() >= 16);

        let bare = decode(
            &key.proof(
                &Method::GET,
                &Uri::from_static("http://localhost:8080"),
                None,
                None,
            )
            .unwrap(),
        );
        verify(&bare).unwrap();
        assert_eq!(bare.claims["htm"], "GET");
        assert_eq!(bare.claims["htu"], "http://localhost:8080/");
        let members = bare.claims.as_object().unwrap();
        assert!(
            !members.contains_key("ath") && !members.contains_key("nonce"),
            "{members:?}"
        );
        assert_eq!(members.len(), 4, "{members:?}");
    }

    #[test]
    fn es256_proofs_verify() {
        let key = DpopKey::generate_es256().unwrap();
        assert_proofs_verify(&key);
        let decoded = decode(
            &key.proof(
                &Method::GET,
                &Uri::from_static("https://a.test/"),
                None,
                None,
            )
            .unwrap(),
        );
        assert_eq!(
            decoded.signature.len(),
            64,
            "ES256 signatures are r || s, not DER"
        );
    }

    #[test]
    fn ed25519_proofs_verify() {
        assert_proofs_verify(&DpopKey::generate_ed25519().unwrap());
    }

    #[test]
    fn a_changed_proof_does_not_verify() {
        for key in [
            DpopKey::generate_es256().unwrap(),
            DpopKey::generate_ed25519().unwrap(),
        ] {
            let proof = key.proof(
                &Method::GET,
                &Uri::from_static("https://a.test/"),
                None,
                None,
            );
            let mut decoded = decode(&proof.unwrap());
            decoded.signing_input.push('A');
            assert!(verify(&decoded).is_err());
        }
    }

    #[test]
    fn a_proof_from_another_key_does_not_verify() {
        let key = DpopKey::generate_es256().unwrap();
        let other = DpopKey::generate_es256().unwrap();
        let uri = Uri::from_static("https://a.test/");
        let mut decoded = decode(&key.proof(&Method::GET, &uri, None, None).unwrap());
        decoded.header["jwk"] = serde_json::from_str(other.public_jwk()).unwrap();
        assert!(verify(&decoded).is_err());
    }

    #[test]
    fn every_proof_has_its_own_jti() {
        let key = DpopKey::generate_ed25519().unwrap();
        let uri = Uri::from_static("https://a.test/");
        let jtis: HashSet<String> = (0..1000)
            .map(|_| {
                let decoded = decode(&key.proof(&Method::GET, &uri, None, None).unwrap());
                decoded.claims["jti"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(jtis.len(), 1000);
    }

    #[test]
    fn the_proof_header_is_sensitive() {
        let key = DpopKey::generate_ed25519().unwrap();
        let proof = key.proof(
            &Method::GET,
            &Uri::from_static("https://a.test/"),
            None,
            None,
        );
        assert!(proof.unwrap().is_sensitive());
    }

    #[test]
    fn htu_drops_query_fragment_user_info_and_default_ports() {
        let cases = [
            (
                "https://API.example.com/a/b?x=1#f",
                "https://api.example.com/a/b",
            ),
            (
                "HTTPS://Example.COM/Path/Kept",
                "https://example.com/Path/Kept",
            ),
            (
                "https://api.example.com:8443/a",
                "https://api.example.com:8443/a",
            ),
            ("https://api.example.com:443/a", "https://api.example.com/a"),
            ("http://api.example.com:80/a", "http://api.example.com/a"),
            (
                "http://api.example.com:443/a",
                "http://api.example.com:443/a",
            ),
            (
                "https://user:secret@api.example.com/a",
                "https://api.example.com/a",
            ),
            ("https://api.example.com", "https://api.example.com/"),
            ("https://api.example.com?x=1", "https://api.example.com/"),
            ("http://[::1]:8080/a", "http://[::1]:8080/a"),
            (
                "https://api.example.com/%7Euser/a%2Fb",
                "https://api.example.com/%7Euser/a%2Fb",
            ),
        ];
        for (uri, expected) in cases {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(htu(&uri).unwrap(), expected, "{uri}");
        }
    }

    #[test]
    fn a_relative_uri_is_a_typed_error() {
        let key = DpopKey::generate_ed25519().unwrap();
        for relative in ["/a/b?x=1", "*", "api.example.com:443"] {
            let uri: Uri = relative.parse().unwrap();
            assert!(matches!(htu(&uri), Err(DpopError::RelativeUri)), "{uri}");
            let error = key.proof(&Method::GET, &uri, None, None).unwrap_err();
            assert!(matches!(error, DpopError::RelativeUri), "{error:?}");
            assert!(error.to_string().contains("absolute URI"), "{error}");
        }
    }

    #[test]
    fn nonces_outside_nqchar_are_rejected_without_being_echoed() {
        let key = DpopKey::generate_es256().unwrap();
        let uri = Uri::from_static("https://a.test/");
        let cases = [
            ("", 0),
            ("quote\"d", 5),
            ("back\\slash", 4),
            ("two words", 3),
            ("line\nbreak", 4),
            ("caf\u{e9}", 3),
        ];
        for (nonce, expected) in cases {
            match key.proof(&Method::GET, &uri, None, Some(nonce)) {
                Err(error @ DpopError::InvalidNonce { position }) => {
                    assert_eq!(position, expected, "{nonce:?}");
                    let message = error.to_string();
                    assert!(nonce.is_empty() || !message.contains(nonce), "{message}");
                }
                other => panic!("nonce {nonce:?} gave {other:?}"),
            }
        }
        let every_nqchar: String = (0x21..=0x7e_u8)
            .filter(|&byte| byte != b'"' && byte != b'\\')
            .map(char::from)
            .collect();
        let decoded = decode(
            &key.proof(&Method::GET, &uri, None, Some(&every_nqchar))
                .unwrap(),
        );
        assert_eq!(decoded.claims["nonce"], every_nqchar.as_str());
    }

    #[test]
    fn json_strings_are_escaped() {
        let awkward = "quote \" backslash \\ newline \n nul \u{0} del \u{7f} é";
        let mut json = String::new();
        push_json_string(&mut json, awkward);
        assert_eq!(serde_json::from_str::<String>(&json).unwrap(), awkward);
    }

    #[test]
    fn a_uri_that_needs_json_escaping_still_gives_parseable_claims() {
        let key = DpopKey::generate_ed25519().unwrap();
        let method = Method::from_bytes(b"PROPFIND").unwrap();
        let uri = Uri::from_static("https://a.test/say/\"hi\"/{x}");
        assert!(htu(&uri).unwrap().contains('"'), "the URI keeps its quotes");
        let decoded = decode(&key.proof(&method, &uri, None, None).unwrap());
        assert_eq!(decoded.claims["htm"], "PROPFIND");
        assert_eq!(decoded.claims["htu"], htu(&uri).unwrap());
        verify(&decoded).unwrap();
    }
}
