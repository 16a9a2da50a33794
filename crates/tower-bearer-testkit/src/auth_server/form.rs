//! The form a token or revocation request carries (`application/x-www-form-urlencoded`,
//! RFC 6749 appendix B).

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request;

use super::rejection::{Answer, Rejection};

/// Form parameters in the order sent, decoded.
pub(super) type Params = Vec<(String, String)>;

/// The body's parameters, or `invalid_request` when it is not a form.
pub(super) fn parse_form(parts: &request::Parts, body: &Bytes) -> Answer<Params> {
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| {
            media_type
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(Rejection::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Ok(form_urlencoded::parse(body).into_owned().collect())
}

/// RFC 6749 section 3.1: parameters must not be included more than once, except those
/// RFC 8693 section 2.1 and RFC 8707 let repeat.
pub(super) fn reject_repeated(params: &Params) -> Answer<()> {
    for (index, (name, _)) in params.iter().enumerate() {
        if name == "audience" || name == "resource" {
            continue;
        }
        if params[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(Rejection::invalid_request(format!(
                "the {name} parameter is repeated"
            )));
        }
    }
    Ok(())
}

/// The value of the parameter `name`, the first if it is repeated.
pub(super) fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}
