//! Webhooks, for every product area: event types and subscription filters, the payload and
//! the outbox row an event becomes ([`PendingEvent`], committed with its cause in the journal
//! entry's `events`), Standard Webhooks and `X-Atlas-Signature` signing and verification
//! ([`signing`]), the retry schedule ([`schedule`]), endpoints with secret rotation, deliveries
//! and attempts, the SSRF guard ([`ssrf`]), the ports (`WebhookStore`, `DeliveryQueue`,
//! `WebhookSender`, `Resolver`) and the use cases over them (`Webhooks`, `Dispatcher`).
//! Pure: no runtime, database, DNS or HTTP client.

mod delivery;
mod endpoint;
mod event;
mod ports;
pub mod schedule;
mod service;
pub mod signing;
pub mod ssrf;

pub use delivery::{
    Attempt, AttemptError, AttemptId, AttemptOutcome, Delivery, DeliveryId, DeliveryStatus, ResponseExcerpt, StillPending,
    MAX_EXCERPT_BYTES, MAX_LISTED_ATTEMPTS,
};
pub use endpoint::{
    failing_too_long, DisabledReason, EndpointId, EndpointPatch, EndpointState, RetiringSecret, SecretRotation, WebhookEndpoint,
    FAILING_LIMIT, MAX_DESCRIPTION_CHARS, SECRET_OVERLAP,
};
pub use event::{
    Event, EventFilter, EventFilters, EventId, EventType, EventTypeError, Family, PendingEvent, MAX_EVENT_TYPE_LEN, MAX_FILTERS,
    MAX_SEGMENT_LEN,
};
pub use ports::{
    AfterAttempt, AttemptRecord, DeliveryFilter, DeliveryItem, DeliveryQueue, EndpointHealth, FanOutReport, Journal, NewDelivery,
    ResolveError, Resolver, Response, SendError, SendErrorKind, WebhookError, WebhookSender, WebhookStore,
};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockDeliveryQueue, MockResolver, MockWebhookSender, MockWebhookStore};
pub use schedule::{next_attempt, RetrySchedule};
pub use service::{
    Attempted, CreateEndpoint, CreatedEndpoint, DispatchReport, Dispatcher, RotatedSecret, TestQueued, UpdateEndpoint, WebhookConfig,
    WebhookServiceError, Webhooks,
};
pub use signing::{verify, verify_atlas_signature, SecretError, StandardHeaders, VerifyError, WebhookSecret};
pub use ssrf::{check_addresses, validate_url, Host, Refusal, RefusalReason, Scheme, TargetUrl, UrlError};
