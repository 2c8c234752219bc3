//! The shared `RateLimiter`: GCRA buckets in Redis, spent by one atomic Lua script per check
//! (`gcra.lua`, sent by EVALSHA and loaded on demand) that reads Redis's own clock, so every
//! replica agrees on time and on the bucket. Any Redis failure, including a check slower than
//! its deadline, is `LimiterError::Unavailable`, which `FallbackLimiter` answers locally.

use crate::connection;
use async_trait::async_trait;
use atlas_kernel::StoreError;
use atlas_ratelimit::{GcraOutcome, LimiterError, Policy, RateLimiter, Verdict};
use redis::aio::ConnectionManager;
use redis::Script;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

/// The prefix of every rate-limit key.
pub const KEY_PREFIX: &str = "atlas:rl:";

/// How long a check may take before it counts as a failure (Redis answers in well under a
/// millisecond when healthy).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_millis(250);

static GCRA_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("gcra.lua")));

const CONTEXT: &str = "checking a rate-limit bucket in Redis";

/// GCRA rate-limit buckets in Redis, shared by every process connected to the same server.
/// Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    prefix: String,
    check_timeout: Duration,
}

impl RedisRateLimiter {
    /// A limiter over an existing connection, keys under `atlas:rl:`.
    pub fn new(connection: ConnectionManager) -> Self {
        Self { connection, prefix: KEY_PREFIX.to_owned(), check_timeout: DEFAULT_CHECK_TIMEOUT }
    }

    /// Connects to `url`, failing within about two seconds when Redis does not answer.
    ///
    /// # Errors
    /// [`LimiterError::Unavailable`] when the URL is invalid or Redis is unreachable.
    pub async fn connect(url: &str) -> Result<Self, LimiterError> {
        Ok(Self::new(connection::connect(url).await?))
    }

    /// A limiter that connects on first use (and reconnects after failures), so the process
    /// may start while Redis is down. Must be called from within a Tokio runtime.
    ///
    /// # Errors
    /// [`LimiterError::Unavailable`] when the URL is invalid.
    pub fn connect_lazy(url: &str) -> Result<Self, LimiterError> {
        Ok(Self::new(connection::connect_lazy(url)?))
    }

    /// Puts the keys under `atlas:rl:<namespace>:` instead of `atlas:rl:`, so that several
    /// deployments (or parallel tests) can share one Redis without sharing buckets.
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.prefix = format!("{KEY_PREFIX}{namespace}:");
        self
    }

    /// Fails a check that takes longer than `timeout` (default [`DEFAULT_CHECK_TIMEOUT`]).
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// The Redis key holding `bucket`'s TAT.
    pub fn key_for(&self, bucket: &str) -> String {
        format!("{}{bucket}", self.prefix)
    }

    async fn run_script(&self, key: &str, policy: &Policy) -> Result<GcraOutcome, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = GCRA_SCRIPT.prepare_invoke();
        invocation.key(key).arg(policy.emission_interval_us()).arg(policy.burst_tolerance_us());
        let reply: (i64, i64, i64, i64, i64) = invocation.invoke_async(&mut connection).await.map_err(|e| StoreError::new(CONTEXT, e))?;
        outcome_from_reply(reply)
    }
}

/// Reads the script's `{allowed, remaining, retry_after_us, reset_after_us, tat_us}`.
fn outcome_from_reply(reply: (i64, i64, i64, i64, i64)) -> Result<GcraOutcome, StoreError> {
    let (allowed, remaining, retry_after_us, reset_after_us, tat_us) = reply;
    let remaining = u32::try_from(remaining).ok();
    match (allowed, remaining) {
        (0 | 1, Some(remaining)) if retry_after_us >= 0 && reset_after_us >= 0 => {
            Ok(GcraOutcome { allowed: allowed == 1, tat_us, remaining, retry_after_us, reset_after_us })
        }
        _ => Err(StoreError::new(CONTEXT, format!("the GCRA script returned an impossible reply {reply:?}"))),
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, bucket: &str, policy: &Policy) -> Result<Verdict, LimiterError> {
        let key = self.key_for(bucket);
        let outcome = tokio::time::timeout(self.check_timeout, self.run_script(&key, policy))
            .await
            .map_err(|_| StoreError::new(CONTEXT, format!("no answer within {:?}", self.check_timeout)))??;
        Ok(Verdict::from_outcome(policy, &outcome))
    }
}

impl fmt::Debug for RedisRateLimiter {
    /// Leaves the connection out: its URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter").field("prefix", &self.prefix).field("check_timeout", &self.check_timeout).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_reply_becomes_an_outcome() {
        let outcome = outcome_from_reply((1, 4, 0, 200_000, 1_000_200_000)).unwrap();
        assert_eq!(outcome, GcraOutcome { allowed: true, tat_us: 1_000_200_000, remaining: 4, retry_after_us: 0, reset_after_us: 200_000 });
    }

    #[test]
    fn an_impossible_reply_is_a_store_failure() {
        assert!(outcome_from_reply((2, 0, 0, 0, 0)).is_err());
        assert!(outcome_from_reply((1, -1, 0, 0, 0)).is_err());
        assert!(outcome_from_reply((0, 0, -5, 0, 0)).is_err());
    }
}
