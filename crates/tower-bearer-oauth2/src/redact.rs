//! Making text from the authorization server safe to print: the secrets one request sent are
//! replaced in every encoding the server might echo them in, control characters are escaped,
//! and the length is capped, in that order so a cut never leaves half a secret behind.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use zeroize::Zeroizing;

/// What a redacted secret becomes.
const REDACTED: &str = "[redacted]";

/// The secrets one request sent (client secret, client assertion, refresh token, subject and
/// actor tokens, the token being revoked), to be removed from whatever the server answers.
///
/// A secret is found in any of the forms a server that echoes the request could produce:
/// as sent raw, `application/x-www-form-urlencoded` (`+` for a space), percent-encoded in
/// either hex case, or JSON-escaped (`\/`, `\"`, `\uXXXX`), character by character and in
/// any mix of those, so no list of spellings can miss one. The base64 forms of the Basic
/// credentials (RFC 6749 section 2.3.1: `urlencode(id):urlencode(secret)`, and the plain
/// `id:secret` some servers expect) cannot be matched piecewise, so they are computed once,
/// when the secret is added, and then matched in the same encodings.
#[derive(Default)]
pub(crate) struct Redactor {
    /// Longest first, so a secret that contains another is removed whole.
    needles: Vec<Zeroizing<String>>,
}

impl Redactor {
    /// A secret the request sends as it is (in the form body).
    pub(crate) fn secret(&mut self, secret: &str) {
        self.add(Zeroizing::new(secret.to_owned()));
    }

    /// The client id and secret sent in an `Authorization: Basic` header.
    pub(crate) fn basic_credentials(&mut self, id: &str, secret: &str) {
        self.secret(secret);
        if secret.is_empty() {
            return;
        }
        let mut form_encoded = Zeroizing::new(String::new());
        form_encoded.extend(form_urlencoded::byte_serialize(id.as_bytes()));
        form_encoded.push(':');
        form_encoded.extend(form_urlencoded::byte_serialize(secret.as_bytes()));
        let plain = Zeroizing::new(format!("{id}:{secret}"));
        for credentials in [&form_encoded, &plain] {
            // Unpadded, so the padded value is found too (it starts with the unpadded one).
            self.add(Zeroizing::new(
                STANDARD_NO_PAD.encode(credentials.as_bytes()),
            ));
            self.add(Zeroizing::new(
                URL_SAFE_NO_PAD.encode(credentials.as_bytes()),
            ));
        }
    }

    fn add(&mut self, needle: Zeroizing<String>) {
        if needle.is_empty() || self.needles.iter().any(|known| **known == *needle) {
            return;
        }
        let at = self
            .needles
            .iter()
            .position(|known| known.len() < needle.len())
            .unwrap_or(self.needles.len());
        self.needles.insert(at, needle);
    }

    /// `text` with every form of every secret replaced by `[redacted]`.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut text = Cow::Borrowed(text);
        for needle in &self.needles {
            if let Some(redacted) = replace_forms(&text, needle) {
                text = Cow::Owned(redacted);
            }
        }
        text
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.needles.len())
            .finish()
    }
}

/// Text from the server, made safe for a message or a log line: secrets redacted, then
/// control and invisible formatting characters escaped (no forged log lines, no text that
/// reads backwards), then cut at `max_chars` with `...`.
pub(crate) fn sanitize(text: &str, max_chars: usize, redactor: &Redactor) -> String {
    let redacted = redactor.redact(text);
    let mut clean = String::with_capacity(redacted.len());
    for c in redacted.chars() {
        if is_unprintable(c) {
            clean.extend(c.escape_default());
        } else {
            clean.push(c);
        }
    }
    if let Some((cut, _)) = clean.char_indices().nth(max_chars) {
        clean.truncate(cut);
        clean.push_str("...");
    }
    clean
}

/// Control characters, and the Unicode line separators and direction overrides that some
/// terminals and log viewers act on.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `text` with each form of `needle` replaced, or `None` if there is none.
fn replace_forms(text: &str, needle: &str) -> Option<String> {
    let mut redacted: Option<String> = None;
    let mut copied = 0;
    let mut at = 0;
    let mut positions = Positions::default();
    while let Some(c) = text[at..].chars().next() {
        match positions.form_end(text, at, needle) {
            Some(end) => {
                let out = redacted.get_or_insert_with(String::new);
                out.push_str(&text[copied..at]);
                out.push_str(REDACTED);
                copied = end;
                at = end;
            }
            None => at += c.len_utf8(),
        }
    }
    redacted.map(|mut out| {
        out.push_str(&text[copied..]);
        out
    })
}

/// The text positions a partial match has reached, kept between calls so that trying every
/// start position allocates nothing.
#[derive(Default)]
struct Positions {
    reached: Vec<usize>,
    next: Vec<usize>,
}

impl Positions {
    /// Where the longest form of `needle` that starts at byte `start` of `text` ends.
    ///
    /// Follows every way each character can be written at once (one character may be
    /// literal while the next is `%2B`), keeping the set of positions reached so far: a
    /// handful, so this is linear in the length of `needle`.
    fn form_end(&mut self, text: &str, start: usize, needle: &str) -> Option<usize> {
        self.reached.clear();
        self.reached.push(start);
        for c in needle.chars() {
            self.next.clear();
            for &at in &self.reached {
                char_forms(text, at, c, &mut self.next);
            }
            if self.next.is_empty() {
                return None;
            }
            self.next.sort_unstable();
            self.next.dedup();
            std::mem::swap(&mut self.reached, &mut self.next);
        }
        self.reached.last().copied()
    }
}

/// Pushes the end of each form of `c` found at byte `at` of `text`.
fn char_forms(text: &str, at: usize, c: char, ends: &mut Vec<usize>) {
    let rest = text.as_bytes().get(at..).unwrap_or_default();
    let mut utf8 = [0; 4];
    let literal = c.encode_utf8(&mut utf8).as_bytes();
    if rest.starts_with(literal) {
        ends.push(at + literal.len());
    }
    // Form encoding writes a space as `+`.
    if c == ' ' && rest.first() == Some(&b'+') {
        ends.push(at + 1);
    }
    // Percent-encoding: `%XX` per UTF-8 byte, either hex case.
    if literal
        .iter()
        .enumerate()
        .all(|(i, &byte)| percent_byte(rest.get(i * 3..i * 3 + 3)) == Some(byte))
    {
        ends.push(at + literal.len() * 3);
    }
    // JSON: `\uXXXX` per UTF-16 unit, either hex case, or a two-character escape.
    let mut utf16 = [0; 2];
    let units = c.encode_utf16(&mut utf16);
    if units
        .iter()
        .enumerate()
        .all(|(i, &unit)| json_unit(rest.get(i * 6..i * 6 + 6)) == Some(unit))
    {
        ends.push(at + units.len() * 6);
    }
    let short_escape = match c {
        '"' => Some(b'"'),
        '\\' => Some(b'\\'),
        '/' => Some(b'/'),
        '\u{8}' => Some(b'b'),
        '\u{c}' => Some(b'f'),
        '\n' => Some(b'n'),
        '\r' => Some(b'r'),
        '\t' => Some(b't'),
        _ => None,
    };
    if let Some(escaped) = short_escape {
        if rest.starts_with(&[b'\\', escaped]) {
            ends.push(at + 2);
        }
    }
}

/// The byte `%XX` stands for.
fn percent_byte(escape: Option<&[u8]>) -> Option<u8> {
    match escape? {
        [b'%', high, low] => Some(hex_digit(*high)? << 4 | hex_digit(*low)?),
        _ => None,
    }
}

/// The UTF-16 unit `\uXXXX` stands for.
fn json_unit(escape: Option<&[u8]>) -> Option<u16> {
    match escape? {
        [b'\\', b'u', digits @ ..] => digits.iter().try_fold(0u16, |unit, &digit| {
            Some(unit << 4 | u16::from(hex_digit(digit)?))
        }),
        _ => None,
    }
}

fn hex_digit(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    const SECRET: &str = "p@ss/w%rd+ \"ü\"😀";

    fn redactor(secret: &str) -> Redactor {
        let mut redactor = Redactor::default();
        redactor.secret(secret);
        redactor
    }

    /// Percent-encoding of every byte but the unreserved ones (RFC 3986 section 2.3).
    fn percent_encoded(text: &str, lowercase: bool) -> String {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(byte).to_string()
                }
                _ if lowercase => format!("%{byte:02x}"),
                _ => format!("%{byte:02X}"),
            })
            .collect()
    }

    /// JSON with every character outside ASCII letters and digits as `\uXXXX`.
    fn json_unicode_escaped(text: &str) -> String {
        text.encode_utf16()
            .map(|unit| match char::from_u32(u32::from(unit)) {
                Some(c) if c.is_ascii_alphanumeric() => c.to_string(),
                _ => format!("\\u{unit:04X}"),
            })
            .collect()
    }

    #[test]
    fn every_encoding_of_a_secret_is_redacted() {
        let form: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
        let forms = [
            SECRET.to_owned(),
            form.clone(),
            form.to_lowercase(),
            percent_encoded(SECRET, false),
            percent_encoded(SECRET, true),
            // As serde_json writes it, and with `/` escaped as PHP's json_encode does.
            serde_json::to_string(SECRET).unwrap(),
            serde_json::to_string(SECRET).unwrap().replace('/', "\\/"),
            json_unicode_escaped(SECRET),
            json_unicode_escaped(SECRET).to_lowercase(),
            // A mix: half literal, half encoded.
            format!("p@ss/w{}", &form[10..]),
        ];
        let redactor = redactor(SECRET);
        for form in forms {
            let text = format!("client_secret={form}&x=1");
            let redacted = redactor.redact(&text);
            assert!(
                redacted == "client_secret=[redacted]&x=1"
                    || redacted == "client_secret=\"[redacted]\"&x=1",
                "{form}: {redacted}"
            );
        }
    }

    #[test]
    fn basic_credentials_are_redacted_in_base64() {
        let (id, secret) = ("my client:1", "p@ss:w%rd+ ü");
        let mut redactor = Redactor::default();
        redactor.basic_credentials(id, secret);
        let form_encoded = format!(
            "{}:{}",
            form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        for credentials in [form_encoded.as_str(), &format!("{id}:{secret}")] {
            let base64 = STANDARD.encode(credentials);
            for echoed in [
                format!("Basic {base64}"),
                serde_json::to_string(&base64).unwrap().replace('/', "\\/"),
                percent_encoded(&base64, true),
                URL_SAFE_NO_PAD.encode(credentials),
            ] {
                let redacted = redactor.redact(&echoed);
                assert!(redacted.contains(REDACTED), "{echoed}: {redacted}");
                assert!(
                    !redacted.contains(&base64[..base64.len() / 2]),
                    "{redacted}"
                );
            }
        }
        // The decoded header, as a server might print it.
        assert_eq!(redactor.redact(&form_encoded), "my+client%3A1:[redacted]");
    }

    #[test]
    fn a_secret_inside_another_is_not_left_half_redacted() {
        let mut redactor = Redactor::default();
        redactor.secret("abc");
        redactor.secret("xxabcxx");
        assert_eq!(
            redactor.redact("1 xxabcxx 2 abc"),
            "1 [redacted] 2 [redacted]"
        );
    }

    #[test]
    fn text_without_secrets_is_borrowed() {
        let redactor = redactor("hunter2");
        assert!(matches!(redactor.redact("all fine %2"), Cow::Borrowed(_)));
        assert!(matches!(Redactor::default().redact("x"), Cow::Borrowed(_)));
        assert!(!format!("{redactor:?}").contains("hunter2"));
    }

    #[test]
    fn sanitize_redacts_before_it_cuts() {
        let secret = "0123456789abcdef";
        let text = format!("{}{secret} tail", "a".repeat(95));
        // Cut first, the text would end in "01234": half the secret.
        let clean = sanitize(&text, 100, &redactor(secret));
        assert_eq!(clean, format!("{}[reda...", "a".repeat(95)));
        assert!(!clean.contains("01234"));
    }

    #[test]
    fn sanitize_escapes_what_could_forge_a_line() {
        let clean = sanitize(
            "a\nb\r\u{1b}[31mc\u{2028}d\u{202e}e",
            100,
            &Redactor::default(),
        );
        assert_eq!(clean, "a\\nb\\r\\u{1b}[31mc\\u{2028}d\\u{202e}e");
        assert_eq!(sanitize("ü😀", 1, &Redactor::default()), "ü...");
        assert_eq!(sanitize("", 0, &Redactor::default()), "");
    }
}
