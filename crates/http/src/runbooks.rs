//! The runbook routes: create, list, get, replace (`PUT`, the version grows), execute (a dry
//! run answers the plan and its `plan_hash` and performs nothing; a real run is queued for the
//! worker, and refused with 409 PLAN_STALE when the given `plan_hash` is no longer the plan's),
//! and executions with their steps as run. Scopes `atlas.runbooks.read`,
//! `atlas.runbooks.write`, `atlas.runbooks.execute`.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams};
use crate::incidents::begin;
use crate::mutation::{Mutation, Started};
use crate::operations_contract::ExecuteAnswer;
use crate::routes::spec;
use crate::state::AppState;
use atlas_incidents::IncidentKey;
use atlas_kernel::PageRequest;
use atlas_runbooks::{Execution, ExecutionId, Parameter, Plan, RunInputs, Runbook, RunbookDraft, RunbookError, RunbookId, StepDef};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use utoipa::IntoParams;
use utoipa::ToSchema;

/// The handler of a runbook route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "runbooks.create" => on(filter, create),
        "runbooks.list" => on(filter, list),
        "runbooks.get" => on(filter, get),
        "runbooks.replace" => on(filter, replace),
        "runbooks.execute" => on(filter, execute),
        "runbooks.executions" => on(filter, executions),
        "runbooks.execution" => on(filter, execution),
        _ => return None,
    })
}

impl From<RunbookError> for ApiError {
    fn from(e: RunbookError) -> Self {
        match e {
            RunbookError::Invalid { field, message } => ApiError::field(&field, message),
            RunbookError::NotFound => ApiError::not_found("runbook"),
            RunbookError::PlanStale { ref expected, ref actual } => ApiError::new(ErrorCode::PlanStale, e.to_string())
                .hint("dry-run again, review the new plan, and run with its plan_hash")
                .detail("expected_plan_hash", json!(expected))
                .detail("current_plan_hash", json!(actual)),
            RunbookError::Store(s) => ApiError::internal(s),
        }
    }
}

fn runbook_id(text: &str) -> Result<RunbookId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("runbook"))
}

/// `POST /v1/atlas/runbooks` and `PUT /v1/atlas/runbooks/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookBody {
    #[schema(example = "Scale the connection pool")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    pub steps: Vec<StepDef>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)] // read from the raw body by `Mutation::begin`
    pub idempotency_key: Option<String>,
}

impl RunbookBody {
    fn draft(self) -> RunbookDraft {
        RunbookDraft { name: self.name, description: self.description, parameters: self.parameters, steps: self.steps }
    }
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<RunbookBody>) -> Response {
    let mutation = begin!(state, "runbooks.create", caller, headers, &body.raw);
    let journal = |r: &Runbook| {
        mutation.entry(None, None, StatusCode::CREATED, &json!(r), Some(r.id.to_string()), Some(format!("/v1/atlas/runbooks/{}", r.id)))
    };
    match state.runbooks.create(caller.org_id, body.value.draft(), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn replace(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<RunbookBody>,
) -> Response {
    let id = match runbook_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "runbooks.replace", caller, headers, &body.raw);
    let journal = |r: &Runbook| mutation.entry(None, None, StatusCode::OK, &json!(r), Some(r.id.to_string()), None);
    match state.runbooks.replace(caller.org_id, id, body.value.draft(), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

/// Runbooks, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunbookList {
    pub runbooks: Vec<Runbook>,
    pub next_cursor: Option<String>,
}

async fn list(State(state): State<AppState>, Caller(caller): Caller, QueryParams(q): QueryParams<PageQuery>) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.runbooks.list(caller.org_id, &page).await?;
    Ok(Envelope::ok(RunbookList { runbooks: found.items, next_cursor: found.next_cursor }).into_response())
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Envelope::ok(state.runbooks.get(caller.org_id, runbook_id(&id)?).await?).into_response())
}

/// `POST /v1/atlas/runbooks/{id}/execute` (seed 002's body, plus `plan_hash` and `parameters`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// The incident (id or reference) whose fields fill `{{incident.*}}`.
    #[serde(default, alias = "incidentId")]
    #[schema(example = "INC-00000001")]
    pub incident_id: Option<String>,
    /// `true`: answer the plan and perform nothing.
    #[serde(default, alias = "dryRun")]
    pub dry_run: bool,
    /// A real run only proceeds if the current plan has this hash.
    #[serde(default, alias = "planHash")]
    pub plan_hash: Option<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)] // read from the raw body by `Mutation::begin`
    pub idempotency_key: Option<String>,
}

/// A dry run's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunAnswer {
    pub dry_run: bool,
    #[serde(flatten)]
    pub plan: Plan,
}

async fn incident_fields(
    state: &AppState,
    org_id: atlas_kernel::OrgId,
    id: Option<&str>,
) -> Result<(Option<String>, BTreeMap<String, String>), ApiError> {
    let Some(text) = id else { return Ok((None, BTreeMap::new())) };
    let key: IncidentKey = text.parse().map_err(|_| ApiError::field("incident_id", "not an incident id or reference"))?;
    let incident = state.incidents.get(org_id, key).await.map_err(|e| match e {
        atlas_incidents::IncidentError::NotFound => ApiError::not_found("incident"),
        other => other.into(),
    })?;
    let fields = BTreeMap::from([
        ("id".to_owned(), incident.id.to_string()),
        ("reference".to_owned(), incident.reference.to_string()),
        ("title".to_owned(), incident.title.clone()),
        ("severity".to_owned(), incident.severity.to_string()),
        ("status".to_owned(), incident.status.to_string()),
        ("source".to_owned(), incident.source.clone().unwrap_or_default()),
    ]);
    Ok((Some(incident.id.to_string()), fields))
}

async fn execute(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<ExecuteBody>,
) -> Response {
    let id = match runbook_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mut mutation = begin!(state, "runbooks.execute", caller, headers, &body.raw);
    let b = body.value;
    let (incident_id, incident) = match incident_fields(&state, caller.org_id, b.incident_id.as_deref()).await {
        Ok(found) => found,
        Err(e) => return mutation.fail(e).await,
    };
    if b.dry_run {
        mutation.set_operation("runbooks.dry_run");
        let planned = match state
            .runbooks
            .dry_run(caller.org_id, id, &RunInputs { incident_id, incident: &incident, parameters: &b.parameters, plan_hash: None })
            .await
        {
            Ok(p) => p,
            Err(e) => return mutation.fail(e.into()).await,
        };
        let entry = mutation.entry(
            None,
            None,
            StatusCode::OK,
            &json!(ExecuteAnswer::DryRun(DryRunAnswer { dry_run: true, plan: planned })),
            Some(id.to_string()),
            None,
        );
        if let Err(e) = state.runs.record(&entry).await {
            return mutation.fail(e.into()).await;
        }
        return mutation.respond().await;
    }
    let journal = |e: &Execution| {
        mutation.entry(None, None, StatusCode::ACCEPTED, &json!(ExecuteAnswer::Queued(e.clone())), Some(e.id.to_string()), None)
    };
    let result = state
        .runbooks
        .execute(
            caller.org_id,
            id,
            &RunInputs { incident_id, incident: &incident, parameters: &b.parameters, plan_hash: b.plan_hash.as_deref() },
            &journal,
        )
        .await;
    match result {
        Ok(_) => {
            state.wake.runbooks.notify_one();
            mutation.respond().await
        }
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// A runbook's executions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionList {
    pub executions: Vec<Execution>,
    pub next_cursor: Option<String>,
}

async fn executions(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.runbooks.executions(caller.org_id, runbook_id(&id)?, &page).await?;
    Ok(Envelope::ok(ExecutionList { executions: found.items, next_cursor: found.next_cursor }).into_response())
}

async fn execution(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, execution_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let runbook = runbook_id(&id)?;
    let execution_id: ExecutionId = execution_id.parse().map_err(|_| ApiError::not_found("execution"))?;
    let found = state.runbooks.execution(caller.org_id, execution_id).await.map_err(|e| match e {
        RunbookError::NotFound => ApiError::not_found("execution"),
        other => other.into(),
    })?;
    if found.runbook_id != runbook {
        return Err(ApiError::not_found("execution"));
    }
    Ok(Envelope::ok(found).into_response())
}
