//! The URLs of the authorization server's endpoints (token, revocation) and its issuer URL,
//! checked once when a source or a discovery is configured.

use std::fmt;
use std::net::IpAddr;

use http::Uri;

use crate::redact::{sanitize, Redactor};
use crate::BuildError;

/// The most of a URL a message quotes.
pub(crate) const MAX_URL_CHARS: usize = 300;

/// An absolute `https://` URL, or `http://` to a loopback host or with the user's consent.
#[derive(Clone)]
pub(crate) struct ServerUrl {
    uri: Uri,
}

impl ServerUrl {
    /// Checks `text` as the URL of one of the server's endpoints, or of its issuer.
    ///
    /// RFC 6749 section 3.2 requires TLS for the token endpoint, since the client secret is
    /// sent to it (and the same holds for revocation and for the metadata that names them). Plain `http://` is allowed for loopback hosts (`localhost`, 127.0.0.0/8,
    /// `::1`), where nothing leaves the machine, and otherwise only when
    /// `allow_insecure_http` is set.
    /// `name` says which endpoint it is, for messages: `"token"`, `"revocation"`, ...
    pub(crate) fn parse(
        text: &str,
        name: &str,
        allow_insecure_http: bool,
    ) -> Result<Self, BuildError> {
        // The URL may come from a server's metadata: never print it raw.
        let shown = sanitize(text, MAX_URL_CHARS, &Redactor::default());
        let uri: Uri = text.parse().map_err(|error| {
            BuildError::invalid_url(format!(
                "the {name} URL `{shown}` is not a valid URL; give an absolute URL such as \
                 https://auth.example.com/oauth2/token"
            ))
            .with_source(error)
        })?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(BuildError::invalid_url(format!(
                "the {name} URL `{shown}` is not absolute; give a full URL such as \
                 https://auth.example.com/oauth2/token"
            )));
        };
        if authority.as_str().contains('@') {
            // Never echo the URL here: the part before `@` is a credential.
            return Err(BuildError::invalid_url(format!(
                "the {name} URL has credentials before `@`; remove them and pass the client id \
                 and secret to the builder instead"
            )));
        }
        let host = authority.host();
        if scheme.eq_ignore_ascii_case("https") {
            Ok(ServerUrl { uri })
        } else if scheme.eq_ignore_ascii_case("http") {
            if allow_insecure_http || is_loopback(host) {
                Ok(ServerUrl { uri })
            } else {
                Err(BuildError::insecure_http(format!(
                    "the {name} URL `{shown}` uses plain http:// to {host}, which would send the \
                     client secret and tokens unencrypted; use https://, or call \
                     `allow_insecure_http(true)` if the network is trusted"
                )))
            }
        } else {
            Err(BuildError::invalid_url(format!(
                "the {name} URL `{shown}` has scheme `{scheme}`; only https:// (and http:// to \
                 loopback) can reach a token endpoint"
            )))
        }
    }

    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.uri, f)
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.uri, f)
    }
}

/// `localhost`, 127.0.0.0/8, `::1` (also IPv4-mapped), with or without IPv6 brackets.
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>()
        .is_ok_and(|address| address.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_accepted() {
        let url = ServerUrl::parse(
            "https://auth.example.com/oauth2/token?tenant=a",
            "token",
            false,
        )
        .unwrap();
        assert_eq!(
            url.to_string(),
            "https://auth.example.com/oauth2/token?tenant=a"
        );
    }

    #[test]
    fn http_is_refused_unless_loopback_or_allowed() {
        let error = ServerUrl::parse("http://auth.example.com/token", "token", false).unwrap_err();
        assert!(error.is_insecure_http());
        assert!(error.to_string().contains("allow_insecure_http"), "{error}");
        assert!(ServerUrl::parse("http://auth.example.com/token", "token", true).is_ok());
        assert!(ServerUrl::parse("HTTP://10.0.0.1/token", "token", false)
            .unwrap_err()
            .is_insecure_http());
        // Loopback in its spellings.
        for url in [
            "http://localhost:8080/token",
            "http://LOCALHOST/token",
            "http://127.0.0.1:9000/token",
            "http://127.10.20.30/token",
            "http://[::1]:9000/token",
            "http://[::ffff:127.0.0.1]/token",
        ] {
            assert!(ServerUrl::parse(url, "token", false).is_ok(), "{url}");
        }
        // Look-alikes are not loopback.
        for url in [
            "http://localhost.example.com/token",
            "http://128.0.0.1/token",
            "http://[::2]/token",
        ] {
            assert!(
                ServerUrl::parse(url, "token", false)
                    .unwrap_err()
                    .is_insecure_http(),
                "{url}"
            );
        }
    }

    #[test]
    fn malformed_urls_are_refused() {
        for url in [
            "",
            "/token",
            "auth.example.com/token",
            "ftp://auth.example.com/",
        ] {
            let error = ServerUrl::parse(url, "token", true).unwrap_err();
            assert!(error.is_invalid_url(), "{url}: {error}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echoing_them() {
        let error = ServerUrl::parse(
            "https://client:hunter2@auth.example.com/token",
            "token",
            false,
        )
        .unwrap_err();
        assert!(error.is_invalid_url());
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
