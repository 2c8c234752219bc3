//! The webhook subscription routes: create (the secret shown once), list, get, patch, delete,
//! rotate the secret (the old one keeps signing for 24 hours), send a test event, list
//! deliveries with their attempts, and replay one. Scopes `atlas.events.write` /
//! `atlas.events.read`.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_kernel::PageRequest;
use atlas_webhooks::{
    CreateEndpoint, CreatedEndpoint, Delivery, DeliveryFilter, DeliveryId, DeliveryStatus, EndpointId, EventType, RotatedSecret,
    TestQueued, UpdateEndpoint, WebhookEndpoint, WebhookServiceError,
};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::Deserialize;
use serde_json::{json, Value};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateBody>) -> Response {
    let mutation = begin!(state, "webhooks.create", caller, headers, &body.raw);
    let b = body.value;
    let request = CreateEndpoint { url: b.url, events: b.events, description: b.description };
    let journal = |created: &CreatedEndpoint| {
        let data = json!(created);
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

#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

async fn list(State(state): State<AppState>, Caller(caller): Caller, QueryParams(q): QueryParams<PageQuery>) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let endpoints = state.webhooks.endpoints(caller.org_id, &page).await?;
    Ok(Envelope::ok(json!({"webhooks": endpoints.items, "next_cursor": endpoints.next_cursor})).into_response())
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let endpoint = state.webhooks.endpoint(caller.org_id, endpoint_id(&id)?).await?;
    Ok(Envelope::ok(endpoint).into_response())
}

/// `PATCH`: absent fields stay; `"description": null` clears it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<UpdateBody>,
) -> Response {
    let id = match endpoint_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "webhooks.update", caller, headers, &body.raw);
    let b = body.value;
    let request = UpdateEndpoint { url: b.url, description: b.description, events: b.events, enabled: b.enabled };
    let journal =
        |endpoint: &WebhookEndpoint| mutation.entry(None, None, StatusCode::OK, &json!(endpoint), Some(endpoint.id.to_string()), None);
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
    let entry = mutation.entry(None, None, StatusCode::OK, &json!({"id": id, "deleted": true}), Some(id.to_string()), None);
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
            &json!(rotated),
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
    let journal =
        |queued: &TestQueued| mutation.entry(None, None, StatusCode::ACCEPTED, &json!(queued), Some(queued.delivery_id.to_string()), None);
    match state.webhooks.send_test(caller.org_id, id, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

#[derive(Debug, Deserialize)]
struct DeliveriesQuery {
    limit: Option<u64>,
    cursor: Option<String>,
    status: Option<String>,
    event_type: Option<String>,
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
    Ok(Envelope::ok(json!({"deliveries": found.items, "next_cursor": found.next_cursor})).into_response())
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
    let journal =
        |replayed: &Delivery| mutation.entry(None, None, StatusCode::ACCEPTED, &json!(replayed), Some(replayed.id.to_string()), None);
    match state.webhooks.replay(caller.org_id, id, delivery, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}
