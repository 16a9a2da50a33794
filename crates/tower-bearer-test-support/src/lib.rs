//! Client-side helpers for the workspace's tests, and the tests that need every crate.
//!
//! The mock servers of `tower-bearer-testkit` check clients independently, so they share no
//! code with them; what a test needs on the client side lives here instead, written once:
//!
//! - [`client_credentials_source`] and [`dpop_client_credentials_source`]: token sources
//!   written against the wire, for tests that should not depend on the OAuth crate.
//! - [`NumberedSource`]: `token-1`, `token-2`, ... one per fetch, counted.
//! - [`current_token`]: the value a cache holds.
//! - [`assert_no_secret`]: the sweep of everything a user could see for secrets.
//! - [`fleet`]: what a member of the Redis tests' cross-process fleet runs (the
//!   `fleet-member` binary), and how its parent test configures it.
//!
//! Its own tests (`tests/it`) are the Redis store's behaviour tests against real Redis
//! deployments: they need the OAuth crate, the Redis crate and the test kit together.

pub mod fleet;
mod numbered_source;
mod secrets;
mod token_source;

pub use numbered_source::NumberedSource;
pub use secrets::{assert_no_secret, current_token};
pub use token_source::{client_credentials_source, dpop_client_credentials_source};
