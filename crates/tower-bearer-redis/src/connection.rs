//! The connection to Redis, whatever its topology: created on first use, reconnecting by
//! itself, failing fast while Redis is known to be down.
//!
//! This is the one module that knows whether the store talks to one node, a cluster or a
//! Sentinel-managed master. Redirections (`MOVED`, `ASK`) and failovers are the `redis`
//! crate's clients' business; this module only picks the client and keeps the connection.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisFuture, ServerErrorKind, Value};
use tower_bearer::store::{StoreError, StoreErrorKind};

#[derive(Clone, Debug)]
pub(crate) struct ConnectionSettings {
    pub(crate) connection_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) reconnect_interval: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            // Under StoreSource's default 500 ms operation timeout, so a slow Redis is seen
            // here (and calls fail fast for a while) rather than only timed out there.
            connection_timeout: Duration::from_millis(400),
            response_timeout: Duration::from_millis(400),
            reconnect_interval: Duration::from_secs(1),
        }
    }
}

/// The `redis` crate's client for each topology.
pub(crate) enum Client {
    /// One node, through a [`ConnectionManager`] that reconnects to it.
    Single(redis::Client),
    /// A Redis Cluster: the cluster client follows redirections and slot moves itself.
    Cluster(ClusterClient),
    /// The master a group of Sentinels names; asked again after the connection fails.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// A live connection of one of the topologies; cheap to clone (each is a handle).
#[derive(Clone)]
enum Live {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(MultiplexedConnection),
}

pub(crate) struct Connection {
    client: Client,
    settings: ConnectionSettings,
    live: Mutex<Option<Live>>,
    /// Until when calls fail at once, after Redis last failed to answer.
    down_until: Mutex<Option<Instant>>,
}

impl Connection {
    pub(crate) fn new(client: Client, settings: ConnectionSettings) -> Self {
        Connection {
            client,
            settings,
            live: Mutex::new(None),
            down_until: Mutex::new(None),
        }
    }

    /// Sends `command`; `what` names it in errors.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        command: &Cmd,
    ) -> Result<T, StoreError> {
        self.send(what, |mut connection| async move {
            command.query_async(&mut connection).await
        })
        .await
    }

    /// Runs `script`; `what` names it in errors.
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.send(what, |mut connection| async move {
            script.invoke_async(&mut connection).await
        })
        .await
    }

    async fn send<T, F, Fut>(&self, what: &str, request: F) -> Result<T, StoreError>
    where
        F: Fn(Live) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let (connection, reused) = self.live().await?;
        match request(connection).await {
            // Behind Sentinel a connection that worked before and fails now most likely
            // points at a master that is gone or demoted: ask the Sentinels once, at once.
            Err(error) if reused && self.is_sentinel() && lost_master(&error) => {
                tracing::debug!(%error, "the Redis master went away; asking the Sentinels");
                *lock(&self.live) = None;
                let (connection, _) = self.live().await?;
                request(connection)
                    .await
                    .map_err(|error| self.failed(what, error))
            }
            result => result.map_err(|error| self.failed(what, error)),
        }
    }

    fn is_sentinel(&self) -> bool {
        matches!(self.client, Client::Sentinel(_))
    }

    fn failed(&self, what: &str, error: redis::RedisError) -> StoreError {
        let kind = if error.is_timeout() {
            StoreErrorKind::Timeout
        } else if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || fails_over(&error)
        {
            StoreErrorKind::Unavailable
        } else {
            // A server error (wrong type, no permission): Redis is up but refuses.
            return StoreError::new(StoreErrorKind::Unavailable, format!("Redis refused {what}"))
                .with_source(error);
        };
        if self.is_sentinel() {
            // The master may have moved: ask the Sentinels again on the next call.
            *lock(&self.live) = None;
        }
        *lock(&self.down_until) = Some(Instant::now() + self.settings.reconnect_interval);
        StoreError::new(kind, format!("{what} failed")).with_source(error)
    }

    /// The live connection, created on first use, and whether it was made before this
    /// call; an error while Redis is known down.
    async fn live(&self) -> Result<(Live, bool), StoreError> {
        if let Some(until) = *lock(&self.down_until) {
            if Instant::now() < until {
                return Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!(
                        "Redis did not answer moments ago; trying again after {:?}",
                        self.settings.reconnect_interval
                    ),
                ));
            }
        }
        if let Some(live) = &*lock(&self.live) {
            return Ok((live.clone(), true));
        }
        let created = match &self.client {
            Client::Single(client) => Live::Single(self.connection_manager(client)?),
            Client::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(self.settings.connection_timeout)
                    .set_response_timeout(self.settings.response_timeout);
                Live::Cluster(client.get_pending_async_connection_with_config(config))
            }
            Client::Sentinel(client) => {
                // One lookup at a time; whoever waited finds the connection made.
                let mut client = client.lock().await;
                if let Some(live) = &*lock(&self.live) {
                    return Ok((live.clone(), false));
                }
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.settings.connection_timeout))
                    .set_response_timeout(Some(self.settings.response_timeout));
                let lookup = client.get_async_connection_with_config(&config);
                // The Sentinels are asked one after another: bound the whole lookup.
                let limit = self.settings.connection_timeout * 2;
                match tokio::time::timeout(limit, lookup).await {
                    Ok(Ok(connection)) => Live::Sentinel(connection),
                    Ok(Err(error)) => return Err(self.failed("finding the master", error)),
                    Err(_) => {
                        let error = redis::RedisError::from(std::io::Error::from(
                            std::io::ErrorKind::TimedOut,
                        ));
                        return Err(self.failed("finding the master", error));
                    }
                }
            }
        };
        let mut live = lock(&self.live);
        Ok((live.get_or_insert(created).clone(), false))
    }

    fn connection_manager(&self, client: &redis::Client) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.connection_timeout))
            .set_response_timeout(Some(self.settings.response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(self.settings.reconnect_interval);
        ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|error| {
            StoreError::new(
                StoreErrorKind::Config,
                "creating the Redis connection failed",
            )
            .with_source(error)
        })
    }
}

/// Errors that say the connection's node is gone or no longer the master.
fn lost_master(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

/// Errors a node gives while its part of the topology fails over: no master for the slot
/// yet, or a former master that is a replica now.
fn fails_over(error: &redis::RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        )
    )
}

impl ConnectionLike for Live {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Live::Single(connection) => connection.req_packed_command(cmd),
            Live::Cluster(connection) => connection.req_packed_command(cmd),
            Live::Sentinel(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Live::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Live::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
            Live::Sentinel(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Live::Single(connection) => connection.get_db(),
            Live::Cluster(connection) => connection.get_db(),
            Live::Sentinel(connection) => connection.get_db(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
