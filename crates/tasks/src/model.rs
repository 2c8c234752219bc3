//! The work model: projects (a key unique per organization), tasks (status, priority, due date,
//! parent, assignee, a version and a topological rank) and notes, the patches that change them,
//! and the field rules every request is checked against before a store sees it.

use crate::error::WorkError;
use atlas_kernel::{typed_id, OrgId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

typed_id!(
    /// One project.
    ProjectId,
    "prj"
);
typed_id!(
    /// One task.
    TaskId,
    "task"
);
typed_id!(
    /// One note on a task.
    NoteId,
    "note"
);

/// Longest project key, in characters.
pub const MAX_KEY_CHARS: usize = 32;
/// Longest name or title, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest description or note, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest assignee, in characters.
pub const MAX_ASSIGNEE_CHARS: usize = 200;

/// Where a task stands. `done` and `cancelled` are *finished*: a finished task blocks nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    #[serde(alias = "TODO", alias = "Todo", alias = "ToDo", alias = "to_do")]
    Todo,
    #[serde(alias = "InProgress", alias = "IN_PROGRESS", alias = "inProgress", alias = "in-progress")]
    InProgress,
    #[serde(alias = "DONE", alias = "Done")]
    Done,
    #[serde(alias = "CANCELLED", alias = "Cancelled", alias = "canceled", alias = "Canceled", alias = "CANCELED")]
    Cancelled,
}

impl TaskStatus {
    /// The wire (and column) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a column or query value (the wire names and the seeds' spellings).
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
    }

    /// Whether the task is over (`done` or `cancelled`): it blocks nobody and is never ready.
    pub const fn is_finished(self) -> bool {
        matches!(self, TaskStatus::Done | TaskStatus::Cancelled)
    }
}

/// How urgent a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[serde(alias = "LOW", alias = "Low")]
    Low,
    #[serde(alias = "NORMAL", alias = "Normal", alias = "MEDIUM", alias = "Medium", alias = "medium")]
    Normal,
    #[serde(alias = "HIGH", alias = "High")]
    High,
    #[serde(alias = "URGENT", alias = "Urgent")]
    Urgent,
}

impl Priority {
    /// The wire (and column) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// Parses a column or query value.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
    }
}

/// A project: tasks belong to one. Its `key` is unique among the organization's live projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub id: ProjectId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A project named by its id (`prj_…`) or its key, as `/projects/:id` accepts either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    Id(ProjectId),
    Key(String),
}

impl ProjectRef {
    /// `prj_…` is an id; anything else is a key.
    pub fn parse(text: &str) -> Self {
        match text.parse::<ProjectId>() {
            Ok(id) => ProjectRef::Id(id),
            Err(_) => ProjectRef::Key(text.to_owned()),
        }
    }
}

/// A task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub id: TaskId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub project_id: ProjectId,
    pub parent_task_id: Option<TaskId>,
    pub title: String,
    pub description: Option<String>,
    pub status: TaskStatus,
    pub priority: Priority,
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_on: Option<OffsetDateTime>,
    pub assignee: Option<String>,
    /// The task's place in the organization's topological order: every dependency has a lower
    /// rank than its dependents (kept by [`crate::graph`]).
    #[serde(skip)]
    pub rank: i64,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
}

/// A note on a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub id: NoteId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub task_id: TaskId,
    pub content: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One dependency of a task, as listed: the task depended on and whether it still blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub task_id: TaskId,
    pub depends_on_task_id: TaskId,
    pub title: String,
    pub status: TaskStatus,
    /// `true` while the task depended on is unfinished.
    pub blocking: bool,
}

/// A task with what it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDetail {
    pub task: Task,
    /// Its live, unfinished dependencies.
    pub blocked_by: Vec<TaskId>,
}

/// A new project, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
}

/// What `PATCH` changes on a project (absent fields stay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectPatch {
    pub key: Option<String>,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
}

/// A new task, validated (its project named by id or key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub project: ProjectRef,
    pub parent_task_id: Option<TaskId>,
    pub title: String,
    pub description: Option<String>,
    pub status: TaskStatus,
    pub priority: Priority,
    pub due_on: Option<OffsetDateTime>,
    pub assignee: Option<String>,
}

/// What `PATCH` (or `PUT …/status`) changes on a task (absent fields stay; an inner `None`
/// clears).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    pub due_on: Option<Option<OffsetDateTime>>,
    pub parent_task_id: Option<Option<TaskId>>,
    pub assignee: Option<Option<String>>,
}

impl TaskPatch {
    /// Whether the patch moves the task to `done` (the blocked check applies).
    pub fn completes(&self, task: &Task) -> bool {
        self.status == Some(TaskStatus::Done) && task.status != TaskStatus::Done
    }

    /// Whether the patch sets a new parent (the parent-cycle check applies).
    pub fn new_parent(&self, task: &Task) -> Option<TaskId> {
        match self.parent_task_id {
            Some(Some(parent)) if task.parent_task_id != Some(parent) => Some(parent),
            _ => None,
        }
    }

    /// `task` with the patch applied at `at`: the version moves on by one, `completed_at`
    /// follows the status.
    pub fn apply(&self, task: &Task, at: OffsetDateTime) -> Task {
        let mut next = task.clone();
        if let Some(title) = &self.title {
            next.title = title.clone();
        }
        if let Some(description) = &self.description {
            next.description = description.clone();
        }
        if let Some(priority) = self.priority {
            next.priority = priority;
        }
        if let Some(due_on) = self.due_on {
            next.due_on = due_on;
        }
        if let Some(parent) = self.parent_task_id {
            next.parent_task_id = parent;
        }
        if let Some(assignee) = &self.assignee {
            next.assignee = assignee.clone();
        }
        if let Some(status) = self.status {
            if status != task.status {
                next.completed_at = if status == TaskStatus::Done { Some(at) } else { None };
            }
            next.status = status;
        }
        next.version = task.version + 1;
        next.updated_at = at;
        next
    }
}

/// Which tasks a list holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub project_id: Option<ProjectId>,
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    pub assignee: Option<String>,
    pub parent_task_id: Option<TaskId>,
}

// ---- field rules -----------------------------------------------------------------------------

/// `text` trimmed, required non-empty and at most `max` characters.
pub fn required_text(field: &'static str, text: &str, max: usize) -> Result<String, WorkError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(WorkError::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(WorkError::invalid(field, format!("must be at most {max} characters")));
    }
    Ok(trimmed.to_owned())
}

/// Optional text: at most `max` characters; empty becomes absent.
pub fn optional_text(field: &'static str, text: Option<String>, max: usize) -> Result<Option<String>, WorkError> {
    match text {
        None => Ok(None),
        Some(t) if t.trim().is_empty() => Ok(None),
        Some(t) if t.chars().count() > max => Err(WorkError::invalid(field, format!("must be at most {max} characters"))),
        Some(t) => Ok(Some(t)),
    }
}

/// A project key: a letter, then letters, digits, `-` or `_`, at most [`MAX_KEY_CHARS`]; never
/// shaped like a project id.
pub fn project_key(text: &str) -> Result<String, WorkError> {
    let message = "must start with a letter and hold only letters, digits, `-` and `_` (at most 32 characters)";
    let mut chars = text.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || text.len() > MAX_KEY_CHARS || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(WorkError::invalid("key", message));
    }
    if text.starts_with("prj_") {
        return Err(WorkError::invalid("key", "must not start with `prj_` (that names project ids)"));
    }
    Ok(text.to_owned())
}
