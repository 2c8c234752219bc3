//! The change routes: change requests (create with seed 002's body, list by status, get,
//! `PATCH {"status"}` through the state machine, scheduling checked against blackouts across the
//! CMDB blast radius), approvals, and blackout windows. Scopes `atlas.changes.write` /
//! `atlas.changes.read`. Webhook events `change.created`, `change.<status>`,
//! `change.approval.recorded` and `change.blackout.created` commit with their cause.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_cmdb::CiId;
use atlas_itsm::{
    Blackout, ChangeFilter, ChangeId, ChangeRequest, ChangeStatus, ChangeType, Decided, Decision, DecisionRefused, ItsmError, Moved,
    NewBlackout, NewChange, RiskLevel,
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

/// The handler of a change route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "changes.create" => on(filter, create),
        "changes.list" => on(filter, list),
        "changes.get" => on(filter, get),
        "changes.update" => on(filter, update),
        "changes.approve" => on(filter, approve),
        "blackouts.create" => on(filter, create_blackout),
        "blackouts.list" => on(filter, list_blackouts),
        _ => return None,
    })
}

impl From<ItsmError> for ApiError {
    fn from(e: ItsmError) -> Self {
        match e {
            ItsmError::Invalid { field, message } => ApiError::field(field, message),
            ItsmError::NotFound(what) => ApiError::not_found(what),
            ItsmError::InvalidTransition { from, to, ref allowed } => {
                let mut err = ApiError::new(ErrorCode::InvalidTransition, format!("cannot move from {from} to {to}"))
                    .detail("from", json!(from))
                    .detail("to", json!(to))
                    .detail("allowed", json!(allowed));
                if from == "submitted" {
                    err =
                        err.hint("a submitted change is approved or rejected by its approvals: POST /v1/atlas/itsm/changes/{id}/approvals");
                }
                err
            }
            ItsmError::ChangeConflict(violations) => ApiError::new(
                ErrorCode::ChangeConflict,
                format!("the change's window meets {} blackout(s) in its blast radius", violations.len()),
            )
            .hint("move the requested window, or change the blackout")
            .detail("violations", json!(violations)),
            ItsmError::DecisionRefused(refused) => {
                let err = ApiError::new(ErrorCode::Conflict, e.to_string());
                match refused {
                    DecisionRefused::NotSubmitted(status) => err.detail("status", json!(status.as_str())),
                    DecisionRefused::AlreadyDecided => err.detail("reason", json!("already_decided")),
                }
            }
            ItsmError::Busy => {
                let mut err = ApiError::new(ErrorCode::Conflict, e.to_string()).hint("retry the request");
                err.retry_after = Some(1);
                err
            }
            ItsmError::Store(s) => ApiError::internal(s),
        }
    }
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

/// An event of the `change` family, as the journal carries it into the outbox.
fn change_event(org_id: OrgId, name: &str, at: OffsetDateTime, data: serde_json::Value, resource: String, version: i64) -> OutboxEvent {
    let event_type = EventType::open(Family::Change, name).expect("change event names are well formed");
    Event::new(org_id, event_type, at, data, Some(resource), version).outbox()
}

fn change_id(text: &str) -> Result<ChangeId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("change"))
}

/// `POST /v1/atlas/itsm/changes` (seed 002's body, with the items changed in `ci_ids`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChangeBody {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `standard` (pre-approved), `normal` or `emergency`.
    #[serde(rename = "type", alias = "change_type")]
    #[schema(value_type = String)]
    pub change_type: ChangeType,
    /// `low`, `medium` (default), `high` or `critical`.
    #[serde(default, alias = "risk", alias = "riskLevel")]
    #[schema(value_type = Option<String>)]
    pub risk_level: Option<RiskLevel>,
    #[serde(default, with = "time::serde::rfc3339::option", alias = "requestedStart")]
    pub requested_start: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", alias = "requestedEnd")]
    pub requested_end: Option<OffsetDateTime>,
    #[serde(default, alias = "implementationPlan")]
    pub implementation_plan: Option<String>,
    #[serde(default, alias = "rollbackPlan")]
    pub rollback_plan: Option<String>,
    #[serde(default, alias = "requestedBy")]
    pub requested_by: Option<String>,
    /// The configuration items the change touches.
    #[serde(default, alias = "ciIds")]
    #[schema(value_type = Vec<String>)]
    pub ci_ids: Vec<CiId>,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateChangeBody>) -> Response {
    let mutation = begin!(state, "changes.create", caller, headers, &body.raw);
    let b = body.value;
    let new = NewChange {
        title: b.title,
        description: b.description,
        change_type: b.change_type,
        risk_level: b.risk_level.unwrap_or_default(),
        requested_start: b.requested_start,
        requested_end: b.requested_end,
        implementation_plan: b.implementation_plan,
        rollback_plan: b.rollback_plan,
        requested_by: b.requested_by,
        ci_ids: b.ci_ids,
    };
    let org_id = caller.org_id;
    let journal = |change: &ChangeRequest| {
        let data = json!(change);
        let location = format!("/v1/atlas/itsm/changes/{}", change.id);
        let mut entry = mutation.entry(None, None, StatusCode::CREATED, &data, Some(change.id.to_string()), Some(location));
        entry.events.push(change_event(org_id, "created", change.created_at, data, change.id.to_string(), change.version));
        entry
    };
    match state.changes.create(org_id, new, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `GET /v1/atlas/itsm/changes` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    #[param(value_type = Option<String>)]
    pub status: Option<ChangeStatus>,
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// A page of changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesPage {
    pub changes: Vec<ChangeRequest>,
    pub next_cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<ChangesQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.changes.list(caller.org_id, &ChangeFilter { status: q.status }, &page).await?;
    Ok(Envelope::ok(ChangesPage { changes: found.items, next_cursor: found.next_cursor }).into_response())
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Envelope::ok(state.changes.get(caller.org_id, change_id(&id)?).await?).into_response())
}

/// `PATCH /v1/atlas/itsm/changes/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChangeBody {
    /// The state to move to.
    #[schema(value_type = String)]
    pub status: ChangeStatus,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<UpdateChangeBody>,
) -> Response {
    let id = match change_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "changes.update", caller, headers, &body.raw);
    let org_id = caller.org_id;
    let journal = |moved: &Moved| {
        let change = &moved.change;
        let data = json!(change);
        let mut entry = mutation.entry(None, None, StatusCode::OK, &data, Some(change.id.to_string()), None);
        let event_data = json!({"change": change, "from": moved.from});
        entry.events.push(change_event(
            org_id,
            change.status.as_str(),
            change.updated_at,
            event_data,
            change.id.to_string(),
            change.version,
        ));
        entry
    };
    match state.changes.transition(org_id, id, body.value.status, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `POST /v1/atlas/itsm/changes/{id}/approvals`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalBody {
    /// `approve` or `reject`.
    #[schema(value_type = String)]
    pub decision: Decision,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

/// A recorded decision and the change after it.
#[derive(Debug, Serialize)]
pub struct DecisionAnswer<'a> {
    pub approval: &'a atlas_itsm::Approval,
    pub change: &'a ChangeRequest,
}

async fn approve(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<ApprovalBody>,
) -> Response {
    let id = match change_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "changes.approve", caller, headers, &body.raw);
    let org_id = caller.org_id;
    let journal = |decided: &Decided| {
        let change = &decided.change;
        let data = json!(DecisionAnswer { approval: &decided.approval, change });
        let mut entry = mutation.entry(None, None, StatusCode::CREATED, &data, Some(decided.approval.id.to_string()), None);
        entry.events.push(change_event(org_id, "approval.recorded", change.updated_at, data, change.id.to_string(), change.version));
        if matches!(change.status, ChangeStatus::Approved | ChangeStatus::Rejected) {
            let moved = json!({"change": change, "from": "submitted"});
            entry.events.push(change_event(
                org_id,
                change.status.as_str(),
                change.updated_at,
                moved,
                change.id.to_string(),
                change.version,
            ));
        }
        entry
    };
    let b = body.value;
    let approver = caller.actor.to_string();
    match state.changes.decide(org_id, id, &approver, b.decision, b.comment, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `POST /v1/atlas/itsm/blackouts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBlackoutBody {
    #[serde(alias = "ciIds")]
    #[schema(value_type = Vec<String>)]
    pub ci_ids: Vec<CiId>,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    pub reason: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

async fn create_blackout(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: JsonBody<CreateBlackoutBody>,
) -> Response {
    let mutation = begin!(state, "blackouts.create", caller, headers, &body.raw);
    let b = body.value;
    let org_id = caller.org_id;
    let journal = |blackout: &Blackout| {
        let data = json!(blackout);
        let mut entry = mutation.entry(None, None, StatusCode::CREATED, &data, Some(blackout.id.to_string()), None);
        entry.events.push(change_event(org_id, "blackout.created", blackout.created_at, data, blackout.id.to_string(), 1));
        entry
    };
    let new = NewBlackout { ci_ids: b.ci_ids, start: b.start, end: b.end, reason: b.reason };
    match state.changes.create_blackout(org_id, new, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// `GET /v1/atlas/itsm/blackouts` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BlackoutsQuery {
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// A page of blackouts.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlackoutsPage {
    pub blackouts: Vec<Blackout>,
    pub next_cursor: Option<String>,
}

async fn list_blackouts(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<BlackoutsQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.changes.blackouts(caller.org_id, &page).await?;
    Ok(Envelope::ok(BlackoutsPage { blackouts: found.items, next_cursor: found.next_cursor }).into_response())
}
