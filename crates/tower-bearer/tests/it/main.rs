//! The core crate's behaviour tests, in one binary: one module per topic.

mod auth;
mod cache;
mod dpop;
mod e2e;
mod faults;
mod grpc;
mod health;
mod oauth2_crate;
mod redirects;
mod retry;
mod secrets;
mod sources;
mod store;
mod support;
