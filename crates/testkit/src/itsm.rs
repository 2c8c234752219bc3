//! The behavioural suite every `ItsmStore` must pass: changes read back with their approvals,
//! compare-and-set saves (a stale version changes nothing), one decision per approver (a
//! second one changes nothing, not even the status), implementation-time and blackout-overlap
//! ranges with exact bounds, the catalog and service requests, and organizations that never
//! see each other's records.
//!
//! Each check works in organizations of its own, so the checks may share one store.

use crate::accounts::{journal, now};
use atlas_cmdb::CiId;
use atlas_itsm::{
    Approval, ApprovalId, Blackout, BlackoutId, CatalogItem, CatalogItemId, ChangeFilter, ChangeId, ChangeRequest, ChangeStatus,
    ChangeType, Decision, ItsmStore, ItsmStoreError, RequestFilter, RequestStatus, RiskLevel, ServiceRequest, ServiceRequestId,
    StatusTimes,
};
use atlas_kernel::{OrgId, PageRequest};
use time::{Duration, OffsetDateTime};

/// Runs every check of the suite against `store`.
pub async fn suite(store: &dyn ItsmStore) {
    changes_read_back_and_saves_compare_and_set(store).await;
    one_decision_per_approver(store).await;
    ranges_have_exact_bounds(store).await;
    catalog_and_requests(store).await;
}

fn at(offset_s: i64) -> OffsetDateTime {
    now() + Duration::seconds(offset_s)
}

/// A draft change of `org` on `ci_ids`.
pub fn sample_change(org_id: OrgId, ci_ids: Vec<CiId>, offset_s: i64) -> ChangeRequest {
    let created = at(offset_s);
    ChangeRequest {
        id: ChangeId::generate(),
        org_id,
        title: "Deploy v2.4.1".into(),
        description: Some("rolling".into()),
        change_type: ChangeType::Normal,
        risk_level: RiskLevel::High,
        status: ChangeStatus::Draft,
        requested_start: Some(created + Duration::hours(1)),
        requested_end: Some(created + Duration::hours(2)),
        implementation_plan: Some("deploy".into()),
        rollback_plan: Some("roll back".into()),
        requested_by: Some("ops@example.com".into()),
        ci_ids,
        quorum: 1,
        approvals: Vec::new(),
        version: 1,
        times: StatusTimes::default(),
        created_at: created,
        updated_at: created,
    }
}

async fn insert_change(store: &dyn ItsmStore, change: &ChangeRequest) {
    store
        .insert_change(change, &journal(change.org_id, "changes.create"))
        .await
        .unwrap_or_else(|e| panic!("inserting a change failed: {e:?}"));
}

async fn changes_read_back_and_saves_compare_and_set(store: &dyn ItsmStore) {
    let org = OrgId::generate();
    let change = sample_change(org, vec![CiId::generate(), CiId::generate()], 0);
    insert_change(store, &change).await;
    assert_eq!(store.change(org, change.id).await.expect("reading").as_ref(), Some(&change), "a change reads back as written");
    assert_eq!(store.change(OrgId::generate(), change.id).await.expect("reading"), None, "never in another organization");

    let mut submitted = change.clone();
    submitted.request(ChangeStatus::Submitted, at(5)).expect("draft → submitted");
    store.save_change(&submitted, 1, None, &journal(org, "changes.update")).await.expect("saving at the read version");
    let stale = store.save_change(&submitted, 1, None, &journal(org, "changes.update")).await;
    assert!(matches!(stale, Err(ItsmStoreError::Conflict)), "a save at a stale version is refused, got {stale:?}");
    let back = store.change(org, change.id).await.expect("reading").expect("exists");
    assert_eq!(back, submitted, "the saved state reads back, times included");

    let other = sample_change(org, Vec::new(), 10);
    insert_change(store, &other).await;
    let drafts = store.changes(org, &ChangeFilter { status: Some(ChangeStatus::Draft) }, &PageRequest::default()).await.expect("listing");
    assert_eq!(drafts.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![other.id], "the status filter narrows");
    let all = store.changes(org, &ChangeFilter::default(), &PageRequest::default()).await.expect("listing");
    assert_eq!(all.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![other.id, change.id], "newest first");
}

async fn one_decision_per_approver(store: &dyn ItsmStore) {
    let org = OrgId::generate();
    let mut change = sample_change(org, Vec::new(), 0);
    change.quorum = 2;
    insert_change(store, &change).await;
    change.request(ChangeStatus::Submitted, at(1)).expect("submit");
    store.save_change(&change, 1, None, &journal(org, "changes.update")).await.expect("submit saved");

    let before = change.version;
    let approval = change.decide("key_a", Decision::Approve, Some("ok".into()), at(2)).expect("first decision");
    store.save_change(&change, before, Some(&approval), &journal(org, "changes.approve")).await.expect("decision saved");

    // The same approver again, racing with a stale copy that has not seen the first decision.
    let mut stale = store.change(org, change.id).await.expect("reading").expect("exists");
    stale.approvals.clear();
    let version = stale.version;
    let second = stale.decide("key_a", Decision::Reject, None, at(3)).expect("the stale copy does not know");
    assert_eq!(stale.status, ChangeStatus::Rejected);
    let refused = store.save_change(&stale, version, Some(&second), &journal(org, "changes.approve")).await;
    assert!(matches!(refused, Err(ItsmStoreError::AlreadyDecided)), "a second decision by the same approver is refused, got {refused:?}");
    let back = store.change(org, change.id).await.expect("reading").expect("exists");
    assert_eq!(back.status, ChangeStatus::Submitted, "the refused decision changed nothing, not even the status");
    assert_eq!(back.approvals, vec![approval], "the first decision stands, unchanged");
    let fake = Approval {
        id: ApprovalId::generate(),
        change_id: change.id,
        approver: "key_b".into(),
        decision: Decision::Approve,
        comment: None,
        decided_at: at(4),
    };
    let stale_version = store.save_change(&back, version - 1, Some(&fake), &journal(org, "changes.approve")).await;
    assert!(matches!(stale_version, Err(ItsmStoreError::Conflict)));
    assert_eq!(
        store.change(org, change.id).await.expect("reading").expect("exists").approvals.len(),
        1,
        "a refused save records no decision"
    );
}

async fn ranges_have_exact_bounds(store: &dyn ItsmStore) {
    let org = OrgId::generate();
    let base = at(0);
    for minutes in [-30i64, 0, 30, 60] {
        let mut c = sample_change(org, Vec::new(), minutes);
        c.times.implementing_at = Some(base + Duration::minutes(minutes));
        insert_change(store, &c).await;
    }
    insert_change(store, &sample_change(org, Vec::new(), 1)).await;
    let found = store.changes_started_between(org, base, base + Duration::minutes(30)).await.expect("range");
    let mut minutes: Vec<i64> = found.iter().map(|c| (c.times.implementing_at.expect("started") - base).whole_minutes()).collect();
    minutes.sort();
    assert_eq!(minutes, vec![0, 30], "both bounds are inclusive; changes never started are absent");
    assert!(store
        .changes_started_between(OrgId::generate(), base - Duration::hours(1), base + Duration::hours(2))
        .await
        .expect("range")
        .is_empty());

    let ci = CiId::generate();
    let blackout = |start: i64, end: i64| Blackout {
        id: BlackoutId::generate(),
        org_id: org,
        ci_ids: vec![ci],
        start: base + Duration::hours(start),
        end: base + Duration::hours(end),
        reason: "freeze".into(),
        created_at: base + Duration::hours(start),
    };
    let (before, during, after) = (blackout(0, 2), blackout(3, 5), blackout(6, 8));
    for b in [&before, &during, &after] {
        store.insert_blackout(b, &journal(org, "blackouts.create")).await.expect("inserting a blackout");
    }
    let overlapping = store.blackouts_overlapping(org, base + Duration::hours(2), base + Duration::hours(6)).await.expect("overlap");
    assert_eq!(overlapping, vec![during.clone()], "touching at an end is no overlap");
    let listed = store.blackouts(org, &PageRequest::default()).await.expect("listing");
    assert_eq!(listed.items.iter().map(|b| b.id).collect::<Vec<_>>(), vec![after.id, during.id, before.id]);
}

async fn catalog_and_requests(store: &dyn ItsmStore) {
    let org = OrgId::generate();
    let item = CatalogItem {
        id: CatalogItemId::generate(),
        org_id: org,
        name: "Laptop".into(),
        description: Some("a laptop".into()),
        requires_approval: true,
        created_at: at(0),
    };
    store.insert_catalog_item(&item, &journal(org, "catalog.create")).await.expect("inserting a catalog item");
    assert_eq!(store.catalog_item(org, item.id).await.expect("reading").as_ref(), Some(&item));
    assert_eq!(store.catalog_item(OrgId::generate(), item.id).await.expect("reading"), None);
    assert_eq!(store.catalog(org, &PageRequest::default()).await.expect("listing").items, vec![item.clone()]);

    let mut request = ServiceRequest {
        id: ServiceRequestId::generate(),
        org_id: org,
        catalog_item_id: item.id,
        requested_by: "user@example.com".into(),
        status: ServiceRequest::initial_status(&item),
        decided_by: None,
        comment: None,
        version: 1,
        created_at: at(1),
        updated_at: at(1),
        decided_at: None,
        fulfilled_at: None,
    };
    store.insert_request(&request, &journal(org, "requests.create")).await.expect("inserting a request");
    assert_eq!(store.request(org, request.id).await.expect("reading").as_ref(), Some(&request));
    request.advance(RequestStatus::Approved, "key_x", Some("fine".into()), at(2)).expect("approve");
    store.save_request(&request, 1, &journal(org, "requests.update")).await.expect("saving");
    let stale = store.save_request(&request, 1, &journal(org, "requests.update")).await;
    assert!(matches!(stale, Err(ItsmStoreError::Conflict)), "a stale save is refused, got {stale:?}");
    assert_eq!(store.request(org, request.id).await.expect("reading").as_ref(), Some(&request));
    let pending = store
        .requests(org, &RequestFilter { status: Some(RequestStatus::PendingApproval) }, &PageRequest::default())
        .await
        .expect("listing");
    assert!(pending.items.is_empty(), "the status filter narrows");
    let approved =
        store.requests(org, &RequestFilter { status: Some(RequestStatus::Approved) }, &PageRequest::default()).await.expect("listing");
    assert_eq!(approved.items, vec![request]);
}
