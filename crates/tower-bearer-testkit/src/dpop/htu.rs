//! Comparing a proof's `htu` with the request's URI (RFC 9449 section 4.3, check 9).

use std::net::SocketAddr;

use http::header::HOST;
use http::uri::Authority;
use http::{request, Uri};

/// An `http` or `https` URI reduced to what `htu` is compared on: the scheme and host in
/// lowercase, the port unless it is the scheme's default, and the path (`/` when empty,
/// percent escapes in uppercase), without query or fragment (RFC 3986 section 6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUri {
    scheme: String,
    authority: String,
    path: String,
}

impl HttpUri {
    /// Reads an absolute URI such as a proof's `htu`; `None` if it is not one.
    pub(crate) fn parse(uri: &str) -> Option<HttpUri> {
        // `http::Uri` has no room for a fragment, and `htu` is compared without one.
        let without_fragment = uri.split('#').next().unwrap_or_default();
        let uri: Uri = without_fragment.parse().ok()?;
        let scheme = uri.scheme_str()?;
        let is_http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
        let authority = uri.authority().filter(|_| is_http)?;
        Some(HttpUri::new(
            scheme,
            authority.host(),
            authority.port_u16(),
            uri.path(),
        ))
    }

    /// The URI a request to the server at `own` (`https` or not) was sent to (RFC 9110
    /// section 7.1): the request's own scheme and authority when it came in absolute form,
    /// else the server's scheme with the `Host` header, or `own` when there is no usable
    /// `Host`; and the request's path.
    pub(crate) fn of_request(https: bool, own: SocketAddr, parts: &request::Parts) -> HttpUri {
        let path = parts.uri.path();
        if let (Some(scheme), Some(authority)) = (parts.uri.scheme_str(), parts.uri.authority()) {
            return HttpUri::new(scheme, authority.host(), authority.port_u16(), path);
        }
        let scheme = if https { "https" } else { "http" };
        let host = parts
            .headers
            .get(HOST)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<Authority>().ok());
        match host {
            Some(host) => HttpUri::new(scheme, host.host(), host.port_u16(), path),
            None => HttpUri::new(scheme, &own.ip().to_string(), Some(own.port()), path),
        }
    }

    fn new(scheme: &str, host: &str, port: Option<u16>, path: &str) -> HttpUri {
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        };
        let host = host.to_ascii_lowercase();
        let authority = match port {
            Some(port) if Some(port) != default_port => format!("{host}:{port}"),
            _ => host,
        };
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            uppercase_escapes(path)
        };
        HttpUri {
            scheme,
            authority,
            path,
        }
    }
}

/// `%2f` becomes `%2F`; the rest stays.
fn uppercase_escapes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|c| c.to_ascii_uppercase()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn request(uri: &str, host: Option<&str>) -> request::Parts {
        let mut builder = Request::get(uri);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn scheme_and_host_ignore_case_and_query_and_fragment_are_dropped() {
        let target = HttpUri::parse("http://127.0.0.1:8080/token").unwrap();
        for same in [
            "HTTP://127.0.0.1:8080/token",
            "http://127.0.0.1:8080/token?x=1",
            "http://127.0.0.1:8080/token#frag",
            "http://127.0.0.1:8080/token?x=1#frag",
        ] {
            assert_eq!(HttpUri::parse(same).as_ref(), Some(&target), "{same}");
        }
        for other in [
            "https://127.0.0.1:8080/token",
            "http://127.0.0.1:8081/token",
            "http://localhost:8080/token",
            "http://127.0.0.1:8080/Token",
            "http://127.0.0.1:8080/token/",
        ] {
            assert_ne!(HttpUri::parse(other).as_ref(), Some(&target), "{other}");
        }
        assert_eq!(
            HttpUri::parse("http://Example.COM:80"),
            HttpUri::parse("http://example.com/")
        );
        assert_eq!(
            HttpUri::parse("https://a.example:443/%7euser"),
            HttpUri::parse("https://a.example/%7Euser")
        );
    }

    #[test]
    fn what_is_not_an_absolute_uri_is_none() {
        for junk in [
            "",
            "/token",
            "token",
            "http://",
            "://x/y",
            "ftp://x/y",
            "http://a b/",
            "\u{1F600}",
        ] {
            assert_eq!(HttpUri::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn the_request_uri_comes_from_host_or_the_server_address() {
        let own: SocketAddr = ([127, 0, 0, 1], 4000).into();
        let expected = HttpUri::parse("http://127.0.0.1:4000/things").unwrap();
        let parts = request("/things?page=2", None);
        assert_eq!(HttpUri::of_request(false, own, &parts), expected);
        let parts = request("/things", Some("127.0.0.1:4000"));
        assert_eq!(HttpUri::of_request(false, own, &parts), expected);
        let parts = request("/things", Some("LOCALHOST:4000"));
        assert_eq!(
            HttpUri::of_request(false, own, &parts),
            HttpUri::parse("http://localhost:4000/things").unwrap()
        );
        let parts = request("/things", Some("not a host"));
        assert_eq!(HttpUri::of_request(false, own, &parts), expected);
        let parts = request("/things", None);
        assert_eq!(
            HttpUri::of_request(true, own, &parts),
            HttpUri::parse("https://127.0.0.1:4000/things").unwrap()
        );
        let parts = request("https://127.0.0.1:4000/things?q", None);
        assert_eq!(
            HttpUri::of_request(false, own, &parts),
            HttpUri::parse("https://127.0.0.1:4000/things").unwrap()
        );
    }
}
