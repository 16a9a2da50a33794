//! Behaviour of the mock servers over real sockets, seen by a plain hyper client.

mod api_server;
mod auth_server;
mod faults;
mod lifecycle;
mod revocation_metadata;
mod support;
