//! The webhook use cases over the ports: [`Webhooks`] (create, read, patch, delete and rotate
//! endpoints; list and replay deliveries; queue a test event) and [`Dispatcher`] (the workers'
//! step: fan events out, claim deliveries, deliver one, or attempt many and record them
//! together), and the one domain error the HTTP
//! layer maps, [`WebhookServiceError`].
//!
//! A refusal by a rule (`VALIDATION_ERROR`, `NOT_FOUND`, `CONFLICT`) commits nothing here: the
//! caller records its failed run and replayable answer with `RunStore::record`, as for any
//! refused call.

use crate::delivery::{Attempt, AttemptError, AttemptId, AttemptOutcome, Delivery, DeliveryId};
use crate::endpoint::{failing_too_long, DisabledReason, EndpointId, EndpointPatch, WebhookEndpoint, MAX_DESCRIPTION_CHARS};
use crate::event::{Event, EventFilters, EventId, EventType};
use crate::ports::{
    AfterAttempt, AttemptRecord, DeliveryFilter, DeliveryItem, DeliveryQueue, EndpointHealth, FanOutReport, Journal, NewDelivery, Resolver,
    Response, SendErrorKind, WebhookError, WebhookSender, WebhookStore,
};
use crate::schedule::RetrySchedule;
use crate::signing::{sign, SecretError, WebhookSecret};
use crate::ssrf::{check_addresses, validate_url, Host, Refusal, TargetUrl};
use atlas_kernel::{Clock, OrgId, Page, PageRequest, StoreError};
use atlas_runs::JournalEntry;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

/// How many times a use case re-reads an endpoint whose version moved on under it before
/// reporting `Conflict`.
const CAS_ATTEMPTS: usize = 3;

/// Settings shared by the use cases and the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebhookConfig {
    /// Let targets resolve to private-network addresses (`ATLAS_WEBHOOKS_ALLOW_PRIVATE`; on
    /// in the embedded default, for local testing). Never lifts the refusal of link-local,
    /// cloud metadata, unspecified, broadcast, multicast, documentation or reserved addresses.
    pub allow_private: bool,
    /// How long an attempt may take in all; a 2xx after it is a failure.
    pub timeout: Duration,
    /// How long a claimed delivery stays with its worker: longer than `timeout` plus the
    /// resolution and the recording, or a slow but live attempt is claimed again.
    pub lease: Duration,
    /// When failed deliveries are tried again.
    pub schedule: RetrySchedule,
    /// How many deliveries of one endpoint may be in flight (leased) at once, across every
    /// worker: a slow endpoint holds at most this many of the workers' slots.
    pub endpoint_concurrency: u32,
}

impl Default for WebhookConfig {
    /// Private targets refused, 10 s timeout, 2 min lease, the standard schedule, 4
    /// deliveries in flight per endpoint.
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::seconds(10),
            lease: Duration::minutes(2),
            schedule: RetrySchedule::default(),
            endpoint_concurrency: 4,
        }
    }
}

/// Why a webhook use case refused or failed. The HTTP layer maps each variant once; the
/// envelope code each one means is [`WebhookServiceError::code`].
#[derive(Debug, Error)]
pub enum WebhookServiceError {
    /// A field is malformed or not allowed (`VALIDATION_ERROR`, `details.fields[]` names
    /// `field`): `url` (syntax, or a target resolving to a refused address), `events`,
    /// `description`.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The endpoint or delivery is absent or another organization's (`NOT_FOUND`).
    #[error("not found")]
    NotFound,
    /// The endpoint is disabled: enable it before replaying or testing (`CONFLICT`).
    #[error("the endpoint is disabled; enable it first")]
    EndpointDisabled,
    /// The delivery is still on its schedule: nothing to replay (`CONFLICT`).
    #[error("the delivery is still pending")]
    DeliveryPending,
    /// A row changed under the call too often (an endpoint's version, a delivery reclaimed
    /// from a stale worker) (`CONFLICT`, retryable).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The caller's entropy cannot make a secret: a wiring bug (`INTERNAL_ERROR`).
    #[error(transparent)]
    Entropy(#[from] SecretError),
    /// The store failed (`INTERNAL_ERROR`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebhookServiceError {
    /// The envelope error code this error means.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookServiceError::Invalid { .. } => "VALIDATION_ERROR",
            WebhookServiceError::NotFound => "NOT_FOUND",
            WebhookServiceError::EndpointDisabled | WebhookServiceError::DeliveryPending | WebhookServiceError::Conflict(_) => "CONFLICT",
            WebhookServiceError::Entropy(_) | WebhookServiceError::Store(_) => "INTERNAL_ERROR",
        }
    }

    /// Whether this is a business outcome (a 4xx whose run and answer are recorded and
    /// replayed), as opposed to a failure that stores nothing and may be retried afresh.
    pub fn is_business_outcome(&self) -> bool {
        !matches!(self, WebhookServiceError::Conflict(_) | WebhookServiceError::Entropy(_) | WebhookServiceError::Store(_))
    }
}

impl From<WebhookError> for WebhookServiceError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::NotFound => WebhookServiceError::NotFound,
            WebhookError::Conflict(what) => WebhookServiceError::Conflict(what),
            WebhookError::Store(s) => WebhookServiceError::Store(s),
        }
    }
}

fn invalid(field: &'static str, message: impl ToString) -> WebhookServiceError {
    WebhookServiceError::Invalid { field, message: message.to_string() }
}

/// `POST /v1/atlas/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

/// `PATCH /v1/atlas/webhooks/:id`: `None` leaves a field as it is; `description:
/// Some(None)` (JSON `null`) clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateEndpoint {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// A new endpoint and its secret: the only time (with rotation) the secret is shown.
/// Serializes as the endpoint with `"secret": "whsec_…"` added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedEndpoint {
    pub endpoint: WebhookEndpoint,
    pub secret: WebhookSecret,
}

/// A rotated endpoint and its new secret (shown here only). Serializes like
/// [`CreatedEndpoint`], with `"previous_secret_expires_at"` added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: WebhookSecret,
}

#[derive(Serialize)]
struct WithSecret<'a> {
    #[serde(flatten)]
    endpoint: &'a WebhookEndpoint,
    secret: String,
    #[serde(skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    previous_secret_expires_at: Option<OffsetDateTime>,
}

impl Serialize for CreatedEndpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WithSecret { endpoint: &self.endpoint, secret: self.secret.expose(), previous_secret_expires_at: None }.serialize(s)
    }
}

impl Serialize for RotatedSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let expires = self.endpoint.secrets.previous.as_ref().map(|p| p.expires_at);
        WithSecret { endpoint: &self.endpoint, secret: self.secret.expose(), previous_secret_expires_at: expires }.serialize(s)
    }
}

/// A queued test delivery (`POST /v1/atlas/webhooks/:id/test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TestQueued {
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
}

fn parse_description(description: Option<String>) -> Result<Option<String>, WebhookServiceError> {
    let Some(description) = description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid("description", format!("at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    Ok(Some(description))
}

/// The endpoint use cases (the `/v1/atlas/webhooks` routes).
#[derive(Debug, Clone)]
pub struct Webhooks {
    store: Arc<dyn WebhookStore>,
    resolver: Arc<dyn Resolver>,
    clock: Arc<dyn Clock>,
    config: WebhookConfig,
}

impl Webhooks {
    /// The use cases over `store`, checking targets through `resolver`, telling time by `clock`.
    pub fn new(store: Arc<dyn WebhookStore>, resolver: Arc<dyn Resolver>, clock: Arc<dyn Clock>, config: WebhookConfig) -> Self {
        Self { store, resolver, clock, config }
    }

    /// Early feedback on a target: a literal address, or a name that resolves, must pass the
    /// SSRF guard. A name that does not resolve (yet) is accepted: every delivery checks again.
    async fn check_target(&self, url: &TargetUrl) -> Result<(), WebhookServiceError> {
        let addresses = match url.host() {
            Host::Ip(ip) => vec![*ip],
            Host::Domain(name) => match self.resolver.resolve(name, url.port()).await {
                Ok(addresses) if !addresses.is_empty() => addresses,
                _ => return Ok(()),
            },
        };
        check_addresses(&addresses, self.config.allow_private).map_err(|refusal| invalid("url", refusal))
    }

    /// Creates an endpoint: validates the URL (and checks its addresses), the event filters
    /// and the description; makes the secret from `entropy` (32 bytes from a CSPRNG, drawn by
    /// the caller); stores the endpoint with `journal.entry(&created)`. The returned secret is
    /// shown to the caller once.
    ///
    /// # Errors
    /// `Invalid` (`url`, `events`, `description`); `Entropy` when `entropy` is not 24 to 64
    /// bytes.
    pub async fn create(
        &self,
        org_id: OrgId,
        request: CreateEndpoint,
        entropy: &[u8],
        journal: &dyn Journal<CreatedEndpoint>,
    ) -> Result<CreatedEndpoint, WebhookServiceError> {
        let created = self.prepare(org_id, request, entropy).await?;
        self.store.create_endpoint(&created.endpoint, &journal.entry(&created)).await?;
        Ok(created)
    }

    /// `url` checked as [`create`](Self::create) checks it (its form, then its target's
    /// addresses), normalised as an endpoint stores it.
    ///
    /// # Errors
    /// `Invalid` (`url`).
    pub async fn check_url(&self, url: &str) -> Result<String, WebhookServiceError> {
        let url = validate_url(url).map_err(|e| invalid("url", e))?;
        self.check_target(&url).await?;
        Ok(url.to_string())
    }

    /// The endpoint [`create`](Self::create) would create, checked the same way (URL, target,
    /// filters), without storing it: for a use case that stores it with its own writes, in its
    /// own transaction (an external agent's subscription).
    ///
    /// # Errors
    /// As [`create`](Self::create), without `Store`.
    pub async fn prepare(&self, org_id: OrgId, request: CreateEndpoint, entropy: &[u8]) -> Result<CreatedEndpoint, WebhookServiceError> {
        let url = validate_url(&request.url).map_err(|e| invalid("url", e))?;
        let filters = EventFilters::parse(&request.events).map_err(|e| invalid("events", e))?;
        let description = parse_description(request.description)?;
        let secret = WebhookSecret::from_entropy(entropy)?;
        self.check_target(&url).await?;
        let endpoint = WebhookEndpoint::new(org_id, url, description, filters, secret.clone(), self.clock.now());
        Ok(CreatedEndpoint { endpoint, secret })
    }

    /// The organization's endpoints, newest first, without secrets in their API shape.
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn endpoints(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<WebhookEndpoint>, WebhookServiceError> {
        Ok(self.store.list_endpoints(org_id, page).await?)
    }

    /// One endpoint of the organization.
    ///
    /// # Errors
    /// `NotFound` when there is none.
    pub async fn endpoint(&self, org_id: OrgId, id: EndpointId) -> Result<WebhookEndpoint, WebhookServiceError> {
        self.store.get_endpoint(org_id, id).await?.ok_or(WebhookServiceError::NotFound)
    }

    /// Patches an endpoint (URL re-validated and re-checked, filters re-parsed; `enabled`
    /// switches delivery on or off, see `WebhookEndpoint::patched`), written with a
    /// compare-and-swap on its version and re-read up to three times if it changed meanwhile.
    ///
    /// # Errors
    /// `Invalid` (`url`, `events`, `description`); `NotFound`; `Conflict` when the endpoint
    /// kept changing.
    pub async fn update(
        &self,
        org_id: OrgId,
        id: EndpointId,
        request: UpdateEndpoint,
        journal: &dyn Journal<WebhookEndpoint>,
    ) -> Result<WebhookEndpoint, WebhookServiceError> {
        let patch = EndpointPatch {
            url: request.url.as_deref().map(validate_url).transpose().map_err(|e| invalid("url", e))?,
            description: request.description.map(parse_description).transpose()?,
            filters: request.events.as_deref().map(EventFilters::parse).transpose().map_err(|e| invalid("events", e))?,
            enabled: request.enabled,
        };
        if let Some(url) = &patch.url {
            self.check_target(url).await?;
        }
        for _ in 0..CAS_ATTEMPTS {
            let current = self.endpoint(org_id, id).await?;
            let next = current.patched(&patch, self.clock.now());
            match self.store.update_endpoint(&next, current.version, &journal.entry(&next)).await {
                Ok(()) => return Ok(next),
                Err(WebhookError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(WebhookServiceError::Conflict("endpoint_changed"))
    }

    /// Deletes an endpoint, its deliveries and their attempts.
    ///
    /// # Errors
    /// `NotFound` when there is none.
    pub async fn delete(&self, org_id: OrgId, id: EndpointId, journal: &JournalEntry) -> Result<(), WebhookServiceError> {
        Ok(self.store.delete_endpoint(org_id, id, journal).await?)
    }

    /// Rotates an endpoint's secret: a new one, made of `entropy`, becomes current; the old
    /// one keeps signing for 24 hours. The new secret is shown to the caller once.
    ///
    /// # Errors
    /// `NotFound`; `Entropy`; `Conflict` when the endpoint kept changing.
    pub async fn rotate_secret(
        &self,
        org_id: OrgId,
        id: EndpointId,
        entropy: &[u8],
        journal: &dyn Journal<RotatedSecret>,
    ) -> Result<RotatedSecret, WebhookServiceError> {
        let secret = WebhookSecret::from_entropy(entropy)?;
        for _ in 0..CAS_ATTEMPTS {
            let current = self.endpoint(org_id, id).await?;
            let rotated = RotatedSecret { endpoint: current.rotated(secret.clone(), self.clock.now()), secret: secret.clone() };
            match self.store.rotate_secret(&rotated.endpoint, current.version, &journal.entry(&rotated)).await {
                Ok(()) => return Ok(rotated),
                Err(WebhookError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(WebhookServiceError::Conflict("endpoint_changed"))
    }

    /// An endpoint's deliveries, newest first, each with its newest attempts.
    ///
    /// # Errors
    /// `NotFound` when the organization has no such endpoint.
    pub async fn deliveries(
        &self,
        org_id: OrgId,
        endpoint_id: EndpointId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, WebhookServiceError> {
        Ok(self.store.list_deliveries(org_id, endpoint_id, filter, page).await?)
    }

    /// Replays a finished delivery (succeeded or failed): back to pending, due now, on a
    /// fresh 24-hour schedule, under the same delivery id (so the same `webhook-id`).
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint or delivery; `EndpointDisabled`; `DeliveryPending`
    /// when it is still on its schedule.
    pub async fn replay(
        &self,
        org_id: OrgId,
        endpoint_id: EndpointId,
        delivery_id: DeliveryId,
        journal: &dyn Journal<Delivery>,
    ) -> Result<Delivery, WebhookServiceError> {
        if !self.endpoint(org_id, endpoint_id).await?.is_enabled() {
            return Err(WebhookServiceError::EndpointDisabled);
        }
        let delivery = self.store.get_delivery(org_id, endpoint_id, delivery_id).await?.ok_or(WebhookServiceError::NotFound)?;
        let replayed = delivery.replayed(self.clock.now()).map_err(|_| WebhookServiceError::DeliveryPending)?;
        match self.store.replay_delivery(&replayed, &journal.entry(&replayed)).await {
            Ok(()) => Ok(replayed),
            Err(WebhookError::Conflict(_)) => Err(WebhookServiceError::DeliveryPending),
            Err(e) => Err(e.into()),
        }
    }

    /// Queues a test event (`atlas.webhook.test`) for this endpoint alone, whatever its
    /// filters, due now. Its data names the endpoint; its version is the endpoint's.
    ///
    /// # Errors
    /// `NotFound`; `EndpointDisabled`.
    pub async fn send_test(
        &self,
        org_id: OrgId,
        endpoint_id: EndpointId,
        journal: &dyn Journal<TestQueued>,
    ) -> Result<TestQueued, WebhookServiceError> {
        let endpoint = self.endpoint(org_id, endpoint_id).await?;
        if !endpoint.is_enabled() {
            return Err(WebhookServiceError::EndpointDisabled);
        }
        let now = self.clock.now();
        let data = serde_json::json!({
            "endpoint_id": endpoint_id,
            "message": "This is a test event from Atlas: your endpoint receives and verifies webhooks.",
        });
        let event = Event::new(org_id, EventType::WEBHOOK_TEST, now, data, Some(endpoint_id.to_string()), endpoint.version);
        let delivery = NewDelivery {
            id: DeliveryId::generate(),
            org_id,
            endpoint_id,
            event_id: event.id,
            event_type: EventType::WEBHOOK_TEST,
            due_at: now,
        };
        let queued = TestQueued { delivery_id: delivery.id, event_id: event.id };
        self.store.enqueue_test(&event.pending(), &delivery, &journal.entry(&queued)).await?;
        Ok(queued)
    }
}

/// What delivering one claimed delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// The attempt, as recorded.
    pub attempt: Attempt,
    /// What happens to the delivery now.
    pub next: AfterAttempt,
    /// The endpoint this call disabled, and why (`Gone` on a 410, `FailingFor24h` after a day
    /// of failures).
    pub disabled: Option<DisabledReason>,
}

/// An attempt made and not yet recorded: what [`Dispatcher::send_attempt`] returns and
/// [`Dispatcher::record`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    /// The attempt and what follows it, as the queue records them.
    pub record: AttemptRecord,
    /// When the attempt ended, by the clock.
    ended: OffsetDateTime,
    /// Whether, once recorded, the attempt disables its endpoint.
    disables: Disables,
}

/// When a recorded attempt disables its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disables {
    /// A success: never.
    Never,
    /// A `410 Gone`: always.
    Gone,
    /// Any other failure: when the endpoint has failed for 24 hours in a row.
    AfterADayOfFailures,
}

/// A failed attempt before any answer: its error, and whether retrying could help.
struct Failure {
    error: AttemptError,
    permanent: bool,
}

impl Failure {
    fn permanent(code: &str, message: impl ToString) -> Self {
        Self { error: AttemptError::new(code, message.to_string()), permanent: true }
    }

    fn retryable(code: &str, message: impl ToString) -> Self {
        Self { error: AttemptError::new(code, message.to_string()), permanent: false }
    }
}

/// Delivers webhooks (one step at a time; the polling loop, its concurrency and its jitter
/// source belong to the runtime that drives it).
#[derive(Debug, Clone)]
pub struct Dispatcher {
    queue: Arc<dyn DeliveryQueue>,
    sender: Arc<dyn WebhookSender>,
    resolver: Arc<dyn Resolver>,
    clock: Arc<dyn Clock>,
    config: WebhookConfig,
}

impl Dispatcher {
    /// The dispatcher over these ports.
    pub fn new(
        queue: Arc<dyn DeliveryQueue>,
        sender: Arc<dyn WebhookSender>,
        resolver: Arc<dyn Resolver>,
        clock: Arc<dyn Clock>,
        config: WebhookConfig,
    ) -> Self {
        Self { queue, sender, resolver, clock, config }
    }

    /// Expands up to `limit` outbox events into deliveries.
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn fan_out(&self, limit: u32) -> Result<FanOutReport, WebhookServiceError> {
        Ok(self.queue.fan_out(self.clock.now(), limit).await?)
    }

    /// Claims up to `limit` due deliveries for this worker, under the configured lease, fairly
    /// (at most `endpoint_concurrency` in flight per endpoint; endpoints and organizations
    /// take turns).
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn claim(&self, limit: u32) -> Result<Vec<DeliveryItem>, WebhookServiceError> {
        Ok(self.queue.claim(self.clock.now(), limit, self.config.lease, self.config.endpoint_concurrency).await?)
    }

    /// How long until a pending delivery is (or becomes) claimable, by the clock (zero when
    /// one is due now); `None` when there is none (see `DeliveryQueue::next_due`).
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn next_due_in(&self) -> Result<Option<std::time::Duration>, WebhookServiceError> {
        let due = self.queue.next_due().await?;
        Ok(due.map(|at| (at - self.clock.now()).try_into().unwrap_or(std::time::Duration::ZERO)))
    }

    /// One attempt at a claimed delivery:
    /// 1. validates the stored URL and resolves its host (a literal address is used as is),
    ///    then checks the addresses with the SSRF guard: a refused address fails the delivery
    ///    at once (`address_refused`, permanent); a name that does not resolve is a retryable
    ///    failure (`dns`);
    /// 2. signs with every secret that signs now (both during a rotation), timestamped now;
    /// 3. sends to the checked addresses, within the timeout;
    /// 4. records the attempt with what follows, in one call: 2xx → succeed; 410 → give up
    ///    and disable the endpoint (`Gone`); any other answer or failure → retry at the
    ///    schedule's next time (the receiver's `Retry-After` honoured within its cap, `jitter`
    ///    in `[0, 1)` from the caller), or give up (`retries_exhausted`) when the schedule
    ///    says so;
    /// 5. disables the endpoint (`FailingFor24h`) when this failure makes 24 hours of
    ///    failures in a row.
    ///
    /// # Errors
    /// `Conflict` when the delivery changed under this worker (its lease lapsed and another
    /// worker claimed it: nothing was recorded); `Store` when the store fails.
    pub async fn deliver(&self, item: &DeliveryItem, jitter: f64) -> Result<DispatchReport, WebhookServiceError> {
        let attempted = self.send_attempt(item, jitter).await;
        let record = &attempted.record;
        let health = self.queue.record_attempt(record.endpoint_id, &record.attempt, &record.next).await?;
        self.conclude(attempted, health).await
    }

    /// Steps 1 to 3 of [`deliver`](Self::deliver): the attempt made, with what follows it,
    /// not yet recorded. [`record`](Self::record) records many such attempts together.
    pub async fn send_attempt(&self, item: &DeliveryItem, jitter: f64) -> Attempted {
        let started = self.clock.now();
        let result = self.attempt(item, started).await;
        let ended = self.clock.now();
        let latency_ms = u64::try_from((ended - started).whole_milliseconds()).unwrap_or(0);
        let (status_code, retry_after, response_excerpt, failure) = match result {
            Ok(Response { status, retry_after, body_excerpt }) => {
                let failure = match status {
                    200..=299 => None,
                    410 => Some(Failure::permanent("gone", "HTTP 410 Gone: the endpoint is disabled")),
                    _ => Some(Failure::retryable("http_status", format!("HTTP {status}"))),
                };
                (Some(status), retry_after, Some(body_excerpt), failure)
            }
            Err(failure) => (None, None, None, Some(failure)),
        };
        let next = match &failure {
            None => AfterAttempt::Succeed,
            Some(f) if f.permanent => AfterAttempt::GiveUp { error: f.error.clone() },
            Some(f) => match self.config.schedule.next_attempt(item.first_attempt_at, item.schedule_attempt, ended, retry_after, jitter) {
                Some(at) => AfterAttempt::Retry { at },
                None => AfterAttempt::GiveUp {
                    error: AttemptError::new(
                        "retries_exhausted",
                        format!("{} (gave up: no attempt left within 24 hours of the first)", f.error.message),
                    ),
                },
            },
        };
        let attempt = Attempt {
            id: AttemptId::generate(),
            delivery_id: item.id,
            number: item.attempt,
            at: started,
            latency_ms,
            outcome: if failure.is_none() { AttemptOutcome::Succeeded } else { AttemptOutcome::Failed },
            status_code,
            response_excerpt,
            error: failure.as_ref().map(|f| f.error.clone()),
        };
        let disables = match (&failure, status_code) {
            (Some(_), Some(410)) => Disables::Gone,
            (Some(_), _) => Disables::AfterADayOfFailures,
            (None, _) => Disables::Never,
        };
        Attempted { record: AttemptRecord { endpoint_id: item.endpoint_id, attempt, next }, ended, disables }
    }

    /// Steps 4 and 5 of [`deliver`](Self::deliver) for many attempts: records them together
    /// (`DeliveryQueue::record_attempts`), then disables the endpoints they condemn. One
    /// result per attempt, in order; each is what `deliver` would have returned.
    pub async fn record(&self, attempted: Vec<Attempted>) -> Vec<Result<DispatchReport, WebhookServiceError>> {
        let (records, outcomes): (Vec<AttemptRecord>, Vec<(OffsetDateTime, Disables)>) =
            attempted.into_iter().map(|a| (a.record, (a.ended, a.disables))).unzip();
        let healths = self.queue.record_attempts(&records).await;
        let mut reports = Vec::with_capacity(records.len());
        for ((record, (ended, disables)), health) in records.into_iter().zip(outcomes).zip(healths) {
            reports.push(match health {
                Ok(health) => self.conclude(Attempted { record, ended, disables }, health).await,
                Err(e) => Err(e.into()),
            });
        }
        reports
    }

    /// Step 5: disables the endpoint when the recorded attempt condemns it (a 410, or a
    /// failure that makes 24 hours of failures in a row).
    async fn conclude(&self, attempted: Attempted, health: EndpointHealth) -> Result<DispatchReport, WebhookServiceError> {
        let Attempted { record: AttemptRecord { endpoint_id, attempt, next }, ended, disables } = attempted;
        let reason = match disables {
            Disables::Gone => Some(DisabledReason::Gone),
            Disables::AfterADayOfFailures if failing_too_long(health.failing_since, ended) => Some(DisabledReason::FailingFor24h),
            _ => None,
        };
        let mut disabled = None;
        if let Some(reason) = reason {
            if self.queue.disable_endpoint(endpoint_id, reason, ended).await? {
                disabled = Some(reason);
            }
        }
        Ok(DispatchReport { attempt, next, disabled })
    }

    async fn attempt(&self, item: &DeliveryItem, now: OffsetDateTime) -> Result<Response, Failure> {
        let url = validate_url(&item.url).map_err(|e| Failure::permanent("invalid_url", e))?;
        let addresses: Vec<IpAddr> = match url.host() {
            Host::Ip(ip) => vec![*ip],
            Host::Domain(name) => self.resolver.resolve(name, url.port()).await.map_err(|e| Failure::retryable("dns", e))?,
        };
        check_addresses(&addresses, self.config.allow_private).map_err(|refusal| match refusal {
            Refusal::NoAddresses => Failure::retryable("dns", refusal),
            Refusal::Address { .. } => Failure::permanent("address_refused", refusal),
        })?;
        let secrets = item.secrets.signing_secrets(now);
        let headers =
            sign(&item.id.to_string(), &item.event_type, now, &item.payload, &secrets).map_err(|e| Failure::permanent("no_secret", e))?;
        self.sender.send(&url, &addresses, &headers.pairs(), &item.payload, self.config.timeout).await.map_err(|e| {
            let code = e.kind.code();
            if e.kind == SendErrorKind::Refused {
                Failure::permanent(code, e.message)
            } else {
                Failure::retryable(code, e.message)
            }
        })
    }
}

#[cfg(test)]
mod tests;
