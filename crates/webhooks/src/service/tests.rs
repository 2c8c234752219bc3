//! Specifications of the webhook use cases, over mockall mocks of the ports.

use super::*;
use crate::delivery::{DeliveryStatus, ResponseExcerpt};
use crate::endpoint::EndpointState;
use crate::ports::{EndpointHealth, MockDeliveryQueue, MockResolver, MockWebhookSender, MockWebhookStore, ResolveError, SendError};
use crate::signing::{verify, verify_atlas_signature, StandardHeaders, VerifyError, DEFAULT_TOLERANCE};
use crate::SecretRotation;
use atlas_kernel::ManualClock;
use atlas_runs::{Run, RunId, RunStatus};
use atlas_scopes::Actor;
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-04-07 12:00 UTC);
const ENTROPY: [u8; 32] = [42; 32];

/// Runs a future whose awaits are all on mocks (ready at once): no runtime needed.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn entry(org_id: OrgId, operation: &str, resource_id: Option<String>) -> JournalEntry {
    JournalEntry {
        run: Run {
            id: RunId::generate(),
            org_id,
            actor: Actor::System,
            operation: operation.into(),
            status: RunStatus::Succeeded,
            request_id: "req_test".into(),
            idempotency_key: None,
            resource_id,
            error: None,
            created_at: NOW,
            updated_at: NOW,
        },
        idempotency: None,
        events: Vec::new(),
    }
}

fn secret(byte: u8) -> WebhookSecret {
    WebhookSecret::from_entropy(&[byte; 32]).unwrap()
}

fn endpoint(org_id: OrgId) -> WebhookEndpoint {
    WebhookEndpoint::new(
        org_id,
        validate_url("https://hooks.example.com/atlas").unwrap(),
        None,
        EventFilters::parse(&["incident.*"]).unwrap(),
        secret(1),
        NOW - Duration::days(3),
    )
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A resolver that answers every name with `addresses`.
fn resolver(addresses: &[&str]) -> MockResolver {
    let addresses: Vec<IpAddr> = addresses.iter().map(|a| ip(a)).collect();
    let mut resolver = MockResolver::new();
    resolver.expect_resolve().returning(move |_, _| Ok(addresses.clone()));
    resolver
}

fn webhooks(store: MockWebhookStore, resolver: MockResolver) -> Webhooks {
    Webhooks::new(Arc::new(store), Arc::new(resolver), Arc::new(ManualClock::new(NOW)), WebhookConfig::default())
}

fn create_request(url: &str, events: &[&str]) -> CreateEndpoint {
    CreateEndpoint { url: url.into(), events: events.iter().map(|e| (*e).to_owned()).collect(), description: Some("  CRM sync  ".into()) }
}

// --- creating endpoints ---

#[test]
fn creating_an_endpoint_stores_it_with_a_secret_made_of_the_callers_entropy_shown_once() {
    let org_id = OrgId::generate();
    let stored = Arc::new(Mutex::new(None));
    let mut store = MockWebhookStore::new();
    let seen = stored.clone();
    store.expect_create_endpoint().times(1).returning(move |endpoint, journal| {
        *seen.lock().unwrap() = Some((endpoint.clone(), journal.clone()));
        Ok(())
    });
    let service = webhooks(store, resolver(&["93.184.216.34"]));
    let journal = move |created: &CreatedEndpoint| entry(org_id, "webhooks.create", Some(created.endpoint.id.to_string()));

    let created = block_on(service.create(
        org_id,
        create_request("https://Hooks.Example.com/atlas", &["atlas.event.received", "incident.*"]),
        &ENTROPY,
        &journal,
    ))
    .unwrap();

    assert_eq!(created.secret, WebhookSecret::from_entropy(&ENTROPY).unwrap());
    assert_eq!(created.endpoint.secrets, SecretRotation::new(created.secret.clone()));
    assert_eq!(created.endpoint.url.to_string(), "https://hooks.example.com/atlas");
    assert_eq!(created.endpoint.description.as_deref(), Some("CRM sync"));
    assert_eq!((created.endpoint.state, created.endpoint.version, created.endpoint.created_at), (EndpointState::Enabled, 1, NOW));
    let (endpoint, journal) = stored.lock().unwrap().take().unwrap();
    assert_eq!(endpoint, created.endpoint);
    assert_eq!(journal.run.resource_id, Some(created.endpoint.id.to_string()));

    let shown = serde_json::to_value(&created).unwrap();
    assert_eq!(shown["secret"], created.secret.expose());
    assert_eq!(shown["events"], serde_json::json!(["atlas.event.received", "incident.*"]));
    assert!(serde_json::to_value(&created.endpoint).unwrap().get("secret").is_none(), "only the creation response shows it");
}

#[test]
fn a_malformed_url_unknown_events_or_a_long_description_are_refused_naming_the_field() {
    let org_id = OrgId::generate();
    let service = webhooks(MockWebhookStore::new(), MockResolver::new());
    let journal = |_: &CreatedEndpoint| entry(org_id, "webhooks.create", None);
    let field = |request: CreateEndpoint| match block_on(service.create(org_id, request, &ENTROPY, &journal)) {
        Err(WebhookServiceError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(field(create_request("https://user:pw@example.com/", &["incident.*"])), "url");
    assert_eq!(field(create_request("ftp://example.com/", &["incident.*"])), "url");
    assert_eq!(field(create_request("https://example.com/", &["invoice.paid"])), "events");
    assert_eq!(field(create_request("https://example.com/", &[])), "events");
    assert_eq!(field(create_request("https://example.com/", &["incident.cr*"])), "events");
    let long = CreateEndpoint { description: Some("x".repeat(501)), ..create_request("https://example.com/", &["incident.*"]) };
    assert_eq!(field(long), "description");
}

#[test]
fn a_target_resolving_to_a_private_address_is_refused_at_creation() {
    let org_id = OrgId::generate();
    let journal = |_: &CreatedEndpoint| entry(org_id, "webhooks.create", None);
    for (url, addresses) in [
        ("http://127.0.0.1:8080/hook", vec![]),
        ("http://[::ffff:169.254.169.254]/latest", vec![]),
        ("https://internal.example.com/", vec!["10.1.2.3"]),
        ("https://mixed.example.com/", vec!["93.184.216.34", "192.168.0.7"]),
    ] {
        let service = webhooks(MockWebhookStore::new(), resolver(&addresses));
        let err = block_on(service.create(org_id, create_request(url, &["incident.*"]), &ENTROPY, &journal)).unwrap_err();
        assert!(
            matches!(&err, WebhookServiceError::Invalid { field: "url", message } if message.contains("public addresses")),
            "{url}: {err:?}"
        );
        assert_eq!(err.code(), "VALIDATION_ERROR");
    }
}

#[test]
fn an_operator_may_allow_private_targets_and_unresolvable_names_are_checked_at_delivery() {
    let org_id = OrgId::generate();
    let journal = |_: &CreatedEndpoint| entry(org_id, "webhooks.create", None);
    let mut store = MockWebhookStore::new();
    store.expect_create_endpoint().times(2).returning(|_, _| Ok(()));
    let config = WebhookConfig { allow_private: true, ..WebhookConfig::default() };
    let mut unresolvable = MockResolver::new();
    unresolvable.expect_resolve().returning(|_, _| Err(ResolveError("NXDOMAIN".into())));
    let store = Arc::new(store);
    let local = Webhooks::new(store.clone(), Arc::new(MockResolver::new()), Arc::new(ManualClock::new(NOW)), config);
    assert!(block_on(local.create(org_id, create_request("http://127.0.0.1:9000/hook", &["atlas.*"]), &ENTROPY, &journal)).is_ok());
    let strict = Webhooks::new(store, Arc::new(unresolvable), Arc::new(ManualClock::new(NOW)), WebhookConfig::default());
    assert!(block_on(strict.create(org_id, create_request("https://not-yet.example.com/", &["atlas.*"]), &ENTROPY, &journal)).is_ok());
}

#[test]
fn entropy_that_cannot_make_a_secret_is_a_wiring_bug_not_a_client_error() {
    let org_id = OrgId::generate();
    let service = webhooks(MockWebhookStore::new(), resolver(&["93.184.216.34"]));
    let journal = |_: &CreatedEndpoint| entry(org_id, "webhooks.create", None);
    let err = block_on(service.create(org_id, create_request("https://example.com/", &["atlas.*"]), &[1; 8], &journal)).unwrap_err();
    assert!(matches!(err, WebhookServiceError::Entropy(_)));
    assert_eq!(err.code(), "INTERNAL_ERROR");
    assert!(!err.is_business_outcome());
}

// --- patching, rotating, deleting ---

#[test]
fn a_patch_is_written_against_the_version_read_and_retried_when_it_moved_on() {
    let org_id = OrgId::generate();
    let original = endpoint(org_id);
    let id = original.id;
    let moved_on = WebhookEndpoint { version: 2, ..original.clone() };
    let mut store = MockWebhookStore::new();
    let reads = Arc::new(Mutex::new(vec![moved_on.clone(), original.clone()]));
    store.expect_get_endpoint().times(2).returning(move |_, _| Ok(reads.lock().unwrap().pop()));
    let versions = Arc::new(Mutex::new(Vec::new()));
    let seen = versions.clone();
    store.expect_update_endpoint().times(2).returning(move |endpoint, expected, _| {
        seen.lock().unwrap().push((expected, endpoint.version));
        if expected == 1 {
            Err(WebhookError::Conflict("endpoint_changed"))
        } else {
            Ok(())
        }
    });
    let service = webhooks(store, MockResolver::new());
    let request = UpdateEndpoint { events: Some(vec!["task.*".into()]), enabled: Some(false), ..UpdateEndpoint::default() };
    let journal = move |e: &WebhookEndpoint| entry(org_id, "webhooks.update", Some(e.id.to_string()));

    let updated = block_on(service.update(org_id, id, request, &journal)).unwrap();

    assert_eq!(*versions.lock().unwrap(), vec![(1, 2), (2, 3)]);
    assert_eq!(updated.filters, EventFilters::parse(&["task.*"]).unwrap());
    assert_eq!(updated.state, EndpointState::Disabled { reason: DisabledReason::ByUser, at: NOW });
    assert_eq!(updated.url, original.url, "untouched fields stay");
}

#[test]
fn a_patch_that_keeps_losing_the_race_is_a_retryable_conflict() {
    let org_id = OrgId::generate();
    let e = endpoint(org_id);
    let mut store = MockWebhookStore::new();
    let read = e.clone();
    store.expect_get_endpoint().times(3).returning(move |_, _| Ok(Some(read.clone())));
    store.expect_update_endpoint().times(3).returning(|_, _, _| Err(WebhookError::Conflict("endpoint_changed")));
    let service = webhooks(store, MockResolver::new());
    let journal = move |_: &WebhookEndpoint| entry(org_id, "webhooks.update", None);
    let err = block_on(service.update(org_id, e.id, UpdateEndpoint::default(), &journal)).unwrap_err();
    assert!(matches!(err, WebhookServiceError::Conflict("endpoint_changed")));
    assert_eq!(err.code(), "CONFLICT");
}

#[test]
fn a_new_url_is_checked_like_at_creation_and_an_unknown_endpoint_is_not_found() {
    let org_id = OrgId::generate();
    let journal = move |_: &WebhookEndpoint| entry(org_id, "webhooks.update", None);
    let service = webhooks(MockWebhookStore::new(), resolver(&["172.20.0.2"]));
    let request = UpdateEndpoint { url: Some("https://intranet.example.com/".into()), ..UpdateEndpoint::default() };
    assert!(matches!(
        block_on(service.update(org_id, EndpointId::generate(), request, &journal)),
        Err(WebhookServiceError::Invalid { field: "url", .. })
    ));

    let mut store = MockWebhookStore::new();
    store.expect_get_endpoint().returning(|_, _| Ok(None));
    let service = webhooks(store, MockResolver::new());
    let err = block_on(service.update(org_id, EndpointId::generate(), UpdateEndpoint::default(), &journal)).unwrap_err();
    assert!(matches!(err, WebhookServiceError::NotFound));
}

#[test]
fn rotating_makes_the_new_secret_current_keeps_the_old_one_signing_a_day_and_shows_the_new_one_once() {
    let org_id = OrgId::generate();
    let e = endpoint(org_id);
    let mut store = MockWebhookStore::new();
    let read = e.clone();
    store.expect_get_endpoint().returning(move |_, _| Ok(Some(read.clone())));
    store.expect_rotate_secret().times(1).withf(|rotated, expected, _| *expected == 1 && rotated.version == 2).returning(|_, _, _| Ok(()));
    let service = webhooks(store, MockResolver::new());
    let journal = move |r: &RotatedSecret| entry(org_id, "webhooks.rotate_secret", Some(r.endpoint.id.to_string()));

    let rotated = block_on(service.rotate_secret(org_id, e.id, &ENTROPY, &journal)).unwrap();

    assert_eq!(rotated.secret, WebhookSecret::from_entropy(&ENTROPY).unwrap());
    assert_eq!(rotated.endpoint.secrets.signing_secrets(NOW), vec![&rotated.secret, &secret(1)]);
    assert_eq!(rotated.endpoint.secrets.signing_secrets(NOW + Duration::hours(24)), vec![&rotated.secret]);
    let shown = serde_json::to_value(&rotated).unwrap();
    assert_eq!(shown["secret"], rotated.secret.expose());
    assert_eq!(shown["previous_secret_expires_at"], "2026-04-08T12:00:00Z");
}

#[test]
fn deleting_passes_the_journal_to_the_store() {
    let org_id = OrgId::generate();
    let id = EndpointId::generate();
    let mut store = MockWebhookStore::new();
    store
        .expect_delete_endpoint()
        .withf(move |o, i, j| *o == org_id && *i == id && j.run.operation == "webhooks.delete")
        .returning(|_, _, _| Ok(()));
    store.expect_delete_endpoint().returning(|_, _, _| Err(WebhookError::NotFound));
    let service = webhooks(store, MockResolver::new());
    assert!(block_on(service.delete(org_id, id, &entry(org_id, "webhooks.delete", None))).is_ok());
    assert!(matches!(
        block_on(service.delete(org_id, EndpointId::generate(), &entry(org_id, "x", None))),
        Err(WebhookServiceError::NotFound)
    ));
}

// --- replays and test events ---

fn failed_delivery(org_id: OrgId, endpoint_id: EndpointId) -> Delivery {
    Delivery {
        id: DeliveryId::generate(),
        org_id,
        endpoint_id,
        event_id: EventId::generate(),
        event_type: EventType::parse("incident.created").unwrap(),
        status: DeliveryStatus::Failed,
        attempt_count: 29,
        schedule_base: 0,
        first_attempt_at: Some(NOW - Duration::days(2)),
        next_attempt_at: None,
        last_error: Some(AttemptError::new("retries_exhausted", "HTTP 503")),
        created_at: NOW - Duration::days(2),
        finished_at: Some(NOW - Duration::days(1)),
        attempts: Vec::new(),
    }
}

fn store_with(endpoint: &WebhookEndpoint, delivery: Option<Delivery>) -> MockWebhookStore {
    let mut store = MockWebhookStore::new();
    let e = endpoint.clone();
    store.expect_get_endpoint().returning(move |_, _| Ok(Some(e.clone())));
    store.expect_get_delivery().returning(move |_, _, _| Ok(delivery.clone()));
    store
}

#[test]
fn replaying_a_finished_delivery_puts_it_back_on_a_fresh_schedule_due_now() {
    let org_id = OrgId::generate();
    let e = endpoint(org_id);
    let d = failed_delivery(org_id, e.id);
    let mut store = store_with(&e, Some(d.clone()));
    store
        .expect_replay_delivery()
        .times(1)
        .withf(|r, j| r.status == DeliveryStatus::Pending && r.next_attempt_at == Some(NOW) && j.run.operation == "webhooks.replay")
        .returning(|_, _| Ok(()));
    let service = webhooks(store, MockResolver::new());
    let journal = move |_: &Delivery| entry(org_id, "webhooks.replay", None);

    let replayed = block_on(service.replay(org_id, e.id, d.id, &journal)).unwrap();

    assert_eq!((replayed.id, replayed.schedule_base, replayed.first_attempt_at, replayed.finished_at), (d.id, 29, None, None));
}

#[test]
fn a_pending_delivery_a_disabled_endpoint_or_an_unknown_delivery_cannot_be_replayed() {
    let org_id = OrgId::generate();
    let e = endpoint(org_id);
    let journal = move |_: &Delivery| entry(org_id, "webhooks.replay", None);
    let pending = Delivery { status: DeliveryStatus::Pending, ..failed_delivery(org_id, e.id) };
    let service = webhooks(store_with(&e, Some(pending.clone())), MockResolver::new());
    assert!(matches!(block_on(service.replay(org_id, e.id, pending.id, &journal)), Err(WebhookServiceError::DeliveryPending)));

    let mut racing = store_with(&e, Some(failed_delivery(org_id, e.id)));
    racing.expect_replay_delivery().returning(|_, _| Err(WebhookError::Conflict("delivery_pending")));
    let service = webhooks(racing, MockResolver::new());
    assert!(matches!(block_on(service.replay(org_id, e.id, pending.id, &journal)), Err(WebhookServiceError::DeliveryPending)));

    let off = e.disabled(DisabledReason::Gone, NOW);
    let service = webhooks(store_with(&off, None), MockResolver::new());
    let err = block_on(service.replay(org_id, e.id, pending.id, &journal)).unwrap_err();
    assert!(matches!(err, WebhookServiceError::EndpointDisabled));
    assert_eq!(err.code(), "CONFLICT");

    let service = webhooks(store_with(&e, None), MockResolver::new());
    assert!(matches!(block_on(service.replay(org_id, e.id, pending.id, &journal)), Err(WebhookServiceError::NotFound)));
}

#[test]
fn a_test_event_is_queued_for_that_endpoint_alone_whatever_its_filters() {
    let org_id = OrgId::generate();
    let e = endpoint(org_id);
    assert!(!e.filters.matches_any(&EventType::WEBHOOK_TEST));
    let mut store = store_with(&e, None);
    let seen = Arc::new(Mutex::new(None));
    let keep = seen.clone();
    store.expect_enqueue_test().times(1).returning(move |event, delivery, _| {
        *keep.lock().unwrap() = Some((event.clone(), delivery.clone()));
        Ok(())
    });
    let service = webhooks(store, MockResolver::new());
    let journal = move |_: &TestQueued| entry(org_id, "webhooks.test", None);

    let queued = block_on(service.send_test(org_id, e.id, &journal)).unwrap();

    let (event, delivery) = seen.lock().unwrap().take().unwrap();
    assert_eq!((delivery.id, delivery.endpoint_id, delivery.due_at), (queued.delivery_id, e.id, NOW));
    assert_eq!(
        (event.id, event.event_type.clone(), delivery.event_type),
        (queued.event_id, EventType::WEBHOOK_TEST, EventType::WEBHOOK_TEST)
    );
    let payload: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(payload["type"], "atlas.webhook.test");
    assert_eq!(payload["data"]["endpoint_id"], e.id.to_string());
    assert_eq!(payload["data"]["version"], 1);

    let off = e.disabled(DisabledReason::ByUser, NOW);
    let service = webhooks(store_with(&off, None), MockResolver::new());
    assert!(matches!(block_on(service.send_test(org_id, e.id, &journal)), Err(WebhookServiceError::EndpointDisabled)));
}

// --- delivering ---

const BODY: &[u8] = br#"{"type":"incident.created","timestamp":"2026-04-07T11:59:59Z","data":{"id":"INC-00000001","version":1}}"#;

fn item(url: &str, attempt: u32, first_attempt_at: OffsetDateTime) -> DeliveryItem {
    DeliveryItem {
        id: DeliveryId::generate(),
        org_id: OrgId::generate(),
        endpoint_id: EndpointId::generate(),
        url: url.into(),
        secrets: SecretRotation::new(secret(1)),
        event_id: EventId::generate(),
        event_type: EventType::parse("incident.created").unwrap(),
        payload: BODY.to_vec(),
        attempt,
        schedule_attempt: attempt,
        first_attempt_at,
        lease_until: NOW + Duration::minutes(2),
    }
}

fn answer(status: u16, retry_after: Option<Duration>) -> Response {
    Response { status, retry_after, body_excerpt: ResponseExcerpt::new(b"thanks") }
}

/// What the sender saw: the URL, the addresses it was told to use, the headers, the body.
type Sent = Arc<Mutex<Vec<(String, Vec<IpAddr>, Vec<(&'static str, String)>, Vec<u8>)>>>;

/// A sender that takes 120 ms (on the manual clock) and answers `result`.
fn sender(clock: &ManualClock, sent: &Sent, result: Result<Response, SendError>) -> MockWebhookSender {
    let mut sender = MockWebhookSender::new();
    let (clock, sent) = (clock.clone(), sent.clone());
    sender.expect_send().returning(move |url, addresses, headers, body, timeout| {
        assert_eq!(timeout, Duration::seconds(10));
        sent.lock().unwrap().push((url.to_string(), addresses.to_vec(), headers.to_vec(), body.to_vec()));
        clock.advance(Duration::milliseconds(120));
        result.clone()
    });
    sender
}

/// A queue that records every attempt and reports the endpoint failing since `failing_since`
/// after a failure; `disable` tells whether `disable_endpoint` finds it enabled.
fn queue(recorded: &Arc<Mutex<Vec<(Attempt, AfterAttempt)>>>, failing_since: Option<OffsetDateTime>) -> MockDeliveryQueue {
    let mut queue = MockDeliveryQueue::new();
    let recorded = recorded.clone();
    queue.expect_record_attempt().times(1).returning(move |_, attempt, next| {
        recorded.lock().unwrap().push((attempt.clone(), next.clone()));
        let failing = if attempt.outcome == AttemptOutcome::Succeeded { None } else { Some(failing_since.unwrap_or(attempt.at)) };
        Ok(EndpointHealth { failing_since: failing })
    });
    queue
}

struct Rig {
    clock: ManualClock,
    sent: Sent,
    recorded: Arc<Mutex<Vec<(Attempt, AfterAttempt)>>>,
}

impl Rig {
    fn new() -> Self {
        Self { clock: ManualClock::new(NOW), sent: Arc::default(), recorded: Arc::default() }
    }

    fn dispatcher(&self, queue: MockDeliveryQueue, sender: MockWebhookSender, resolver: MockResolver, config: WebhookConfig) -> Dispatcher {
        Dispatcher::new(Arc::new(queue), Arc::new(sender), Arc::new(resolver), Arc::new(self.clock.clone()), config)
    }

    fn deliver(
        &self,
        item: &DeliveryItem,
        queue: MockDeliveryQueue,
        result: Result<Response, SendError>,
        addresses: &[&str],
    ) -> DispatchReport {
        let sender = sender(&self.clock, &self.sent, result);
        block_on(self.dispatcher(queue, sender, resolver(addresses), WebhookConfig::default()).deliver(item, 0.0)).unwrap()
    }
}

#[test]
fn a_2xx_answer_finishes_the_delivery_signed_both_ways_sent_to_the_checked_addresses() {
    let rig = Rig::new();
    let item = item("https://hooks.example.com/atlas", 1, NOW);
    let report = rig.deliver(&item, queue(&rig.recorded, None), Ok(answer(204, None)), &["93.184.216.34", "2606:2800:220:1::1"]);

    assert_eq!(report.next, AfterAttempt::Succeed);
    assert_eq!(report.disabled, None);
    let attempt = &report.attempt;
    assert_eq!(
        (attempt.outcome, attempt.status_code, attempt.number, attempt.at, attempt.latency_ms),
        (AttemptOutcome::Succeeded, Some(204), 1, NOW, 120)
    );
    assert_eq!(attempt.response_excerpt.as_ref().map(ResponseExcerpt::text), Some("thanks"));
    assert_eq!(rig.recorded.lock().unwrap()[0], (report.attempt.clone(), AfterAttempt::Succeed));

    let sent = rig.sent.lock().unwrap();
    let (url, addresses, headers, body) = &sent[0];
    assert_eq!(url, "https://hooks.example.com/atlas");
    assert_eq!(addresses, &vec![ip("93.184.216.34"), ip("2606:2800:220:1::1")]);
    assert_eq!(body, BODY);
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    assert_eq!(header("webhook-id"), Some(item.id.to_string().as_str()));
    assert_eq!(header("x-atlas-delivery"), Some(item.id.to_string().as_str()));
    assert_eq!(header("x-atlas-event"), Some("incident.created"));
    assert_eq!(header("webhook-timestamp"), Some(NOW.unix_timestamp().to_string().as_str()));
    let standard = StandardHeaders::from_lookup(header);
    assert_eq!(verify(&secret(1), &standard, body, NOW, DEFAULT_TOLERANCE), Ok(()));
    assert_eq!(verify_atlas_signature(&secret(1), header("x-atlas-signature"), body), Ok(()));
}

#[test]
fn during_a_rotation_every_live_secret_signs() {
    let rig = Rig::new();
    let mut item = item("https://hooks.example.com/atlas", 1, NOW);
    item.secrets = SecretRotation::new(secret(1)).rotate(NOW - Duration::hours(1), secret(2));
    rig.deliver(&item, queue(&rig.recorded, None), Ok(answer(200, None)), &["93.184.216.34"]);
    let sent = rig.sent.lock().unwrap();
    let headers = &sent[0].2;
    let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
    let standard = StandardHeaders::from_lookup(header);
    assert_eq!(verify(&secret(2), &standard, BODY, NOW, DEFAULT_TOLERANCE), Ok(()));
    assert_eq!(verify(&secret(1), &standard, BODY, NOW, DEFAULT_TOLERANCE), Ok(()));
    assert_eq!(verify_atlas_signature(&secret(2), header("X-Atlas-Signature"), BODY), Ok(()));
    assert_eq!(verify_atlas_signature(&secret(1), header("X-Atlas-Signature"), BODY), Err(VerifyError::NoMatchingSignature));
}

#[test]
fn a_410_finishes_the_delivery_and_disables_the_endpoint_at_once() {
    let rig = Rig::new();
    let item = item("https://hooks.example.com/atlas", 1, NOW);
    let mut q = queue(&rig.recorded, None);
    let endpoint_id = item.endpoint_id;
    q.expect_disable_endpoint()
        .times(1)
        .withf(move |id, reason, at| *id == endpoint_id && *reason == DisabledReason::Gone && *at == NOW + Duration::milliseconds(120))
        .returning(|_, _, _| Ok(true));

    let report = rig.deliver(&item, q, Ok(answer(410, None)), &["93.184.216.34"]);

    assert!(matches!(&report.next, AfterAttempt::GiveUp { error } if error.code == "gone"));
    assert_eq!(report.disabled, Some(DisabledReason::Gone));
    assert_eq!(report.attempt.status_code, Some(410));
}

#[test]
fn any_other_answer_is_retried_on_the_schedule_honouring_retry_after() {
    let rig = Rig::new();
    let failed_at = NOW + Duration::milliseconds(120);
    let report = rig.deliver(
        &item("https://hooks.example.com/atlas", 1, NOW),
        queue(&rig.recorded, None),
        Ok(answer(500, None)),
        &["93.184.216.34"],
    );
    assert_eq!(report.next, AfterAttempt::Retry { at: failed_at + Duration::seconds(1) });
    assert_eq!(report.attempt.error, Some(AttemptError::new("http_status", "HTTP 500")));

    let rig = Rig::new();
    let slow_down = Ok(answer(429, Some(Duration::minutes(3))));
    let report = rig.deliver(&item("https://hooks.example.com/atlas", 2, NOW), queue(&rig.recorded, None), slow_down, &["93.184.216.34"]);
    assert_eq!(report.next, AfterAttempt::Retry { at: failed_at + Duration::minutes(3) });

    let rig = Rig::new();
    let redirect = Ok(answer(302, None));
    let report = rig.deliver(&item("https://hooks.example.com/atlas", 3, NOW), queue(&rig.recorded, None), redirect, &["93.184.216.34"]);
    assert_eq!(report.next, AfterAttempt::Retry { at: failed_at + Duration::seconds(25) }, "redirects are not followed");
}

#[test]
fn after_a_replay_the_schedule_counts_from_the_replay_while_attempt_numbers_count_on() {
    let rig = Rig::new();
    let replayed = DeliveryItem { schedule_attempt: 2, ..item("https://hooks.example.com/atlas", 31, NOW) };
    let report = rig.deliver(&replayed, queue(&rig.recorded, None), Ok(answer(500, None)), &["93.184.216.34"]);
    assert_eq!(report.next, AfterAttempt::Retry { at: NOW + Duration::milliseconds(120) + Duration::seconds(5) });
    assert_eq!(report.attempt.number, 31);
}

#[test]
fn a_failure_with_no_answer_is_retried_without_a_status_code() {
    let rig = Rig::new();
    let timeout = Err(SendError { kind: SendErrorKind::Timeout, message: "no answer within 10s".into() });
    let report = rig.deliver(&item("https://hooks.example.com/atlas", 4, NOW), queue(&rig.recorded, None), timeout, &["93.184.216.34"]);
    assert_eq!(report.next, AfterAttempt::Retry { at: NOW + Duration::milliseconds(120) + Duration::minutes(2) });
    assert_eq!((report.attempt.status_code, report.attempt.response_excerpt.clone()), (None, None));
    assert_eq!(report.attempt.error.unwrap().code, "timeout");
}

#[test]
fn when_the_schedule_runs_out_the_delivery_gives_up() {
    let rig = Rig::new();
    let first = NOW - Duration::hours(23) - Duration::minutes(30);
    let report = rig.deliver(
        &item("https://hooks.example.com/atlas", 20, first),
        queue(&rig.recorded, Some(NOW)),
        Ok(answer(503, None)),
        &["93.184.216.34"],
    );
    match &report.next {
        AfterAttempt::GiveUp { error } => {
            assert_eq!(error.code, "retries_exhausted");
            assert!(error.message.starts_with("HTTP 503"), "{}", error.message);
        }
        other => panic!("expected to give up, got {other:?}"),
    }
    assert_eq!(report.disabled, None, "failing for half an hour only");
}

#[test]
fn a_target_now_resolving_to_a_private_address_fails_the_delivery_without_sending() {
    let rig = Rig::new();
    let mut never = MockWebhookSender::new();
    never.expect_send().never();
    let dispatcher = rig.dispatcher(queue(&rig.recorded, None), never, resolver(&["93.184.216.34", "10.0.0.8"]), WebhookConfig::default());
    let report = block_on(dispatcher.deliver(&item("https://rebinding.example.com/", 1, NOW), 0.0)).unwrap();
    match &report.next {
        AfterAttempt::GiveUp { error } => assert_eq!(error.code, "address_refused"),
        other => panic!("expected to give up, got {other:?}"),
    }
    assert_eq!(report.attempt.outcome, AttemptOutcome::Failed);
}

#[test]
fn with_private_targets_allowed_a_loopback_receiver_gets_its_delivery() {
    let rig = Rig::new();
    let config = WebhookConfig { allow_private: true, ..WebhookConfig::default() };
    let dispatcher =
        rig.dispatcher(queue(&rig.recorded, None), sender(&rig.clock, &rig.sent, Ok(answer(200, None))), MockResolver::new(), config);
    let report = block_on(dispatcher.deliver(&item("http://127.0.0.1:9000/hook", 1, NOW), 0.0)).unwrap();
    assert_eq!(report.next, AfterAttempt::Succeed);
    assert_eq!(rig.sent.lock().unwrap()[0].1, vec![ip("127.0.0.1")]);
}

#[test]
fn a_name_that_does_not_resolve_is_retried() {
    let rig = Rig::new();
    let mut nxdomain = MockResolver::new();
    nxdomain.expect_resolve().returning(|_, _| Err(ResolveError("no such host".into())));
    let mut never = MockWebhookSender::new();
    never.expect_send().never();
    let dispatcher = rig.dispatcher(queue(&rig.recorded, None), never, nxdomain, WebhookConfig::default());
    let report = block_on(dispatcher.deliver(&item("https://gone.example.com/", 1, NOW), 0.0)).unwrap();
    assert_eq!(report.next, AfterAttempt::Retry { at: NOW + Duration::seconds(1) });
    assert_eq!(report.attempt.error.unwrap().code, "dns");
}

#[test]
fn an_endpoint_failing_for_24_hours_is_disabled_and_says_so() {
    let rig = Rig::new();
    let item = item("https://hooks.example.com/atlas", 3, NOW - Duration::minutes(1));
    let mut q = queue(&rig.recorded, Some(NOW - Duration::hours(24)));
    q.expect_disable_endpoint().times(1).withf(|_, reason, _| *reason == DisabledReason::FailingFor24h).returning(|_, _, _| Ok(true));
    let report = rig.deliver(&item, q, Ok(answer(500, None)), &["93.184.216.34"]);
    assert_eq!(report.disabled, Some(DisabledReason::FailingFor24h));
    assert!(matches!(report.next, AfterAttempt::Retry { .. }), "the store fails the pending deliveries as it disables");
}

#[test]
fn a_success_never_disables_and_a_race_to_disable_is_reported_once() {
    let rig = Rig::new();
    let report = rig.deliver(
        &item("https://hooks.example.com/atlas", 1, NOW),
        queue(&rig.recorded, Some(NOW - Duration::days(3))),
        Ok(answer(200, None)),
        &["93.184.216.34"],
    );
    assert_eq!(report.disabled, None);

    let rig = Rig::new();
    let mut q = queue(&rig.recorded, None);
    q.expect_disable_endpoint().returning(|_, _, _| Ok(false));
    let report = rig.deliver(&item("https://hooks.example.com/atlas", 1, NOW), q, Ok(answer(410, None)), &["93.184.216.34"]);
    assert_eq!(report.disabled, None, "another worker disabled it first");
}

#[test]
fn a_stale_worker_learns_that_its_delivery_was_reclaimed() {
    let rig = Rig::new();
    let mut q = MockDeliveryQueue::new();
    q.expect_record_attempt().returning(|_, _, _| Err(WebhookError::Conflict("delivery_reclaimed")));
    let dispatcher =
        rig.dispatcher(q, sender(&rig.clock, &rig.sent, Ok(answer(200, None))), resolver(&["93.184.216.34"]), WebhookConfig::default());
    let err = block_on(dispatcher.deliver(&item("https://hooks.example.com/atlas", 1, NOW), 0.0)).unwrap_err();
    assert!(matches!(err, WebhookServiceError::Conflict("delivery_reclaimed")));
}

#[test]
fn attempts_recorded_together_each_get_what_delivering_alone_would_report() {
    let rig = Rig::new();
    // Three attempts, sent one by one: a success, a 410, and one whose delivery was reclaimed.
    let items = [
        item("https://hooks.example.com/a", 1, NOW),
        item("https://hooks.example.com/b", 1, NOW),
        item("https://hooks.example.com/c", 2, NOW),
    ];
    let answers = [answer(200, None), answer(410, None), answer(200, None)];
    let mut attempted = Vec::new();
    for (item, answer) in items.iter().zip(answers) {
        let dispatcher = rig.dispatcher(
            MockDeliveryQueue::new(),
            sender(&rig.clock, &rig.sent, Ok(answer)),
            resolver(&["93.184.216.34"]),
            WebhookConfig::default(),
        );
        attempted.push(block_on(dispatcher.send_attempt(item, 0.0)));
    }
    assert_eq!(rig.sent.lock().unwrap().len(), 3);

    // One call to the queue records all three; it refuses the third.
    let mut q = MockDeliveryQueue::new();
    let expected: Vec<AttemptRecord> = attempted.iter().map(|a| a.record.clone()).collect();
    q.expect_record_attempts().times(1).withf(move |records| records == expected.as_slice()).returning(|records| {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| match i {
                2 => Err(WebhookError::Conflict("delivery_reclaimed")),
                _ => Ok(EndpointHealth { failing_since: (r.attempt.outcome == AttemptOutcome::Failed).then_some(r.attempt.at) }),
            })
            .collect()
    });
    q.expect_record_attempt().never();
    let gone = items[1].endpoint_id;
    q.expect_disable_endpoint()
        .times(1)
        .withf(move |id, reason, at| *id == gone && *reason == DisabledReason::Gone && *at == NOW + Duration::milliseconds(240))
        .returning(|_, _, _| Ok(true));
    let dispatcher = rig.dispatcher(q, MockWebhookSender::new(), MockResolver::new(), WebhookConfig::default());
    let reports = block_on(dispatcher.record(attempted.clone()));

    assert_eq!(reports.len(), 3);
    let first = reports[0].as_ref().unwrap();
    assert_eq!((&first.attempt, &first.next, first.disabled), (&attempted[0].record.attempt, &AfterAttempt::Succeed, None));
    assert_eq!((first.attempt.at, first.attempt.latency_ms), (NOW, 120));
    let second = reports[1].as_ref().unwrap();
    assert!(matches!(&second.next, AfterAttempt::GiveUp { error } if error.code == "gone"));
    assert_eq!(second.disabled, Some(DisabledReason::Gone));
    assert!(matches!(reports[2], Err(WebhookServiceError::Conflict("delivery_reclaimed"))));
}

#[test]
fn a_stored_url_that_no_longer_validates_fails_the_delivery() {
    let rig = Rig::new();
    let mut never = MockWebhookSender::new();
    never.expect_send().never();
    let dispatcher = rig.dispatcher(queue(&rig.recorded, None), never, MockResolver::new(), WebhookConfig::default());
    let report = block_on(dispatcher.deliver(&item("gopher://example.com/", 1, NOW), 0.0)).unwrap();
    assert!(matches!(report.next, AfterAttempt::GiveUp { error } if error.code == "invalid_url"));
}

#[test]
fn claims_use_the_configured_lease_and_fan_out_uses_the_clock() {
    let rig = Rig::new();
    let mut q = MockDeliveryQueue::new();
    q.expect_claim()
        .withf(|now, limit, lease, per_endpoint| *now == NOW && *limit == 10 && *lease == Duration::minutes(2) && *per_endpoint == 4)
        .returning(|_, _, _, _| Ok(Vec::new()));
    q.expect_fan_out()
        .withf(|now, limit| *now == NOW && *limit == 100)
        .returning(|_, _| Ok(FanOutReport { events: 3, deliveries: 5, full: false }));
    let dispatcher = rig.dispatcher(q, MockWebhookSender::new(), MockResolver::new(), WebhookConfig::default());
    assert_eq!(block_on(dispatcher.claim(10)).unwrap(), Vec::new());
    assert_eq!(block_on(dispatcher.fan_out(100)).unwrap(), FanOutReport { events: 3, deliveries: 5, full: false });
}
