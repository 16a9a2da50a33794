use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use http::Uri;

/// The origins a token may go to: an allow-list, parsed once and shared by every clone of
/// the [`Authorizer`](super::Authorizer) (and the layer or middleware that drives it).
///
/// ```
/// use tower_bearer::authorizer::AllowedOrigins;
///
/// let origins = AllowedOrigins::new(["https://api.example.com", "http://127.0.0.1:8080"])?;
/// assert!(origins.contains(&"https://API.example.com:443/v1/orders?page=2".parse()?));
/// assert!(!origins.contains(&"http://api.example.com/v1/orders".parse()?));
/// assert!(!origins.contains(&"/relative".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedOrigins(Arc<[Origin]>);

impl AllowedOrigins {
    /// Parses each origin (`https://api.example.com`, `http://127.0.0.1:8080`); the first
    /// that is not one is the error.
    pub fn new<I>(origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let origins = origins
            .into_iter()
            .map(|origin| origin.as_ref().parse())
            .collect::<Result<Vec<Origin>, _>>()?;
        Ok(AllowedOrigins(origins.into()))
    }

    /// Whether `uri` points at one of the origins. A relative URI never does.
    pub fn contains(&self, uri: &Uri) -> bool {
        self.0.iter().any(|origin| origin.matches(uri))
    }

    /// The origins, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Origin> {
        self.0.iter()
    }

    /// What the list says about a request to `uri`.
    #[inline(never)]
    pub(super) fn check(&self, uri: &Uri) -> Check {
        if uri.scheme().is_none() || uri.host().is_none() {
            return Check::Relative;
        }
        if self.contains(uri) {
            Check::Allowed
        } else {
            Check::NotAllowed
        }
    }
}

/// What the allow-list says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    Allowed,
    NotAllowed,
    /// A relative URI: it cannot be checked.
    Relative,
}

/// A scheme, host and port that may receive the token (RFC 6454 origin).
///
/// Parsed from `https://api.example.com` or `http://127.0.0.1:8080`; a missing port is the
/// scheme's default. Hosts compare without regard to case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Whether `uri` points at this origin. A relative URI never does.
    pub fn matches(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        let Some(port) = uri.port_u16().or_else(|| default_port(scheme)) else {
            return false;
        };
        port == self.port
            && scheme.eq_ignore_ascii_case(&self.scheme)
            && host.eq_ignore_ascii_case(&self.host)
    }
}

pub(super) fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

impl FromStr for Origin {
    type Err = InvalidOrigin;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidOrigin {
            origin: text.to_owned(),
            reason,
        };
        let uri: Uri = text.parse().map_err(|_| invalid("it is not a valid URI"))?;
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| invalid("it has no scheme; write it as https://host[:port]"))?;
        let host = uri
            .host()
            .ok_or_else(|| invalid("it has no host; write it as https://host[:port]"))?;
        if uri
            .path_and_query()
            .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
        {
            return Err(invalid("an origin has no path or query; remove them"));
        }
        let port = uri
            .port_u16()
            .or_else(|| default_port(scheme))
            .ok_or_else(|| invalid("the scheme has no default port; add one"))?;
        Ok(Origin {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// A string that is not an origin like `https://api.example.com`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOrigin {
    origin: String,
    reason: &'static str,
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a valid origin: {}",
            self.origin, self.reason
        )
    }
}

impl std::error::Error for InvalidOrigin {}

/// The error the [`Authorizer`](super::Authorizer) refuses a request with, so that it is not
/// sent, for a relative URI (no scheme and host) when an [allow-list](super::AllowedOrigins)
/// is set: such a request cannot be checked against the list.
///
/// tonic sends path-only URIs (`/package.Service/Method`) unless the client is given an
/// origin; build it with `with_origin`, or leave `allow_origins` out, since a tonic
/// `Channel` only reaches the endpoint it was built for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelativeUri {
    path: String,
}

impl RelativeUri {
    pub(super) fn new(uri: &Uri) -> Self {
        // The path only: a query may carry values that do not belong in an error.
        RelativeUri {
            path: uri.path().to_owned(),
        }
    }

    /// The path of the request that was refused.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for RelativeUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request to `{}` has no scheme and host, so it cannot be checked against \
             `allow_origins` and was not sent; give requests absolute URIs (a tonic client: \
             `with_origin`), or leave `allow_origins` out if the inner service reaches one \
             origin only",
            self.path
        )
    }
}

impl std::error::Error for RelativeUri {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let origin: Origin = "https://API.example.com".parse().unwrap();
        assert!(origin.matches(&"https://api.example.com/v1/x?y".parse().unwrap()));
        assert!(origin.matches(&"https://api.example.com:443/".parse().unwrap()));
        assert!(!origin.matches(&"http://api.example.com/".parse().unwrap()));
        assert!(!origin.matches(&"https://api.example.com:8443/".parse().unwrap()));
        assert!(!origin.matches(&"https://evil.example.com/".parse().unwrap()));
        assert!(!origin.matches(&"/relative".parse().unwrap()));
        let local: Origin = "http://127.0.0.1:8080".parse().unwrap();
        assert!(local.matches(&"http://127.0.0.1:8080/a".parse().unwrap()));
        assert_eq!(local.to_string(), "http://127.0.0.1:8080");
    }

    #[test]
    fn rejects_non_origins() {
        for bad in [
            "api.example.com",
            "https://a.example/path",
            "ftp://host",
            "::",
        ] {
            let error = bad.parse::<Origin>().unwrap_err();
            assert!(error.to_string().contains(bad), "{error}");
        }
    }
}
