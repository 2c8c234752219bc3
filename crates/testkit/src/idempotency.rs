//! The behavioural suite every `IdempotencyStore` must pass, whatever holds the records (SQL,
//! Redis, memory). It speaks only the port: no SQL, no knowledge of how a store claims a key.
//!
//! Each check works in an organization of its own, so the checks may share one store, in any
//! order, and the store need not be empty. Times are taken near the real clock (truncated to
//! the microsecond, the precision of the SQL store) and moved forward by the check, so a store
//! that also lets its backend expire keys by wall-clock time behaves the same.
//!
//! Call [`suite`] with the store and a description (`"sqlite"`, `"redis"`) that failures name.

use atlas_idempotency::{
    Claim, ClaimToken, Decision, Fingerprint, IdempotencyKey, IdempotencyScope, IdempotencyStore, StoredResponse, CLAIM_LEASE, RETENTION,
};
use atlas_kernel::OrgId;
use serde_json::json;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Runs every check of the suite against `store`; `description` names the store in failures.
pub async fn suite(store: Arc<dyn IdempotencyStore>, description: &str) {
    a_new_key_executes_and_blocks_its_retries_while_in_progress(store.as_ref(), description).await;
    a_completed_key_replays_its_response_byte_for_byte(store.as_ref(), description).await;
    release_drops_an_in_progress_claim_but_never_a_completed_one(store.as_ref(), description).await;
    an_abandoned_claim_is_taken_over_once_its_lease_lapses(store.as_ref(), description).await;
    a_record_past_retention_runs_afresh(store.as_ref(), description).await;
    scopes_differing_in_organization_scope_or_route_are_independent(store.as_ref(), description).await;
    purge_expired_removes_records_past_retention_only(store.as_ref(), description).await;
    concurrent_begins_with_one_key_execute_exactly_once(store.clone(), description).await;
    concurrent_takeovers_of_an_abandoned_claim_admit_exactly_one(store.clone(), description).await;
    a_lapsed_claim_cannot_settle_the_claim_that_took_over(store.as_ref(), description).await;
}

/// A claim of `scope` by a new request (a fresh token).
pub fn claim_of(scope: &IdempotencyScope) -> Claim {
    Claim::held(scope.clone(), ClaimToken::from_entropy(*uuid::Uuid::new_v4().as_bytes()))
}

/// The current time, truncated to the microsecond.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).expect("a truncated nanosecond is valid")
}

/// A scope in a new organization, so no other check (or earlier run) shares it.
fn fresh_scope(key: &str) -> Claim {
    claim_of(&IdempotencyScope {
        org_id: OrgId::generate(),
        scope: "atlas.messages.send".into(),
        route: "POST /v1/atlas/messages".into(),
        key: IdempotencyKey::parse(key).expect("a valid idempotency key"),
    })
}

fn fingerprint(n: u32) -> Fingerprint {
    Fingerprint::of("POST", "/v1/atlas/messages", &json!({ "text": "hello", "n": n }))
}

/// A response whose body is not UTF-8, so a store that mangles bytes is caught.
fn response() -> StoredResponse {
    let mut body = br#"{"data":{"id":"msg_1"}}"#.to_vec();
    body.extend_from_slice(&[0x00, 0xff, 0xfe, b'\n']);
    StoredResponse {
        status: 201,
        body,
        location: Some("/v1/atlas/messages/msg_1".into()),
        etag: Some("\"v1\"".into()),
        shows_secret: false,
    }
}

async fn begin(store: &dyn IdempotencyStore, scope: &Claim, fp: &Fingerprint, at: OffsetDateTime, description: &str) -> Decision {
    store.begin(scope, fp, at).await.unwrap_or_else(|e| panic!("[{description}] begin failed: {e:?}"))
}

/// A new key executes; the same request again while the first executes is told it is in
/// progress; another request under the same key is a reuse.
pub async fn a_new_key_executes_and_blocks_its_retries_while_in_progress(store: &dyn IdempotencyStore, description: &str) {
    let scope = fresh_scope("new-key");
    let t0 = now();
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t0, description).await,
        Decision::Execute,
        "[{description}] a key never seen executes"
    );
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t0 + Duration::seconds(1), description).await,
        Decision::InProgress,
        "[{description}] the same request while the first still executes is IDEMPOTENCY_IN_PROGRESS"
    );
    assert_eq!(
        begin(store, &scope, &fingerprint(2), t0 + Duration::seconds(2), description).await,
        Decision::Reused,
        "[{description}] another request under a key in progress is IDEMPOTENCY_KEY_REUSED"
    );
}

/// After `complete`, the same request replays the stored status, body bytes, Location and
/// ETag; another request under the key is a reuse.
pub async fn a_completed_key_replays_its_response_byte_for_byte(store: &dyn IdempotencyStore, description: &str) {
    let scope = fresh_scope("completed-key");
    let t0 = now();
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t0, description).await,
        Decision::Execute,
        "[{description}] a key never seen executes"
    );
    store
        .complete(&scope, &response(), t0 + Duration::seconds(1))
        .await
        .unwrap_or_else(|e| panic!("[{description}] complete failed: {e:?}"));
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t0 + Duration::hours(23), description).await,
        Decision::Replay(response()),
        "[{description}] within retention the same request replays exactly the stored status, body bytes, Location and ETag"
    );
    assert_eq!(
        begin(store, &scope, &fingerprint(2), t0 + Duration::seconds(3), description).await,
        Decision::Reused,
        "[{description}] another request under a completed key is IDEMPOTENCY_KEY_REUSED"
    );
}

/// `release` forgets an in-progress claim (a request that stored nothing), so a retry
/// executes; it leaves a completed record alone.
pub async fn release_drops_an_in_progress_claim_but_never_a_completed_one(store: &dyn IdempotencyStore, description: &str) {
    let scope = fresh_scope("released-key");
    let t0 = now();
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t0, description).await,
        Decision::Execute,
        "[{description}] a key never seen executes"
    );
    store.release(&scope).await.unwrap_or_else(|e| panic!("[{description}] release failed: {e:?}"));
    assert_eq!(
        begin(store, &scope, &fingerprint(2), t0 + Duration::seconds(1), description).await,
        Decision::Execute,
        "[{description}] after release the key is free: any request under it executes afresh"
    );
    store
        .complete(&scope, &response(), t0 + Duration::seconds(2))
        .await
        .unwrap_or_else(|e| panic!("[{description}] complete failed: {e:?}"));
    store.release(&scope).await.unwrap_or_else(|e| panic!("[{description}] release failed: {e:?}"));
    assert_eq!(
        begin(store, &scope, &fingerprint(2), t0 + Duration::seconds(3), description).await,
        Decision::Replay(response()),
        "[{description}] release leaves a completed record alone: it still replays"
    );
}

/// A claim whose lease lapsed (its process died) is taken over: `Expired`, and the new claim
/// then blocks retries like any other.
pub async fn an_abandoned_claim_is_taken_over_once_its_lease_lapses(store: &dyn IdempotencyStore, description: &str) {
    let scope = fresh_scope("abandoned-key");
    let t0 = now();
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t0, description).await,
        Decision::Execute,
        "[{description}] a key never seen executes"
    );
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t0 + CLAIM_LEASE - Duration::seconds(1), description).await,
        Decision::InProgress,
        "[{description}] within its lease a claim blocks the same request"
    );
    let t1 = t0 + CLAIM_LEASE + Duration::seconds(1);
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t1, description).await,
        Decision::Expired,
        "[{description}] once the lease lapsed the claim counts as abandoned and is taken over"
    );
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t1 + Duration::seconds(1), description).await,
        Decision::InProgress,
        "[{description}] the takeover is a claim of its own: the same request is in progress again"
    );
    store
        .complete(&scope, &response(), t1 + Duration::seconds(2))
        .await
        .unwrap_or_else(|e| panic!("[{description}] complete failed: {e:?}"));
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t1 + Duration::seconds(3), description).await,
        Decision::Replay(response()),
        "[{description}] the takeover's outcome is what replays"
    );
}

/// A record older than `RETENTION` is expired, whatever it holds and whatever the new
/// request's fingerprint: the request runs afresh and claims the key.
pub async fn a_record_past_retention_runs_afresh(store: &dyn IdempotencyStore, description: &str) {
    let t0 = now();
    for (name, later_fingerprint) in [("retained-same", 1), ("retained-other", 2)] {
        let scope = fresh_scope(name);
        assert_eq!(
            begin(store, &scope, &fingerprint(1), t0, description).await,
            Decision::Execute,
            "[{description}] a key never seen executes"
        );
        store.complete(&scope, &response(), t0).await.unwrap_or_else(|e| panic!("[{description}] complete failed: {e:?}"));
        let t1 = t0 + RETENTION;
        assert_eq!(
            begin(store, &scope, &fingerprint(later_fingerprint), t1, description).await,
            Decision::Expired,
            "[{description}] {} after it was stored a record is expired (fingerprint {later_fingerprint}): the request runs afresh",
            RETENTION
        );
        assert_eq!(
            begin(store, &scope, &fingerprint(later_fingerprint), t1 + Duration::seconds(1), description).await,
            Decision::InProgress,
            "[{description}] the request that ran afresh holds the key"
        );
    }
}

/// The same key under another organization, scope or route is another key.
pub async fn scopes_differing_in_organization_scope_or_route_are_independent(store: &dyn IdempotencyStore, description: &str) {
    let scope = fresh_scope("shared-key");
    let t0 = now();
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t0, description).await,
        Decision::Execute,
        "[{description}] a key never seen executes"
    );
    let other_org = claim_of(&IdempotencyScope { org_id: OrgId::generate(), ..scope.scope.clone() });
    let other_scope = claim_of(&IdempotencyScope { scope: "atlas.actions.execute".into(), ..scope.scope.clone() });
    let other_route = claim_of(&IdempotencyScope { route: "POST /v1/atlas/actions".into(), ..scope.scope.clone() });
    for (what, other) in [("organization", &other_org), ("scope", &other_scope), ("route", &other_route)] {
        assert_eq!(
            begin(store, other, &fingerprint(2), t0 + Duration::seconds(1), description).await,
            Decision::Execute,
            "[{description}] the same key under another {what} is another key: it executes"
        );
    }
    assert_eq!(
        begin(store, &scope, &fingerprint(1), t0 + Duration::seconds(2), description).await,
        Decision::InProgress,
        "[{description}] claims under other scopes leave the first claim as it was"
    );
}

/// `purge_expired(now)` removes records created `RETENTION` or more before `now` (a later
/// request under such a key simply executes) and keeps younger ones.
pub async fn purge_expired_removes_records_past_retention_only(store: &dyn IdempotencyStore, description: &str) {
    let now = now();
    let old = fresh_scope("purged-key");
    let young = fresh_scope("kept-key");
    let long_ago = now - RETENTION - Duration::minutes(5);
    assert_eq!(
        begin(store, &old, &fingerprint(1), long_ago, description).await,
        Decision::Execute,
        "[{description}] a key never seen executes"
    );
    store
        .complete(&old, &response(), long_ago + Duration::seconds(1))
        .await
        .unwrap_or_else(|e| panic!("[{description}] complete failed: {e:?}"));
    assert_eq!(
        begin(store, &young, &fingerprint(1), now, description).await,
        Decision::Execute,
        "[{description}] a key never seen executes"
    );
    store.complete(&young, &response(), now).await.unwrap_or_else(|e| panic!("[{description}] complete failed: {e:?}"));

    let purged = store.purge_expired(now).await.unwrap_or_else(|e| panic!("[{description}] purge_expired failed: {e:?}"));
    assert!(purged >= 1, "[{description}] purge_expired reports the records it removed (got {purged})");
    assert_eq!(
        begin(store, &old, &fingerprint(1), now, description).await,
        Decision::Execute,
        "[{description}] a purged record is gone: its key executes as new (not Expired, which would mean it was still there)"
    );
    assert_eq!(
        begin(store, &young, &fingerprint(1), now + Duration::seconds(1), description).await,
        Decision::Replay(response()),
        "[{description}] purge_expired keeps records younger than retention"
    );
}

/// Fifty concurrent requests with one key: exactly one executes, every other one is told the
/// key is in progress.
pub async fn concurrent_begins_with_one_key_execute_exactly_once(store: Arc<dyn IdempotencyStore>, description: &str) {
    let scope = Arc::new(fresh_scope("concurrent-key"));
    let t0 = now();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, scope) = (store.clone(), scope.clone());
            tokio::spawn(async move { store.begin(&scope, &fingerprint(1), t0).await })
        })
        .collect();
    let mut decisions = Vec::new();
    for task in tasks {
        let decision = task.await.expect("the task ran").unwrap_or_else(|e| panic!("[{description}] begin failed: {e:?}"));
        decisions.push(decision);
    }
    let executed = decisions.iter().filter(|d| d.executes()).count();
    assert_eq!(executed, 1, "[{description}] of 50 concurrent requests with one key exactly one executes: {decisions:?}");
    assert!(
        decisions.iter().filter(|d| !d.executes()).all(|d| *d == Decision::InProgress),
        "[{description}] every other concurrent request is told the key is in progress: {decisions:?}"
    );
}

/// Twenty concurrent requests that all find an abandoned claim: exactly one takes it over.
pub async fn concurrent_takeovers_of_an_abandoned_claim_admit_exactly_one(store: Arc<dyn IdempotencyStore>, description: &str) {
    let scope = Arc::new(fresh_scope("concurrent-takeover"));
    let t0 = now();
    assert_eq!(
        begin(store.as_ref(), &scope, &fingerprint(1), t0, description).await,
        Decision::Execute,
        "[{description}] a key never seen executes"
    );
    let t1 = t0 + CLAIM_LEASE + Duration::seconds(5);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, scope) = (store.clone(), scope.clone());
            tokio::spawn(async move { store.begin(&scope, &fingerprint(1), t1).await })
        })
        .collect();
    let mut decisions = Vec::new();
    for task in tasks {
        decisions.push(task.await.expect("the task ran").unwrap_or_else(|e| panic!("[{description}] begin failed: {e:?}")));
    }
    assert_eq!(
        decisions.iter().filter(|d| **d == Decision::Expired).count(),
        1,
        "[{description}] of 20 concurrent requests finding an abandoned claim exactly one takes it over: {decisions:?}"
    );
    assert!(
        decisions.iter().filter(|d| **d != Decision::Expired).all(|d| *d == Decision::InProgress),
        "[{description}] the others find the takeover in progress: {decisions:?}"
    );
}

/// Claims are fenced: a request whose lease lapsed and whose key was taken over can neither
/// complete nor release the new claim; the new claim's own outcome is what replays.
pub async fn a_lapsed_claim_cannot_settle_the_claim_that_took_over(store: &dyn IdempotencyStore, description: &str) {
    let first = fresh_scope("fenced-key");
    let t0 = now();
    assert_eq!(
        begin(store, &first, &fingerprint(1), t0, description).await,
        Decision::Execute,
        "[{description}] a key never seen executes"
    );
    let second = claim_of(&first.scope);
    let t1 = t0 + CLAIM_LEASE + Duration::seconds(1);
    assert_eq!(
        begin(store, &second, &fingerprint(1), t1, description).await,
        Decision::Expired,
        "[{description}] the lapsed claim is taken over by a second request"
    );
    store.release(&first).await.unwrap_or_else(|e| panic!("[{description}] release failed: {e:?}"));
    assert_eq!(
        begin(store, &claim_of(&first.scope), &fingerprint(1), t1 + Duration::seconds(1), description).await,
        Decision::InProgress,
        "[{description}] the first request's release leaves the second request's claim in place"
    );
    let mut stale = response();
    stale.status = 500;
    store.complete(&first, &stale, t1 + Duration::seconds(2)).await.unwrap_or_else(|e| panic!("[{description}] complete failed: {e:?}"));
    assert_eq!(
        begin(store, &claim_of(&first.scope), &fingerprint(1), t1 + Duration::seconds(3), description).await,
        Decision::InProgress,
        "[{description}] the first request's completion does not settle the second request's claim"
    );
    store
        .complete(&second, &response(), t1 + Duration::seconds(4))
        .await
        .unwrap_or_else(|e| panic!("[{description}] complete failed: {e:?}"));
    assert_eq!(
        begin(store, &claim_of(&first.scope), &fingerprint(1), t1 + Duration::seconds(5), description).await,
        Decision::Replay(response()),
        "[{description}] the claim that took over stores its own outcome"
    );
}
