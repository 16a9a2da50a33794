//! Reading `WWW-Authenticate` (RFC 9110 section 11.6.1) to decide whether a 401 means "this
//! token is no good" (RFC 6750 section 3.1).
//!
//! [`token_rejected`] is the one decision every adapter shares: the auth layer uses it on the
//! responses to requests that carried its token, and clients that are not tower services
//! (reqwest's middleware, for one) can call it on theirs.
//!
//! ```
//! use http::header::WWW_AUTHENTICATE;
//! use http::{HeaderMap, HeaderValue};
//! use tower_bearer::challenge::token_rejected;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error = "insufficient_scope""#));
//! assert!(!token_rejected(&headers), "a new token would have the same scope");
//! headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="invalid_token""#));
//! assert!(token_rejected(&headers));
//! ```
//!
//! The parser reads the field's bytes, not `&str`: a quoted-string may carry obs-text
//! (%x80-FF, RFC 9110 section 5.6.4) that is not UTF-8. It walks one field line once and
//! yields its challenges and auth-params in order, borrowing from the header;
//! [`token_rejected`] folds them into a decision and stops at the first one that settles it.

use std::borrow::Cow;

use http::header::{HeaderName, WWW_AUTHENTICATE};
use http::HeaderMap;

/// `grpc-status`, the gRPC status code of a response (gRPC over HTTP/2, "Responses").
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// Whether a 401 with these headers says the bearer token itself was bad, so a new token may
/// succeed.
///
/// Yes for a `Bearer` challenge with `error="invalid_token"` or with no error code (RFC 6750
/// section 3: a request with an unusable token may get a bare challenge), and for a 401
/// without any `WWW-Authenticate`, which many APIs send. No for `insufficient_scope` (a new
/// token has the same scope), `invalid_request` or any other code, and no when only other
/// schemes are challenged, since a bearer token will not satisfy them. When several `Bearer`
/// challenges appear, the first decides.
///
/// Field values that hold no readable challenge at all count as no challenge, like a bare
/// 401: one replay costs little, and refusing it would strand a client behind a server that
/// writes a broken header. A malformed element inside a challenge is skipped up to the next
/// comma, so `Bearer error="insufficient_scope` (unterminated) reads as a bare `Bearer`.
pub fn token_rejected(headers: &HeaderMap) -> bool {
    match first_challenge_error(headers, Scheme::Bearer) {
        Challenged::Error(error) => *error == *b"invalid_token",
        Challenged::NoError | Challenged::NoChallenge => true,
        Challenged::OnlyOthers => false,
    }
}

/// What a 401 to a request with a DPoP-bound token (RFC 9449 section 7.1) asks for.
///
/// - [`TokenRejected`](DpopChallenge::TokenRejected): a `DPoP` challenge with
///   `error="invalid_token"` or with no error, or no `WWW-Authenticate` at all; a new token
///   may succeed.
/// - [`NonceRequired`](DpopChallenge::NonceRequired): `error="use_dpop_nonce"`; the token is
///   fine, and the request should be sent again with a proof that carries the nonce from the
///   response's `DPoP-Nonce` (section 9).
/// - [`Other`](DpopChallenge::Other): anything else (`invalid_dpop_proof`,
///   `insufficient_scope`, only other schemes challenged); neither a new token nor a nonce
///   would help.
///
/// ```
/// use http::header::WWW_AUTHENTICATE;
/// use http::{HeaderMap, HeaderValue};
/// use tower_bearer::challenge::{dpop_challenge, DpopChallenge};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(
///     WWW_AUTHENTICATE,
///     HeaderValue::from_static(r#"DPoP error="use_dpop_nonce", algs="ES256""#),
/// );
/// assert_eq!(dpop_challenge(&headers), DpopChallenge::NonceRequired);
/// ```
pub fn dpop_challenge(headers: &HeaderMap) -> DpopChallenge {
    match first_challenge_error(headers, Scheme::DPoP) {
        Challenged::Error(error) if *error == *b"invalid_token" => DpopChallenge::TokenRejected,
        Challenged::Error(error) if *error == *b"use_dpop_nonce" => DpopChallenge::NonceRequired,
        Challenged::Error(_) | Challenged::OnlyOthers => DpopChallenge::Other,
        Challenged::NoError | Challenged::NoChallenge => DpopChallenge::TokenRejected,
    }
}

/// What a 401 to a DPoP request asks for; see [`dpop_challenge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopChallenge {
    /// The token is no good; a new one may succeed.
    TokenRejected,
    /// Send again with the server's nonce in the proof.
    NonceRequired,
    /// Neither would help.
    Other,
}

/// How the first challenge of one scheme reads.
enum Challenged<'a> {
    /// It has this `error` code (quoted-pairs resolved).
    Error(Cow<'a, [u8]>),
    /// It has no `error`.
    NoError,
    /// Challenges were made, none for the scheme: its token will not satisfy them.
    OnlyOthers,
    /// No readable challenge at all, like a bare 401.
    NoChallenge,
}

/// The first challenge for `wanted` across the field lines, and its error code. Field lines
/// combine into one comma-separated list (RFC 9110 section 5.3), so the auth-params of a
/// challenge may go on in the next line. Each line is read on its own, so an unterminated
/// quote cannot swallow the lines after it.
fn first_challenge_error(headers: &HeaderMap, wanted: Scheme) -> Challenged<'_> {
    let mut elements = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .flat_map(|value| Elements::new(value.as_bytes()));
    let mut challenged = false;
    while let Some(element) = elements.next() {
        let Element::Challenge { scheme, .. } = element else {
            continue;
        };
        challenged = true;
        if Scheme::from_name(scheme) == wanted {
            let mut params = elements.by_ref().map_while(Element::into_param);
            return match params.find(|param| param.name.eq_ignore_ascii_case(b"error")) {
                Some(error) => Challenged::Error(error.value.unescaped()),
                None => Challenged::NoError,
            };
        }
    }
    if challenged {
        Challenged::OnlyOthers
    } else {
        Challenged::NoChallenge
    }
}

/// Whether these response headers carry gRPC's `UNAUTHENTICATED` (`grpc-status: 16`).
///
/// A gRPC server that refuses a call's credentials answers HTTP `200` with the status in
/// the headers of a trailers-only response, not with a 401. When this is true, read the
/// headers with [`token_rejected`] as for a 401: such responses rarely carry
/// `WWW-Authenticate`, which counts as "the token was bad".
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use tower_bearer::challenge::grpc_unauthenticated;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("grpc-status", HeaderValue::from_static("16"));
/// assert!(grpc_unauthenticated(&headers));
/// headers.insert("grpc-status", HeaderValue::from_static("7")); // PERMISSION_DENIED
/// assert!(!grpc_unauthenticated(&headers));
/// ```
pub fn grpc_unauthenticated(headers: &HeaderMap) -> bool {
    headers
        .get(GRPC_STATUS)
        .is_some_and(|status| status.as_bytes().trim_ascii() == b"16")
}

/// The auth-schemes a decision depends on; scheme names are case-insensitive (RFC 9110
/// section 11.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Bearer,
    /// RFC 9449 section 7.1.
    DPoP,
    Other,
}

impl Scheme {
    fn from_name(name: &[u8]) -> Self {
        if name.eq_ignore_ascii_case(b"Bearer") {
            Scheme::Bearer
        } else if name.eq_ignore_ascii_case(b"DPoP") {
            Scheme::DPoP
        } else {
            Scheme::Other
        }
    }
}

/// One element of the challenge list, in the order the field line has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Element<'a> {
    /// An auth-scheme, which opens a challenge, with its token68 if it has one
    /// (RFC 9110 section 11.2).
    Challenge {
        scheme: &'a [u8],
        token68: Option<&'a [u8]>,
    },
    /// An auth-param of the challenge opened last.
    Param(AuthParam<'a>),
}

impl<'a> Element<'a> {
    fn into_param(self) -> Option<AuthParam<'a>> {
        match self {
            Element::Param(param) => Some(param),
            Element::Challenge { .. } => None,
        }
    }
}

/// `token BWS "=" BWS ( token / quoted-string )` (RFC 9110 section 11.2). The name is
/// case-insensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AuthParam<'a> {
    name: &'a [u8],
    value: ParamValue<'a>,
}

/// An auth-param's value as written: a token, or the bytes between a quoted-string's quotes
/// with any quoted-pairs still in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParamValue<'a> {
    Token(&'a [u8]),
    Quoted(&'a [u8]),
}

impl<'a> ParamValue<'a> {
    /// The value with quoted-pairs resolved (RFC 9110 section 5.6.4); copies only when the
    /// quoted-string has a backslash.
    fn unescaped(self) -> Cow<'a, [u8]> {
        let raw = match self {
            ParamValue::Quoted(raw) if raw.contains(&b'\\') => raw,
            ParamValue::Token(value) | ParamValue::Quoted(value) => return Cow::Borrowed(value),
        };
        let mut unescaped = Vec::with_capacity(raw.len());
        let mut bytes = raw.iter();
        while let Some(&byte) = bytes.next() {
            let byte = if byte == b'\\' {
                bytes.next()
            } else {
                Some(&byte)
            };
            unescaped.extend(byte);
        }
        Cow::Owned(unescaped)
    }
}

/// The challenges and auth-params of one field line (RFC 9110 sections 11.2 and 11.6.1).
///
/// Empty list elements are skipped (section 5.6.1). A malformed element is skipped up to the
/// next comma outside a quoted-string. Each byte is read a bounded number of times (a failed
/// token68 or element is read again, never more), so the cost is linear in the line.
#[derive(Clone, Debug)]
struct Elements<'a> {
    rest: &'a [u8],
    /// Set just after `auth-scheme 1*SP`, where the first auth-param comes without a comma.
    first_param_next: bool,
}

impl<'a> Elements<'a> {
    fn new(line: &'a [u8]) -> Self {
        Elements {
            rest: line,
            first_param_next: false,
        }
    }

    /// A new challenge (`token 1*SP ...` or a bare `token`) or the next auth-param of the
    /// current one (`token BWS "=" ...`): the byte after the token and its whitespace tells.
    fn challenge_or_param(&mut self) -> Option<Element<'a>> {
        let mut rest = self.rest;
        let name = take_while(&mut rest, is_tchar);
        let whitespace = take_while(&mut rest, is_whitespace);
        if name.is_empty() {
            return None;
        }
        match rest.first() {
            Some(b'=') => self.auth_param().map(Element::Param),
            None | Some(b',') => {
                self.rest = rest;
                Some(Element::Challenge {
                    scheme: name,
                    token68: None,
                })
            }
            Some(_) if !whitespace.is_empty() => {
                self.rest = rest;
                let token68 = self.token68();
                self.first_param_next = token68.is_none();
                Some(Element::Challenge {
                    scheme: name,
                    token68,
                })
            }
            Some(_) => None,
        }
    }

    /// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`, taken only when the
    /// element ends after it; otherwise what follows the scheme is its first auth-param.
    fn token68(&mut self) -> Option<&'a [u8]> {
        let mut rest = self.rest;
        let chars = take_while(&mut rest, is_token68_char);
        let padding = take_while(&mut rest, |byte| byte == b'=');
        take_while(&mut rest, is_whitespace);
        if chars.is_empty() || !at_element_end(rest) {
            return None;
        }
        let token68 = &self.rest[..chars.len() + padding.len()];
        self.rest = rest;
        Some(token68)
    }

    /// `token BWS "=" BWS ( token / quoted-string )`, which must end the element.
    fn auth_param(&mut self) -> Option<AuthParam<'a>> {
        let name = take_while(&mut self.rest, is_tchar);
        take_while(&mut self.rest, is_whitespace);
        self.rest = self.rest.strip_prefix(b"=")?;
        take_while(&mut self.rest, is_whitespace);
        let value = match self.rest.strip_prefix(b"\"") {
            Some(quoted) => {
                self.rest = quoted;
                ParamValue::Quoted(self.quoted_string_content()?)
            }
            None => ParamValue::Token(take_while(&mut self.rest, is_tchar)),
        };
        take_while(&mut self.rest, is_whitespace);
        let valid =
            !name.is_empty() && value != ParamValue::Token(b"") && at_element_end(self.rest);
        valid.then_some(AuthParam { name, value })
    }

    /// After an opening quote: everything up to the closing one, with quoted-pairs
    /// (`"\" ( HTAB / SP / VCHAR / obs-text )`) kept; `None` when the quote is never closed.
    fn quoted_string_content(&mut self) -> Option<&'a [u8]> {
        let mut index = 0;
        while let Some(&byte) = self.rest.get(index) {
            match byte {
                b'"' => {
                    let content = &self.rest[..index];
                    self.rest = &self.rest[index + 1..];
                    return Some(content);
                }
                b'\\' => index += 2,
                _ => index += 1,
            }
        }
        None
    }

    /// Moves to the next comma outside a quoted-string, so one bad element costs only itself.
    fn skip_malformed(&mut self) {
        let mut in_quotes = false;
        let mut index = 0;
        while let Some(&byte) = self.rest.get(index) {
            match byte {
                b',' if !in_quotes => break,
                b'"' => in_quotes = !in_quotes,
                b'\\' if in_quotes => index += 1,
                _ => {}
            }
            index += 1;
        }
        self.rest = self.rest.get(index..).unwrap_or_default();
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Element<'a>;

    fn next(&mut self) -> Option<Element<'a>> {
        loop {
            let first_param = std::mem::take(&mut self.first_param_next);
            if !first_param {
                take_while(&mut self.rest, |byte| byte == b',' || is_whitespace(byte));
            }
            if self.rest.is_empty() {
                return None;
            }
            let start = self.rest;
            let element = if first_param {
                self.auth_param().map(Element::Param)
            } else {
                self.challenge_or_param()
            };
            match element {
                Some(element) => return Some(element),
                None => {
                    self.rest = start;
                    self.skip_malformed();
                }
            }
        }
    }
}

/// Splits off the longest prefix of bytes that `accept` takes.
fn take_while<'a>(input: &mut &'a [u8], accept: impl Fn(u8) -> bool) -> &'a [u8] {
    let len = input
        .iter()
        .position(|&byte| !accept(byte))
        .unwrap_or(input.len());
    let (taken, rest) = input.split_at(len);
    *input = rest;
    taken
}

/// Where a list element ends: at the next comma or the end of the line (OWS already taken).
fn at_element_end(rest: &[u8]) -> bool {
    matches!(rest.first(), None | Some(b','))
}

/// OWS and BWS are `*( SP / HTAB )` (RFC 9110 section 5.6.3). The grammar asks for `1*SP`
/// after a scheme; a tab there is read the same way.
fn is_whitespace(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// `tchar` (RFC 9110 section 5.6.2).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// The characters of a token68 before its `=` padding (RFC 9110 section 11.2).
fn is_token68_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn dpop(values: &[&str]) -> DpopChallenge {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_str(value).unwrap());
        }
        dpop_challenge(&headers)
    }

    #[test]
    fn dpop_challenges_say_whether_the_token_or_the_nonce_is_wanted() {
        use DpopChallenge::*;
        assert_eq!(dpop(&[]), TokenRejected, "a bare 401");
        assert_eq!(dpop(&[r#"DPoP algs="ES256""#]), TokenRejected);
        assert_eq!(
            dpop(&[r#"DPoP error="invalid_token", algs="ES256""#]),
            TokenRejected
        );
        assert_eq!(dpop(&[r#"dpop error="use_dpop_nonce""#]), NonceRequired);
        assert_eq!(
            dpop(&[
                r#"Bearer realm="x""#,
                r#"DPoP algs="ES256", error="use_dpop_nonce""#
            ]),
            NonceRequired,
            "the DPoP challenge decides, wherever it is"
        );
        assert_eq!(dpop(&[r#"DPoP error="invalid_dpop_proof""#]), Other);
        assert_eq!(dpop(&[r#"DPoP error="insufficient_scope""#]), Other);
        assert_eq!(
            dpop(&[r#"Bearer error="invalid_token""#]),
            Other,
            "not our scheme"
        );
        // A DPoP challenge to a bearer request says what the server wants, not that the
        // bearer token was bad.
        assert!(!rejected(&[r#"DPoP algs="ES256""#]));
    }

    fn rejected(values: &[&str]) -> bool {
        let values: Vec<&[u8]> = values.iter().map(|value| value.as_bytes()).collect();
        rejected_bytes(&values)
    }

    fn rejected_bytes(values: &[impl AsRef<[u8]>]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            let value = HeaderValue::from_bytes(value.as_ref()).unwrap();
            headers.append(WWW_AUTHENTICATE, value);
        }
        token_rejected(&headers)
    }

    /// A challenge with owned parts, for comparing what was parsed with what was meant.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Challenge {
        scheme: Vec<u8>,
        token68: Option<Vec<u8>>,
        params: Vec<(Vec<u8>, Value)>,
    }

    /// An auth-param value with quoted-pairs resolved, and whether it was quoted.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Value {
        Token(Vec<u8>),
        Quoted(Vec<u8>),
    }

    impl Value {
        fn text(&self) -> &[u8] {
            match self {
                Value::Token(text) | Value::Quoted(text) => text,
            }
        }
    }

    /// Parses the lines as one list; auth-params before any challenge are dropped.
    fn parse(lines: &[impl AsRef<[u8]>]) -> Vec<Challenge> {
        let mut challenges: Vec<Challenge> = Vec::new();
        for element in lines.iter().flat_map(|line| Elements::new(line.as_ref())) {
            match element {
                Element::Challenge { scheme, token68 } => challenges.push(Challenge {
                    scheme: scheme.to_vec(),
                    token68: token68.map(<[u8]>::to_vec),
                    params: Vec::new(),
                }),
                Element::Param(param) => {
                    let text = param.value.unescaped().into_owned();
                    let value = match param.value {
                        ParamValue::Token(_) => Value::Token(text),
                        ParamValue::Quoted(_) => Value::Quoted(text),
                    };
                    if let Some(current) = challenges.last_mut() {
                        current.params.push((param.name.to_vec(), value));
                    }
                }
            }
        }
        challenges
    }

    fn param<'a>(challenge: &'a Challenge, name: &str) -> Option<&'a [u8]> {
        challenge
            .params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value.text())
    }

    #[test]
    fn retries_bad_tokens() {
        assert!(rejected(&[]));
        assert!(rejected(&["Bearer"]));
        assert!(rejected(&[r#"Bearer realm="example""#]));
        assert!(rejected(&[
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#
        ]));
        assert!(rejected(&[r#"bearer error=invalid_token"#]));
        assert!(rejected(&[r#"BEARER ERROR="invalid_token""#]));
        assert!(rejected(&[
            r#"Basic realm="x, y", Bearer error="invalid_token""#
        ]));
        assert!(rejected(&[r#"Basic realm="x""#, r#"Bearer"#]));
        assert!(rejected(&[r#"Bearer error="invalid\_token""#]));
    }

    #[test]
    fn does_not_retry_other_errors_or_schemes() {
        assert!(!rejected(&[
            r#"Bearer realm="example", error="insufficient_scope", scope="admin""#
        ]));
        assert!(!rejected(&[r#"Bearer error="invalid_request""#]));
        assert!(!rejected(&[r#"Bearer error="some_new_code""#]));
        assert!(!rejected(&[r#"Bearer Error="insufficient_scope""#]));
        assert!(!rejected(&[r#"Basic realm="example""#]));
        assert!(!rejected(&[r#"DPoP algs="ES256", error="invalid_token""#]));
        assert!(!rejected(&["Negotiate abc=="]));
    }

    #[test]
    fn first_bearer_challenge_decides() {
        assert!(rejected(&[
            r#"Bearer error="invalid_token", Bearer error="insufficient_scope""#
        ]));
        assert!(!rejected(&[
            r#"Bearer error="insufficient_scope", Bearer error="invalid_token""#
        ]));
        assert!(rejected(&[r#"Bearer, Bearer error="insufficient_scope""#]));
        assert!(rejected(&[
            r#"Bearer error="invalid_token", error="invalid_request""#
        ]));
    }

    /// Bug: `error = "..."` (BWS around `=`, RFC 9110 section 11.2) was read as a challenge
    /// named `error`, so the Bearer challenge looked bare and the 401 was retried.
    #[test]
    fn regression_whitespace_around_equals_is_an_auth_param() {
        assert!(!rejected(&[r#"Bearer error = "insufficient_scope""#]));
        assert!(!rejected(&[
            "Bearer realm=\"x\" ,\terror\t=\t\"insufficient_scope\""
        ]));
        assert!(!rejected(&[
            r#"Bearer realm="x", error =insufficient_scope"#
        ]));
        assert!(!rejected(&[r#"Bearer error= insufficient_scope"#]));
        let challenges = parse(&[br#"Bearer realm = "x", error = "insufficient_scope""#]);
        assert_eq!(challenges.len(), 1);
        assert_eq!(param(&challenges[0], "realm"), Some(&b"x"[..]));
    }

    /// Bug: a byte past ASCII (obs-text, legal inside a quoted-string) made `to_str()` fail
    /// and dropped the whole field value, so the 401 looked unchallenged and was retried.
    #[test]
    fn regression_obs_text_in_a_quoted_string_keeps_the_field() {
        assert!(!rejected_bytes(&[
            b"Bearer realm=\"caf\xe9\", error=\"insufficient_scope\""
        ]));
        assert!(!rejected_bytes(&[b"Basic realm=\"\xff\xfe\""]));
        let challenges = parse(&[b"Bearer realm=\"caf\xc3\xa9 \\\xe9\""]);
        assert_eq!(
            param(&challenges[0], "realm"),
            Some(&b"caf\xc3\xa9 \xe9"[..])
        );
    }

    #[test]
    fn parses_quoted_commas_and_escapes() {
        let challenges =
            parse(&[br#"Bearer realm="a, \"b\"", error="invalid_token", Basic realm="c""#]);
        assert_eq!(challenges.len(), 2);
        assert_eq!(param(&challenges[0], "realm"), Some(&br#"a, "b""#[..]));
        assert_eq!(param(&challenges[0], "error"), Some(&b"invalid_token"[..]));
        assert_eq!(challenges[1].scheme, b"Basic");
        assert_eq!(param(&challenges[1], "realm"), Some(&b"c"[..]));
    }

    #[test]
    fn unescapes_only_when_there_is_a_backslash() {
        assert!(matches!(
            ParamValue::Quoted(b"plain").unescaped(),
            Cow::Borrowed(b"plain")
        ));
        assert_eq!(
            *ParamValue::Quoted(br#"a\"b\\c\d"#).unescaped(),
            *br#"a"b\cd"#
        );
        assert!(matches!(
            ParamValue::Token(b"t\\").unescaped(),
            Cow::Borrowed(b"t\\")
        ));
    }

    #[test]
    fn tells_a_token68_from_the_first_auth_param() {
        let token68 = |line: &[u8]| parse(&[line])[0].token68.clone();
        assert_eq!(token68(b"Negotiate abc=="), Some(b"abc==".to_vec()));
        assert_eq!(
            token68(b"Negotiate a+b/c= , Basic"),
            Some(b"a+b/c=".to_vec())
        );
        assert_eq!(token68(b"Newauth abc"), Some(b"abc".to_vec()));
        for line in [
            &b"Newauth a=b"[..],
            b"Newauth a = b",
            b"Newauth a= b",
            b"Newauth a =b",
        ] {
            let challenges = parse(&[line]);
            assert_eq!(challenges[0].token68, None, "{line:?}");
            assert_eq!(
                challenges[0].params,
                [(b"a".to_vec(), Value::Token(b"b".to_vec()))]
            );
        }
    }

    #[test]
    fn tells_a_new_challenge_from_the_next_auth_param() {
        let challenges = parse(&[
            br#"Basic realm="x", charset = "UTF-8", Negotiate abc==, Newauth, Bearer scope=a"#,
        ]);
        let schemes: Vec<&[u8]> = challenges.iter().map(|c| &c.scheme[..]).collect();
        assert_eq!(
            schemes,
            [&b"Basic"[..], b"Negotiate", b"Newauth", b"Bearer"]
        );
        assert_eq!(challenges[0].params.len(), 2);
        assert_eq!(param(&challenges[3], "scope"), Some(&b"a"[..]));
    }

    #[test]
    fn reads_several_field_lines_and_empty_list_elements() {
        assert!(!rejected(&[
            " , ,Basic realm=\"x\" ,, ",
            ",Bearer realm=\"y\",",
            ", ,error=\"insufficient_scope\" , ,"
        ]));
        let challenges = parse(&[&b"Basic , , realm=\"x\""[..], b"", b",,Bearer"]);
        assert_eq!(challenges.len(), 2);
        assert_eq!(param(&challenges[0], "realm"), Some(&b"x"[..]));
    }

    #[test]
    fn values_without_a_challenge_count_as_none() {
        assert!(rejected(&[""]));
        assert!(rejected(&[" , ,, "]));
        assert!(rejected(&[r#"realm="x""#, "=", r#""quoted""#]));
    }

    #[test]
    fn resynchronises_after_malformed_elements() {
        assert!(!rejected(&[
            r#"Basic "junk, still junk", Bearer error="insufficient_scope""#
        ]));
        assert!(!rejected(&[
            r#"Ba/sic x, Bearer error="insufficient_scope""#
        ]));
        assert!(!rejected(&[
            r#"Bearer error="invalid_token" realm="x", error="insufficient_scope""#
        ]));
        // Unterminated, so nothing after the quote is read.
        assert!(rejected(&[r#"Bearer error="insufficient_scope"#]));
        assert!(rejected(&[r#"Bearer realm="x\"#]));
        assert!(!rejected(&[
            r#"Bearer realm=/x/, error=insufficient_scope"#
        ]));
    }

    /// About 1 MiB each: the parse must be one pass (no rescans per element). Timing is left
    /// to a release-mode run by hand.
    #[test]
    fn parses_megabyte_headers() {
        const SIZE: usize = 1 << 20;

        let mut many_challenges = b"Basic realm=\"x\", Negotiate abc==, ".repeat(SIZE / 34);
        many_challenges.extend_from_slice(b"Bearer error=\"insufficient_scope\"");
        assert!(!rejected_bytes(&[&many_challenges]));
        assert_eq!(parse(&[&many_challenges]).len(), SIZE / 34 * 2 + 1);

        let mut many_params = b"Bearer ".to_vec();
        many_params.extend(b"a = b, ".repeat(SIZE / 7));
        many_params.extend_from_slice(b"error=insufficient_scope");
        assert!(!rejected_bytes(&[&many_params]));

        let mut huge_quoted = b"Bearer realm=\"".to_vec();
        huge_quoted.extend(b"a, \xe9 ".repeat(SIZE / 5));
        huge_quoted.extend_from_slice(b"\", error=\"insufficient_scope\"");
        assert!(!rejected_bytes(&[&huge_quoted]));

        let mut many_escapes = b"Bearer realm=\"".to_vec();
        many_escapes.extend(br#"\"\\\,"#.repeat(SIZE / 6));
        many_escapes.extend_from_slice(b"\", error=\"insufficient_scope\"");
        assert!(!rejected_bytes(&[&many_escapes]));

        let mut escaped_error = b"Bearer error=\"".to_vec();
        escaped_error.extend(br"\i".repeat(SIZE / 2));
        escaped_error.push(b'"');
        assert!(!rejected_bytes(&[&escaped_error]));

        let mut many_malformed = br#"x"y,z", "#.repeat(SIZE / 8);
        many_malformed.extend_from_slice(b"Bearer");
        assert!(rejected_bytes(&[&many_malformed]));

        let mut unterminated = b"Basic realm=\"".to_vec();
        unterminated.extend(b", Bearer".repeat(SIZE / 8));
        assert!(!rejected_bytes(&[&unterminated]));
    }

    mod properties {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::{select, Index};

        const TCHARS: &[u8] =
            b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        const TOKEN68_CHARS: &[u8] =
            b"-._~+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

        /// A generated challenge: what it means plus how it is laid out.
        #[derive(Clone, Debug)]
        struct GenChallenge {
            scheme: Vec<u8>,
            /// Spaces between the scheme and a token68 or the first auth-param.
            spaces: usize,
            body: Body,
            /// What goes before this challenge when it is not the first.
            separator: Separator,
        }

        #[derive(Clone, Debug)]
        enum Body {
            Empty,
            Token68(Vec<u8>),
            Params(Vec<GenParam>),
        }

        #[derive(Clone, Debug)]
        struct GenParam {
            name: Vec<u8>,
            before_equals: &'static str,
            after_equals: &'static str,
            value: GenValue,
            /// What goes before this auth-param when it is not the first of its challenge.
            separator: Separator,
        }

        #[derive(Clone, Debug)]
        enum GenValue {
            Token(Vec<u8>),
            /// Each byte of the content, and whether to write it as a quoted-pair.
            Quoted(Vec<(u8, bool)>),
        }

        impl GenValue {
            fn meaning(&self) -> Value {
                match self {
                    GenValue::Token(token) => Value::Token(token.clone()),
                    GenValue::Quoted(content) => {
                        Value::Quoted(content.iter().map(|&(byte, _)| byte).collect())
                    }
                }
            }
        }

        /// `OWS "," OWS`, with extra empty list elements, and maybe a new field line.
        #[derive(Clone, Debug)]
        struct Separator {
            before: &'static str,
            empty_elements: usize,
            after: &'static str,
            new_line: bool,
        }

        fn whitespace() -> impl Strategy<Value = &'static str> {
            select(&["", "", " ", "\t", "  ", " \t"][..])
        }

        fn token() -> impl Strategy<Value = Vec<u8>> {
            vec(select(TCHARS), 1..8)
        }

        fn any_case(word: &'static str) -> impl Strategy<Value = Vec<u8>> {
            vec(any::<bool>(), word.len()).prop_map(move |upper| {
                word.bytes()
                    .zip(upper)
                    .map(|(byte, upper)| {
                        if upper {
                            byte.to_ascii_uppercase()
                        } else {
                            byte
                        }
                    })
                    .collect()
            })
        }

        fn scheme() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                3 => any_case("bearer"),
                1 => Just(b"Basic".to_vec()),
                1 => Just(b"DPoP".to_vec()),
                1 => Just(b"Negotiate".to_vec()),
                2 => token(),
            ]
        }

        fn token68() -> impl Strategy<Value = Vec<u8>> {
            (vec(select(TOKEN68_CHARS), 1..12), 0..3usize).prop_map(|(mut chars, padding)| {
                chars.extend(std::iter::repeat_n(b'=', padding));
                chars
            })
        }

        /// qdtext and quoted-pair bytes, obs-text included; `"` and `\` are always escaped.
        fn quoted_content() -> impl Strategy<Value = Vec<(u8, bool)>> {
            let byte = prop_oneof![
                4 => 0x20u8..0x7f,
                2 => 0x80u8..=0xff,
                1 => Just(b'\t'),
                1 => select(&b"\"\\,="[..]),
            ];
            vec((byte, any::<bool>()), 0..12).prop_map(|content| {
                content
                    .into_iter()
                    .map(|(byte, escape)| (byte, escape || byte == b'"' || byte == b'\\'))
                    .collect()
            })
        }

        fn value_of(text: Vec<u8>) -> impl Strategy<Value = GenValue> {
            let escapes = vec(any::<bool>(), text.len());
            let quoted = escapes.prop_map({
                let text = text.clone();
                move |escapes| GenValue::Quoted(text.iter().copied().zip(escapes).collect())
            });
            prop_oneof![Just(GenValue::Token(text)), quoted]
        }

        fn value() -> impl Strategy<Value = GenValue> {
            prop_oneof![
                token().prop_map(GenValue::Token),
                quoted_content().prop_map(GenValue::Quoted),
            ]
        }

        fn error_code() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                3 => Just(b"invalid_token".to_vec()),
                2 => Just(b"insufficient_scope".to_vec()),
                1 => Just(b"invalid_request".to_vec()),
                1 => token(),
            ]
        }

        fn separator() -> impl Strategy<Value = Separator> {
            (
                whitespace(),
                0..3usize,
                whitespace(),
                prop::bool::weighted(0.2),
            )
                .prop_map(|(before, empty_elements, after, new_line)| Separator {
                    before,
                    empty_elements,
                    after,
                    new_line,
                })
        }

        fn param_with(
            name: impl Strategy<Value = Vec<u8>>,
            value: impl Strategy<Value = GenValue>,
        ) -> impl Strategy<Value = GenParam> {
            (name, whitespace(), whitespace(), value, separator()).prop_map(
                |(name, before_equals, after_equals, value, separator)| GenParam {
                    name,
                    before_equals,
                    after_equals,
                    value,
                    separator,
                },
            )
        }

        fn params() -> impl Strategy<Value = Vec<GenParam>> {
            let other = param_with(
                prop_oneof![
                    Just(b"realm".to_vec()),
                    Just(b"scope".to_vec()),
                    Just(b"error_description".to_vec()),
                    token(),
                ],
                value(),
            );
            let error = param_with(any_case("error"), error_code().prop_flat_map(value_of));
            (vec(other, 0..4), prop::option::of(error), any::<Index>()).prop_map(
                |(mut params, error, at)| {
                    if let Some(error) = error {
                        params.insert(at.index(params.len() + 1), error);
                    }
                    params
                },
            )
        }

        fn challenge() -> impl Strategy<Value = GenChallenge> {
            let body = prop_oneof![
                1 => Just(Body::Empty),
                1 => token68().prop_map(Body::Token68),
                4 => params().prop_map(Body::Params),
            ];
            (scheme(), 1..3usize, body, separator()).prop_map(
                |(scheme, spaces, body, separator)| GenChallenge {
                    scheme,
                    spaces,
                    body,
                    separator,
                },
            )
        }

        /// The field lines, with leading and trailing empty list elements on the first and
        /// last.
        fn render(challenges: &[GenChallenge], leading: &str, trailing: &str) -> Vec<Vec<u8>> {
            let mut lines = vec![leading.as_bytes().to_vec()];
            let mut first = true;
            let mut separate = |lines: &mut Vec<Vec<u8>>, separator: &Separator| {
                if std::mem::take(&mut first) {
                    return;
                }
                let line = lines.last_mut().unwrap();
                line.extend_from_slice(separator.before.as_bytes());
                if separator.new_line {
                    lines.push(Vec::new());
                } else {
                    lines.last_mut().unwrap().push(b',');
                }
                let line = lines.last_mut().unwrap();
                for _ in 0..separator.empty_elements {
                    line.extend_from_slice(separator.after.as_bytes());
                    line.push(b',');
                }
                line.extend_from_slice(separator.after.as_bytes());
            };
            for challenge in challenges {
                separate(&mut lines, &challenge.separator);
                let line = lines.last_mut().unwrap();
                line.extend_from_slice(&challenge.scheme);
                match &challenge.body {
                    Body::Empty => {}
                    Body::Token68(token68) => {
                        line.extend(std::iter::repeat_n(b' ', challenge.spaces));
                        line.extend_from_slice(token68);
                    }
                    Body::Params(params) => {
                        for (index, param) in params.iter().enumerate() {
                            if index == 0 {
                                let line = lines.last_mut().unwrap();
                                line.extend(std::iter::repeat_n(b' ', challenge.spaces));
                            } else {
                                separate(&mut lines, &param.separator);
                            }
                            render_param(lines.last_mut().unwrap(), param);
                        }
                    }
                }
            }
            lines
                .last_mut()
                .unwrap()
                .extend_from_slice(trailing.as_bytes());
            lines
        }

        fn render_param(line: &mut Vec<u8>, param: &GenParam) {
            line.extend_from_slice(&param.name);
            line.extend_from_slice(param.before_equals.as_bytes());
            line.push(b'=');
            line.extend_from_slice(param.after_equals.as_bytes());
            match &param.value {
                GenValue::Token(token) => line.extend_from_slice(token),
                GenValue::Quoted(content) => {
                    line.push(b'"');
                    for &(byte, escape) in content {
                        if escape {
                            line.push(b'\\');
                        }
                        line.push(byte);
                    }
                    line.push(b'"');
                }
            }
        }

        fn meaning(challenges: &[GenChallenge]) -> Vec<Challenge> {
            challenges
                .iter()
                .map(|challenge| Challenge {
                    scheme: challenge.scheme.clone(),
                    token68: match &challenge.body {
                        Body::Token68(token68) => Some(token68.clone()),
                        _ => None,
                    },
                    params: match &challenge.body {
                        Body::Params(params) => params
                            .iter()
                            .map(|param| (param.name.clone(), param.value.meaning()))
                            .collect(),
                        _ => Vec::new(),
                    },
                })
                .collect()
        }

        /// The rules of [`token_rejected`], applied to what the generator meant.
        fn expected_decision(challenges: &[Challenge]) -> bool {
            if challenges.is_empty() {
                return true;
            }
            let Some(bearer) = challenges
                .iter()
                .find(|challenge| challenge.scheme.eq_ignore_ascii_case(b"bearer"))
            else {
                return false;
            };
            match param(bearer, "error") {
                None => true,
                Some(error) => error == b"invalid_token",
            }
        }

        fn header_lines() -> impl Strategy<Value = (Vec<GenChallenge>, Vec<Vec<u8>>)> {
            let edge = select(&["", " ", ",", " , ,", ",\t"][..]);
            (vec(challenge(), 0..5), edge.clone(), edge).prop_map(
                |(challenges, leading, trailing)| {
                    let lines = render(&challenges, leading, trailing);
                    (challenges, lines)
                },
            )
        }

        fn headers(lines: &[Vec<u8>]) -> HeaderMap {
            let mut headers = HeaderMap::new();
            for line in lines {
                headers.append(WWW_AUTHENTICATE, HeaderValue::from_bytes(line).unwrap());
            }
            headers
        }

        /// Pieces of the grammar, glued at random, to reach the malformed paths.
        fn fragment_soup() -> impl Strategy<Value = Vec<u8>> {
            let fragment = select(
                &[
                    "Bearer",
                    "error",
                    "invalid_token",
                    "a",
                    "abc==",
                    "/",
                    " ",
                    "\t",
                    "=",
                    ",",
                    "\"",
                    "\\",
                    "\\\"",
                    "\u{e9}",
                ][..],
            );
            vec(fragment, 0..24).prop_map(|fragments| fragments.concat().into_bytes())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn decision_matches_the_generated_challenges((challenges, lines) in header_lines()) {
                let expected = expected_decision(&meaning(&challenges));
                prop_assert_eq!(token_rejected(&headers(&lines)), expected, "{:?}", lines);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            #[test]
            fn parse_round_trips_the_generated_challenges((challenges, lines) in header_lines()) {
                let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
                prop_assert_eq!(parse(&lines), meaning(&challenges), "{:?}", lines);
            }

            #[test]
            fn any_bytes_parse_without_panicking(
                line in prop_oneof![vec(any::<u8>(), 0..64), fragment_soup()],
            ) {
                for element in Elements::new(&line) {
                    let name = match element {
                        Element::Challenge { scheme, .. } => scheme,
                        Element::Param(param) => param.name,
                    };
                    prop_assert!(!name.is_empty() && name.iter().all(|&byte| is_tchar(byte)));
                }
                if let Ok(value) = HeaderValue::from_bytes(&line) {
                    let mut headers = HeaderMap::new();
                    headers.insert(WWW_AUTHENTICATE, value);
                    token_rejected(&headers);
                }
            }
        }
    }
}
