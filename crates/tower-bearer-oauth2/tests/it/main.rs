//! The OAuth crate's behaviour tests, in one binary: one module per topic.

mod client_credentials;
mod discovery;
mod dpop;
mod echoed_secrets;
mod error_chains;
mod interop;
mod interop_mtls;
mod jwt_bearer;
mod mtls;
mod oidc_provider;
mod private_key_jwt;
mod refresh_token;
mod retries;
mod revocation;
mod secret_auto;
mod support;
mod token_exchange;
