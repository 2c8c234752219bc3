//! The behavioural suite every `WebhookStore` and `DeliveryQueue` must pass: endpoints (read back
//! as stored, listed newest first, compare-and-swap on `version`, secrets round-tripping through
//! rotations, deleted with their deliveries), the outbox (an event committed with a journal entry
//! is fanned out exactly once to each enabled endpoint whose filters match, even under
//! concurrent fan-outs), claims (each due delivery to exactly one claimer, back after its lease,
//! in event order), attempts (retry, success, giving up, a stale worker refused), delivery lists
//! (filters, cursors, newest attempts), replays, test deliveries, disabling, and tenant isolation
//! on every call that names an organization. It speaks only the ports.
//!
//! Each check works in organizations of its own, so the checks may share one store, in any
//! order. Fan-out and claims are shared by every organization: a check fans out until nothing is
//! left and claims by draining every due delivery, keeping those of its own organization, so what
//! other checks left behind does not disturb it. Times are fixed instants at microsecond
//! precision (the SQL store's).
//!
//! Call [`suite`] with the ports, all usually backed by one store.

use atlas_kernel::{Cursor, OrgId, Page, PageRequest};
use atlas_runs::{JournalEntry, Run, RunId, RunStatus, RunStore};
use atlas_scopes::{Actor, KeyId};
use atlas_webhooks::{
    validate_url, AfterAttempt, Attempt, AttemptError, AttemptId, AttemptOutcome, AttemptRecord, Delivery, DeliveryFilter, DeliveryId,
    DeliveryItem, DeliveryQueue, DeliveryStatus, DisabledReason, EndpointId, EndpointPatch, EndpointState, Event, EventFilters, EventId,
    EventType, NewDelivery, ResponseExcerpt, RetiringSecret, SecretRotation, WebhookEndpoint, WebhookError, WebhookSecret, WebhookStore,
    SECRET_OVERLAP,
};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// The webhook ports under test (usually one store behind all three).
#[derive(Debug, Clone)]
pub struct WebhookPorts {
    pub store: Arc<dyn WebhookStore>,
    pub queue: Arc<dyn DeliveryQueue>,
    /// Commits the journal entries that carry events into the outbox.
    pub runs: Arc<dyn RunStore>,
}

/// Runs every check of the suite against `ports`.
pub async fn suite(ports: &WebhookPorts) {
    endpoints_read_back_as_stored_and_list_newest_first_with_cursors(ports).await;
    endpoint_writes_are_compare_and_swap_on_version(ports).await;
    secrets_round_trip_through_rotation_and_reach_the_worker(ports).await;
    deleting_an_endpoint_deletes_its_deliveries_and_attempts_but_not_the_events(ports).await;
    another_organization_sees_no_endpoint_and_no_delivery(ports).await;
    a_journalled_event_is_fanned_out_only_to_enabled_endpoints_whose_filters_match(ports).await;
    an_addressed_event_reaches_its_endpoint_alone(ports).await;
    concurrent_fan_outs_create_each_delivery_exactly_once(ports).await;
    each_due_delivery_is_claimed_by_exactly_one_of_several_concurrent_claimers(ports).await;
    a_claimed_delivery_is_handed_out_again_only_after_its_lease(ports).await;
    record_attempt_retries_succeeds_and_gives_up_and_tracks_the_endpoint_health(ports).await;
    a_stale_worker_is_refused_and_changes_nothing(ports).await;
    attempts_recorded_together_are_each_recorded_as_alone(ports).await;
    deliveries_list_newest_first_with_filters_cursors_and_their_attempts(ports).await;
    a_replay_puts_a_finished_delivery_on_a_new_schedule_under_the_same_id(ports).await;
    disabling_an_endpoint_fails_its_pending_deliveries_and_stops_its_fan_out(ports).await;
    deliveries_of_one_endpoint_are_claimed_in_event_order(ports).await;
    a_test_delivery_reaches_its_endpoint_alone_and_is_never_fanned_out(ports).await;
    claims_cap_each_endpoint_and_let_every_organization_take_a_turn(ports).await;
    retention_removes_finished_deliveries_with_their_attempts_and_unreferenced_events(ports).await;
}

// ---- fixtures -----------------------------------------------------------------------------

/// The lease every claim of the suite takes.
const LEASE: Duration = Duration::seconds(60);
/// A per-endpoint cap no check reaches, for the checks that are not about fairness.
const UNCAPPED: u32 = 100_000;

/// A fixed instant at microsecond precision; every time of the suite is an offset from it.
fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-04-07 09:00:00.123456 UTC)
}

/// `t0` plus `n` seconds.
fn at(n: i64) -> OffsetDateTime {
    t0() + Duration::seconds(n)
}

/// A journal entry for a call of `org_id` doing `operation`, carrying `events`.
pub fn journal(org_id: OrgId, operation: &str, events: &[Event]) -> JournalEntry {
    JournalEntry {
        run: Run {
            id: RunId::generate(),
            org_id,
            actor: Actor::ApiKey(KeyId::generate()),
            operation: operation.into(),
            status: RunStatus::Succeeded,
            request_id: format!("req_{}", uuid::Uuid::new_v4().simple()),
            idempotency_key: None,
            resource_id: None,
            error: None,
            created_at: t0(),
            updated_at: t0(),
        },
        idempotency: None,
        events: events.iter().map(Event::outbox).collect(),
    }
}

/// The `n`th test secret.
pub fn secret(n: u8) -> WebhookSecret {
    WebhookSecret::from_entropy(&[n; 32]).expect("32 bytes make a secret")
}

/// A new enabled endpoint of `org_id` listening to `filters`, created at `created_at`, with a
/// URL of its own and secret 1.
pub fn new_endpoint(org_id: OrgId, filters: &[&str], created_at: OffsetDateTime) -> WebhookEndpoint {
    let url = validate_url(&format!("https://hooks.example.com/atlas/{}", uuid::Uuid::new_v4().simple())).expect("a valid URL");
    let filters = EventFilters::parse(filters).expect("valid filters");
    WebhookEndpoint::new(org_id, url, Some("CRM sync".into()), filters, secret(1), created_at)
}

async fn create(ports: &WebhookPorts, endpoint: &WebhookEndpoint) -> JournalEntry {
    let entry = journal(endpoint.org_id, "webhooks.create", &[]);
    ports.store.create_endpoint(endpoint, &entry).await.unwrap_or_else(|e| panic!("creating an endpoint failed: {e:?}"));
    entry
}

/// Creates an endpoint of `org_id` listening to `filters`, at `t0`.
async fn endpoint(ports: &WebhookPorts, org_id: OrgId, filters: &[&str]) -> WebhookEndpoint {
    let endpoint = new_endpoint(org_id, filters, t0());
    create(ports, &endpoint).await;
    endpoint
}

async fn stored(ports: &WebhookPorts, org_id: OrgId, id: EndpointId) -> WebhookEndpoint {
    ports
        .store
        .get_endpoint(org_id, id)
        .await
        .unwrap_or_else(|e| panic!("reading endpoint {id} failed: {e:?}"))
        .unwrap_or_else(|| panic!("endpoint {id} exists"))
}

/// An event of `org_id` of type `event_type` about resource `resource`, at version `version`.
pub fn event(org_id: OrgId, event_type: &str, resource: &str, version: i64) -> Event {
    let event_type = EventType::parse(event_type).expect("a valid event type");
    let data = serde_json::json!({ "id": resource, "status": "open" });
    Event::new(org_id, event_type, t0(), data, Some(resource.into()), version)
}

/// Commits `events` of `org_id` with a journal entry (as the use case that caused them would).
async fn commit_events(ports: &WebhookPorts, org_id: OrgId, events: &[Event]) {
    ports.runs.record(&journal(org_id, "incidents.update", events)).await.unwrap_or_else(|e| panic!("committing events failed: {e:?}"));
}

/// Fans out at `now` until no event is left.
async fn fan_out_all(ports: &WebhookPorts, now: OffsetDateTime) {
    for _ in 0..1_000 {
        let report = ports.queue.fan_out(now, 50).await.unwrap_or_else(|e| panic!("fanning out failed: {e:?}"));
        if report.events == 0 {
            return;
        }
    }
    panic!("fan-out terminates");
}

/// Claims every due delivery at `now` (in batches of `batch`) and returns those of `org_id`,
/// in claim order.
async fn claim_own_in(ports: &WebhookPorts, org_id: OrgId, now: OffsetDateTime, batch: u32) -> Vec<DeliveryItem> {
    let mut own = Vec::new();
    loop {
        let claimed = ports.queue.claim(now, batch, LEASE, UNCAPPED).await.unwrap_or_else(|e| panic!("claiming failed: {e:?}"));
        if claimed.is_empty() {
            return own;
        }
        own.extend(claimed.into_iter().filter(|item| item.org_id == org_id));
    }
}

async fn claim_own(ports: &WebhookPorts, org_id: OrgId, now: OffsetDateTime) -> Vec<DeliveryItem> {
    claim_own_in(ports, org_id, now, 50).await
}

/// Claims the one due delivery of `org_id` at `now`.
async fn claim_one(ports: &WebhookPorts, org_id: OrgId, now: OffsetDateTime) -> DeliveryItem {
    let mut items = claim_own(ports, org_id, now).await;
    assert_eq!(items.len(), 1, "exactly the organization's one due delivery is claimed: {items:?}");
    items.pop().expect("one item")
}

/// An endpoint of a new organization listening to `incident.*`, with one pending delivery of a
/// fresh event fanned out at `t0`.
async fn one_delivery(ports: &WebhookPorts) -> (OrgId, WebhookEndpoint, Event) {
    let org_id = OrgId::generate();
    let endpoint = endpoint(ports, org_id, &["incident.*"]).await;
    let event = event(org_id, "incident.created", "INC-00000001", 1);
    commit_events(ports, org_id, std::slice::from_ref(&event)).await;
    fan_out_all(ports, t0()).await;
    (org_id, endpoint, event)
}

/// An attempt at `item` made at `at`: a success when `status` is 2xx, a failure otherwise.
fn attempt(item: &DeliveryItem, at: OffsetDateTime, status: u16) -> Attempt {
    let succeeded = (200..300).contains(&status);
    Attempt {
        id: AttemptId::generate(),
        delivery_id: item.id,
        number: item.attempt,
        at,
        latency_ms: 120,
        outcome: if succeeded { AttemptOutcome::Succeeded } else { AttemptOutcome::Failed },
        status_code: Some(status),
        response_excerpt: Some(ResponseExcerpt::new(if succeeded { b"ok" } else { b"upstream error" })),
        error: (!succeeded).then(|| AttemptError::new("http_status", format!("HTTP {status}"))),
    }
}

/// When an attempt made at `at` by [`attempt`] ended.
fn ended(at: OffsetDateTime) -> OffsetDateTime {
    at + Duration::milliseconds(120)
}

async fn record(ports: &WebhookPorts, item: &DeliveryItem, attempt: &Attempt, next: &AfterAttempt) -> Option<OffsetDateTime> {
    ports
        .queue
        .record_attempt(item.endpoint_id, attempt, next)
        .await
        .unwrap_or_else(|e| panic!("recording attempt {} failed: {e:?}", attempt.number))
        .failing_since
}

async fn deliveries_in(ports: &WebhookPorts, endpoint: &WebhookEndpoint, filter: &DeliveryFilter) -> Vec<Delivery> {
    ports
        .store
        .list_deliveries(endpoint.org_id, endpoint.id, filter, &PageRequest { limit: 200, after: None })
        .await
        .unwrap_or_else(|e| panic!("listing deliveries failed: {e:?}"))
        .items
}

async fn deliveries(ports: &WebhookPorts, endpoint: &WebhookEndpoint) -> Vec<Delivery> {
    deliveries_in(ports, endpoint, &DeliveryFilter::default()).await
}

async fn delivery(ports: &WebhookPorts, endpoint: &WebhookEndpoint, id: DeliveryId) -> Delivery {
    ports
        .store
        .get_delivery(endpoint.org_id, endpoint.id, id)
        .await
        .unwrap_or_else(|e| panic!("reading delivery {id} failed: {e:?}"))
        .unwrap_or_else(|| panic!("delivery {id} exists"))
}

/// The events an endpoint has deliveries of.
async fn delivered_events(ports: &WebhookPorts, endpoint: &WebhookEndpoint) -> BTreeSet<EventId> {
    deliveries(ports, endpoint).await.into_iter().map(|d| d.event_id).collect()
}

async fn run_exists(ports: &WebhookPorts, entry: &JournalEntry) -> bool {
    ports.runs.get(entry.run.org_id, entry.run.id).await.unwrap_or_else(|e| panic!("reading a run failed: {e:?}")).is_some()
}

/// Every page of a newest-first list fetched `limit` at a time.
async fn all_pages<T, F, Fut>(limit: u32, mut fetch: F) -> Vec<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Page<T>>,
{
    let mut pages = Vec::new();
    let mut request = PageRequest { limit, after: None };
    loop {
        let page = fetch(request).await;
        assert!(page.items.len() <= limit as usize, "a page holds at most its limit");
        pages.push(page.items);
        match page.next_cursor {
            Some(cursor) => request.after = Some(Cursor::decode(&cursor).expect("the store's cursor decodes")),
            None => return pages,
        }
        assert!(pages.len() < 100, "pagination terminates");
    }
}

fn is_conflict(result: &Result<impl std::fmt::Debug, WebhookError>, what: &str) -> bool {
    matches!(result, Err(WebhookError::Conflict(w)) if *w == what)
}

// ---- endpoints ----------------------------------------------------------------------------

/// Endpoints read back exactly as stored (URL, description, filters, state with its reason and
/// time, secrets, health, times, version), the creation's journal entry commits with them, and
/// the organization's endpoints list newest first (creation time, then id), paged by cursors.
pub async fn endpoints_read_back_as_stored_and_list_newest_first_with_cursors(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let mut created = Vec::new();
    for i in 0..5 {
        let mut endpoint = new_endpoint(org_id, &["incident.*", "atlas.run.updated"], at(i));
        if i == 1 {
            endpoint.description = None;
        }
        if i == 3 {
            endpoint = endpoint.disabled(DisabledReason::Gone, at(10));
            endpoint.failing_since = Some(at(2));
        }
        let entry = create(ports, &endpoint).await;
        assert!(run_exists(ports, &entry).await, "the creation's run commits with the endpoint");
        created.push(endpoint);
    }
    // Two endpoints created at the same instant are ordered by id.
    let twin = new_endpoint(org_id, &["task.*"], at(4));
    create(ports, &twin).await;
    created.push(twin);
    for endpoint in &created {
        assert_eq!(&stored(ports, org_id, endpoint.id).await, endpoint, "an endpoint reads back as stored");
    }
    let pages = all_pages(2, |page| {
        let store = ports.store.clone();
        async move { store.list_endpoints(org_id, &page).await.unwrap_or_else(|e| panic!("listing endpoints failed: {e:?}")) }
    })
    .await;
    assert_eq!(pages.len(), 3, "six endpoints in pages of two");
    let listed: Vec<EndpointId> = pages.into_iter().flatten().map(|e| e.id).collect();
    let mut expected = created.clone();
    expected.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
    assert_eq!(listed, expected.iter().map(|e| e.id).collect::<Vec<_>>(), "newest first, then by id, each once");
    assert_eq!(
        ports.store.get_endpoint(org_id, EndpointId::generate()).await.expect("get_endpoint"),
        None,
        "an unknown endpoint is absent"
    );
}

/// `update_endpoint` and `rotate_secret` write only over the version they read: a stale version
/// is `Conflict("endpoint_changed")` and changes nothing (its journal entry is not committed);
/// an update writes URL, description, filters, state, times and version but never the secrets
/// nor `failing_since` (unless it enables a disabled endpoint); an unknown endpoint is `NotFound`.
pub async fn endpoint_writes_are_compare_and_swap_on_version(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let original = endpoint(ports, org_id, &["incident.*"]).await;
    let patch = EndpointPatch {
        url: Some(validate_url("https://crm.example.org/hooks?source=atlas").expect("a valid URL")),
        description: Some(None),
        filters: Some(EventFilters::parse(&["task.*", "atlas.run.updated"]).expect("valid filters")),
        enabled: None,
    };
    let patched = original.patched(&patch, at(10));
    let entry = journal(org_id, "webhooks.update", &[]);
    ports.store.update_endpoint(&patched, original.version, &entry).await.expect("updating at the stored version");
    assert_eq!(stored(ports, org_id, original.id).await, patched, "the update is stored");
    assert!(run_exists(ports, &entry).await, "with its run");

    let stale = original.patched(&EndpointPatch { description: Some(Some("stale".into())), ..EndpointPatch::default() }, at(11));
    let stale_entry = journal(org_id, "webhooks.update", &[]);
    let refused = ports.store.update_endpoint(&stale, original.version, &stale_entry).await;
    assert!(is_conflict(&refused, "endpoint_changed"), "an update over a stale version is a conflict: {refused:?}");
    assert_eq!(stored(ports, org_id, original.id).await, patched, "and changes nothing");
    assert!(!run_exists(ports, &stale_entry).await, "nor commits its run");

    let rotated = patched.rotated(secret(2), at(12));
    ports.store.rotate_secret(&rotated, patched.version, &journal(org_id, "webhooks.rotate", &[])).await.expect("rotating");
    assert_eq!(stored(ports, org_id, original.id).await, rotated, "the rotation is stored");
    let stale_rotation = patched.rotated(secret(3), at(13));
    let refused = ports.store.rotate_secret(&stale_rotation, patched.version, &journal(org_id, "webhooks.rotate", &[])).await;
    assert!(is_conflict(&refused, "endpoint_changed"), "a rotation over a stale version is a conflict: {refused:?}");
    assert_eq!(stored(ports, org_id, original.id).await, rotated, "and changes nothing");

    let mut sneaky = rotated.patched(&EndpointPatch::default(), at(14));
    sneaky.secrets = SecretRotation::new(secret(9));
    sneaky.failing_since = Some(at(1));
    ports.store.update_endpoint(&sneaky, rotated.version, &journal(org_id, "webhooks.update", &[])).await.expect("updating");
    let after = stored(ports, org_id, original.id).await;
    assert_eq!((after.version, after.updated_at), (rotated.version + 1, at(14)), "an empty patch still bumps the version");
    assert_eq!(after.secrets, rotated.secrets, "an update never writes the secrets");
    assert_eq!(after.failing_since, None, "nor failing_since");

    let unknown = new_endpoint(org_id, &["incident.*"], at(0));
    let missing = ports.store.update_endpoint(&unknown, 1, &journal(org_id, "webhooks.update", &[])).await;
    assert!(matches!(missing, Err(WebhookError::NotFound)), "updating an unknown endpoint: {missing:?}");
    let missing = ports.store.rotate_secret(&unknown.rotated(secret(4), at(1)), 1, &journal(org_id, "webhooks.rotate", &[])).await;
    assert!(matches!(missing, Err(WebhookError::NotFound)), "rotating an unknown endpoint: {missing:?}");
}

/// Secrets are handed over in the clear and read back equal, through rotations (the retiring
/// secret with its expiry), and a claimed delivery carries its endpoint's secrets and URL.
pub async fn secrets_round_trip_through_rotation_and_reach_the_worker(ports: &WebhookPorts) {
    let (org_id, endpoint, _) = one_delivery(ports).await;
    assert_eq!(stored(ports, org_id, endpoint.id).await.secrets, SecretRotation::new(secret(1)), "the secret reads back");
    let rotated = endpoint.rotated(secret(2), at(5));
    ports.store.rotate_secret(&rotated, endpoint.version, &journal(org_id, "webhooks.rotate", &[])).await.expect("rotating");
    let expected =
        SecretRotation { current: secret(2), previous: Some(RetiringSecret { secret: secret(1), expires_at: at(5) + SECRET_OVERLAP }) };
    assert_eq!(stored(ports, org_id, endpoint.id).await.secrets, expected, "both secrets read back after a rotation");
    let item = claim_one(ports, org_id, at(6)).await;
    assert_eq!(item.secrets, expected, "the worker gets the endpoint's secrets");
    assert_eq!(item.url, endpoint.url.to_string(), "and its URL");
}

/// Deleting an endpoint deletes its deliveries and their attempts with its journal entry; the
/// event stays for the other endpoints that share it. Deleting it again, or an unknown one, is
/// `NotFound`.
pub async fn deleting_an_endpoint_deletes_its_deliveries_and_attempts_but_not_the_events(ports: &WebhookPorts) {
    let (org_id, doomed, event) = one_delivery(ports).await;
    let survivor = endpoint(ports, org_id, &["incident.*"]).await;
    let again = crate::webhooks::event(org_id, "incident.updated", "INC-00000001", 2);
    commit_events(ports, org_id, std::slice::from_ref(&again)).await;
    fan_out_all(ports, at(1)).await;
    let items = claim_own(ports, org_id, at(2)).await;
    assert_eq!(items.len(), 3, "the first event reached one endpoint, the second both: {items:?}");
    for item in items.iter().filter(|i| i.endpoint_id == doomed.id) {
        record(ports, item, &attempt(item, at(2), 500), &AfterAttempt::Retry { at: at(60) }).await;
    }
    let entry = journal(org_id, "webhooks.delete", &[]);
    ports.store.delete_endpoint(org_id, doomed.id, &entry).await.expect("deleting the endpoint");
    assert!(run_exists(ports, &entry).await, "the deletion commits its run");
    assert_eq!(ports.store.get_endpoint(org_id, doomed.id).await.expect("get_endpoint"), None, "the endpoint is gone");
    let listed = ports.store.list_deliveries(org_id, doomed.id, &DeliveryFilter::default(), &PageRequest::default()).await;
    assert!(matches!(listed, Err(WebhookError::NotFound)), "so are its deliveries: {listed:?}");
    let doomed_item = items.iter().find(|i| i.endpoint_id == doomed.id).expect("a delivery of the deleted endpoint");
    let late = ports.queue.record_attempt(doomed.id, &attempt(doomed_item, at(3), 200), &AfterAttempt::Succeed).await;
    assert!(matches!(late, Err(WebhookError::NotFound)), "a worker of a deleted delivery finds nothing: {late:?}");
    assert_eq!(
        delivered_events(ports, &survivor).await,
        BTreeSet::from([again.id]),
        "the other endpoint keeps its delivery of the shared event"
    );
    let survivor_item = items.iter().find(|i| i.endpoint_id == survivor.id).expect("the survivor's delivery");
    assert_eq!(survivor_item.payload, again.payload(), "whose payload is the event's");
    let twice = ports.store.delete_endpoint(org_id, doomed.id, &journal(org_id, "webhooks.delete", &[])).await;
    assert!(matches!(twice, Err(WebhookError::NotFound)), "deleting twice: {twice:?}");
    assert_eq!(event.org_id, org_id);
}

/// Another organization sees none of an organization's endpoints or deliveries: reads are
/// empty, and every write naming the endpoint or delivery is `NotFound` and changes nothing.
pub async fn another_organization_sees_no_endpoint_and_no_delivery(ports: &WebhookPorts) {
    let (org_id, endpoint, _) = one_delivery(ports).await;
    let item = claim_one(ports, org_id, at(1)).await;
    record(ports, &item, &attempt(&item, at(1), 200), &AfterAttempt::Succeed).await;
    let original = stored(ports, org_id, endpoint.id).await;
    let finished = delivery(ports, &endpoint, item.id).await;
    let other = OrgId::generate();

    assert_eq!(ports.store.get_endpoint(other, endpoint.id).await.expect("get_endpoint"), None);
    assert_eq!(ports.store.list_endpoints(other, &PageRequest::default()).await.expect("list_endpoints").items, Vec::new());
    let mut theirs = original.patched(&EndpointPatch { description: Some(Some("hijacked".into())), ..EndpointPatch::default() }, at(5));
    theirs.org_id = other;
    let update = ports.store.update_endpoint(&theirs, original.version, &journal(other, "webhooks.update", &[])).await;
    assert!(matches!(update, Err(WebhookError::NotFound)), "update across organizations: {update:?}");
    let mut rotated = original.rotated(secret(7), at(5));
    rotated.org_id = other;
    let rotate = ports.store.rotate_secret(&rotated, original.version, &journal(other, "webhooks.rotate", &[])).await;
    assert!(matches!(rotate, Err(WebhookError::NotFound)), "rotation across organizations: {rotate:?}");
    let delete = ports.store.delete_endpoint(other, endpoint.id, &journal(other, "webhooks.delete", &[])).await;
    assert!(matches!(delete, Err(WebhookError::NotFound)), "deletion across organizations: {delete:?}");
    let list = ports.store.list_deliveries(other, endpoint.id, &DeliveryFilter::default(), &PageRequest::default()).await;
    assert!(matches!(list, Err(WebhookError::NotFound)), "deliveries across organizations: {list:?}");
    assert_eq!(ports.store.get_delivery(other, endpoint.id, item.id).await.expect("get_delivery"), None);
    let mut replayed = finished.replayed(at(6)).expect("a finished delivery replays");
    replayed.org_id = other;
    let replay = ports.store.replay_delivery(&replayed, &journal(other, "webhooks.replay", &[])).await;
    assert!(matches!(replay, Err(WebhookError::NotFound)), "replay across organizations: {replay:?}");
    let test = Event::new(other, EventType::WEBHOOK_TEST, at(6), serde_json::json!({}), None, 1);
    let new_delivery = NewDelivery {
        id: DeliveryId::generate(),
        org_id: other,
        endpoint_id: endpoint.id,
        event_id: test.id,
        event_type: EventType::WEBHOOK_TEST,
        due_at: at(6),
    };
    let queued = ports.store.enqueue_test(&test.pending(), &new_delivery, &journal(other, "webhooks.test", &[])).await;
    assert!(matches!(queued, Err(WebhookError::NotFound)), "a test event across organizations: {queued:?}");

    assert_eq!(stored(ports, org_id, endpoint.id).await, original, "the endpoint is untouched");
    assert_eq!(deliveries(ports, &endpoint).await, vec![finished], "and so are its deliveries");
}

// ---- fan-out ------------------------------------------------------------------------------

/// An event committed with a journal entry is fanned out once to each enabled endpoint of its
/// organization whose filters match: an exact type, or a `prefix.*` compared as a prefix (an
/// `_` in it is no wildcard); never to a disabled endpoint, an endpoint of another organization
/// or one whose filters do not match. Each delivery is pending, due and created at the
/// fan-out's `now`, with no attempt; fanning out again creates nothing.
pub async fn a_journalled_event_is_fanned_out_only_to_enabled_endpoints_whose_filters_match(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let exact = endpoint(ports, org_id, &["incident.created"]).await;
    let prefix = endpoint(ports, org_id, &["incident.*"]).await;
    let unrelated = endpoint(ports, org_id, &["atlas.run.updated", "change.*"]).await;
    let underscore = endpoint(ports, org_id, &["task.a_b.*"]).await;
    let disabled = endpoint(ports, org_id, &["incident.*", "task.*"]).await;
    let off = disabled.patched(&EndpointPatch { enabled: Some(false), ..EndpointPatch::default() }, at(0));
    ports.store.update_endpoint(&off, disabled.version, &journal(org_id, "webhooks.update", &[])).await.expect("disabling");
    let foreign = endpoint(ports, OrgId::generate(), &["incident.*", "task.*"]).await;

    let created = event(org_id, "incident.created", "INC-00000001", 1);
    let resolved = event(org_id, "incident.resolved", "INC-00000001", 2);
    let lookalike = event(org_id, "task.axb.created", "TASK-1", 1);
    let task = event(org_id, "task.a_b.created", "TASK-2", 1);
    commit_events(ports, org_id, &[created.clone(), lookalike.clone()]).await;
    commit_events(ports, org_id, &[resolved.clone(), task.clone()]).await;
    fan_out_all(ports, at(1)).await;

    assert_eq!(delivered_events(ports, &exact).await, BTreeSet::from([created.id]), "an exact filter matches its type only");
    assert_eq!(delivered_events(ports, &prefix).await, BTreeSet::from([created.id, resolved.id]), "a wildcard matches its prefix");
    assert_eq!(delivered_events(ports, &underscore).await, BTreeSet::from([task.id]), "`_` in a prefix is no wildcard");
    assert_eq!(delivered_events(ports, &unrelated).await, BTreeSet::new(), "filters that match nothing get nothing");
    assert_eq!(delivered_events(ports, &off).await, BTreeSet::new(), "a disabled endpoint gets nothing");
    assert_eq!(delivered_events(ports, &foreign).await, BTreeSet::new(), "another organization's endpoint gets nothing");

    for d in deliveries(ports, &prefix).await {
        assert_eq!((d.org_id, d.endpoint_id, d.status), (org_id, prefix.id, DeliveryStatus::Pending), "{d:?}");
        assert_eq!((d.attempt_count, d.schedule_base, d.first_attempt_at), (0, 0, None), "not attempted yet: {d:?}");
        assert_eq!((d.next_attempt_at, d.created_at, d.finished_at), (Some(at(1)), at(1), None), "due at the fan-out: {d:?}");
        assert_eq!((d.last_error.clone(), d.attempts.clone()), (None, Vec::new()), "{d:?}");
        let expected = if d.event_id == created.id { &created.event_type } else { &resolved.event_type };
        assert_eq!(&d.event_type, expected, "a delivery carries its event's type");
    }
    fan_out_all(ports, at(2)).await;
    assert_eq!(deliveries(ports, &prefix).await.len(), 2, "fanning out again creates nothing");
}

/// An event addressed to one endpoint (an external agent's own) is delivered there alone:
/// another endpoint subscribed to the same type, or to its whole family, gets nothing, and the
/// addressee gets it only while it subscribes to the type and is enabled.
pub async fn an_addressed_event_reaches_its_endpoint_alone(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let first = endpoint(ports, org_id, &["agent.message_received"]).await;
    let second = endpoint(ports, org_id, &["agent.message_received"]).await;
    let everything = endpoint(ports, org_id, &["agent.*"]).await;
    let elsewhere = endpoint(ports, org_id, &["incident.*"]).await;

    let to_first = event(org_id, "agent.message_received", "cnv_1", 1);
    let to_second = event(org_id, "agent.message_received", "cnv_2", 1);
    let misaddressed = event(org_id, "agent.message_received", "cnv_3", 1);
    let broadcast = event(org_id, "agent.message_received", "cnv_4", 1);
    let mut entry = journal(org_id, "agents.dispatch", std::slice::from_ref(&broadcast));
    entry.events.extend([to_first.outbox_to(first.id), to_second.outbox_to(second.id), misaddressed.outbox_to(elsewhere.id)]);
    ports.runs.record(&entry).await.expect("committing the events");
    fan_out_all(ports, at(1)).await;

    assert_eq!(delivered_events(ports, &first).await, BTreeSet::from([to_first.id, broadcast.id]), "its own, and the broadcast");
    assert_eq!(delivered_events(ports, &second).await, BTreeSet::from([to_second.id, broadcast.id]));
    assert_eq!(
        delivered_events(ports, &everything).await,
        BTreeSet::from([broadcast.id]),
        "a wildcard subscriber does not see addressed events"
    );
    assert_eq!(delivered_events(ports, &elsewhere).await, BTreeSet::new(), "an addressee that does not subscribe gets nothing");
}

/// Events fanned out by several concurrent fan-outs in small batches reach each matching
/// endpoint exactly once.
pub async fn concurrent_fan_outs_create_each_delivery_exactly_once(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let mut endpoints = Vec::new();
    for _ in 0..3 {
        endpoints.push(endpoint(ports, org_id, &["task.*"]).await);
    }
    let mut expected = BTreeSet::new();
    for batch in 0..6 {
        let events: Vec<Event> = (0..4).map(|i| event(org_id, "task.updated", &format!("TASK-{batch}-{i}"), 1)).collect();
        expected.extend(events.iter().map(|e| e.id));
        commit_events(ports, org_id, &events).await;
    }
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let queue = ports.queue.clone();
            tokio::spawn(async move {
                let mut created = 0u32;
                for _ in 0..1_000 {
                    let report = queue.fan_out(at(1), 3).await.unwrap_or_else(|e| panic!("fanning out failed: {e:?}"));
                    if report.events == 0 {
                        return created;
                    }
                    created += report.deliveries;
                }
                panic!("fan-out terminates");
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        created += task.await.expect("the task ran");
    }
    assert!(created >= 72, "the fan-outs report every delivery they created ({created})");
    for endpoint in &endpoints {
        let listed = deliveries(ports, endpoint).await;
        let events: BTreeSet<EventId> = listed.iter().map(|d| d.event_id).collect();
        assert_eq!(listed.len(), events.len(), "no event reaches an endpoint twice");
        assert_eq!(events, expected, "every event reaches every endpoint");
    }
}

// ---- claims -------------------------------------------------------------------------------

/// Twenty due deliveries and five claimers claiming in small batches at once: every delivery is
/// claimed, each by exactly one claimer, as the first attempt of its schedule, under the lease.
pub async fn each_due_delivery_is_claimed_by_exactly_one_of_several_concurrent_claimers(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    endpoint(ports, org_id, &["incident.*"]).await;
    let events: Vec<Event> = (0..20).map(|i| event(org_id, "incident.updated", &format!("INC-{i:08}"), 1)).collect();
    commit_events(ports, org_id, &events).await;
    fan_out_all(ports, at(0)).await;
    let now = at(10);
    let queue = ports.queue.clone();
    let claimed = crate::claim_concurrently(5, move || {
        let queue = queue.clone();
        async move {
            let batch = queue.claim(now, 3, LEASE, UNCAPPED).await.unwrap_or_else(|e| panic!("claiming failed: {e:?}"));
            (!batch.is_empty()).then(|| batch.into_iter().filter(|item| item.org_id == org_id).collect::<Vec<_>>())
        }
    })
    .await;
    let ids: Vec<DeliveryId> = claimed.iter().map(|item| item.id).collect();
    let distinct: BTreeSet<DeliveryId> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "no delivery is claimed twice");
    let claimed_events: BTreeSet<EventId> = claimed.iter().map(|item| item.event_id).collect();
    assert_eq!(claimed_events, events.iter().map(|e| e.id).collect(), "every due delivery is claimed");
    for item in &claimed {
        assert_eq!((item.attempt, item.schedule_attempt, item.first_attempt_at), (1, 1, now), "a first attempt: {item:?}");
        assert_eq!(item.lease_until, now + LEASE, "under the lease");
    }
    assert_eq!(claim_own(ports, org_id, now).await, Vec::new(), "leased deliveries are not claimed again");
}

/// A claimed delivery carries everything its attempt needs (URL, secrets, event, payload bytes),
/// is not handed out again while its lease runs, and once the lease lapses is claimed again at
/// the next attempt, within the same schedule window, under a new lease.
pub async fn a_claimed_delivery_is_handed_out_again_only_after_its_lease(ports: &WebhookPorts) {
    let (org_id, endpoint, event) = one_delivery(ports).await;
    assert_eq!(claim_own(ports, org_id, t0() - Duration::seconds(1)).await, Vec::new(), "a delivery is not due before its time");
    let first = claim_one(ports, org_id, at(10)).await;
    assert_eq!((first.org_id, first.endpoint_id, first.event_id), (org_id, endpoint.id, event.id));
    assert_eq!((first.url.as_str(), &first.event_type), (endpoint.url.to_string().as_str(), &event.event_type));
    assert_eq!(first.payload, event.payload(), "the payload is the event's bytes");
    assert_eq!((first.attempt, first.schedule_attempt, first.first_attempt_at, first.lease_until), (1, 1, at(10), at(10) + LEASE));
    assert_eq!(claim_own(ports, org_id, at(10) + LEASE / 2).await, Vec::new(), "a leased delivery is not claimed again");
    assert_eq!(claim_own(ports, org_id, at(10) + LEASE - Duration::microseconds(1)).await, Vec::new(), "nor just before its lease ends");
    let again = claim_one(ports, org_id, at(10) + LEASE).await;
    assert_eq!((again.id, again.attempt, again.schedule_attempt), (first.id, 2, 2), "after the lease it is claimed at the next attempt");
    assert_eq!(again.first_attempt_at, at(10), "its schedule window still counts from the first attempt");
    assert_eq!(again.lease_until, at(10) + LEASE * 2, "under a new lease");
    let stored = delivery(ports, &endpoint, first.id).await;
    assert_eq!((stored.attempt_count, stored.first_attempt_at), (2, Some(at(10))), "both claims are counted");
}

// ---- attempts -----------------------------------------------------------------------------

/// `record_attempt` applies what follows an attempt: a retry keeps the delivery pending, due at
/// its time, lease released, the error kept; success finishes it at the attempt's end; giving up
/// fails it with the reason. The endpoint's `failing_since` starts at the first failure, stays
/// through later ones, and clears on a success.
pub async fn record_attempt_retries_succeeds_and_gives_up_and_tracks_the_endpoint_health(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let endpoint = endpoint(ports, org_id, &["incident.*"]).await;
    let first_event = event(org_id, "incident.created", "INC-00000001", 1);
    let second_event = event(org_id, "incident.created", "INC-00000002", 1);
    commit_events(ports, org_id, &[first_event.clone(), second_event.clone()]).await;
    fan_out_all(ports, t0()).await;
    let items = claim_own(ports, org_id, at(10)).await;
    assert_eq!(items.len(), 2);
    let (retried, abandoned) = if items[0].event_id == first_event.id { (&items[0], &items[1]) } else { (&items[1], &items[0]) };

    let failure = attempt(retried, at(10), 503);
    assert_eq!(record(ports, retried, &failure, &AfterAttempt::Retry { at: at(20) }).await, Some(at(10)), "a failure starts the streak");
    let pending = delivery(ports, &endpoint, retried.id).await;
    assert_eq!((pending.status, pending.attempt_count, pending.next_attempt_at), (DeliveryStatus::Pending, 1, Some(at(20))));
    assert_eq!(pending.last_error, failure.error, "the attempt's error is the delivery's last error");
    assert_eq!(pending.attempts, vec![failure.clone()], "the attempt is recorded as made");
    assert_eq!(claim_own(ports, org_id, at(15)).await, Vec::new(), "a retried delivery is not due before its time");

    let mut long = attempt(abandoned, at(11), 500);
    long.response_excerpt = Some(ResponseExcerpt::new(&[b'x'; 3000]));
    let give_up = AttemptError::new("retries_exhausted", "HTTP 500 (gave up)");
    assert_eq!(
        record(ports, abandoned, &long, &AfterAttempt::GiveUp { error: give_up.clone() }).await,
        Some(at(10)),
        "a later failure keeps the streak's start"
    );
    let failed = delivery(ports, &endpoint, abandoned.id).await;
    assert_eq!((failed.status, failed.finished_at, failed.next_attempt_at), (DeliveryStatus::Failed, Some(ended(at(11))), None));
    assert_eq!(failed.last_error, Some(give_up), "a delivery given up says why");
    assert_eq!(failed.attempts, vec![long], "a long answer is kept as its bounded, truncated excerpt");

    let second = claim_one(ports, org_id, at(20)).await;
    assert_eq!((second.id, second.attempt, second.schedule_attempt, second.first_attempt_at), (retried.id, 2, 2, at(10)));
    let success = attempt(&second, at(20), 204);
    assert_eq!(record(ports, &second, &success, &AfterAttempt::Succeed).await, None, "a success ends the streak");
    let succeeded = delivery(ports, &endpoint, retried.id).await;
    assert_eq!(
        (succeeded.status, succeeded.finished_at, succeeded.next_attempt_at),
        (DeliveryStatus::Succeeded, Some(ended(at(20))), None)
    );
    assert_eq!(succeeded.attempts, vec![success, failure], "attempts are listed newest first");
    assert_eq!(stored(ports, org_id, endpoint.id).await.failing_since, None, "the endpoint is healthy again");
    assert_eq!(claim_own(ports, org_id, at(86_400)).await, Vec::new(), "finished deliveries are never claimed again");
}

/// A worker whose claim lapsed and was taken over records nothing: `Conflict("delivery_reclaimed")`
/// (neither its attempt nor its outcome is stored); nor can an attempt be recorded twice, or for
/// a finished delivery. An unknown delivery, or one of another endpoint, is `NotFound`.
pub async fn a_stale_worker_is_refused_and_changes_nothing(ports: &WebhookPorts) {
    let (org_id, endpoint, _) = one_delivery(ports).await;
    let stale = claim_one(ports, org_id, at(10)).await;
    let current = claim_one(ports, org_id, at(10) + LEASE).await;
    let refused = ports.queue.record_attempt(endpoint.id, &attempt(&stale, at(11), 200), &AfterAttempt::Succeed).await;
    assert!(is_conflict(&refused, "delivery_reclaimed"), "the stale worker is refused: {refused:?}");
    let untouched = delivery(ports, &endpoint, current.id).await;
    assert_eq!(
        (untouched.status, untouched.attempt_count, untouched.attempts.len()),
        (DeliveryStatus::Pending, 2, 0),
        "and changed nothing"
    );
    assert_eq!(stored(ports, org_id, endpoint.id).await.failing_since, None, "not even the endpoint's health");

    let failure = attempt(&current, at(71), 500);
    record(ports, &current, &failure, &AfterAttempt::Retry { at: at(100) }).await;
    let twice = ports.queue.record_attempt(endpoint.id, &failure, &AfterAttempt::Retry { at: at(200) }).await;
    assert!(is_conflict(&twice, "delivery_reclaimed"), "an attempt is recorded once: {twice:?}");
    assert_eq!(delivery(ports, &endpoint, current.id).await.next_attempt_at, Some(at(100)), "the second record changed nothing");

    let last = claim_one(ports, org_id, at(100)).await;
    record(ports, &last, &attempt(&last, at(100), 200), &AfterAttempt::Succeed).await;
    let finished = ports.queue.record_attempt(endpoint.id, &attempt(&last, at(101), 200), &AfterAttempt::Succeed).await;
    assert!(is_conflict(&finished, "delivery_reclaimed"), "a finished delivery takes no attempt: {finished:?}");

    let mut unknown = attempt(&last, at(102), 200);
    unknown.delivery_id = DeliveryId::generate();
    let missing = ports.queue.record_attempt(endpoint.id, &unknown, &AfterAttempt::Succeed).await;
    assert!(matches!(missing, Err(WebhookError::NotFound)), "an unknown delivery: {missing:?}");
    let other = ports.queue.record_attempt(EndpointId::generate(), &attempt(&last, at(102), 200), &AfterAttempt::Succeed).await;
    assert!(matches!(other, Err(WebhookError::NotFound)), "an unknown endpoint: {other:?}");
    assert_eq!(delivery(ports, &endpoint, last.id).await.attempts.len(), 2, "only the two live attempts were recorded");
}

/// `record_attempts` records each attempt exactly as `record_attempt` would have, in order:
/// successes at a healthy endpoint finish their deliveries (a store may write them together),
/// a success at a failing endpoint clears its streak, a failure starts one, a stale worker's
/// attempt is refused and an unknown delivery is `NotFound`, each without disturbing the
/// others; a delivery in flight and not in the call is left as it was.
pub async fn attempts_recorded_together_are_each_recorded_as_alone(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let (healthy, failing) = (endpoint(ports, org_id, &["incident.*"]).await, endpoint(ports, org_id, &["incident.*"]).await);
    let events: Vec<Event> = (1..=3).map(|i| event(org_id, "incident.created", &format!("INC-0000000{i}"), 1)).collect();
    commit_events(ports, org_id, &events).await;
    fan_out_all(ports, t0()).await;
    let find = |items: &[DeliveryItem], endpoint: &WebhookEndpoint, event: &Event| -> DeliveryItem {
        items.iter().find(|i| i.endpoint_id == endpoint.id && i.event_id == event.id).cloned().expect("a claimed delivery")
    };
    let first = claim_own(ports, org_id, at(10)).await;
    assert_eq!(first.len(), 6);
    let (stale, stale_later) = (find(&first, &healthy, &events[1]), find(&first, &healthy, &events[2]));
    let streak = find(&first, &failing, &events[1]);
    record(ports, &streak, &attempt(&streak, at(10), 500), &AfterAttempt::Retry { at: at(500) }).await;
    // The first claims lapse; the deliveries not retried are claimed again.
    let second = claim_own(ports, org_id, at(70)).await;
    assert_eq!(second.len(), 5);
    let (done, retried, later) =
        (find(&second, &healthy, &events[0]), find(&second, &healthy, &events[1]), find(&second, &healthy, &events[2]));
    let (cured, untouched) = (find(&second, &failing, &events[0]), find(&second, &failing, &events[2]));
    let mut unknown = attempt(&done, at(70), 200);
    unknown.delivery_id = DeliveryId::generate();
    let records = [
        (&done, attempt(&done, at(70), 200), AfterAttempt::Succeed),
        (&stale, attempt(&stale, at(72), 200), AfterAttempt::Succeed),
        (&cured, attempt(&cured, at(70), 204), AfterAttempt::Succeed),
        // A stale worker's success and the current one's, at the same delivery.
        (&stale_later, attempt(&stale_later, at(73), 200), AfterAttempt::Succeed),
        (&later, attempt(&later, at(70), 200), AfterAttempt::Succeed),
        (&retried, attempt(&retried, at(71), 503), AfterAttempt::Retry { at: at(300) }),
        (&done, unknown, AfterAttempt::Succeed),
    ]
    .map(|(item, attempt, next)| AttemptRecord { endpoint_id: item.endpoint_id, attempt, next });

    let results = ports.queue.record_attempts(&records).await;

    let healths: Vec<Result<Option<OffsetDateTime>, String>> =
        results.iter().map(|r| r.as_ref().map(|h| h.failing_since).map_err(|e| format!("{e:?}"))).collect();
    assert_eq!(
        healths,
        vec![
            Ok(None),
            Err(format!("{:?}", WebhookError::Conflict("delivery_reclaimed"))),
            Ok(None),
            Err(format!("{:?}", WebhookError::Conflict("delivery_reclaimed"))),
            Ok(None),
            Ok(Some(at(71))),
            Err(format!("{:?}", WebhookError::NotFound)),
        ],
        "one result per record, in order, as each would have been recorded alone"
    );
    for (item, attempt) in [(&done, &records[0].attempt), (&later, &records[4].attempt), (&cured, &records[2].attempt)] {
        let finished = delivery(ports, &stored(ports, org_id, item.endpoint_id).await, item.id).await;
        assert_eq!(
            (finished.status, finished.finished_at, finished.next_attempt_at, finished.attempts),
            (DeliveryStatus::Succeeded, Some(ended(attempt.at)), None, vec![attempt.clone()]),
            "a success finishes its delivery at the attempt's end, its attempt alone recorded (never a stale worker's)"
        );
    }
    let pending = delivery(ports, &healthy, retried.id).await;
    assert_eq!(
        (pending.status, pending.attempt_count, pending.next_attempt_at, pending.attempts),
        (DeliveryStatus::Pending, 2, Some(at(300)), vec![records[5].attempt.clone()]),
        "the retried delivery waits, with only its current attempt: the stale worker's was refused"
    );
    assert_eq!(stored(ports, org_id, healthy.id).await.failing_since, Some(at(71)), "the failure starts the streak");
    assert_eq!(stored(ports, org_id, failing.id).await.failing_since, None, "the success cleared the other endpoint's streak");
    let in_flight = delivery(ports, &failing, untouched.id).await;
    assert_eq!(
        (in_flight.status, in_flight.attempt_count, in_flight.attempts.len()),
        (DeliveryStatus::Pending, 2, 0),
        "a delivery not in the call is left in flight"
    );
    assert_eq!(ports.queue.record_attempts(&[]).await.len(), 0, "nothing to record records nothing");
}

/// For statement budgets: `n` deliveries of a new organization's one endpoint, fanned out and
/// claimed, each with a succeeded attempt ready to record (`record_attempts`).
pub async fn claimed_successes(ports: &WebhookPorts, n: usize) -> Vec<AttemptRecord> {
    let org_id = OrgId::generate();
    let endpoint = endpoint(ports, org_id, &["incident.*"]).await;
    let events: Vec<Event> = (0..n).map(|i| event(org_id, "incident.created", &format!("INC-{i:08}"), 1)).collect();
    commit_events(ports, org_id, &events).await;
    fan_out_all(ports, t0()).await;
    let items = claim_own(ports, org_id, at(10)).await;
    assert_eq!(items.len(), n, "every delivery claimed");
    items
        .iter()
        .map(|item| AttemptRecord { endpoint_id: endpoint.id, attempt: attempt(item, at(10), 200), next: AfterAttempt::Succeed })
        .collect()
}

// ---- lists, replays, tests ----------------------------------------------------------------

/// An endpoint's deliveries list newest first (creation time, then id), page with cursors, filter
/// by status and by event type, and carry their attempts; an unknown endpoint is `NotFound`.
pub async fn deliveries_list_newest_first_with_filters_cursors_and_their_attempts(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let endpoint = endpoint(ports, org_id, &["incident.*", "task.*"]).await;
    let types = ["incident.created", "task.done", "incident.created", "task.done", "incident.created"];
    for (i, event_type) in types.iter().enumerate() {
        let e = event(org_id, event_type, &format!("R-{i}"), 1);
        ports.store.publish(&[e.pending()]).await.expect("publishing an event");
        fan_out_all(ports, at(i as i64)).await;
    }
    let listed = deliveries(ports, &endpoint).await;
    let created: Vec<OffsetDateTime> = listed.iter().map(|d| d.created_at).collect();
    assert_eq!(created, vec![at(4), at(3), at(2), at(1), at(0)], "newest first");
    let pages = all_pages(2, |page| {
        let store = ports.store.clone();
        let endpoint_id = endpoint.id;
        async move {
            store
                .list_deliveries(org_id, endpoint_id, &DeliveryFilter::default(), &page)
                .await
                .unwrap_or_else(|e| panic!("listing deliveries failed: {e:?}"))
        }
    })
    .await;
    assert_eq!(pages.len(), 3, "five deliveries in pages of two");
    assert_eq!(pages.into_iter().flatten().collect::<Vec<_>>(), listed, "the pages hold the list, each delivery once");

    let items = claim_own(ports, org_id, at(10)).await;
    let oldest = items.iter().find(|i| i.id == listed[4].id).expect("the oldest delivery is claimed");
    let failure = attempt(oldest, at(10), 500);
    record(ports, oldest, &failure, &AfterAttempt::GiveUp { error: AttemptError::new("gone", "HTTP 410 Gone") }).await;

    let failed = deliveries_in(ports, &endpoint, &DeliveryFilter { status: Some(DeliveryStatus::Failed), event_type: None }).await;
    assert_eq!(failed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![oldest.id], "filtered by status");
    assert_eq!(failed[0].attempts, vec![failure], "with its attempts");
    let pending = deliveries_in(ports, &endpoint, &DeliveryFilter { status: Some(DeliveryStatus::Pending), event_type: None }).await;
    assert_eq!(pending.len(), 4);
    let tasks = EventType::parse("task.done").expect("a type");
    let of_type = deliveries_in(ports, &endpoint, &DeliveryFilter { status: None, event_type: Some(tasks.clone()) }).await;
    assert_eq!(of_type.iter().map(|d| d.created_at).collect::<Vec<_>>(), vec![at(3), at(1)], "filtered by event type");
    let incidents = EventType::parse("incident.created").expect("a type");
    let both =
        deliveries_in(ports, &endpoint, &DeliveryFilter { status: Some(DeliveryStatus::Pending), event_type: Some(incidents) }).await;
    assert_eq!(both.iter().map(|d| d.created_at).collect::<Vec<_>>(), vec![at(4), at(2)], "filtered by both");

    let unknown = ports.store.list_deliveries(org_id, EndpointId::generate(), &DeliveryFilter::default(), &PageRequest::default()).await;
    assert!(matches!(unknown, Err(WebhookError::NotFound)), "an unknown endpoint: {unknown:?}");
}

/// A finished delivery replays onto a fresh schedule under the same id: pending, due at the
/// replay, `schedule_base` at the attempts made, no first attempt yet, its attempts kept; the
/// next claim is the schedule's first (numbers count on). A pending delivery is
/// `Conflict("delivery_pending")`; an unknown one `NotFound`.
pub async fn a_replay_puts_a_finished_delivery_on_a_new_schedule_under_the_same_id(ports: &WebhookPorts) {
    let (org_id, endpoint, _) = one_delivery(ports).await;
    let item = claim_one(ports, org_id, at(10)).await;
    let failure = attempt(&item, at(10), 500);
    let error = AttemptError::new("retries_exhausted", "gave up");
    record(ports, &item, &failure, &AfterAttempt::GiveUp { error: error.clone() }).await;
    let failed = delivery(ports, &endpoint, item.id).await;

    let replayed = failed.replayed(at(100)).expect("a failed delivery replays");
    let entry = journal(org_id, "webhooks.replay", &[]);
    ports.store.replay_delivery(&replayed, &entry).await.expect("replaying");
    assert!(run_exists(ports, &entry).await, "the replay commits its run");
    let pending = delivery(ports, &endpoint, item.id).await;
    assert_eq!(pending, replayed, "the replay is stored as computed");
    assert_eq!((pending.status, pending.attempt_count, pending.schedule_base), (DeliveryStatus::Pending, 1, 1));
    assert_eq!((pending.first_attempt_at, pending.next_attempt_at, pending.finished_at), (None, Some(at(100)), None));
    assert_eq!((pending.attempts.clone(), pending.last_error.clone()), (vec![failure.clone()], Some(error)), "its history stays");

    let again = ports.store.replay_delivery(&replayed, &journal(org_id, "webhooks.replay", &[])).await;
    assert!(is_conflict(&again, "delivery_pending"), "a pending delivery does not replay: {again:?}");
    assert_eq!(claim_own(ports, org_id, at(99)).await, Vec::new(), "the replay is due at its time");
    let retry = claim_one(ports, org_id, at(100)).await;
    assert_eq!((retry.id, retry.attempt, retry.schedule_attempt, retry.first_attempt_at), (item.id, 2, 1, at(100)), "a fresh schedule");
    let success = attempt(&retry, at(100), 200);
    record(ports, &retry, &success, &AfterAttempt::Succeed).await;
    let succeeded = delivery(ports, &endpoint, item.id).await;
    assert_eq!(succeeded.attempts, vec![success, failure], "attempts count on across replays");

    ports.store.replay_delivery(&succeeded.replayed(at(200)).expect("replays"), &journal(org_id, "r", &[])).await.expect("replay");
    let third = claim_one(ports, org_id, at(200)).await;
    assert_eq!((third.attempt, third.schedule_attempt), (3, 1), "a succeeded delivery replays too");

    let mut unknown = succeeded.clone();
    unknown.id = DeliveryId::generate();
    let missing = ports.store.replay_delivery(&unknown, &journal(org_id, "webhooks.replay", &[])).await;
    assert!(matches!(missing, Err(WebhookError::NotFound)), "an unknown delivery: {missing:?}");
}

/// `disable_endpoint` disables an enabled endpoint (reason, time, version bumped) and fails its
/// pending deliveries (`endpoint_disabled`), in-flight ones included, leaving finished ones
/// alone; disabling again changes nothing. A disabled endpoint gets no fan-out and no claim.
/// Enabling it again (`update_endpoint`) clears its `failing_since`; disabling it by
/// `update_endpoint` fails its pending deliveries too.
pub async fn disabling_an_endpoint_fails_its_pending_deliveries_and_stops_its_fan_out(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let endpoint = endpoint(ports, org_id, &["incident.*"]).await;
    let events: Vec<Event> = (0..3).map(|i| event(org_id, "incident.updated", &format!("INC-{i}"), 1)).collect();
    commit_events(ports, org_id, &events).await;
    fan_out_all(ports, t0()).await;
    let items = claim_own(ports, org_id, at(10)).await;
    assert_eq!(items.len(), 3);
    record(ports, &items[0], &attempt(&items[0], at(10), 200), &AfterAttempt::Succeed).await;
    record(ports, &items[1], &attempt(&items[1], at(11), 500), &AfterAttempt::Retry { at: at(30) }).await;

    assert!(ports.queue.disable_endpoint(endpoint.id, DisabledReason::Gone, at(20)).await.expect("disabling"), "it was enabled");
    let disabled = stored(ports, org_id, endpoint.id).await;
    assert_eq!(disabled.state, EndpointState::Disabled { reason: DisabledReason::Gone, at: at(20) });
    assert_eq!((disabled.version, disabled.updated_at, disabled.failing_since), (endpoint.version + 1, at(20), Some(at(11))));
    let succeeded = delivery(ports, &endpoint, items[0].id).await;
    assert_eq!(succeeded.status, DeliveryStatus::Succeeded, "a finished delivery stays as it was");
    for item in &items[1..] {
        let failed = delivery(ports, &endpoint, item.id).await;
        assert_eq!((failed.status, failed.finished_at, failed.next_attempt_at), (DeliveryStatus::Failed, Some(at(20)), None), "{failed:?}");
        assert_eq!(failed.last_error.map(|e| e.code), Some("endpoint_disabled".to_owned()), "a pending delivery fails with the endpoint");
    }
    let in_flight = ports.queue.record_attempt(endpoint.id, &attempt(&items[2], at(21), 200), &AfterAttempt::Succeed).await;
    assert!(is_conflict(&in_flight, "delivery_reclaimed"), "an attempt in flight is not recorded over the failure: {in_flight:?}");
    assert!(!ports.queue.disable_endpoint(endpoint.id, DisabledReason::FailingFor24h, at(25)).await.expect("disabling again"));
    assert_eq!(stored(ports, org_id, endpoint.id).await, disabled, "disabling a disabled endpoint changes nothing");
    let unknown = ports.queue.disable_endpoint(EndpointId::generate(), DisabledReason::Gone, at(25)).await;
    assert!(matches!(unknown, Err(WebhookError::NotFound)), "an unknown endpoint: {unknown:?}");

    let later = event(org_id, "incident.updated", "INC-9", 2);
    commit_events(ports, org_id, std::slice::from_ref(&later)).await;
    fan_out_all(ports, at(30)).await;
    assert_eq!(deliveries(ports, &endpoint).await.len(), 3, "a disabled endpoint gets no new delivery");
    assert_eq!(claim_own(ports, org_id, at(40)).await, Vec::new(), "and nothing to claim");

    let enabled = disabled.patched(&EndpointPatch { enabled: Some(true), ..EndpointPatch::default() }, at(50));
    ports.store.update_endpoint(&enabled, disabled.version, &journal(org_id, "webhooks.update", &[])).await.expect("enabling");
    let enabled = stored(ports, org_id, endpoint.id).await;
    assert_eq!((enabled.state, enabled.failing_since), (EndpointState::Enabled, None), "enabled afresh");
    let fresh = event(org_id, "incident.updated", "INC-10", 3);
    commit_events(ports, org_id, std::slice::from_ref(&fresh)).await;
    fan_out_all(ports, at(60)).await;
    let item = claim_one(ports, org_id, at(60)).await;
    assert_eq!(item.event_id, fresh.id, "an enabled endpoint gets events again");

    let off = enabled.patched(&EndpointPatch { enabled: Some(false), ..EndpointPatch::default() }, at(70));
    ports.store.update_endpoint(&off, enabled.version, &journal(org_id, "webhooks.update", &[])).await.expect("disabling by patch");
    let failed = delivery(ports, &endpoint, item.id).await;
    assert_eq!((failed.status, failed.finished_at), (DeliveryStatus::Failed, Some(at(70))), "disabling by patch fails pending deliveries");
    assert_eq!(failed.last_error.map(|e| e.code), Some("endpoint_disabled".to_owned()));
}

/// Deliveries of one endpoint fanned out together are claimed in the order their events were
/// committed, one claim at a time.
pub async fn deliveries_of_one_endpoint_are_claimed_in_event_order(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    endpoint(ports, org_id, &["task.*"]).await;
    let mut committed = Vec::new();
    for i in 0..12 {
        let e = event(org_id, if i % 2 == 0 { "task.created" } else { "task.updated" }, &format!("TASK-{i}"), 1);
        commit_events(ports, org_id, std::slice::from_ref(&e)).await;
        committed.push(e.id);
    }
    for _ in 0..100 {
        if ports.queue.fan_out(at(1), 5).await.expect("fan_out").events == 0 {
            break;
        }
    }
    let claimed: Vec<EventId> = claim_own_in(ports, org_id, at(2), 1).await.into_iter().map(|item| item.event_id).collect();
    assert_eq!(claimed, committed, "claimed in event order");
}

/// A test event reaches the one endpoint it is queued for, due at once whatever its filters, and
/// is never fanned out (an endpoint subscribed to `atlas.*` does not get it). An unknown
/// endpoint is `NotFound`.
pub async fn a_test_delivery_reaches_its_endpoint_alone_and_is_never_fanned_out(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let target = endpoint(ports, org_id, &["incident.*"]).await;
    let bystander = endpoint(ports, org_id, &["atlas.*"]).await;
    let test = Event::new(org_id, EventType::WEBHOOK_TEST, at(5), serde_json::json!({ "endpoint_id": target.id }), None, 1);
    let new_delivery = NewDelivery {
        id: DeliveryId::generate(),
        org_id,
        endpoint_id: target.id,
        event_id: test.id,
        event_type: EventType::WEBHOOK_TEST,
        due_at: at(5),
    };
    let entry = journal(org_id, "webhooks.test", &[]);
    ports.store.enqueue_test(&test.pending(), &new_delivery, &entry).await.expect("queueing a test event");
    assert!(run_exists(ports, &entry).await, "with its run");
    fan_out_all(ports, at(6)).await;
    assert_eq!(deliveries(ports, &bystander).await, Vec::new(), "a test event is never fanned out");
    let listed = deliveries(ports, &target).await;
    assert_eq!(listed.len(), 1);
    let queued = &listed[0];
    assert_eq!((queued.id, queued.event_id, &queued.event_type), (new_delivery.id, test.id, &EventType::WEBHOOK_TEST));
    assert_eq!((queued.status, queued.created_at, queued.next_attempt_at), (DeliveryStatus::Pending, at(5), Some(at(5))));
    let item = claim_one(ports, org_id, at(5)).await;
    assert_eq!((item.id, item.payload.clone()), (new_delivery.id, test.payload()), "due at once, with the test payload");

    let unknown = NewDelivery { id: DeliveryId::generate(), endpoint_id: EndpointId::generate(), ..new_delivery };
    let again = Event::new(org_id, EventType::WEBHOOK_TEST, at(5), serde_json::json!({}), None, 1);
    let missing =
        ports.store.enqueue_test(&again.pending(), &NewDelivery { event_id: again.id, ..unknown }, &journal(org_id, "t", &[])).await;
    assert!(matches!(missing, Err(WebhookError::NotFound)), "an unknown endpoint: {missing:?}");
}

/// Retention: `purge_finished` removes the deliveries that finished strictly before the cutoff,
/// with their attempts, and nothing pending or finished later; `purge_events` then removes the
/// events fanned out before the cutoff that no delivery refers to, never one a delivery still
/// needs (its payload is still handed out with the delivery).
pub async fn retention_removes_finished_deliveries_with_their_attempts_and_unreferenced_events(ports: &WebhookPorts) {
    let org_id = OrgId::generate();
    let endpoint = endpoint(ports, org_id, &["incident.*"]).await;
    let events: Vec<Event> = (1..=3).map(|n| event(org_id, "incident.updated", &format!("INC-R{n}"), 1)).collect();
    commit_events(ports, org_id, &events).await;
    fan_out_all(ports, t0()).await;
    let items = claim_own(ports, org_id, t0()).await;
    assert_eq!(items.len(), 3, "three deliveries: {items:?}");
    let of = |event: &Event| items.iter().find(|i| i.event_id == event.id).cloned().expect("each event has its delivery");
    let (old, recent, pending) = (of(&events[0]), of(&events[1]), of(&events[2]));
    record(ports, &old, &attempt(&old, at(1), 200), &AfterAttempt::Succeed).await;
    record(ports, &recent, &attempt(&recent, at(1000), 200), &AfterAttempt::Succeed).await;
    record(ports, &pending, &attempt(&pending, at(1), 500), &AfterAttempt::Retry { at: at(5000) }).await;
    let get = |id: DeliveryId| async move {
        ports.store.get_delivery(org_id, endpoint.id, id).await.unwrap_or_else(|e| panic!("reading delivery {id} failed: {e:?}"))
    };

    let removed = ports.queue.purge_finished(ended(at(1)), 1000).await.expect("purging at the first finish");
    assert!(get(old.id).await.is_some(), "a delivery finished exactly at the cutoff stays (removed {removed})");
    let removed = ports.queue.purge_finished(at(500), 1000).await.expect("purging");
    assert!(removed >= 1, "the old finished delivery is removed");
    assert_eq!(get(old.id).await, None, "a delivery finished before the cutoff is gone, with its attempts");
    let kept = get(recent.id).await.expect("a delivery finished after the cutoff stays");
    assert_eq!(kept.attempts.len(), 1, "with its attempt");
    let still = get(pending.id).await.expect("a pending delivery stays, whatever its age");
    assert_eq!((still.status, still.attempts.len()), (DeliveryStatus::Pending, 1));

    let gone = ports.queue.purge_events(at(500), 1000).await.expect("purging events");
    assert!(gone >= 1, "the old delivery's event, referred to by nothing now, is removed");
    let retried = claim_one(ports, org_id, at(5000)).await;
    assert_eq!(retried.id, pending.id);
    assert_eq!(retried.payload, pending.payload, "an event a delivery still needs is kept, payload and all");
    assert_eq!(
        deliveries_in(ports, &endpoint, &DeliveryFilter::default()).await.iter().map(|d| d.id).collect::<BTreeSet<_>>(),
        BTreeSet::from([recent.id, pending.id]),
        "only the old finished delivery left the endpoint's list"
    );
}

/// Fair claims: an organization with one due delivery gets it into the next claims even when
/// another organization has many older ones (an organization's turn counts what it already has
/// leased), and a claim never leases more than `per_endpoint` deliveries of one endpoint at once
/// (those already leased count, until their lease lapses).
pub async fn claims_cap_each_endpoint_and_let_every_organization_take_a_turn(ports: &WebhookPorts) {
    let busy = OrgId::generate();
    let busy_endpoint = endpoint(ports, busy, &["incident.*"]).await;
    let busy_events: Vec<Event> = (0..6).map(|n| event(busy, "incident.updated", &format!("INC-B{n}"), 1)).collect();
    commit_events(ports, busy, &busy_events).await;
    let quiet = OrgId::generate();
    endpoint(ports, quiet, &["incident.*"]).await;
    fan_out_all(ports, t0()).await;
    // The quiet organization's event is newer than every one of the busy organization's.
    commit_events(ports, quiet, &[event(quiet, "incident.created", "INC-Q1", 1)]).await;
    fan_out_all(ports, at(1)).await;

    // One delivery per claim: oldest-first alone would hand out all six busy ones first.
    let mut order = Vec::new();
    loop {
        let claimed = ports.queue.claim(at(2), 1, LEASE, UNCAPPED).await.expect("claiming");
        if claimed.is_empty() {
            break;
        }
        order.extend(claimed.into_iter().filter(|i| i.org_id == busy || i.org_id == quiet).map(|i| i.org_id));
    }
    assert_eq!(order.len(), 7, "every delivery is claimed: {order:?}");
    let quiet_turn = order.iter().position(|o| *o == quiet).expect("the quiet organization's delivery is claimed");
    assert!(quiet_turn <= 1, "the quiet organization waits for at most one busy delivery, not six: {order:?}");

    // Later, every lease lapsed: with a cap of 2, the busy endpoint gets 2, then none until they end.
    let later = at(2) + LEASE;
    let capped = claim_own_in_capped(ports, busy, later, 2).await;
    assert_eq!(capped.len(), 2, "at most 2 of the endpoint's deliveries are leased at once: {capped:?}");
    assert!(capped.iter().all(|i| i.endpoint_id == busy_endpoint.id));
    let more = claim_own_in_capped(ports, busy, later + Duration::seconds(1), 2).await;
    assert_eq!(more, Vec::new(), "with 2 leased, the endpoint gets nothing more");
    let after = claim_own_in_capped(ports, busy, later + LEASE, 2).await;
    assert_eq!(after.len(), 2, "once their lease lapses they count no more: {after:?}");
}

/// Claims at `now` with a per-endpoint cap of `cap`, batches of 1, until nothing comes; returns
/// those of `org_id`.
async fn claim_own_in_capped(ports: &WebhookPorts, org_id: OrgId, now: OffsetDateTime, cap: u32) -> Vec<DeliveryItem> {
    let mut own = Vec::new();
    loop {
        let claimed = ports.queue.claim(now, 1, LEASE, cap).await.unwrap_or_else(|e| panic!("claiming failed: {e:?}"));
        if claimed.is_empty() {
            return own;
        }
        own.extend(claimed.into_iter().filter(|item| item.org_id == org_id));
    }
}
