//! The webhook ports: [`WebhookStore`] (endpoints, deliveries as the API lists them, replays,
//! test events, the outbox), [`DeliveryQueue`] (the workers' side: fan-out, claims under a
//! lease, attempts, disabling), [`WebhookSender`] (one HTTP POST) and [`Resolver`] (DNS), with
//! the records they exchange and the port error [`WebhookError`].
//!
//! Atomicity: every mutating method commits its whole effect, and the call's `JournalEntry`
//! (the run and the idempotency outcome to replay) when it takes one, in **one transaction**.
//! Endpoint writes are compare-and-swap on `version`: the use case reads, applies a pure
//! transition, and writes only if nobody changed the endpoint meanwhile.
//!
//! Events of other areas enter the outbox **in the transaction of the change that caused
//! them**: their use cases put the events in their journal entry (`JournalEntry::events`, built
//! with [`Event::outbox`](crate::Event::outbox)), and the SQL adapter's journal writer inserts
//! each as a row of the events table beside the run. No port of this crate is
//! called on that path; [`WebhookStore::publish`] is only for causes without a transaction of
//! their own.
//!
//! Tenancy: every method that takes an `org_id` only ever sees that organization's rows; a row
//! of another organization is reported exactly as an absent one. Secrets are handed over in
//! the clear and stored encrypted at rest by the adapter (the same AEAD as channel secrets).

use crate::delivery::{Attempt, AttemptError, Delivery, DeliveryId, DeliveryStatus, ResponseExcerpt};
use crate::endpoint::{DisabledReason, EndpointId, SecretRotation, WebhookEndpoint};
use crate::event::{EventId, EventType, PendingEvent};
use crate::ssrf::TargetUrl;
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::JournalEntry;
use std::fmt;
use std::net::IpAddr;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

pub use atlas_runs::Journal;

/// Failures of the webhook stores.
#[derive(Debug, Error)]
pub enum WebhookError {
    /// Absent, or belonging to another organization.
    #[error("not found")]
    NotFound,
    /// The row is not in the state the call assumed: an endpoint whose version moved on
    /// (`endpoint_changed`), a delivery replayed while pending (`delivery_pending`), an
    /// attempt recorded by a worker whose claim lapsed (`delivery_reclaimed`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<EventType>,
}

/// A delivery to insert directly (a test event's), bypassing fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub org_id: OrgId,
    pub endpoint_id: EndpointId,
    pub event_id: EventId,
    pub event_type: EventType,
    /// Due (and created) at this instant.
    pub due_at: OffsetDateTime,
}

/// Endpoints, deliveries as the API shows them, and the outbox.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookStore: Send + Sync + fmt::Debug {
    /// Inserts a new endpoint (secrets included) with the call's journal entry.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint, journal: &JournalEntry) -> Result<(), WebhookError>;

    /// The organization's endpoints, newest first (creation time, then id).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn list_endpoints(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<WebhookEndpoint>, WebhookError>;

    /// One endpoint of the organization, secrets included.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn get_endpoint(&self, org_id: OrgId, id: EndpointId) -> Result<Option<WebhookEndpoint>, WebhookError>;

    /// Writes a patched endpoint if its stored version is still `expected_version`: `url`,
    /// `description`, `filters`, `state` (reason and time), `updated_at` and `version`; and
    /// `failing_since = NULL` when the stored endpoint was disabled and this one is enabled.
    /// Not the secrets, nor `failing_since` otherwise (the queue owns it). When the stored
    /// endpoint was enabled and this one is disabled, the endpoint's pending deliveries fail
    /// (`endpoint_disabled`) in the same transaction. Commits `journal`.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such endpoint; `Conflict("endpoint_changed")`
    /// when its version moved on; `Store` when the backing store fails.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, expected_version: i64, journal: &JournalEntry) -> Result<(), WebhookError>;

    /// Writes a rotated endpoint's `secrets`, `updated_at` and `version` if its stored version
    /// is still `expected_version`, with `journal`.
    ///
    /// # Errors
    /// `NotFound`; `Conflict("endpoint_changed")`; `Store`.
    async fn rotate_secret(&self, endpoint: &WebhookEndpoint, expected_version: i64, journal: &JournalEntry) -> Result<(), WebhookError>;

    /// Deletes an endpoint with its deliveries and their attempts (events stay: other
    /// endpoints may share them), with `journal`.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such endpoint; `Store`.
    async fn delete_endpoint(&self, org_id: OrgId, id: EndpointId, journal: &JournalEntry) -> Result<(), WebhookError>;

    /// An endpoint's deliveries matching `filter`, newest first (creation time, then id),
    /// each with its newest attempts (at most `MAX_LISTED_ATTEMPTS`).
    ///
    /// # Errors
    /// `NotFound` when the organization has no such endpoint; `Store`.
    async fn list_deliveries(
        &self,
        org_id: OrgId,
        endpoint_id: EndpointId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, WebhookError>;

    /// One delivery of the organization's endpoint, with its newest attempts.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn get_delivery(&self, org_id: OrgId, endpoint_id: EndpointId, id: DeliveryId) -> Result<Option<Delivery>, WebhookError>;

    /// Puts a finished delivery back on a fresh schedule, as `Delivery::replayed` computed it
    /// (status pending, `schedule_base = attempt_count`, `first_attempt_at` NULL,
    /// `next_attempt_at`, `finished_at` NULL, lease released), only if it is not pending;
    /// attempts already recorded stay. With `journal`.
    ///
    /// # Errors
    /// `NotFound`; `Conflict("delivery_pending")` when it is pending; `Store`.
    async fn replay_delivery(&self, delivery: &Delivery, journal: &JournalEntry) -> Result<(), WebhookError>;

    /// Inserts a test event (already fanned out: fan-out never sees it) and its one delivery,
    /// due at `delivery.due_at`, with `journal`.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such endpoint; `Store`.
    async fn enqueue_test(&self, event: &PendingEvent, delivery: &NewDelivery, journal: &JournalEntry) -> Result<(), WebhookError>;

    /// Inserts events into the outbox on their own. Only for a cause that has no transaction
    /// of its own (a worker noticing something); a use case that changes rows writes its
    /// events with its journal instead (see the module documentation).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn publish(&self, events: &[PendingEvent]) -> Result<(), WebhookError>;
}

/// One claimed delivery: everything an attempt needs, read in the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryItem {
    pub id: DeliveryId,
    pub org_id: OrgId,
    pub endpoint_id: EndpointId,
    /// The endpoint's URL as stored (validated again before every attempt).
    pub url: String,
    /// The endpoint's secrets at claim time.
    pub secrets: SecretRotation,
    pub event_id: EventId,
    pub event_type: EventType,
    /// The event's payload bytes, sent and signed as they are.
    pub payload: Vec<u8>,
    /// This attempt's number (`attempt_count` after the claim): unique per delivery, across
    /// replays. `claim` counts it, so an attempt whose worker died counts too.
    pub attempt: u32,
    /// This attempt's number in the current schedule (`attempt - schedule_base`), 1 for the
    /// first after creation or a replay: what the retry schedule counts.
    pub schedule_attempt: u32,
    /// When the current schedule's first attempt was claimed (this claim, for schedule
    /// attempt 1).
    pub first_attempt_at: OffsetDateTime,
    /// Until then the delivery is this worker's; afterwards `claim` hands it out again.
    pub lease_until: OffsetDateTime,
}

/// What fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOutReport {
    /// Events expanded (and marked fanned out).
    pub events: u32,
    /// Deliveries created.
    pub deliveries: u32,
    /// Whether fan-out found as many waiting events as it was allowed to take, so more may be
    /// waiting: the caller runs it again at once (otherwise it waits for news of new events).
    pub full: bool,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Attempt again at `at`: the delivery stays pending, its lease is released, the
    /// attempt's error becomes its `last_error`.
    Retry { at: OffsetDateTime },
    /// Delivered: status `succeeded`, finished at the attempt's end.
    Succeed,
    /// Given up: status `failed` with `error`, finished at the attempt's end.
    GiveUp { error: AttemptError },
}

/// One attempt to record, with what follows it (see [`DeliveryQueue::record_attempts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The endpoint of the attempt's delivery.
    pub endpoint_id: EndpointId,
    pub attempt: Attempt,
    pub next: AfterAttempt,
}

/// An endpoint's health after an attempt was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointHealth {
    /// Since when every attempt has failed (`None` right after a success).
    pub failing_since: Option<OffsetDateTime>,
}

/// Durable delivery work: events expanded into deliveries, claimed by workers under a lease.
///
/// Crash semantics (at-least-once): a delivery whose worker died while the request was in
/// flight comes back after its lease and is sent again under the same `webhook-id`, so the
/// receiver can tell. A delivery is never lost.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DeliveryQueue: Send + Sync + fmt::Debug {
    /// Expands up to `limit` events not yet fanned out, oldest first, each claimed with
    /// `FOR UPDATE SKIP LOCKED`: one delivery per endpoint of the event's organization that
    /// is enabled and whose filters match (`EventFilters::matches_any`, or the equivalent
    /// predicate in SQL: exact type equality, or `starts_with` on `EventFilter::prefix`, never
    /// `LIKE`), pending and due at `now`; then marks the event fanned out, in one transaction.
    /// Unique on (event, endpoint), so a retried fan-out creates nothing twice.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn fan_out(&self, now: OffsetDateTime, limit: u32) -> Result<FanOutReport, WebhookError>;

    /// Claims up to `limit` pending deliveries that are due (`next_attempt_at <= now`) and not
    /// leased (or whose lease expired), of enabled endpoints, without two workers ever holding
    /// one (`FOR UPDATE SKIP LOCKED`), fairly: never more than `per_endpoint` leased at once
    /// per endpoint (those already leased count), each organization's endpoints taking turns,
    /// and every organization with due work getting a turn before any gets a second; oldest
    /// due first within a turn. Each gets `lease_until = now + lease`, `attempt_count + 1`,
    /// and `first_attempt_at = now` when that makes the first attempt of the current schedule
    /// (`attempt_count == schedule_base + 1`).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn claim(&self, now: OffsetDateTime, limit: u32, lease: Duration, per_endpoint: u32) -> Result<Vec<DeliveryItem>, WebhookError>;

    /// The earliest instant at which a pending delivery of an enabled endpoint is (or becomes)
    /// claimable: its due time, or its lease's end when that is later; `None` when there is
    /// none. Endpoint caps are ignored. Idle workers sleep until then instead of polling. One
    /// statement.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn next_due(&self) -> Result<Option<OffsetDateTime>, WebhookError>;

    /// Retention: removes up to `limit` finished deliveries (succeeded or failed) that finished
    /// before `before`, with their attempts. Returns how many deliveries were removed.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn purge_finished(&self, before: OffsetDateTime, limit: u32) -> Result<u64, WebhookError>;

    /// Retention: removes up to `limit` events (and their payloads) fanned out before `before`
    /// that no delivery refers to any more. Returns how many were removed.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn purge_events(&self, before: OffsetDateTime, limit: u32) -> Result<u64, WebhookError>;

    /// Records an attempt and what follows it, in one transaction: inserts `attempt` (unique
    /// on (delivery, number)); applies `next` to its delivery, only if the delivery is pending
    /// with `attempt_count == attempt.number` (the claim this worker holds);
    /// and updates the endpoint's health: a succeeded attempt clears `failing_since`, a
    /// failed one sets it to `attempt.at` when it was empty. Returns the health after.
    ///
    /// # Errors
    /// `NotFound` for an unknown delivery; `Conflict("delivery_reclaimed")` when the delivery
    /// finished or was claimed again (a stale worker changes nothing); `Store`.
    async fn record_attempt(&self, endpoint_id: EndpointId, attempt: &Attempt, next: &AfterAttempt)
        -> Result<EndpointHealth, WebhookError>;

    /// Records many attempts, each exactly as [`record_attempt`](Self::record_attempt) would:
    /// one result per record, in order, and one record's refusal (a reclaimed delivery)
    /// leaves the others recorded. A store may write several in one transaction (successes
    /// at endpoints without a failure streak, the common case under load); each record is
    /// still all or nothing. The default records them one by one.
    async fn record_attempts(&self, records: &[AttemptRecord]) -> Vec<Result<EndpointHealth, WebhookError>> {
        let mut results = Vec::with_capacity(records.len());
        for record in records {
            results.push(self.record_attempt(record.endpoint_id, &record.attempt, &record.next).await);
        }
        results
    }

    /// Disables an endpoint for `reason` at `at` (bumping its version), and fails its pending
    /// deliveries (`endpoint_disabled`), in one transaction. Returns whether it was enabled;
    /// disabling a disabled endpoint changes nothing.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint; `Store`.
    async fn disable_endpoint(&self, endpoint_id: EndpointId, reason: DisabledReason, at: OffsetDateTime) -> Result<bool, WebhookError>;
}

/// What a receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Its `Retry-After`, read with `schedule::parse_retry_after`.
    pub retry_after: Option<Duration>,
    /// The start of its body (the sender reads no more than `MAX_EXCERPT_BYTES + 1` bytes).
    pub body_excerpt: ResponseExcerpt,
}

/// How a request failed before an answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    /// No complete answer within the timeout.
    Timeout,
    /// No connection (refused, reset, unreachable).
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The answer was not HTTP the client could read.
    Protocol,
    /// The sender itself refused the target (its own guard).
    Refused,
}

impl SendErrorKind {
    /// The attempt error code.
    pub const fn code(self) -> &'static str {
        match self {
            SendErrorKind::Timeout => "timeout",
            SendErrorKind::Connect => "connect",
            SendErrorKind::Tls => "tls",
            SendErrorKind::Protocol => "protocol",
            SendErrorKind::Refused => "address_refused",
        }
    }
}

/// A request that got no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct SendError {
    pub kind: SendErrorKind,
    pub message: String,
}

/// Sends one delivery attempt: an HTTP POST.
///
/// The adapter must: connect **only** to `addresses` (the ones the guard just checked, at
/// `url.port()`), never resolve `url`'s host again, so DNS cannot change between check and
/// connection (TLS still verifies the certificate for the host name, and `Host`/SNI carry
/// it); **not follow redirects** (a 3xx is an answer like any other non-2xx); send `headers`
/// and `body` exactly as given; give up after `timeout` in all (connect, send, first byte and
/// reading); read at most `MAX_EXCERPT_BYTES + 1` bytes of the answer's body.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync + fmt::Debug {
    /// POSTs `body` with `headers` to `url`, over a connection to one of `addresses`.
    ///
    /// # Errors
    /// A [`SendError`] when no answer arrived; any answer, whatever its status, is `Ok`.
    async fn send(
        &self,
        url: &TargetUrl,
        addresses: &[IpAddr],
        headers: &[(&'static str, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, SendError>;
}

/// A name that did not resolve (no such name, or the resolver failed).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ResolveError(pub String);

/// Resolves host names (DNS, the system resolver, or a fixed table in tests).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Resolver: Send + Sync + fmt::Debug {
    /// Every address `host` resolves to (A and AAAA) for a connection to `port`.
    ///
    /// # Errors
    /// A [`ResolveError`] when it does not resolve.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, ResolveError>;
}
