//! The service catalog and service request routes: catalog items (`{"name", "description"?,
//! "requires_approval"}`), requests from the catalog (`pending_approval`, or `approved` at once
//! for an item that needs no approval), and `PATCH {"status"}` to approve, reject or fulfil.
//! Scopes `atlas.requests.write` / `atlas.requests.read`. Webhook events `request.created` and
//! `request.<status>` commit with their cause.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_itsm::{
    Advanced, CatalogItem, CatalogItemId, NewCatalogItem, NewServiceRequest, RequestFilter, RequestStatus, ServiceRequest, ServiceRequestId,
};
use atlas_kernel::{OrgId, PageRequest};
use atlas_runs::OutboxEvent;
use atlas_webhooks::{Event, EventType, Family};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa::ToSchema;

/// The handler of a catalog or service request route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "catalog.create" => on(filter, create_item),
        "catalog.list" => on(filter, list_items),
        "requests.create" => on(filter, create),
        "requests.list" => on(filter, list),
        "requests.get" => on(filter, get),
        "requests.update" => on(filter, update),
        _ => return None,
    })
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

fn request_event(org_id: OrgId, name: &str, at: OffsetDateTime, data: serde_json::Value, resource: String, version: i64) -> OutboxEvent {
    let event_type = EventType::open(Family::Request, name).expect("request event names are well formed");
    Event::new(org_id, event_type, at, data, Some(resource), version).outbox()
}

/// `POST /v1/atlas/itsm/catalog`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCatalogItemBody {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(alias = "requiresApproval")]
    pub requires_approval: bool,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

async fn create_item(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<CreateCatalogItemBody>,
) -> Response {
    let mutation = begin!(state, "catalog.create", caller, headers, &body.raw);
    let b = body.value;
    let new = NewCatalogItem { name: b.name, description: b.description, requires_approval: b.requires_approval };
    let journal = |item: &CatalogItem| mutation.entry(None, None, StatusCode::CREATED, &json!(item), Some(item.id.to_string()), None);
    match state.service_desk.create_item(caller.org_id, new, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// A page query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// A page of the catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogPage {
    pub items: Vec<CatalogItem>,
    pub next_cursor: Option<String>,
}

async fn list_items(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<CatalogQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.service_desk.catalog(caller.org_id, &page).await?;
    Ok(Envelope::ok(CatalogPage { items: found.items, next_cursor: found.next_cursor }).into_response())
}

/// `POST /v1/atlas/itsm/requests` (seed 002's body).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequestBody {
    #[serde(alias = "catalogItemId")]
    #[schema(value_type = String)]
    pub catalog_item_id: CatalogItemId,
    #[serde(alias = "requestedBy")]
    pub requested_by: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateRequestBody>) -> Response {
    let mutation = begin!(state, "requests.create", caller, headers, &body.raw);
    let b = body.value;
    let org_id = caller.org_id;
    let journal = |request: &ServiceRequest| {
        let data = json!(request);
        let location = format!("/v1/atlas/itsm/requests/{}", request.id);
        let mut entry = mutation.entry(None, None, StatusCode::CREATED, &data, Some(request.id.to_string()), Some(location));
        entry.events.push(request_event(org_id, "created", request.created_at, data, request.id.to_string(), request.version));
        entry
    };
    let new = NewServiceRequest { catalog_item_id: b.catalog_item_id, requested_by: b.requested_by };
    match state.service_desk.request(org_id, new, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `GET /v1/atlas/itsm/requests` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    #[param(value_type = Option<String>)]
    pub status: Option<RequestStatus>,
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// A page of service requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestsPage {
    pub requests: Vec<ServiceRequest>,
    pub next_cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<RequestsQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.service_desk.list(caller.org_id, &RequestFilter { status: q.status }, &page).await?;
    Ok(Envelope::ok(RequestsPage { requests: found.items, next_cursor: found.next_cursor }).into_response())
}

fn request_id(text: &str) -> Result<ServiceRequestId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("service request"))
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Envelope::ok(state.service_desk.get(caller.org_id, request_id(&id)?).await?).into_response())
}

/// `PATCH /v1/atlas/itsm/requests/{id}`: decide (`approved`, `rejected`) or fulfil.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequestBody {
    #[schema(value_type = String)]
    pub status: RequestStatus,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<UpdateRequestBody>,
) -> Response {
    let id = match request_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "requests.update", caller, headers, &body.raw);
    let org_id = caller.org_id;
    let journal = |advanced: &Advanced| {
        let request = &advanced.request;
        let data = json!(request);
        let mut entry = mutation.entry(None, None, StatusCode::OK, &data, Some(request.id.to_string()), None);
        let event = json!({"request": request, "from": advanced.from});
        entry.events.push(request_event(
            org_id,
            request.status.as_str(),
            request.updated_at,
            event,
            request.id.to_string(),
            request.version,
        ));
        entry
    };
    let b = body.value;
    let actor = caller.actor.to_string();
    match state.service_desk.advance(org_id, id, b.status, &actor, b.comment, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}
