//! The task routes: create (top level with `projectId`, or nested under a project in
//! `projects.rs`), list with filters and a cursor, get (with `blocked_by` and an `ETag`),
//! patch and set the status (`If-Match`), delete (soft), dependencies (add with the cycle
//! check, list, remove), notes and subtasks. Scopes `atlas.tasks.read` / `atlas.tasks.write`.
//! Bodies accept the seeds' spellings (`projectId`, `dueOn`, `parentTaskId`,
//! `dependsOnTaskId`, `"HIGH"`, `"InProgress"`).

use crate::auth::Caller;
use crate::contract::Example;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_kernel::PageRequest;
use atlas_tasks::{
    etag, parse_if_match, Dependency, DependencyAdded, DependencyRemoved, NewTask, Note, Priority, ProjectRef, Task, TaskFilter, TaskId,
    TaskPatch, TaskStatus,
};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// The handler of a task route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "tasks.create" => on(filter, create),
        "tasks.list" => on(filter, list),
        "tasks.get" => on(filter, get),
        "tasks.update" => on(filter, update),
        "tasks.delete" => on(filter, delete),
        "tasks.set_status" => on(filter, set_status),
        "tasks.dependencies.list" => on(filter, dependencies),
        "tasks.dependencies.add" => on(filter, add_dependency),
        "tasks.dependencies.remove" => on(filter, remove_dependency),
        "tasks.notes.list" => on(filter, notes),
        "tasks.notes.add" => on(filter, add_note),
        "tasks.subtasks" => on(filter, subtasks),
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
pub(crate) use begin;

// ---- shapes ------------------------------------------------------------------------------

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A task as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskResponse {
    pub id: String,
    pub project_id: String,
    pub parent_task_id: Option<String>,
    pub title: String,
    pub description: Option<String>,
    /// `todo`, `in_progress`, `done` or `cancelled`.
    pub status: String,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    /// RFC 3339.
    pub due_on: Option<String>,
    pub assignee: Option<String>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    /// The live, unfinished tasks this one depends on (on a single task's answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<Vec<String>>,
}

impl From<&Task> for TaskResponse {
    fn from(t: &Task) -> Self {
        Self {
            id: t.id.to_string(),
            project_id: t.project_id.to_string(),
            parent_task_id: t.parent_task_id.map(|p| p.to_string()),
            title: t.title.clone(),
            description: t.description.clone(),
            status: t.status.as_str().to_owned(),
            priority: t.priority.as_str().to_owned(),
            due_on: t.due_on.map(rfc3339),
            assignee: t.assignee.clone(),
            version: t.version,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            completed_at: t.completed_at.map(rfc3339),
            blocked_by: None,
        }
    }
}

/// A page of tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskResponse>,
    pub next_cursor: Option<String>,
}

/// A dependency as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyResponse {
    pub task_id: String,
    pub depends_on_task_id: String,
    pub title: String,
    pub status: String,
    pub blocking: bool,
}

impl From<&Dependency> for DependencyResponse {
    fn from(d: &Dependency) -> Self {
        Self {
            task_id: d.task_id.to_string(),
            depends_on_task_id: d.depends_on_task_id.to_string(),
            title: d.title.clone(),
            status: d.status.as_str().to_owned(),
            blocking: d.blocking,
        }
    }
}

/// A task's dependencies.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyList {
    pub dependencies: Vec<DependencyResponse>,
}

/// What adding (or removing) a dependency answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyChange {
    pub task_id: String,
    pub depends_on_task_id: String,
    /// `false` when the dependency existed already (nothing changed) or was removed.
    pub added: bool,
    /// The dependent task after the change.
    pub task: TaskResponse,
}

/// A note.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteResponse {
    pub id: String,
    pub task_id: String,
    pub content: String,
    pub created_at: String,
}

impl From<&Note> for NoteResponse {
    fn from(n: &Note) -> Self {
        Self { id: n.id.to_string(), task_id: n.task_id.to_string(), content: n.content.clone(), created_at: rfc3339(n.created_at) }
    }
}

/// A deleted task (soft: it blocks nobody from then on).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedTask {
    pub id: String,
    pub deleted: bool,
    /// The version the deletion wrote.
    pub version: i64,
}

/// A page of notes.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteList {
    pub notes: Vec<NoteResponse>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/atlas/tasks` (and, without `project_id`, `POST /v1/atlas/projects/{id}/tasks`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskBody {
    /// The project's id or key (required at `/v1/atlas/tasks`).
    #[serde(default, alias = "projectId")]
    pub project_id: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `todo` (default), `in_progress`, `done`, `cancelled` (also `"InProgress"`, `"TODO"`, …).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Option<TaskStatus>,
    /// `low`, `normal` (default), `high`, `urgent` (also `"HIGH"`, `"High"`, …).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub priority: Option<Priority>,
    /// An RFC 3339 time or a date (`2026-05-01`, midnight UTC).
    #[serde(default, alias = "dueOn", alias = "due_date", alias = "dueDate")]
    pub due_on: Option<String>,
    #[serde(default, alias = "parentTaskId")]
    pub parent_task_id: Option<String>,
    #[serde(default)]
    pub assignee: Option<String>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

/// `PATCH /v1/atlas/tasks/{id}`: absent fields stay; `null` clears the optional ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskBody {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Option<TaskStatus>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub priority: Option<Priority>,
    #[serde(default, alias = "dueOn", alias = "due_date", alias = "dueDate", deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub due_on: Option<Option<String>>,
    #[serde(default, alias = "parentTaskId", deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub parent_task_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<Option<String>>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

/// `PUT /v1/atlas/tasks/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `todo`, `in_progress`, `done`, `cancelled` (also `"InProgress"`, …).
    #[schema(value_type = String)]
    pub status: TaskStatus,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/atlas/tasks/{id}/dependencies`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DependencyBody {
    /// The task this one depends on (any project of the organization).
    #[serde(alias = "dependsOnTaskId")]
    pub depends_on_task_id: String,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/atlas/tasks/{id}/notes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub content: String,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::<T>::deserialize(d)?))
}

/// Query of task lists: the filters, then the page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TaskQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only the tasks of this project (id or key; also `projectId`).
    #[serde(alias = "projectId")]
    project_id: Option<String>,
    /// Only tasks in this status: `todo`, `in_progress`, `done`, `cancelled`.
    status: Option<String>,
    /// Only tasks of this priority: `low`, `normal`, `high`, `urgent`.
    priority: Option<String>,
    /// Only tasks assigned to this person.
    assignee: Option<String>,
    /// Only the subtasks of this task (also `parent`, `parentTaskId`).
    #[serde(alias = "parentTaskId", alias = "parent")]
    parent_task_id: Option<String>,
}

// ---- helpers -------------------------------------------------------------------------------

pub(crate) fn task_id(id: &str) -> Result<TaskId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("task"))
}

fn task_id_field(field: &str, id: &str) -> Result<TaskId, ApiError> {
    id.parse().map_err(|_| ApiError::field(field, "must be a task id such as task_0190…"))
}

fn due(field: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| ApiError::field(field, "must be an RFC 3339 time such as 2026-05-01T17:00:00Z or a date such as 2026-05-01"))
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    match headers.get("if-match") {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().map_err(|_| ApiError::field("If-Match", "must be printable ASCII"))?;
            Ok(Some(parse_if_match(text)?))
        }
    }
}

pub(crate) fn with_etag(mut response: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert("etag", v);
    }
    response
}

pub(crate) fn task_value(task: &Task) -> Value {
    serde_json::to_value(TaskResponse::from(task)).unwrap_or(Value::Null)
}

/// The new task a create body asks for, in `project` (the path's, or the body's).
pub(crate) fn new_task(project: ProjectRef, b: CreateTaskBody) -> Result<NewTask, ApiError> {
    Ok(NewTask {
        project,
        parent_task_id: b.parent_task_id.as_deref().map(|p| task_id_field("parent_task_id", p)).transpose()?,
        title: b.title,
        description: b.description,
        status: b.status.unwrap_or(TaskStatus::Todo),
        priority: b.priority.unwrap_or(Priority::Normal),
        due_on: b.due_on.as_deref().map(|d| due("due_on", d)).transpose()?,
        assignee: b.assignee,
    })
}

/// Runs a task creation and answers 201 with its `Location` and `ETag`.
pub(crate) async fn create_task(state: &AppState, caller: &atlas_scopes::Principal, mutation: Box<Mutation>, new: NewTask) -> Response {
    let journal = |t: &Task| {
        mutation.entry(None, None, StatusCode::CREATED, &task_value(t), Some(t.id.to_string()), Some(format!("/v1/atlas/tasks/{}", t.id)))
    };
    match state.work.create_task(caller.org_id, new, &journal).await {
        Ok(task) => with_etag(mutation.respond().await, task.version),
        Err(e) => mutation.fail(e.into()).await,
    }
}

pub(crate) fn filter(q: &TaskQuery) -> Result<TaskFilter, ApiError> {
    Ok(TaskFilter {
        project_id: None,
        status: q
            .status
            .as_deref()
            .map(|s| TaskStatus::parse(s).ok_or_else(|| ApiError::field("status", "must be todo, in_progress, done or cancelled")))
            .transpose()?,
        priority: q
            .priority
            .as_deref()
            .map(|p| Priority::parse(p).ok_or_else(|| ApiError::field("priority", "must be low, normal, high or urgent")))
            .transpose()?,
        assignee: q.assignee.clone(),
        parent_task_id: q.parent_task_id.as_deref().map(|p| task_id_field("parent_task_id", p)).transpose()?,
    })
}

pub(crate) async fn list_tasks(
    state: &AppState,
    caller: &atlas_scopes::Principal,
    filter: TaskFilter,
    q: &TaskQuery,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.work.tasks(caller.org_id, &filter, &page).await?;
    Ok(Envelope::ok(TaskList { tasks: found.items.iter().map(TaskResponse::from).collect(), next_cursor: found.next_cursor })
        .into_response())
}

// ---- handlers ------------------------------------------------------------------------------

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateTaskBody>) -> Response {
    let Some(project) = body.value.project_id.clone() else {
        return ApiError::field("project_id", "is required (the project's id or key)").into_response();
    };
    let mutation = begin!(state, "tasks.create", caller, headers, &body.raw);
    match new_task(ProjectRef::parse(&project), body.value) {
        Ok(new) => create_task(&state, &caller, mutation, new).await,
        Err(e) => mutation.fail(e).await,
    }
}

async fn list(State(state): State<AppState>, Caller(caller): Caller, QueryParams(q): QueryParams<TaskQuery>) -> Result<Response, ApiError> {
    let mut f = filter(&q)?;
    if let Some(project) = &q.project_id {
        f.project_id = Some(state.work.project(caller.org_id, &ProjectRef::parse(project)).await?.id);
    }
    list_tasks(&state, &caller, f, &q).await
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let detail = state.work.task(caller.org_id, task_id(&id)?).await?;
    let mut response = TaskResponse::from(&detail.task);
    response.blocked_by = Some(detail.blocked_by.iter().map(ToString::to_string).collect());
    Ok(with_etag(Envelope::ok(response).into_response(), detail.task.version))
}

pub(crate) async fn apply(
    state: &AppState,
    caller: &atlas_scopes::Principal,
    mutation: Box<Mutation>,
    id: TaskId,
    patch: TaskPatch,
    expected: Option<i64>,
) -> Response {
    let journal = |t: &Task| mutation.entry(None, None, StatusCode::OK, &task_value(t), Some(t.id.to_string()), None);
    match state.work.update_task(caller.org_id, id, patch, expected, &journal).await {
        Ok(task) => with_etag(mutation.respond().await, task.version),
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<UpdateTaskBody>,
) -> Response {
    let (id, expected) = match (task_id(&id), if_match(&headers)) {
        (Ok(id), Ok(expected)) => (id, expected),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let b = body.value;
    let patch = (|| -> Result<TaskPatch, ApiError> {
        Ok(TaskPatch {
            title: b.title,
            description: b.description,
            status: b.status,
            priority: b.priority,
            due_on: b.due_on.map(|d| d.as_deref().map(|d| due("due_on", d)).transpose()).transpose()?,
            parent_task_id: b.parent_task_id.map(|p| p.as_deref().map(|p| task_id_field("parent_task_id", p)).transpose()).transpose()?,
            assignee: b.assignee,
        })
    })();
    let patch = match patch {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "tasks.update", caller, headers, &body.raw);
    apply(&state, &caller, mutation, id, patch, expected).await
}

async fn set_status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<StatusBody>,
) -> Response {
    let (id, expected) = match (task_id(&id), if_match(&headers)) {
        (Ok(id), Ok(expected)) => (id, expected),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let mutation = begin!(state, "tasks.set_status", caller, headers, &body.raw);
    let patch = TaskPatch { status: Some(body.value.status), ..TaskPatch::default() };
    apply(&state, &caller, mutation, id, patch, expected).await
}

async fn delete(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id = match task_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let raw = json!({"id": id.to_string()});
    let mutation = begin!(state, "tasks.delete", caller, headers, &raw);
    let journal = |t: &Task| {
        mutation.entry(
            None,
            None,
            StatusCode::OK,
            &serde_json::to_value(DeletedTask { id: t.id.to_string(), deleted: true, version: t.version }).unwrap_or(Value::Null),
            Some(t.id.to_string()),
            None,
        )
    };
    match state.work.delete_task(caller.org_id, id, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn dependencies(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let deps = state.work.dependencies(caller.org_id, task_id(&id)?).await?;
    Ok(Envelope::ok(DependencyList { dependencies: deps.iter().map(DependencyResponse::from).collect() }).into_response())
}

async fn add_dependency(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<DependencyBody>,
) -> Response {
    let id = match task_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let depends_on = match task_id_field("depends_on_task_id", &body.value.depends_on_task_id) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "tasks.dependencies.add", caller, headers, &body.raw);
    let journal = |d: &DependencyAdded| {
        let data = DependencyChange {
            task_id: d.task.id.to_string(),
            depends_on_task_id: d.depends_on_task_id.to_string(),
            added: d.added,
            task: TaskResponse::from(&d.task),
        };
        let status = if d.added { StatusCode::CREATED } else { StatusCode::OK };
        mutation.entry(None, None, status, &serde_json::to_value(data).unwrap_or(Value::Null), Some(d.task.id.to_string()), None)
    };
    match state.work.add_dependency(caller.org_id, id, depends_on, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn remove_dependency(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path((id, depends_on)): Path<(String, String)>,
) -> Response {
    let (id, depends_on) = match (task_id(&id), depends_on.parse::<TaskId>()) {
        (Ok(id), Ok(d)) => (id, d),
        _ => return ApiError::not_found("dependency").into_response(),
    };
    let raw = json!({"id": id.to_string(), "depends_on_id": depends_on.to_string()});
    let mutation = begin!(state, "tasks.dependencies.remove", caller, headers, &raw);
    let journal = |d: &DependencyRemoved| {
        let data = DependencyChange {
            task_id: d.task.id.to_string(),
            depends_on_task_id: d.depends_on_task_id.to_string(),
            added: false,
            task: TaskResponse::from(&d.task),
        };
        mutation.entry(None, None, StatusCode::OK, &serde_json::to_value(data).unwrap_or(Value::Null), Some(d.task.id.to_string()), None)
    };
    match state.work.remove_dependency(caller.org_id, id, depends_on, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn notes(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.work.notes(caller.org_id, task_id(&id)?, &page).await?;
    Ok(Envelope::ok(NoteList { notes: found.items.iter().map(NoteResponse::from).collect(), next_cursor: found.next_cursor })
        .into_response())
}

async fn add_note(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<NoteBody>,
) -> Response {
    let id = match task_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "tasks.notes.add", caller, headers, &body.raw);
    let journal = |n: &Note| {
        mutation.entry(
            None,
            None,
            StatusCode::CREATED,
            &serde_json::to_value(NoteResponse::from(n)).unwrap_or(Value::Null),
            Some(n.task_id.to_string()),
            None,
        )
    };
    match state.work.add_note(caller.org_id, id, &body.value.content, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn subtasks(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.work.subtasks(caller.org_id, task_id(&id)?, &page).await?;
    Ok(Envelope::ok(TaskList { tasks: found.items.iter().map(TaskResponse::from).collect(), next_cursor: found.next_cursor })
        .into_response())
}

// ---- examples (seed 003's `POST /v1/tasks`, seed 004's project and task calls) -------------

pub(crate) const SAMPLE_PROJECT: &str = "prj_01936a3c8f2e7b4d9a1c5e6f7a8b9c21";
const SAMPLE_TASK: &str = "task_01936a3c8f2e7b4d9a1c5e6f7a8b9c22";
const SAMPLE_DEPENDENCY: &str = "task_01936a3c8f2e7b4d9a1c5e6f7a8b9c23";
const SAMPLE_NOTE: &str = "note_01936a3c8f2e7b4d9a1c5e6f7a8b9c24";
pub(crate) const SAMPLE_TIME: &str = "2026-04-07T12:00:00Z";

impl TaskResponse {
    fn sample() -> Self {
        Self {
            id: SAMPLE_TASK.into(),
            project_id: SAMPLE_PROJECT.into(),
            parent_task_id: None,
            title: "Review Q3 forecast".into(),
            description: None,
            status: "todo".into(),
            priority: "high".into(),
            due_on: Some("2026-05-01T17:00:00Z".into()),
            assignee: None,
            version: 1,
            created_at: SAMPLE_TIME.into(),
            updated_at: SAMPLE_TIME.into(),
            completed_at: None,
            blocked_by: None,
        }
    }
}

impl Example for TaskResponse {
    fn example() -> Value {
        json!(Self { blocked_by: Some(vec![SAMPLE_DEPENDENCY.into()]), ..Self::sample() })
    }
}

impl Example for TaskList {
    fn example() -> Value {
        json!(Self { tasks: vec![TaskResponse::sample()], next_cursor: None })
    }
}

impl Example for DependencyList {
    fn example() -> Value {
        json!(Self {
            dependencies: vec![DependencyResponse {
                task_id: SAMPLE_TASK.into(),
                depends_on_task_id: SAMPLE_DEPENDENCY.into(),
                title: "Collect the regional numbers".into(),
                status: "in_progress".into(),
                blocking: true,
            }]
        })
    }
}

impl Example for DependencyChange {
    fn example() -> Value {
        json!(Self { task_id: SAMPLE_TASK.into(), depends_on_task_id: SAMPLE_DEPENDENCY.into(), added: true, task: TaskResponse::sample() })
    }
}

impl NoteResponse {
    fn sample() -> Self {
        Self {
            id: SAMPLE_NOTE.into(),
            task_id: SAMPLE_TASK.into(),
            content: "Decided to use React Hook Form + Zod for validation".into(),
            created_at: SAMPLE_TIME.into(),
        }
    }
}

impl Example for NoteResponse {
    fn example() -> Value {
        json!(Self::sample())
    }
}

impl Example for NoteList {
    fn example() -> Value {
        json!(Self { notes: vec![NoteResponse::sample()], next_cursor: None })
    }
}

impl Example for DeletedTask {
    fn example() -> Value {
        json!(Self { id: SAMPLE_TASK.into(), deleted: true, version: 2 })
    }
}

impl Example for CreateTaskBody {
    fn example() -> Value {
        json!({"projectId": SAMPLE_PROJECT, "title": "Review Q3 forecast", "priority": "HIGH", "dueOn": "2026-05-01T17:00:00Z"})
    }
}

impl Example for UpdateTaskBody {
    fn example() -> Value {
        json!({"title": "Implement user settings page", "priority": "High", "assignee": "dana"})
    }
}

impl Example for StatusBody {
    fn example() -> Value {
        json!({"status": "InProgress"})
    }
}

impl Example for DependencyBody {
    fn example() -> Value {
        json!({"dependsOnTaskId": SAMPLE_DEPENDENCY})
    }
}

impl Example for NoteBody {
    fn example() -> Value {
        json!({"content": "Decided to use React Hook Form + Zod for validation"})
    }
}
