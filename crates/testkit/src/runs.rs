//! The behavioural suite every `RunStore` must pass: runs read back as recorded, lists are
//! newest first with a cursor that stays stable under inserts, filters narrow, organizations
//! never see each other's runs, and `finish` settles a pending run.
//!
//! Each check works in organizations of its own, so the checks may share one store, in any
//! order. Journal entries here carry no idempotency outcome (that needs a claimed key, which is
//! the SQL store's own test).

use atlas_kernel::{Cursor, OrgId, Page, PageRequest};
use atlas_runs::{JournalEntry, Run, RunError, RunFilter, RunId, RunStatus, RunStore};
use atlas_scopes::{Actor, KeyId, UserId};
use time::{Duration, OffsetDateTime};

/// Runs every check of the suite against `store`.
pub async fn suite(store: &dyn RunStore) {
    a_recorded_run_reads_back_as_it_was_recorded(store).await;
    another_organization_sees_none_of_the_runs(store).await;
    lists_are_newest_first_with_a_cursor_stable_under_inserts(store).await;
    lists_filter_by_operation_status_resource_and_time(store).await;
    finish_moves_a_pending_run_to_its_final_status(store).await;
}

/// A fixed instant well inside the range every store handles, at microsecond precision.
fn base_time() -> OffsetDateTime {
    time::macros::datetime!(2026-01-15 10:00:00.123456 UTC)
}

/// A run of `org` as a use case would journal it.
pub fn sample_run(org_id: OrgId, operation: &str, status: RunStatus, created_at: OffsetDateTime) -> Run {
    Run {
        id: RunId::generate(),
        org_id,
        actor: Actor::ApiKey(KeyId::generate()),
        operation: operation.into(),
        status,
        request_id: format!("req_{}", uuid::Uuid::new_v4().simple()),
        idempotency_key: None,
        resource_id: None,
        error: None,
        created_at,
        updated_at: created_at,
    }
}

async fn record(store: &dyn RunStore, run: &Run) {
    store
        .record(&JournalEntry { run: run.clone(), idempotency: None, events: Vec::new() })
        .await
        .unwrap_or_else(|e| panic!("recording run {} failed: {e:?}", run.id));
}

async fn list(store: &dyn RunStore, org_id: OrgId, filter: &RunFilter, page: &PageRequest) -> Page<Run> {
    store.list(org_id, filter, page).await.unwrap_or_else(|e| panic!("listing runs failed: {e:?}"))
}

fn ids(runs: &[Run]) -> Vec<RunId> {
    runs.iter().map(|r| r.id).collect()
}

/// Newest first: creation time, then id, both descending.
fn newest_first(runs: &mut [Run]) {
    runs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id.as_uuid())));
}

/// Every field of a recorded run reads back unchanged: each kind of actor, the idempotency
/// key, the resource and the error.
pub async fn a_recorded_run_reads_back_as_it_was_recorded(store: &dyn RunStore) {
    let org = OrgId::generate();
    let mut by_key = sample_run(org, "keys.create", RunStatus::Succeeded, base_time());
    by_key.idempotency_key = Some("create-key-1".into());
    by_key.resource_id = Some("key_0123".into());
    let mut by_user = sample_run(org, "auth.refresh", RunStatus::Failed, base_time() + Duration::seconds(1));
    by_user.actor = Actor::User(UserId::generate());
    by_user.error = Some(RunError { code: "REFRESH_REUSED".into(), message: "the refresh token was already used".into() });
    by_user.updated_at = by_user.created_at + Duration::milliseconds(250);
    let mut by_system = sample_run(org, "orgs.create", RunStatus::Pending, base_time() + Duration::seconds(2));
    by_system.actor = Actor::System;
    for run in [&by_key, &by_user, &by_system] {
        record(store, run).await;
        let read = store.get(org, run.id).await.unwrap_or_else(|e| panic!("reading run {} failed: {e:?}", run.id));
        assert_eq!(read.as_ref(), Some(run), "a recorded run reads back exactly as it was recorded");
    }
    assert_eq!(store.get(org, RunId::generate()).await.expect("reading a missing run succeeds"), None, "a run never recorded is absent");
}

/// Runs are confined to their organization: another one can neither read nor list them.
pub async fn another_organization_sees_none_of_the_runs(store: &dyn RunStore) {
    let (org_a, org_b) = (OrgId::generate(), OrgId::generate());
    let run = sample_run(org_a, "keys.create", RunStatus::Succeeded, base_time());
    record(store, &run).await;
    assert_eq!(store.get(org_b, run.id).await.expect("get succeeds"), None, "another organization cannot read the run by its id");
    let page = list(store, org_b, &RunFilter::default(), &PageRequest::default()).await;
    assert!(page.items.is_empty(), "another organization's list holds none of the runs: {:?}", page.items);
    let own = list(store, org_a, &RunFilter::default(), &PageRequest::default()).await;
    assert_eq!(ids(&own.items), vec![run.id], "the organization's own list holds its run");
}

/// Lists are newest first (creation time, then id), page by a cursor, and a run recorded
/// between two pages neither shifts nor repeats what the next page holds.
pub async fn lists_are_newest_first_with_a_cursor_stable_under_inserts(store: &dyn RunStore) {
    let org = OrgId::generate();
    let offsets = [0, 1, 2, 2, 2, 3, 5];
    let mut runs: Vec<Run> =
        offsets.iter().map(|s| sample_run(org, "messages.send", RunStatus::Succeeded, base_time() + Duration::seconds(*s))).collect();
    for run in &runs {
        record(store, run).await;
    }
    newest_first(&mut runs);

    let first = list(store, org, &RunFilter::default(), &PageRequest { limit: 3, after: None }).await;
    assert_eq!(ids(&first.items), ids(&runs[0..3]), "the first page holds the three newest runs, ties broken by id descending");
    let cursor = first.next_cursor.expect("a page followed by more runs names the next cursor");

    let newer = sample_run(org, "messages.send", RunStatus::Succeeded, base_time() + Duration::seconds(60));
    record(store, &newer).await;

    let after = Some(Cursor::decode(&cursor).expect("the store's cursor decodes"));
    let second = list(store, org, &RunFilter::default(), &PageRequest { limit: 3, after }).await;
    assert_eq!(
        ids(&second.items),
        ids(&runs[3..6]),
        "the next page continues where the first ended, unmoved by the run recorded meanwhile"
    );
    let after = Some(Cursor::decode(&second.next_cursor.expect("one run remains")).expect("the cursor decodes"));
    let third = list(store, org, &RunFilter::default(), &PageRequest { limit: 3, after }).await;
    assert_eq!(ids(&third.items), ids(&runs[6..7]), "the last page holds the oldest run");
    assert_eq!(third.next_cursor, None, "the last page names no next cursor");

    let fresh = list(store, org, &RunFilter::default(), &PageRequest { limit: 3, after: None }).await;
    assert_eq!(fresh.items.first().map(|r| r.id), Some(newer.id), "a fresh first page starts with the run recorded last");
}

/// Filters narrow the list: operation, status, resource, and creation time (`created_after`
/// and `created_before` are both strict: a run created exactly at the bound is left out).
pub async fn lists_filter_by_operation_status_resource_and_time(store: &dyn RunStore) {
    let org = OrgId::generate();
    let t = base_time();
    let mut sent = sample_run(org, "messages.send", RunStatus::Pending, t);
    sent.resource_id = Some("conv_1".into());
    let mut replied = sample_run(org, "actions.reply", RunStatus::Succeeded, t + Duration::seconds(10));
    replied.resource_id = Some("conv_1".into());
    let mut failed = sample_run(org, "messages.send", RunStatus::Failed, t + Duration::seconds(20));
    failed.resource_id = Some("conv_2".into());
    failed.error = Some(RunError { code: "WINDOW_CLOSED".into(), message: "the 24-hour window is closed".into() });
    for run in [&sent, &replied, &failed] {
        record(store, run).await;
    }
    let all = PageRequest::default();
    let cases: [(&str, RunFilter, Vec<RunId>); 6] = [
        ("operation", RunFilter { operation: Some("messages.send".into()), ..RunFilter::default() }, vec![failed.id, sent.id]),
        ("status", RunFilter { status: Some(RunStatus::Succeeded), ..RunFilter::default() }, vec![replied.id]),
        ("resource", RunFilter { resource_id: Some("conv_1".into()), ..RunFilter::default() }, vec![replied.id, sent.id]),
        ("created_after (strict)", RunFilter { created_after: Some(t + Duration::seconds(10)), ..RunFilter::default() }, vec![failed.id]),
        ("created_before (strict)", RunFilter { created_before: Some(t + Duration::seconds(10)), ..RunFilter::default() }, vec![sent.id]),
        (
            "operation and status together",
            RunFilter { operation: Some("messages.send".into()), status: Some(RunStatus::Pending), ..RunFilter::default() },
            vec![sent.id],
        ),
    ];
    for (what, filter, expected) in cases {
        let page = list(store, org, &filter, &all).await;
        assert_eq!(ids(&page.items), expected, "filtering by {what} keeps exactly the matching runs, newest first");
    }
}

/// `finish` moves a pending run to its final status with its error and time; it touches no
/// run of another organization.
pub async fn finish_moves_a_pending_run_to_its_final_status(store: &dyn RunStore) {
    let org = OrgId::generate();
    let accepted = sample_run(org, "messages.send", RunStatus::Pending, base_time());
    let refused = sample_run(org, "messages.send", RunStatus::Pending, base_time() + Duration::seconds(1));
    record(store, &accepted).await;
    record(store, &refused).await;

    let at = base_time() + Duration::seconds(30);
    store.finish(OrgId::generate(), accepted.id, RunStatus::Failed, None, at).await.expect("finish succeeds");
    let untouched = store.get(org, accepted.id).await.expect("get succeeds").expect("the run exists");
    assert_eq!(untouched.status, RunStatus::Pending, "finishing through another organization changes nothing");

    store.finish(org, accepted.id, RunStatus::Succeeded, None, at).await.expect("finish succeeds");
    let done = store.get(org, accepted.id).await.expect("get succeeds").expect("the run exists");
    assert_eq!(done.status, RunStatus::Succeeded, "a pending run moves to succeeded");
    assert_eq!(done.updated_at, at, "finishing stamps the run's updated_at");
    assert_eq!(done.created_at, accepted.created_at, "finishing keeps the creation time");
    assert_eq!(done.error, None, "a succeeded run carries no error");

    let error = RunError { code: "PROVIDER_REJECTED".into(), message: "the provider refused the message".into() };
    store.finish(org, refused.id, RunStatus::Failed, Some(error.clone()), at).await.expect("finish succeeds");
    let failed = store.get(org, refused.id).await.expect("get succeeds").expect("the run exists");
    assert_eq!(failed.status, RunStatus::Failed, "a pending run moves to failed");
    assert_eq!(failed.error, Some(error), "a failed run keeps the error its caller saw");
}
