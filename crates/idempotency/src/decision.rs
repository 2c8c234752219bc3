//! The replay decision: given what a store holds for a key (if anything), the fingerprint of the
//! new request and the time, what happens. Pure, so every store applies the same rule.

use crate::Fingerprint;
use time::{Duration, OffsetDateTime};

/// How long a completed outcome is replayed (and then a janitor removes it).
pub const RETENTION: Duration = Duration::hours(24);
/// How long an execution may hold a key before it counts as abandoned (its process died).
pub const CLAIM_LEASE: Duration = Duration::seconds(60);

/// A response as it is replayed: status, body bytes and the headers a replay restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub location: Option<String>,
    pub etag: Option<String>,
    /// The body shows a secret once (a minted key, a webhook secret): a store keeps it sealed
    /// under the server's secret key, never in plain text, and replays it verbatim.
    pub shows_secret: bool,
}

/// Where an execution under a key stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// Claimed and executing until `lease_until`.
    InProgress { lease_until: OffsetDateTime },
    /// Committed with this outcome.
    Completed(StoredResponse),
}

/// What a store holds for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: Fingerprint,
    pub state: RecordState,
    pub created_at: OffsetDateTime,
}

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is stored for the key: run the request.
    Execute,
    /// The same request completed before: answer with its stored response, run nothing.
    Replay(StoredResponse),
    /// The key was used for another request: IDEMPOTENCY_KEY_REUSED.
    Reused,
    /// The same key is still executing: IDEMPOTENCY_IN_PROGRESS, retry in a second.
    InProgress,
    /// The stored record is past retention, or its execution was abandoned: run afresh,
    /// replacing it.
    Expired,
}

impl Decision {
    /// Whether the request runs (and the caller now holds the key).
    pub fn executes(&self) -> bool {
        matches!(self, Decision::Execute | Decision::Expired)
    }
}

/// The rule. A record older than `RETENTION` is expired whatever it holds; a live record with
/// another fingerprint is a reuse; a completed one replays; an in-progress one blocks until its
/// lease lapses.
pub fn decide(existing: Option<&IdempotencyRecord>, fingerprint: &Fingerprint, now: OffsetDateTime) -> Decision {
    let Some(record) = existing else {
        return Decision::Execute;
    };
    if now >= record.created_at + RETENTION {
        return Decision::Expired;
    }
    if &record.fingerprint != fingerprint {
        return Decision::Reused;
    }
    match &record.state {
        RecordState::Completed(response) => Decision::Replay(response.clone()),
        RecordState::InProgress { lease_until } if now < *lease_until => Decision::InProgress,
        RecordState::InProgress { .. } => Decision::Expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn response(status: u16) -> StoredResponse {
        StoredResponse { status, body: b"{}".to_vec(), location: None, etag: None, shows_secret: false }
    }

    fn fp(n: u8) -> Fingerprint {
        Fingerprint::of("POST", "/r", &json!({ "n": n }))
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(secs)
    }

    #[test]
    fn a_new_key_executes() {
        assert_eq!(decide(None, &fp(1), at(0)), Decision::Execute);
    }

    #[test]
    fn an_abandoned_claim_expires_with_its_lease() {
        let record = IdempotencyRecord { fingerprint: fp(1), state: RecordState::InProgress { lease_until: at(60) }, created_at: at(0) };
        assert_eq!(decide(Some(&record), &fp(1), at(59)), Decision::InProgress);
        assert_eq!(decide(Some(&record), &fp(1), at(60)), Decision::Expired);
    }

    proptest! {
        /// Within retention, the same fingerprint replays exactly the stored response.
        #[test]
        fn same_fingerprint_replays(n in any::<u8>(), status in 200u16..500, age in 0i64..86_400) {
            let record = IdempotencyRecord { fingerprint: fp(n), state: RecordState::Completed(response(status)), created_at: at(0) };
            prop_assert_eq!(decide(Some(&record), &fp(n), at(age)), Decision::Replay(response(status)));
        }

        /// Within retention, another fingerprint is a reuse, whatever state the record is in.
        #[test]
        fn other_fingerprint_is_reused(a in any::<u8>(), b in any::<u8>(), age in 0i64..86_400, done in any::<bool>()) {
            prop_assume!(a != b);
            let state = if done { RecordState::Completed(response(201)) } else { RecordState::InProgress { lease_until: at(86_400) } };
            let record = IdempotencyRecord { fingerprint: fp(a), state, created_at: at(0) };
            prop_assert_eq!(decide(Some(&record), &fp(b), at(age)), Decision::Reused);
        }

        /// Past retention, any request runs afresh, whatever was stored.
        #[test]
        fn expired_runs_afresh(a in any::<u8>(), b in any::<u8>(), extra in 0i64..1_000_000, done in any::<bool>()) {
            let state = if done { RecordState::Completed(response(201)) } else { RecordState::InProgress { lease_until: at(i64::from(u32::MAX)) } };
            let record = IdempotencyRecord { fingerprint: fp(a), state, created_at: at(0) };
            let decision = decide(Some(&record), &fp(b), at(86_400 + extra));
            prop_assert_eq!(&decision, &Decision::Expired);
            prop_assert!(decision.executes());
        }
    }
}
