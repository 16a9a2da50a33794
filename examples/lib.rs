//! What the examples share and their tests drive: a gRPC service written without `protoc`,
//! and the axum gateway of `axum_gateway`.

pub mod gateway;
pub mod greeter;
mod readme;
