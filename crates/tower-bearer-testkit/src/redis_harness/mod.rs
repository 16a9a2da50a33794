//! A private `redis-server` for tests, examples and benches.
//!
//! [`RedisServer::start`] runs the `redis-server` binary on a free `127.0.0.1` port with an
//! empty temporary directory and no persistence, waits until it answers `PING`, and stops it
//! when dropped. It never connects to a Redis it did not start.
//!
//! [`RedisCluster::start_tls`] and [`RedisSentinel::start_tls`] start deployments whose every
//! TCP listener speaks TLS (`port 0`): clients, replication, the cluster bus and the
//! Sentinels' links all go over TLS. The harness controls those servers through Unix
//! sockets, so a client that reaches them over TCP cannot be talking plain Redis.
//!
//! ```no_run
//! use tower_bearer_testkit::RedisServer;
//!
//! // In a test: fails, saying which package to install, when redis-server is not installed.
//! let redis = RedisServer::start_for_test("my_test");
//! println!("{}", redis.url());
//! ```

mod cluster;
mod process;
mod sentinel;
mod server;
mod tls;

pub use cluster::RedisCluster;
pub use process::{RedisServer, REDIS_CLI_ENV, REDIS_SERVER_ENV};
pub use sentinel::RedisSentinel;
pub use tls::TlsFiles;
