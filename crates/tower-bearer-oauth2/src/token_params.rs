//! What a token request asks for besides the grant: the scope, `audience`, RFC 8707
//! `resource`s and extra parameters, and the rules they must follow, checked once when a
//! source is built.

use std::fmt;

use crate::BuildError;

/// Parameters this crate sets itself for every grant, which [`TokenParams::param`] may not
/// override.
const RESERVED_PARAMS: &[&str] = &[
    "grant_type",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// The scope, audiences, resources and extra parameters of a token request, the same for
/// every grant: give them to a grant's builder with `params`, such as
/// [`ClientCredentialsBuilder::params`](crate::ClientCredentialsBuilder::params).
///
/// Parameters are sent in the order given, after `grant_type` and the scope. Nothing is
/// checked until the source is built: a malformed scope or resource, an empty name, or a
/// parameter the crate or the grant sets itself (`grant_type`, `scope`, `client_id`,
/// `client_secret`, `client_assertion`, `client_assertion_type`, and the grant's own, such
/// as `refresh_token`) fails with [`BuildError::is_invalid_parameter`].
///
/// ```
/// use tower_bearer_oauth2::TokenParams;
///
/// let params = TokenParams::new()
///     .scopes(["orders:read", "orders:write"])
///     .audience("https://api.example.com")
///     .resource("https://api.example.com/orders")
///     .param("tenant", "acme");
/// # let _ = params;
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct TokenParams {
    pub(crate) scope: Option<String>,
    pub(crate) params: Vec<(String, String)>,
}

impl TokenParams {
    /// No scope and no parameters: the server's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The scope to request, as a space-separated list (RFC 6749 section 3.3). Replaces any
    /// scope set before. Runs of whitespace are collapsed; an empty scope requests none.
    ///
    /// With the refresh token grant it can only narrow the scope the refresh token was
    /// granted (RFC 6749 section 6); without it the server grants that whole scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The scopes to request, one per item. Replaces any scope set before.
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut joined = String::new();
        for scope in scopes {
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(scope.as_ref());
        }
        self.scope = Some(joined);
        self
    }

    /// An `audience`: which API the token is for, as Auth0, Okta and token exchange
    /// (RFC 8693 section 2.1) spell it. Repeatable.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.param("audience", audience)
    }

    /// A `resource` (RFC 8707): an absolute URI of an API the token is for, without a
    /// fragment. Repeatable, for a token meant for several resources.
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// An extra form parameter, for servers that want more than the RFCs. Repeatable.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Checks the parameters for a grant that sets `grant_params` itself (refused with
    /// `advice`), and normalizes the scope: what a source sends.
    pub(crate) fn check(self, grant_params: &[&str], advice: &str) -> Result<Self, BuildError> {
        for (name, value) in &self.params {
            if grant_params.contains(&name.as_str()) {
                return Err(BuildError::invalid_parameter(format!(
                    "the extra parameter `{name}` is set by tower-bearer-oauth2 itself; {advice}"
                )));
            }
            check_param(name, value)?;
        }
        Ok(TokenParams {
            scope: self
                .scope
                .as_deref()
                .map(normalize_scope)
                .transpose()?
                .flatten(),
            params: self.params,
        })
    }
}

impl fmt::Debug for TokenParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenParams")
            .field("scope", &self.scope)
            .field("params", &ParamNames(&self.params))
            .finish()
    }
}

/// Prints parameter names only: a value may be a credential of some other kind.
struct ParamNames<'a>(&'a [(String, String)]);

impl fmt::Debug for ParamNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Collapses whitespace and checks each scope token's characters (RFC 6749 section 3.3:
/// visible ASCII except `"` and `\`). `None` for an empty scope.
fn normalize_scope(scope: &str) -> Result<Option<String>, BuildError> {
    let tokens: Vec<&str> = scope.split_ascii_whitespace().collect();
    if let Some(bad) = tokens.iter().find(|token| {
        !token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        return Err(BuildError::invalid_parameter(format!(
            "the scope `{}` has a character RFC 6749 does not allow in a scope (only visible \
             ASCII without `\"` and `\\`); check the scope names",
            bad.escape_debug()
        )));
    }
    Ok((!tokens.is_empty()).then(|| tokens.join(" ")))
}

fn check_param(name: &str, value: &str) -> Result<(), BuildError> {
    if name.is_empty() {
        return Err(BuildError::invalid_parameter(
            "an extra parameter has an empty name; give every `param` a name".to_owned(),
        ));
    }
    if RESERVED_PARAMS.contains(&name) {
        return Err(BuildError::invalid_parameter(format!(
            "the extra parameter `{name}` is set by tower-bearer-oauth2 itself; use its own \
             method for it (`TokenParams::scope`, the `ClientAuth`, ...)"
        )));
    }
    if name == "resource" && !is_absolute_uri_without_fragment(value) {
        return Err(BuildError::invalid_parameter(format!(
            "the resource `{}` is not an absolute URI without a fragment, as RFC 8707 \
             section 2 requires; give a full URI such as https://api.example.com/",
            value.escape_debug()
        )));
    }
    Ok(())
}

/// `scheme ":" rest`, no `#` (RFC 3986 section 4.3; the scheme per section 3.1).
fn is_absolute_uri_without_fragment(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !value.contains('#')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(params: TokenParams) -> Result<TokenParams, BuildError> {
        params.check(&[], "")
    }

    #[test]
    fn scopes_are_normalized() {
        let scope = |params: TokenParams| check(params).unwrap().scope;
        assert_eq!(scope(TokenParams::new()), None);
        assert_eq!(
            scope(TokenParams::new().scope("  a   b\tc ")),
            Some("a b c".into())
        );
        assert_eq!(
            scope(TokenParams::new().scopes(["a", "b"])),
            Some("a b".into())
        );
        assert_eq!(scope(TokenParams::new().scopes(Vec::<String>::new())), None);
        assert_eq!(scope(TokenParams::new().scope("")), None);
    }

    #[test]
    fn malformed_parameters_are_refused() {
        for reserved in ["grant_type", "scope", "client_id", "client_secret"] {
            let error = check(TokenParams::new().param(reserved, "x")).unwrap_err();
            assert!(error.is_invalid_parameter(), "{reserved}");
        }
        assert!(check(TokenParams::new().param("", "x"))
            .unwrap_err()
            .is_invalid_parameter());
        for resource in [
            "api",
            "https://api.example.com/#frag",
            "/relative",
            "https:",
        ] {
            assert!(
                check(TokenParams::new().resource(resource))
                    .unwrap_err()
                    .is_invalid_parameter(),
                "{resource}"
            );
        }
        assert!(check(TokenParams::new().scope("read \"write\""))
            .unwrap_err()
            .is_invalid_parameter());
        assert!(check(TokenParams::new().scope("réad"))
            .unwrap_err()
            .is_invalid_parameter());
        let error = TokenParams::new()
            .param("refresh_token", "x")
            .check(&["refresh_token"], "pass it to the builder")
            .unwrap_err();
        assert!(error.is_invalid_parameter());
        assert!(
            error.to_string().contains("pass it to the builder"),
            "{error}"
        );
    }

    #[test]
    fn parameters_keep_their_order_and_debug_shows_names_only() {
        let params = TokenParams::new()
            .audience("https://api.example.com")
            .param("assertion_hint", "param-s3cr3t")
            .resource("urn:example:billing");
        let printed = format!("{params:?}");
        assert!(printed.contains("assertion_hint"), "{printed}");
        assert!(!printed.contains("param-s3cr3t"), "{printed}");
        let checked = check(params).unwrap();
        let names: Vec<&str> = checked
            .params
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["audience", "assertion_hint", "resource"]);
    }
}
