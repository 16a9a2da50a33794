//! The connection to Redis: created on first use, reconnecting by itself, failing fast
//! while Redis is known to be down.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
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

pub(crate) struct Connection {
    client: redis::Client,
    settings: ConnectionSettings,
    manager: Mutex<Option<ConnectionManager>>,
    /// Until when calls fail at once, after Redis last failed to answer.
    down_until: Mutex<Option<Instant>>,
}

impl Connection {
    pub(crate) fn new(client: redis::Client, settings: ConnectionSettings) -> Self {
        Connection {
            client,
            settings,
            manager: Mutex::new(None),
            down_until: Mutex::new(None),
        }
    }

    /// Sends `command`; `what` names it in errors.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        command: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut connection = self.manager()?;
        let result = command.query_async(&mut connection).await;
        result.map_err(|error| self.failed(what, error))
    }

    /// Runs `script`; `what` names it in errors.
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut connection = self.manager()?;
        let result = script.invoke_async(&mut connection).await;
        result.map_err(|error| self.failed(what, error))
    }

    fn failed(&self, what: &str, error: redis::RedisError) -> StoreError {
        let kind = if error.is_timeout() {
            StoreErrorKind::Timeout
        } else if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
        {
            StoreErrorKind::Unavailable
        } else {
            // A server error (wrong type, no permission): Redis is up but refuses.
            return StoreError::new(StoreErrorKind::Unavailable, format!("Redis refused {what}"))
                .with_source(error);
        };
        *lock(&self.down_until) = Some(Instant::now() + self.settings.reconnect_interval);
        StoreError::new(kind, format!("{what} failed")).with_source(error)
    }

    /// The connection manager, created on first use; an error while Redis is known down.
    fn manager(&self) -> Result<ConnectionManager, StoreError> {
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
        let mut manager = lock(&self.manager);
        if let Some(manager) = &*manager {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.connection_timeout))
            .set_response_timeout(Some(self.settings.response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(self.settings.reconnect_interval);
        let created = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|error| {
                StoreError::new(
                    StoreErrorKind::Config,
                    "creating the Redis connection failed",
                )
                .with_source(error)
            })?;
        *manager = Some(created.clone());
        Ok(created)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
