//! The webhook subscription routes: create (the secret shown once), list, get, patch, delete,
//! rotate the secret (the old one keeps signing for 24 hours), send a test event, list
//! deliveries with their attempts, and replay one. Scopes `atlas.events.write` /
//! `atlas.events.read`.

use crate::auth::Caller;
use crate::contract::Example;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, PageQuery, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_kernel::PageRequest;
use atlas_webhooks::{
    Attempt, AttemptOutcome, CreateEndpoint, CreatedEndpoint, Delivery, DeliveryFilter, DeliveryId, DeliveryStatus, EndpointId,
    EndpointState, EventType, RotatedSecret, TestQueued, UpdateEndpoint, WebhookEndpoint, WebhookServiceError,
};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

const SAMPLE_ID: &str = "whep_01936a3c8f2e7b4d9a1c5e6f7a8b9c11";
const SAMPLE_DELIVERY: &str = "dlv_01936a3c8f2e7b4d9a1c5e6f7a8b9c12";
const SAMPLE_EVENT: &str = "evt_01936a3c8f2e7b4d9a1c5e6f7a8b9c13";
const SAMPLE_TIME: &str = "2026-04-07T12:00:00Z";

/// A webhook endpoint (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// Event types and wildcards (`incident.*`) it receives.
    pub events: Vec<String>,
    pub enabled: bool,
    /// `by_user`, `gone` (the receiver answered 410) or `failing_for_24h`.
    pub disabled_reason: Option<String>,
    #[schema(format = DateTime)]
    pub disabled_at: Option<String>,
    /// Since when every attempt has failed.
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// 1 at creation, plus one per change.
    pub version: i64,
}

impl WebhookView {
    fn of(endpoint: &WebhookEndpoint) -> Self {
        let (reason, at) = match endpoint.state {
            EndpointState::Enabled => (None, None),
            EndpointState::Disabled { reason, at } => (Some(reason.as_str().to_owned()), Some(rfc3339(at))),
        };
        Self {
            id: endpoint.id.to_string(),
            url: endpoint.url.to_string(),
            description: endpoint.description.clone(),
            events: endpoint.filters.as_slice().iter().map(ToString::to_string).collect(),
            enabled: endpoint.is_enabled(),
            disabled_reason: reason,
            disabled_at: at,
            failing_since: endpoint.failing_since.map(rfc3339),
            created_at: rfc3339(endpoint.created_at),
            updated_at: rfc3339(endpoint.updated_at),
            version: endpoint.version,
        }
    }

    fn sample() -> Self {
        Self {
            id: SAMPLE_ID.into(),
            url: "https://hooks.example.com/atlas".into(),
            description: Some("CRM sync".into()),
            events: vec!["atlas.event.received".into(), "agent.message_delivery".into()],
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            failing_since: None,
            created_at: SAMPLE_TIME.into(),
            updated_at: SAMPLE_TIME.into(),
            version: 1,
        }
    }
}

impl Example for WebhookView {
    fn example() -> Value {
        json!(Self::sample())
    }
}

/// An endpoint with its signing secret, shown only in this answer (creation and rotation); a
/// replay of the answer carries `"secret": null` and `"secret_shown_once": true`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub endpoint: WebhookView,
    /// `whsec_…`: verify `webhook-signature` (Standard Webhooks) and `X-Atlas-Signature` with it.
    pub secret: Option<String>,
    /// After a rotation: until when the previous secret signs too.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, format = DateTime)]
    pub previous_secret_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub secret_shown_once: Option<bool>,
}

impl WebhookWithSecret {
    fn created(created: &CreatedEndpoint) -> Self {
        Self {
            endpoint: WebhookView::of(&created.endpoint),
            secret: Some(created.secret.expose()),
            previous_secret_expires_at: None,
            secret_shown_once: None,
        }
    }

    fn rotated(rotated: &RotatedSecret) -> Self {
        Self {
            endpoint: WebhookView::of(&rotated.endpoint),
            secret: Some(rotated.secret.expose()),
            previous_secret_expires_at: rotated.endpoint.secrets.previous.as_ref().map(|p| rfc3339(p.expires_at)),
            secret_shown_once: None,
        }
    }
}

impl Example for WebhookWithSecret {
    fn example() -> Value {
        json!(Self {
            endpoint: WebhookView::sample(),
            secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            previous_secret_expires_at: None,
            secret_shown_once: None,
        })
    }
}

/// `GET /v1/atlas/webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
    pub next_cursor: Option<String>,
}

impl Example for WebhookList {
    fn example() -> Value {
        json!(Self { webhooks: vec![WebhookView::sample()], next_cursor: None })
    }
}

/// A deleted endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedWebhook {
    pub id: String,
    pub deleted: bool,
}

impl Example for DeletedWebhook {
    fn example() -> Value {
        json!(Self { id: SAMPLE_ID.into(), deleted: true })
    }
}

/// A queued `atlas.webhook.test` delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueuedView {
    pub delivery_id: String,
    pub event_id: String,
}

impl Example for TestQueuedView {
    fn example() -> Value {
        json!(Self { delivery_id: SAMPLE_DELIVERY.into(), event_id: SAMPLE_EVENT.into() })
    }
}

/// An error code and message (an attempt's or a delivery's).
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptErrorView {
    pub code: String,
    pub message: String,
}

/// The start of the receiver's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExcerptView {
    pub text: String,
    /// Whether the answer was longer.
    pub truncated: bool,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub id: String,
    pub delivery_id: String,
    /// 1 for the first, counting on across replays.
    pub number: u32,
    #[schema(format = DateTime)]
    pub at: String,
    pub latency_ms: u64,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// The receiver's status code, when it answered.
    pub status_code: Option<u16>,
    pub response_excerpt: Option<ExcerptView>,
    pub error: Option<AttemptErrorView>,
}

impl AttemptView {
    fn of(a: &Attempt) -> Self {
        Self {
            id: a.id.to_string(),
            delivery_id: a.delivery_id.to_string(),
            number: a.number,
            at: rfc3339(a.at),
            latency_ms: a.latency_ms,
            outcome: match a.outcome {
                AttemptOutcome::Succeeded => "succeeded".into(),
                AttemptOutcome::Failed => "failed".into(),
            },
            status_code: a.status_code,
            response_excerpt: a.response_excerpt.as_ref().map(|e| ExcerptView { text: e.text().to_owned(), truncated: e.truncated() }),
            error: a.error.as_ref().map(|e| AttemptErrorView { code: e.code.clone(), message: e.message.clone() }),
        }
    }
}

/// One event bound for one endpoint, with its newest attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempt_count: u32,
    #[schema(format = DateTime)]
    pub first_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    pub last_error: Option<AttemptErrorView>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub attempts: Vec<AttemptView>,
}

impl DeliveryView {
    fn of(d: &Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            endpoint_id: d.endpoint_id.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type.as_str().to_owned(),
            status: d.status.as_str().to_owned(),
            attempt_count: d.attempt_count,
            first_attempt_at: d.first_attempt_at.map(rfc3339),
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            last_error: d.last_error.as_ref().map(|e| AttemptErrorView { code: e.code.clone(), message: e.message.clone() }),
            created_at: rfc3339(d.created_at),
            finished_at: d.finished_at.map(rfc3339),
            attempts: d.attempts.iter().map(AttemptView::of).collect(),
        }
    }

    fn sample() -> Self {
        Self {
            id: SAMPLE_DELIVERY.into(),
            endpoint_id: SAMPLE_ID.into(),
            event_id: SAMPLE_EVENT.into(),
            event_type: "atlas.event.received".into(),
            status: "succeeded".into(),
            attempt_count: 1,
            first_attempt_at: Some(SAMPLE_TIME.into()),
            next_attempt_at: None,
            last_error: None,
            created_at: SAMPLE_TIME.into(),
            finished_at: Some(SAMPLE_TIME.into()),
            attempts: vec![AttemptView {
                id: "dla_01936a3c8f2e7b4d9a1c5e6f7a8b9c14".into(),
                delivery_id: SAMPLE_DELIVERY.into(),
                number: 1,
                at: SAMPLE_TIME.into(),
                latency_ms: 42,
                outcome: "succeeded".into(),
                status_code: Some(200),
                response_excerpt: Some(ExcerptView { text: "ok".into(), truncated: false }),
                error: None,
            }],
        }
    }
}

impl Example for DeliveryView {
    fn example() -> Value {
        json!(Self::sample())
    }
}

/// `GET /v1/atlas/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

impl Example for DeliveryList {
    fn example() -> Value {
        json!(Self { deliveries: vec![DeliveryView::sample()], next_cursor: None })
    }
}

/// The handler of a webhook route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "webhooks.create" => on(filter, create),
        "webhooks.list" => on(filter, list),
        "webhooks.get" => on(filter, get),
        "webhooks.update" => on(filter, update),
        "webhooks.delete" => on(filter, delete),
        "webhooks.rotate_secret" => on(filter, rotate),
        "webhooks.test" => on(filter, test),
        "webhooks.deliveries" => on(filter, deliveries),
        "webhooks.replay" => on(filter, replay),
        _ => return None,
    })
}

impl From<WebhookServiceError> for ApiError {
    fn from(e: WebhookServiceError) -> Self {
        // The domain decides what is a committed outcome; anything else is retryable (and so
        // never stored for replay).
        let business = e.is_business_outcome();
        let mut err = ApiError::from_webhooks(e);
        err.retryable |= !business;
        err
    }
}

impl ApiError {
    fn from_webhooks(e: WebhookServiceError) -> Self {
        match e {
            WebhookServiceError::Invalid { field, message } => ApiError::field(field, message),
            WebhookServiceError::NotFound => ApiError::not_found("webhook"),
            WebhookServiceError::EndpointDisabled | WebhookServiceError::DeliveryPending => {
                ApiError::new(ErrorCode::Conflict, e.to_string())
            }
            WebhookServiceError::Conflict(_) => {
                let mut err = ApiError::new(ErrorCode::Conflict, "the endpoint changed meanwhile; retry").hint("retry the request");
                err.retry_after = Some(1);
                err
            }
            other => ApiError::internal(other),
        }
    }
}

fn endpoint_id(id: &str) -> Result<EndpointId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("webhook"))
}

macro_rules! begin {
    ($state:expr, $op:literal, $caller:expr, $headers:expr, $raw:expr) => {
        match Mutation::begin(&$state, spec($op), &$caller, &$headers, $raw).await {
            Ok(Started::Execute(m)) => m,
            Ok(Started::Answer(r)) => return r,
            Err(e) => return e.into_response(),
        }
    };
}

/// `POST /v1/atlas/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookBody {
    /// Where deliveries are `POST`ed (https; private addresses only when the operator allows).
    url: String,
    /// Event types or wildcards such as `incident.*` (1 to 32).
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}

impl Example for CreateWebhookBody {
    fn example() -> Value {
        json!({"url": "https://hooks.example.com/atlas", "events": ["atlas.event.received", "agent.message_delivery"], "description": "CRM sync"})
    }
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateWebhookBody>) -> Response {
    let mutation = begin!(state, "webhooks.create", caller, headers, &body.raw);
    let b = body.value;
    let request = CreateEndpoint { url: b.url, events: b.events, description: b.description };
    let journal = |created: &CreatedEndpoint| {
        let data = json!(WebhookWithSecret::created(created));
        let location = format!("/v1/atlas/webhooks/{}", created.endpoint.id);
        mutation.entry_showing_secret(
            None,
            None,
            StatusCode::CREATED,
            &data,
            Some("/secret"),
            Some(created.endpoint.id.to_string()),
            Some(location),
        )
    };
    match state.webhooks.create(caller.org_id, request, &crate::api::entropy::<32>(), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn list(State(state): State<AppState>, Caller(caller): Caller, QueryParams(q): QueryParams<PageQuery>) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let endpoints = state.webhooks.endpoints(caller.org_id, &page).await?;
    let webhooks = endpoints.items.iter().map(WebhookView::of).collect();
    Ok(Envelope::ok(WebhookList { webhooks, next_cursor: endpoints.next_cursor }).into_response())
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let endpoint = state.webhooks.endpoint(caller.org_id, endpoint_id(&id)?).await?;
    Ok(Envelope::ok(WebhookView::of(&endpoint)).into_response())
}

/// `PATCH /v1/atlas/webhooks/{id}`: absent fields stay; `"description": null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookBody {
    #[serde(default)]
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    #[serde(default)]
    events: Option<Vec<String>>,
    /// `false` stops deliveries; `true` starts them again (and forgets past failures).
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}

impl Example for UpdateWebhookBody {
    fn example() -> Value {
        json!({"events": ["atlas.*"], "enabled": true})
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<UpdateWebhookBody>,
) -> Response {
    let id = match endpoint_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "webhooks.update", caller, headers, &body.raw);
    let b = body.value;
    let request = UpdateEndpoint { url: b.url, description: b.description, events: b.events, enabled: b.enabled };
    let journal = |endpoint: &WebhookEndpoint| {
        mutation.entry(None, None, StatusCode::OK, &json!(WebhookView::of(endpoint)), Some(endpoint.id.to_string()), None)
    };
    match state.webhooks.update(caller.org_id, id, request, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn delete(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id = match endpoint_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let raw = json!({"id": id.to_string()});
    let mutation = begin!(state, "webhooks.delete", caller, headers, &raw);
    let entry = mutation.entry(
        None,
        None,
        StatusCode::OK,
        &json!(DeletedWebhook { id: id.to_string(), deleted: true }),
        Some(id.to_string()),
        None,
    );
    match state.webhooks.delete(caller.org_id, id, &entry).await {
        Ok(()) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn rotate(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id = match endpoint_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let raw = json!({"id": id.to_string()});
    let mutation = begin!(state, "webhooks.rotate_secret", caller, headers, &raw);
    let journal = |rotated: &RotatedSecret| {
        mutation.entry_showing_secret(
            None,
            None,
            StatusCode::OK,
            &json!(WebhookWithSecret::rotated(rotated)),
            Some("/secret"),
            Some(rotated.endpoint.id.to_string()),
            None,
        )
    };
    match state.webhooks.rotate_secret(caller.org_id, id, &crate::api::entropy::<32>(), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn test(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id = match endpoint_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let raw = json!({"id": id.to_string()});
    let mutation = begin!(state, "webhooks.test", caller, headers, &raw);
    let journal = |queued: &TestQueued| {
        let data = json!(TestQueuedView { delivery_id: queued.delivery_id.to_string(), event_id: queued.event_id.to_string() });
        mutation.entry(None, None, StatusCode::ACCEPTED, &data, Some(queued.delivery_id.to_string()), None)
    };
    match state.webhooks.send_test(caller.org_id, id, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `GET /v1/atlas/webhooks/{id}/deliveries` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only deliveries in this status.
    #[param(inline, value_type = Option<DeliveryStatusName>)]
    status: Option<String>,
    /// Only deliveries of this event type.
    event_type: Option<String>,
}

/// A delivery's status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // schema only: the filter is parsed by `DeliveryStatus::parse`
pub enum DeliveryStatusName {
    Pending,
    Succeeded,
    Failed,
}

async fn deliveries(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<DeliveriesQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let status = q
        .status
        .as_deref()
        .map(|s| DeliveryStatus::parse(s).ok_or_else(|| ApiError::field("status", "must be pending, succeeded or failed")))
        .transpose()?;
    let event_type =
        q.event_type.as_deref().map(|t| EventType::parse(t).map_err(|e| ApiError::field("event_type", e.to_string()))).transpose()?;
    let filter = DeliveryFilter { status, event_type };
    let found = state.webhooks.deliveries(caller.org_id, endpoint_id(&id)?, &filter, &page).await?;
    let deliveries = found.items.iter().map(DeliveryView::of).collect();
    Ok(Envelope::ok(DeliveryList { deliveries, next_cursor: found.next_cursor }).into_response())
}

async fn replay(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path((id, delivery)): Path<(String, String)>,
) -> Response {
    let (id, delivery) = match (endpoint_id(&id), delivery.parse::<DeliveryId>()) {
        (Ok(id), Ok(delivery)) => (id, delivery),
        _ => return ApiError::not_found("delivery").into_response(),
    };
    let raw: Value = json!({"id": id.to_string(), "delivery_id": delivery.to_string()});
    let mutation = begin!(state, "webhooks.replay", caller, headers, &raw);
    let journal = |replayed: &Delivery| {
        mutation.entry(None, None, StatusCode::ACCEPTED, &json!(DeliveryView::of(replayed)), Some(replayed.id.to_string()), None)
    };
    match state.webhooks.replay(caller.org_id, id, delivery, &journal).await {
        Ok(_) => {
            // The delivery is due again, and no insert announced it: wake this process's
            // delivery claims (a fan-out that makes nothing would not).
            state.wake.deliveries.notify_one();
            mutation.respond().await
        }
        Err(e) => mutation.fail(e.into()).await,
    }
}
