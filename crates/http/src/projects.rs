//! The project routes: create (key unique per organization), list, get by id or key (with an
//! `ETag`), patch (`If-Match`), delete (soft, with its tasks), the nested task create and list
//! (seed 004's `POST /projects/:id/tasks`), and the graph: order, ready tasks and critical
//! paths. Scopes `atlas.projects.read|write` (tasks under a project: `atlas.tasks.read|write`).

use crate::auth::Caller;
use crate::contract::Example;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use crate::tasks::{begin, create_task, filter, list_tasks, new_task, with_etag, CreateTaskBody, TaskQuery, SAMPLE_PROJECT, SAMPLE_TIME};
use atlas_kernel::PageRequest;
use atlas_tasks::{parse_if_match, Chain, NewProject, Project, ProjectDeleted, ProjectPatch, ProjectRef};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// The handler of a project route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "projects.create" => on(filter, create),
        "projects.list" => on(filter, list),
        "projects.get" => on(filter, get),
        "projects.update" => on(filter, update),
        "projects.delete" => on(filter, delete),
        "projects.tasks.create" => on(filter, create_in_project),
        "projects.tasks.list" => on(filter, tasks_of_project),
        "projects.graph" => on(filter, graph),
        _ => return None,
    })
}

/// A project as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectResponse {
    pub id: String,
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Project> for ProjectResponse {
    fn from(p: &Project) -> Self {
        Self {
            id: p.id.to_string(),
            key: p.key.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            version: p.version,
            created_at: p.created_at.format(&Rfc3339).unwrap_or_default(),
            updated_at: p.updated_at.format(&Rfc3339).unwrap_or_default(),
        }
    }
}

/// A page of projects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectResponse>,
    pub next_cursor: Option<String>,
}

/// A chain of tasks, each depending on the one before.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainResponse {
    pub task_ids: Vec<String>,
    pub length: usize,
    /// The earliest due date on the chain (RFC 3339).
    pub earliest_due_on: Option<String>,
}

impl From<&Chain> for ChainResponse {
    fn from(c: &Chain) -> Self {
        Self {
            task_ids: c.tasks.iter().map(ToString::to_string).collect(),
            length: c.tasks.len(),
            earliest_due_on: c.earliest_due.and_then(|d| d.format(&Rfc3339).ok()),
        }
    }
}

/// `GET /v1/atlas/projects/{id}/graph`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GraphResponse {
    pub project_id: String,
    /// Every live task of the project, dependencies before their dependents.
    pub order: Vec<String>,
    /// Unfinished tasks whose dependencies are all finished (`done` or `cancelled`), in order.
    pub ready: Vec<String>,
    /// The longest chain of unfinished tasks (ties: the chain due earliest).
    pub critical_path: ChainResponse,
    /// The longest chain of unfinished tasks ending at the unfinished task due first.
    pub critical_path_by_due: ChainResponse,
}

/// `POST /v1/atlas/projects`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectBody {
    /// Unique among the organization's live projects: a letter, then letters, digits, `-`, `_`.
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

/// `PATCH /v1/atlas/projects/{id}`: absent fields stay; `"description": null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectBody {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

/// A deleted project (soft, with its tasks).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedProject {
    pub id: String,
    pub deleted: bool,
    /// The version the deletion wrote.
    pub version: i64,
}

fn project_value(p: &Project) -> Value {
    serde_json::to_value(ProjectResponse::from(p)).unwrap_or(Value::Null)
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateProjectBody>) -> Response {
    let mutation = begin!(state, "projects.create", caller, headers, &body.raw);
    let b = body.value;
    let new = NewProject { key: b.key, name: b.name, description: b.description };
    let journal = |p: &Project| {
        mutation.entry(
            None,
            None,
            StatusCode::CREATED,
            &project_value(p),
            Some(p.id.to_string()),
            Some(format!("/v1/atlas/projects/{}", p.id)),
        )
    };
    match state.work.create_project(caller.org_id, new, &journal).await {
        Ok(p) => with_etag(mutation.respond().await, p.version),
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn list(State(state): State<AppState>, Caller(caller): Caller, QueryParams(q): QueryParams<PageQuery>) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.work.projects(caller.org_id, &page).await?;
    Ok(Envelope::ok(ProjectList { projects: found.items.iter().map(ProjectResponse::from).collect(), next_cursor: found.next_cursor })
        .into_response())
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let project = state.work.project(caller.org_id, &ProjectRef::parse(&id)).await?;
    Ok(with_etag(Envelope::ok(ProjectResponse::from(&project)).into_response(), project.version))
}

async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<UpdateProjectBody>,
) -> Response {
    let expected = match headers.get("if-match").map(|v| v.to_str().map_err(|_| ApiError::field("If-Match", "must be printable ASCII"))) {
        None => None,
        Some(Ok(text)) => match parse_if_match(text) {
            Ok(v) => Some(v),
            Err(e) => return ApiError::from(e).into_response(),
        },
        Some(Err(e)) => return e.into_response(),
    };
    let mutation = begin!(state, "projects.update", caller, headers, &body.raw);
    let b = body.value;
    let patch = ProjectPatch { key: b.key, name: b.name, description: b.description };
    let journal = |p: &Project| mutation.entry(None, None, StatusCode::OK, &project_value(p), Some(p.id.to_string()), None);
    match state.work.update_project(caller.org_id, &ProjectRef::parse(&id), patch, expected, &journal).await {
        Ok(p) => with_etag(mutation.respond().await, p.version),
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn delete(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let raw = json!({"id": id});
    let mutation = begin!(state, "projects.delete", caller, headers, &raw);
    let journal = |d: &ProjectDeleted| {
        let p = &d.project;
        mutation.entry(
            None,
            None,
            StatusCode::OK,
            &serde_json::to_value(DeletedProject { id: p.id.to_string(), deleted: true, version: p.version }).unwrap_or(Value::Null),
            Some(p.id.to_string()),
            None,
        )
    };
    match state.work.delete_project(caller.org_id, &ProjectRef::parse(&id), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn create_in_project(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<CreateTaskBody>,
) -> Response {
    let path_project = ProjectRef::parse(&id);
    let mutation = begin!(state, "projects.tasks.create", caller, headers, &body.raw);
    if let Some(named) = &body.value.project_id {
        if ProjectRef::parse(named) != path_project {
            return mutation.fail(ApiError::field("project_id", "differs from the project in the path; send one")).await;
        }
    }
    match new_task(path_project, body.value) {
        Ok(new) => create_task(&state, &caller, mutation, new).await,
        Err(e) => mutation.fail(e).await,
    }
}

async fn tasks_of_project(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<TaskQuery>,
) -> Result<Response, ApiError> {
    let project = state.work.project(caller.org_id, &ProjectRef::parse(&id)).await?;
    let mut f = filter(&q)?;
    f.project_id = Some(project.id);
    list_tasks(&state, &caller, f, &q).await
}

async fn graph(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (project, analysis) = state.work.graph(caller.org_id, &ProjectRef::parse(&id)).await?;
    let ids = |v: &[atlas_tasks::TaskId]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    Ok(Envelope::ok(GraphResponse {
        project_id: project.id.to_string(),
        order: ids(&analysis.order),
        ready: ids(&analysis.ready),
        critical_path: ChainResponse::from(&analysis.critical_path),
        critical_path_by_due: ChainResponse::from(&analysis.critical_path_by_due),
    })
    .into_response())
}

// ---- examples (seed 004's `POST /api/projects`) --------------------------------------------

const SAMPLE_TASKS: [&str; 3] =
    ["task_01936a3c8f2e7b4d9a1c5e6f7a8b9c23", "task_01936a3c8f2e7b4d9a1c5e6f7a8b9c22", "task_01936a3c8f2e7b4d9a1c5e6f7a8b9c25"];

impl ProjectResponse {
    fn sample() -> Self {
        Self {
            id: SAMPLE_PROJECT.into(),
            key: "webapp".into(),
            name: "Web Application".into(),
            description: Some("Main product frontend".into()),
            version: 1,
            created_at: SAMPLE_TIME.into(),
            updated_at: SAMPLE_TIME.into(),
        }
    }
}

impl Example for ProjectResponse {
    fn example() -> Value {
        json!(Self::sample())
    }
}

impl Example for ProjectList {
    fn example() -> Value {
        json!(Self { projects: vec![ProjectResponse::sample()], next_cursor: None })
    }
}

impl Example for DeletedProject {
    fn example() -> Value {
        json!(Self { id: SAMPLE_PROJECT.into(), deleted: true, version: 2 })
    }
}

impl Example for GraphResponse {
    fn example() -> Value {
        let chain = ChainResponse {
            task_ids: SAMPLE_TASKS[..2].iter().map(|t| (*t).to_owned()).collect(),
            length: 2,
            earliest_due_on: Some("2026-05-01T17:00:00Z".into()),
        };
        json!(Self {
            project_id: SAMPLE_PROJECT.into(),
            order: SAMPLE_TASKS.iter().map(|t| (*t).to_owned()).collect(),
            ready: vec![SAMPLE_TASKS[0].into(), SAMPLE_TASKS[2].into()],
            critical_path: ChainResponse { task_ids: chain.task_ids.clone(), length: 2, earliest_due_on: chain.earliest_due_on.clone() },
            critical_path_by_due: chain,
        })
    }
}

impl Example for CreateProjectBody {
    fn example() -> Value {
        json!({"key": "webapp", "name": "Web Application", "description": "Main product frontend"})
    }
}

impl Example for UpdateProjectBody {
    fn example() -> Value {
        json!({"name": "Web Application (v2)", "description": null})
    }
}
