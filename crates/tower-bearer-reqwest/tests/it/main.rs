//! Behaviour tests: a real `reqwest::Client` with `BearerAuthMiddleware`, over loopback
//! sockets, against the testkit's authorization server and API.

mod dpop;
mod fetch_errors;
mod origins;
mod replay;
mod secrets;
mod support;
