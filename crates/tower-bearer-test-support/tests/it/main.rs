//! The Redis store's behaviour tests against real Redis deployments, in one binary: they
//! live here, not in `tower-bearer-redis`, because they need the OAuth crate and the test
//! kit too, and the fleet tests run this crate's `fleet-member` binary.

mod cases;
mod cluster;
mod fleet;
mod redis_store;
mod redis_tls;
mod sentinel;
mod shared_refresh;
