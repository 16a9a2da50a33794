//! Reading `WWW-Authenticate` (RFC 9110 section 11.6.1) to decide whether a 401 means "this
//! token is no good" (RFC 6750 section 3.1).

use http::header::WWW_AUTHENTICATE;
use http::HeaderMap;

/// Whether a 401 with these headers says the bearer token itself was bad, so a new token may
/// succeed.
///
/// Yes for a `Bearer` challenge with `error="invalid_token"` or with no error code (RFC 6750
/// section 3: a request with an unusable token may get a bare challenge), and for a 401
/// without any `WWW-Authenticate`, which many APIs send. No for `insufficient_scope` (a new
/// token has the same scope) or `invalid_request`, and no when only other schemes are
/// challenged, since a bearer token will not satisfy them.
pub(crate) fn token_rejected(headers: &HeaderMap) -> bool {
    let mut challenges = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(parse)
        .peekable();
    if challenges.peek().is_none() {
        return true;
    }
    challenges
        .find(|challenge| challenge.scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|bearer| match bearer.param("error") {
            None => true,
            Some(error) => error == "invalid_token",
        })
}

#[derive(Debug, Default, PartialEq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Splits one header value into challenges. Challenges and their parameters are both
/// separated by commas, so an element that starts with `scheme ` opens a new challenge and
/// a bare `name=value` continues the current one.
fn parse(value: &str) -> Vec<Challenge> {
    let mut challenges: Vec<Challenge> = Vec::new();
    for element in split_outside_quotes(value) {
        let element = element.trim();
        if element.is_empty() {
            continue;
        }
        match element.split_once([' ', '\t']) {
            Some((scheme, rest)) if !scheme.contains('=') => {
                let mut challenge = Challenge {
                    scheme: scheme.to_owned(),
                    params: Vec::new(),
                };
                if let Some(param) = parse_param(rest.trim()) {
                    challenge.params.push(param);
                }
                challenges.push(challenge);
            }
            _ => match parse_param(element) {
                Some(param) => {
                    if let Some(current) = challenges.last_mut() {
                        current.params.push(param);
                    }
                }
                None => challenges.push(Challenge {
                    scheme: element.to_owned(),
                    params: Vec::new(),
                }),
            },
        }
    }
    challenges
}

/// `name = value` or `name = "quoted \"value\""`; `None` for a token68 or a bare word.
fn parse_param(text: &str) -> Option<(String, String)> {
    let (name, value) = text.split_once('=')?;
    let name = name.trim();
    let value = value.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(quoted) => unescape(quoted),
        None => value.to_owned(),
    };
    Some((name.to_owned(), value))
}

fn unescape(quoted: &str) -> String {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn split_outside_quotes(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (index, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                parts.push(&value[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn rejected(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_str(value).unwrap());
        }
        token_rejected(&headers)
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
        assert!(rejected(&[
            r#"Basic realm="x, y", Bearer error="invalid_token""#
        ]));
        assert!(rejected(&[r#"Basic realm="x""#, r#"Bearer"#]));
    }

    #[test]
    fn does_not_retry_other_errors_or_schemes() {
        assert!(!rejected(&[
            r#"Bearer realm="example", error="insufficient_scope", scope="admin""#
        ]));
        assert!(!rejected(&[r#"Bearer error="invalid_request""#]));
        assert!(!rejected(&[r#"Basic realm="example""#]));
        assert!(!rejected(&[r#"DPoP algs="ES256", error="invalid_token""#]));
    }

    #[test]
    fn parses_quoted_commas_and_escapes() {
        let challenges =
            parse(r#"Bearer realm="a, \"b\"", error="invalid_token", Basic realm="c""#);
        assert_eq!(challenges.len(), 2);
        assert_eq!(challenges[0].param("realm"), Some(r#"a, "b""#));
        assert_eq!(challenges[0].param("error"), Some("invalid_token"));
        assert_eq!(challenges[1].scheme, "Basic");
        let token68 = parse("Negotiate abc==");
        assert_eq!(token68[0].scheme, "Negotiate");
    }
}
