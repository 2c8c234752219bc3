//! Connections to Redis shared by every adapter in this crate: one multiplexed, self-healing
//! `ConnectionManager` per server, configured to fail fast (a request must not hang on a
//! Redis that is down), and the mapping of Redis failures into the kernel's `StoreError`.

use atlas_kernel::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// How long [`connect`] waits for Redis before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one connection attempt (TCP and handshake) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest any command may take before the connection reports a timeout. Adapters apply
/// their own, shorter deadlines where a request is waiting.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The manager's settings: few, quick reconnection attempts, since callers (the rate
/// limiter's fallback) have something better to do than wait.
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(ATTEMPT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

/// Connects to the Redis server at `url` (`redis://[user:password@]host:port[/db]`), waiting
/// at most [`CONNECT_TIMEOUT`]. The manager reconnects by itself after later failures.
///
/// # Errors
/// A [`StoreError`] when the URL is invalid or the server does not answer in time.
pub async fn connect(url: &str) -> Result<ConnectionManager, StoreError> {
    const CONTEXT: &str = "connecting to Redis";
    let client = redis::Client::open(url).map_err(|e| StoreError::new(CONTEXT, e))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new_with_config(client, manager_config())).await {
        Ok(Ok(manager)) => Ok(manager),
        Ok(Err(e)) => Err(StoreError::new(CONTEXT, e)),
        Err(_) => Err(StoreError::new(CONTEXT, format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// A manager for the Redis server at `url` that connects on first use, so a process can start
/// while Redis is down (and serve from its fallback until Redis is back). Must be called from
/// within a Tokio runtime.
///
/// # Errors
/// A [`StoreError`] when the URL is invalid.
pub fn connect_lazy(url: &str) -> Result<ConnectionManager, StoreError> {
    const CONTEXT: &str = "preparing a Redis connection";
    let client = redis::Client::open(url).map_err(|e| StoreError::new(CONTEXT, e))?;
    ConnectionManager::new_lazy_with_config(client, manager_config()).map_err(|e| StoreError::new(CONTEXT, e))
}
