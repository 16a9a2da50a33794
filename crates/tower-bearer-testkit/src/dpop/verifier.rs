//! Checking DPoP proofs (RFC 9449 section 4.3) for one server: signature, claims, replay,
//! nonce.

use std::sync::Mutex;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, Method};
use ring::digest::{digest, SHA256};
use serde_json::{Map, Value};

use super::htu::HttpUri;
use super::jwk::PublicKey;
use super::nonce::Nonces;
use super::replay::ReplayCache;
use super::{DpopOptions, DpopProblem};
use crate::lock;

/// The request header that carries a proof.
pub(crate) const DPOP_HEADER: &str = "dpop";
/// The response header that carries a server nonce.
pub(crate) const DPOP_NONCE_HEADER: &str = "dpop-nonce";
/// Longer proofs are refused unread; a real one is well under 1 KiB.
const MAX_PROOF_LEN: usize = 8 * 1024;

/// One server's proof checks, with its replay cache and nonces.
#[derive(Debug)]
pub(crate) struct DpopVerifier {
    options: DpopOptions,
    replay: Mutex<ReplayCache>,
    /// `Some` when the server requires nonces.
    nonces: Option<Mutex<Nonces>>,
}

/// What a proof is checked against: the request it came with.
#[derive(Debug)]
pub(crate) struct ProofContext<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a HttpUri,
    /// At a resource server, the access token presented with the proof, which `ath` must
    /// hash; `None` at the token endpoint, where `ath` is not checked.
    pub(crate) access_token: Option<&'a str>,
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcceptedProof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub(crate) jkt: String,
    /// The nonce the proof carried, when the server requires nonces.
    pub(crate) nonce: Option<String>,
}

impl DpopVerifier {
    pub(crate) fn new(options: DpopOptions) -> DpopVerifier {
        DpopVerifier {
            replay: Mutex::new(ReplayCache::new(options.replay_cache_capacity)),
            nonces: options
                .nonce
                .clone()
                .map(|policy| Mutex::new(Nonces::new(policy))),
            options,
        }
    }

    /// Whether requests without a proof are refused.
    pub(crate) fn requires_proof(&self) -> bool {
        self.options.require_proof
    }

    /// The nonce proofs must carry now, if the server requires one.
    pub(crate) fn current_nonce(&self) -> Option<String> {
        let nonces = self.nonces.as_ref()?;
        Some(lock(nonces).current().to_owned())
    }

    /// Issues a new nonce now, if the server requires nonces, and returns it.
    pub(crate) fn rotate_nonce(&self) -> Option<String> {
        let nonces = self.nonces.as_ref()?;
        Some(lock(nonces).rotate_now().to_owned())
    }

    /// The nonce to send in `DPoP-Nonce` to a client whose proof carried `sent`: the
    /// current one, if the server requires nonces and it is not `sent`.
    pub(crate) fn nonce_to_send(&self, sent: Option<&str>) -> Option<String> {
        self.current_nonce()
            .filter(|current| Some(current.as_str()) != sent)
    }

    /// The request's one `DPoP` header, if it has one (RFC 9449 section 4.3, check 1).
    pub(crate) fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, DpopProblem> {
        let mut values = headers.get_all(DPOP_HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(DpopProblem::Multiple);
        }
        value.to_str().map(Some).map_err(|_| DpopProblem::Malformed)
    }

    /// Checks `proof` against the request in `context`, on the wall clock.
    pub(crate) fn verify(
        &self,
        proof: &str,
        context: &ProofContext<'_>,
    ) -> Result<AcceptedProof, DpopProblem> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        self.verify_at(proof, context, now)
    }

    /// [`verify`](Self::verify) at `now`, in Unix seconds. The checks run in the order of
    /// RFC 9449 section 4.3, so a proof with several faults is refused for the first.
    fn verify_at(
        &self,
        proof: &str,
        context: &ProofContext<'_>,
        now: f64,
    ) -> Result<AcceptedProof, DpopProblem> {
        let jws = CompactJws::parse(proof)?;
        let key = jws.verified_key()?;
        let claims = &jws.claims;

        let string_claim = |name: &'static str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .ok_or(DpopProblem::MissingClaim(name))
        };
        let jti = string_claim("jti").and_then(|jti| {
            (!jti.is_empty())
                .then_some(jti)
                .ok_or(DpopProblem::MissingClaim("jti"))
        })?;
        let htm = string_claim("htm")?;
        let htu = string_claim("htu")?;
        let iat = claims
            .get("iat")
            .and_then(Value::as_f64)
            .ok_or(DpopProblem::MissingClaim("iat"))?;
        let ath = match context.access_token {
            Some(_) => Some(string_claim("ath")?),
            None => None,
        };

        if htm != context.method.as_str() {
            return Err(DpopProblem::WrongMethod);
        }
        if HttpUri::parse(htu).as_ref() != Some(context.uri) {
            return Err(DpopProblem::WrongUri);
        }
        let nonce = match &self.nonces {
            None => None,
            Some(nonces) => {
                let nonce = claims.get("nonce").and_then(Value::as_str);
                lock(nonces).check(nonce)?;
                nonce
            }
        };
        let window = self.options.iat_window.as_secs_f64();
        if iat < now - window {
            return Err(DpopProblem::IssuedTooLongAgo);
        }
        if iat > now + window {
            return Err(DpopProblem::IssuedInTheFuture);
        }
        if let (Some(ath), Some(token)) = (ath, context.access_token) {
            if ath != access_token_hash(token) {
                return Err(DpopProblem::WrongAccessTokenHash);
            }
        }
        if !lock(&self.replay).insert(jti, iat + window, now) {
            return Err(DpopProblem::Replayed);
        }

        if let (Some(nonces), Some(nonce)) = (&self.nonces, nonce) {
            lock(nonces).record_use(nonce);
        }
        Ok(AcceptedProof {
            jkt: key.thumbprint(),
            nonce: nonce.map(str::to_owned),
        })
    }
}

/// `ath` (RFC 9449 section 4.2): base64url of the SHA-256 of the token's ASCII.
pub(crate) fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, access_token.as_bytes()))
}

/// A proof split into its parts, not yet trusted.
struct CompactJws<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    /// `header.claims` as sent: what the signature covers.
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    fn parse(proof: &'a str) -> Result<CompactJws<'a>, DpopProblem> {
        if proof.len() > MAX_PROOF_LEN {
            return Err(DpopProblem::Malformed);
        }
        let mut parts = proof.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DpopProblem::Malformed);
        };
        let json_object = |part: &str| {
            let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
            match serde_json::from_slice(&bytes).ok()? {
                Value::Object(object) => Some(object),
                _ => None,
            }
        };
        Ok(CompactJws {
            header: json_object(header).ok_or(DpopProblem::Malformed)?,
            claims: json_object(claims).ok_or(DpopProblem::Malformed)?,
            signing_input: &proof[..header.len() + 1 + claims.len()],
            signature: URL_SAFE_NO_PAD
                .decode(signature)
                .map_err(|_| DpopProblem::Malformed)?,
        })
    }

    /// Checks the JOSE header (`typ`, `alg`, a public `jwk` that fits `alg`) and the
    /// signature; returns the key.
    fn verified_key(&self) -> Result<PublicKey, DpopProblem> {
        let typ = self.header.get("typ").and_then(Value::as_str);
        // Media type names are case-insensitive (RFC 7515 section 4.1.9).
        if !typ.is_some_and(|typ| typ.eq_ignore_ascii_case("dpop+jwt")) {
            return Err(DpopProblem::WrongType);
        }
        let alg = match self.header.get("alg").and_then(Value::as_str) {
            Some(alg @ ("ES256" | "EdDSA")) => alg,
            _ => return Err(DpopProblem::UnsupportedAlgorithm),
        };
        let jwk = self
            .header
            .get("jwk")
            .and_then(Value::as_object)
            .ok_or(DpopProblem::MissingKey)?;
        if jwk.contains_key("d") {
            return Err(DpopProblem::PrivateKey);
        }
        let key = PublicKey::from_jwk(jwk)?;
        if key.algorithm() != alg {
            return Err(DpopProblem::AlgorithmKeyMismatch);
        }
        if !key.verify(self.signing_input.as_bytes(), &self.signature) {
            return Err(DpopProblem::BadSignature);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::DpopNoncePolicy;

    /// RFC 9449 section 5, figure 5: an ES256 proof with the
    /// key of section 6.1, for `POST https://server.example.com/token` at iat 1562262616.
    const RFC_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
    const RFC_IAT: f64 = 1_562_262_616.0;
    const RFC_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    fn rfc_uri() -> HttpUri {
        HttpUri::parse("https://server.example.com/token").unwrap()
    }

    fn check(
        verifier: &DpopVerifier,
        proof: &str,
        method: &Method,
        now: f64,
    ) -> Result<AcceptedProof, DpopProblem> {
        let uri = rfc_uri();
        let context = ProofContext {
            method,
            uri: &uri,
            access_token: None,
        };
        verifier.verify_at(proof, &context, now)
    }

    /// The RFC proof with its claims replaced and the signature kept: every claim check
    /// runs after the signature check, so these fail as `BadSignature`.
    fn with_header(header: Value) -> String {
        let mut parts = RFC_PROOF.split('.');
        let _ = parts.next();
        let claims = parts.next().unwrap();
        let signature = parts.next().unwrap();
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        format!("{header}.{claims}.{signature}")
    }

    fn rfc_jwk() -> Value {
        serde_json::json!({
            "kty": "EC",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
            "crv": "P-256",
        })
    }

    #[test]
    fn accepts_the_rfc_9449_example_proof_and_reports_its_jkt() {
        let verifier = DpopVerifier::new(DpopOptions::new());
        let accepted = check(&verifier, RFC_PROOF, &Method::POST, RFC_IAT + 5.0).unwrap();
        assert_eq!(
            accepted,
            AcceptedProof {
                jkt: RFC_JKT.to_owned(),
                nonce: None
            }
        );
        assert_eq!(
            check(&verifier, RFC_PROOF, &Method::POST, RFC_IAT + 6.0),
            Err(DpopProblem::Replayed)
        );
    }

    #[test]
    fn refuses_the_rfc_proof_for_another_request_or_time() {
        let verifier = DpopVerifier::new(DpopOptions::new());
        assert_eq!(
            check(&verifier, RFC_PROOF, &Method::GET, RFC_IAT),
            Err(DpopProblem::WrongMethod)
        );
        assert_eq!(
            check(&verifier, RFC_PROOF, &Method::POST, RFC_IAT + 61.0),
            Err(DpopProblem::IssuedTooLongAgo)
        );
        assert_eq!(
            check(&verifier, RFC_PROOF, &Method::POST, RFC_IAT - 61.0),
            Err(DpopProblem::IssuedInTheFuture)
        );
        let uri = HttpUri::parse("https://server.example.com/other").unwrap();
        let context = ProofContext {
            method: &Method::POST,
            uri: &uri,
            access_token: None,
        };
        assert_eq!(
            verifier.verify_at(RFC_PROOF, &context, RFC_IAT),
            Err(DpopProblem::WrongUri)
        );
        let uri = rfc_uri();
        let context = ProofContext {
            method: &Method::POST,
            uri: &uri,
            access_token: Some("token"),
        };
        assert_eq!(
            verifier.verify_at(RFC_PROOF, &context, RFC_IAT),
            Err(DpopProblem::MissingClaim("ath")),
            "a resource server needs ath"
        );

        let narrow =
            DpopVerifier::new(DpopOptions::new().iat_window(std::time::Duration::from_secs(5)));
        assert_eq!(
            check(&narrow, RFC_PROOF, &Method::POST, RFC_IAT + 6.0),
            Err(DpopProblem::IssuedTooLongAgo)
        );
        let nonces = DpopVerifier::new(DpopOptions::new().require_nonce(DpopNoncePolicy::new()));
        assert_eq!(
            check(&nonces, RFC_PROOF, &Method::POST, RFC_IAT),
            Err(DpopProblem::MissingNonce)
        );
        // Nothing was recorded by the refusals: the proof is still fresh.
        assert!(check(&verifier, RFC_PROOF, &Method::POST, RFC_IAT).is_ok());
    }

    #[test]
    fn refuses_bad_headers_before_looking_at_the_signature() {
        let verifier = DpopVerifier::new(DpopOptions::new());
        let mut with_d = rfc_jwk();
        with_d["d"] = "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE".into();
        let cases = [
            (
                serde_json::json!({"typ": "JWT", "alg": "ES256", "jwk": rfc_jwk()}),
                DpopProblem::WrongType,
            ),
            (
                serde_json::json!({"alg": "ES256", "jwk": rfc_jwk()}),
                DpopProblem::WrongType,
            ),
            (
                serde_json::json!({"typ": "dpop+jwt", "alg": "none", "jwk": rfc_jwk()}),
                DpopProblem::UnsupportedAlgorithm,
            ),
            (
                serde_json::json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": rfc_jwk()}),
                DpopProblem::UnsupportedAlgorithm,
            ),
            (
                serde_json::json!({"typ": "dpop+jwt", "jwk": rfc_jwk()}),
                DpopProblem::UnsupportedAlgorithm,
            ),
            (
                serde_json::json!({"typ": "dpop+jwt", "alg": "ES256"}),
                DpopProblem::MissingKey,
            ),
            (
                serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": "key"}),
                DpopProblem::MissingKey,
            ),
            (
                serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": with_d}),
                DpopProblem::PrivateKey,
            ),
            (
                serde_json::json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": rfc_jwk()}),
                DpopProblem::AlgorithmKeyMismatch,
            ),
            (
                serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}),
                DpopProblem::UnsupportedKey,
            ),
            (
                serde_json::json!({"typ": "DPoP+JWT", "alg": "ES256", "jwk": rfc_jwk()}),
                DpopProblem::BadSignature,
            ),
        ];
        for (header, problem) in cases {
            let proof = with_header(header.clone());
            assert_eq!(
                check(&verifier, &proof, &Method::POST, RFC_IAT),
                Err(problem),
                "{header}"
            );
        }
    }

    #[test]
    fn malformed_proofs_are_refused_without_panicking() {
        let verifier = DpopVerifier::new(DpopOptions::new());
        let (header, rest) = RFC_PROOF.split_once('.').unwrap();
        let long = "a".repeat(MAX_PROOF_LEN + 1);
        let junk = [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "a.b.c.d",
            "\u{e9}.\u{e9}.\u{e9}",
            &format!("{header}.{rest}.extra"),
            &format!("{header}=.{rest}"),
            &format!("{}.{rest}", URL_SAFE_NO_PAD.encode("[1,2]")),
            &format!("{}.{rest}", URL_SAFE_NO_PAD.encode("{\"typ\":")),
            &format!("{header}.{}.sig", URL_SAFE_NO_PAD.encode("null")),
            &format!("{header}.e30.not+base64"),
            &long,
        ];
        for proof in junk {
            assert_eq!(
                check(&verifier, proof, &Method::POST, RFC_IAT),
                Err(DpopProblem::Malformed),
                "{proof:?}"
            );
        }
        // A short signature is well-formed base64url, and fails verification.
        let (signed, signature) = RFC_PROOF.rsplit_once('.').unwrap();
        let short = &URL_SAFE_NO_PAD.decode(signature).unwrap()[..32];
        let truncated = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(short));
        assert_eq!(
            check(&verifier, &truncated, &Method::POST, RFC_IAT),
            Err(DpopProblem::BadSignature)
        );
    }

    #[test]
    fn the_dpop_header_must_appear_once() {
        let mut headers = HeaderMap::new();
        assert_eq!(DpopVerifier::proof_header(&headers), Ok(None));
        headers.append(DPOP_HEADER, HeaderValue::from_static("one"));
        assert_eq!(DpopVerifier::proof_header(&headers), Ok(Some("one")));
        headers.append(DPOP_HEADER, HeaderValue::from_static("two"));
        assert_eq!(
            DpopVerifier::proof_header(&headers),
            Err(DpopProblem::Multiple)
        );
        let mut headers = HeaderMap::new();
        headers.insert(DPOP_HEADER, HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(
            DpopVerifier::proof_header(&headers),
            Err(DpopProblem::Malformed)
        );
    }

    #[test]
    fn the_access_token_hash_is_base64url_sha256() {
        // RFC 9449 section 7.1: the ath of the example access token.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn the_nonce_to_send_is_the_current_one_when_the_proof_had_another() {
        let plain = DpopVerifier::new(DpopOptions::new());
        assert_eq!(plain.current_nonce(), None);
        assert_eq!(plain.rotate_nonce(), None);
        assert_eq!(plain.nonce_to_send(None), None);

        let verifier = DpopVerifier::new(DpopOptions::new().require_nonce(DpopNoncePolicy::new()));
        let current = verifier.current_nonce().unwrap();
        assert_eq!(verifier.nonce_to_send(Some(&current)), None);
        assert_eq!(verifier.nonce_to_send(None), Some(current.clone()));
        let next = verifier.rotate_nonce().unwrap();
        assert_ne!(next, current);
        assert_eq!(verifier.nonce_to_send(Some(&current)), Some(next));
    }
}
