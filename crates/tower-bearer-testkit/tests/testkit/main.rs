//! Behaviour of the mock servers over real sockets, seen by a plain hyper client.

mod api_server;
mod auth_server;
mod dpop_api_server;
mod dpop_auth_server;
mod dpop_proof;
mod dpop_proof_verifier;
mod faults;
mod lifecycle;
mod revocation_metadata;
mod support;
