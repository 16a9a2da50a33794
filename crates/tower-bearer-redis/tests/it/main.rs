//! The Redis crate's behaviour tests against a real redis-server, in one binary.

mod cases;
mod cluster;
mod fleet;
mod redis_store;
mod redis_tls;
mod sentinel;
mod shared_refresh;
