//! Looking for secrets where a user could see them.

use secrecy::ExposeSecret;
use tower_bearer::TokenCache;

/// The value of the token `cache` holds now.
///
/// # Panics
///
/// When no token is cached.
pub fn current_token(cache: &TokenCache) -> String {
    cache
        .cached()
        .expect("a token is cached")
        .secret()
        .expose_secret()
        .to_owned()
}

/// Asserts that no text in `seen` (what a user could print or log: `Debug` and `Display`
/// of values and errors, each error's sources, captured logs) contains any of `secrets`.
///
/// # Panics
///
/// Saying which secret leaked into which text, by their positions in the slices, and
/// printing neither: a failed test's message is shown, and must not leak it again.
pub fn assert_no_secret<S: AsRef<str>>(seen: &[String], secrets: &[S]) {
    for (text_at, text) in seen.iter().enumerate() {
        for (secret_at, secret) in secrets.iter().enumerate() {
            assert!(
                !text.contains(secret.as_ref()),
                "secret {secret_at} leaked into text {text_at} (of {})",
                seen.len()
            );
        }
    }
}
