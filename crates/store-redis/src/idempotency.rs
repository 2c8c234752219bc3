//! An `IdempotencyStore` in Redis: one hash per key scope (`atlas:idem:<storage key>`), claimed
//! atomically by a Lua script, expiring with Redis's TTL after the 24-hour retention.
//!
//! What it cannot promise, unlike the SQL store: the outcome is written *after* the use case
//! committed its effect in the database, so a process that dies between the two leaves the
//! effect without a stored outcome, and a retry executes again. Concurrent duplicates still
//! execute once while the claim lives (its lease is 60 s).
//!
//! Claims are fenced by their request's token (`token`): completing or releasing matches it.
//! This store holds no cipher, so an answer that shows a secret is not stored here (a retry
//! runs afresh); the SQL store seals such answers.

use crate::connection;
use async_trait::async_trait;
use atlas_idempotency::{
    decide, Begin, Claim, Decision, Fingerprint, IdempotencyError, IdempotencyRecord, IdempotencyScope, IdempotencyStore, RecordState,
    StoredResponse, CLAIM_LEASE, RETENTION,
};
use atlas_kernel::StoreError;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;
use time::OffsetDateTime;

/// The prefix of every idempotency key.
pub const KEY_PREFIX: &str = "atlas:idem:";

/// Claims a key when it is absent; otherwise returns the stored hash. KEYS[1] the key;
/// ARGV: fingerprint, created_at_us, lease_until_us, ttl_ms, token.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'created', ARGV[2], 'state', 'in_progress', 'lease', ARGV[3], 'token', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {}
end
return redis.call('HGETALL', KEYS[1])
"#,
    )
});

/// Takes over an expired or abandoned record if it is still the one that was read.
/// ARGV: seen_created, seen_state, seen_lease, fingerprint, created_at_us, lease_until_us, ttl_ms, token.
static TAKE_OVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local r = redis.call('HMGET', KEYS[1], 'created', 'state', 'lease')
if r[1] ~= ARGV[1] or r[2] ~= ARGV[2] or (r[3] or '') ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'fp', ARGV[4], 'created', ARGV[5], 'state', 'in_progress', 'lease', ARGV[6], 'token', ARGV[8])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
"#,
    )
});

/// Drops a claim only while it is in progress and still this request's (ARGV[1] its token).
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HGET', KEYS[1], 'state') == 'in_progress' and redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// Records an outcome, only on this request's claim while it is in progress (ARGV[5] its token;
/// never a partial record).
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HGET', KEYS[1], 'state') ~= 'in_progress' or redis.call('HGET', KEYS[1], 'token') ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'completed', 'status', ARGV[1], 'body', ARGV[2], 'location', ARGV[3], 'etag', ARGV[4])
return 1
"#,
    )
});

/// Deletes the records of a SCAN batch created before ARGV[1] (microseconds); returns how many.
static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = 0
for _, k in ipairs(KEYS) do
  local created = tonumber(redis.call('HGET', k, 'created') or '')
  if created and created < tonumber(ARGV[1]) then n = n + redis.call('DEL', k) end
end
return n
"#,
    )
});

/// Idempotency records in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisIdempotencyStore {
    connection: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for RedisIdempotencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisIdempotencyStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

fn from_us(v: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000).map_err(|e| StoreError::new("reading an idempotency record", e))
}

fn failed(context: &'static str) -> impl Fn(redis::RedisError) -> IdempotencyError {
    move |e| IdempotencyError::Store(StoreError::new(context, e))
}

impl RedisIdempotencyStore {
    /// A store over an existing connection, keys under `atlas:idem:`.
    pub fn new(connection: ConnectionManager) -> Self {
        Self { connection, prefix: KEY_PREFIX.to_owned() }
    }

    /// Connects to `url`, failing within about two seconds when Redis does not answer.
    ///
    /// # Errors
    /// `Store` when the URL is invalid or Redis is unreachable.
    pub async fn connect(url: &str) -> Result<Self, IdempotencyError> {
        Ok(Self::new(connection::connect(url).await?))
    }

    /// Puts the keys under `atlas:idem:<namespace>:`.
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.prefix = format!("{KEY_PREFIX}{namespace}:");
        self
    }

    fn key(&self, scope: &IdempotencyScope) -> String {
        format!("{}{}", self.prefix, scope.storage_key())
    }

    fn record(fields: &HashMap<String, Vec<u8>>) -> Result<IdempotencyRecord, StoreError> {
        let text = |name: &str| fields.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
        let number = |name: &str| text(name).parse::<i64>().map_err(|e| StoreError::new("reading an idempotency record", e));
        let state = if text("state") == "completed" {
            RecordState::Completed(StoredResponse {
                status: text("status").parse().map_err(|e| StoreError::new("reading an idempotency record", e))?,
                body: fields.get("body").cloned().unwrap_or_default(),
                location: fields.get("location").map(|v| String::from_utf8_lossy(v).into_owned()).filter(|s| !s.is_empty()),
                etag: fields.get("etag").map(|v| String::from_utf8_lossy(v).into_owned()).filter(|s| !s.is_empty()),
                shows_secret: false,
            })
        } else {
            RecordState::InProgress { lease_until: from_us(number("lease")?)? }
        };
        Ok(IdempotencyRecord { fingerprint: Fingerprint::from_stored(text("fp")), state, created_at: from_us(number("created")?)? })
    }
}

#[async_trait]
impl IdempotencyStore for RedisIdempotencyStore {
    async fn begin(&self, claim: &Claim, fingerprint: &Fingerprint, now: OffsetDateTime) -> Result<Begin, IdempotencyError> {
        let key = self.key(&claim.scope);
        let token = claim.token.to_hex();
        let ttl_ms = RETENTION.whole_milliseconds().to_string();
        let mut conn = self.connection.clone();
        for _ in 0..5 {
            let flat: Vec<Vec<u8>> = CLAIM
                .key(&key)
                .arg(fingerprint.as_str())
                .arg(us(now))
                .arg(us(now + CLAIM_LEASE))
                .arg(&ttl_ms)
                .arg(&token)
                .invoke_async(&mut conn)
                .await
                .map_err(failed("claiming an idempotency key in Redis"))?;
            if flat.is_empty() {
                return Ok(Decision::Execute);
            }
            let fields: HashMap<String, Vec<u8>> =
                flat.chunks(2).filter(|c| c.len() == 2).map(|c| (String::from_utf8_lossy(&c[0]).into_owned(), c[1].clone())).collect();
            let record = Self::record(&fields)?;
            let decision = decide(Some(&record), fingerprint, now);
            if decision != Decision::Expired {
                return Ok(decision);
            }
            let seen = |name: &str| fields.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            let took: i64 = TAKE_OVER
                .key(&key)
                .arg(seen("created"))
                .arg(seen("state"))
                .arg(seen("lease"))
                .arg(fingerprint.as_str())
                .arg(us(now))
                .arg(us(now + CLAIM_LEASE))
                .arg(&ttl_ms)
                .arg(&token)
                .invoke_async(&mut conn)
                .await
                .map_err(failed("taking over an idempotency key in Redis"))?;
            if took == 1 {
                return Ok(Decision::Expired);
            }
        }
        Ok(Decision::InProgress)
    }

    async fn complete(&self, claim: &Claim, response: &StoredResponse, _now: OffsetDateTime) -> Result<(), IdempotencyError> {
        if response.shows_secret {
            return Err(IdempotencyError::Store(StoreError::new(
                "recording an idempotency outcome in Redis",
                "the answer shows a secret and this store keeps nothing sealed",
            )));
        }
        let mut conn = self.connection.clone();
        let key = self.key(&claim.scope);
        COMPLETE
            .key(key)
            .arg(response.status)
            .arg(&response.body)
            .arg(response.location.as_deref().unwrap_or(""))
            .arg(response.etag.as_deref().unwrap_or(""))
            .arg(claim.token.to_hex())
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(failed("recording an idempotency outcome in Redis"))
    }

    async fn release(&self, claim: &Claim) -> Result<(), IdempotencyError> {
        let mut conn = self.connection.clone();
        RELEASE
            .key(self.key(&claim.scope))
            .arg(claim.token.to_hex())
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(failed("releasing an idempotency key in Redis"))
    }

    /// Redis expires every record 24 hours after it was written; this also removes, in SCAN
    /// batches, records whose own creation time is past retention (a clock that moved).
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, IdempotencyError> {
        let mut conn = self.connection.clone();
        let cutoff = us(now - RETENTION);
        let pattern = format!("{}*", self.prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(failed("scanning idempotency keys in Redis"))?;
            if !keys.is_empty() {
                let mut purge = PURGE.prepare_invoke();
                for key in &keys {
                    purge.key(key);
                }
                let n: u64 = purge.arg(cutoff).invoke_async(&mut conn).await.map_err(failed("purging idempotency keys in Redis"))?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    fn commits_with_effect(&self) -> bool {
        false
    }
}
