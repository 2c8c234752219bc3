//! The work use cases, [`Work`]: validate, stamp times from the clock, let the store check what
//! needs the data (cycles, blocked completion, versions) inside its transaction, and add the
//! webhook events of each change (`project.created|updated|deleted`,
//! `task.created|updated|status_changed|deleted|dependency_added|dependency_removed`, each with
//! the resource's version) to the caller's journal, so they commit with the change.

use crate::error::WorkError;
use crate::graph::{analyse, Analysis};
use crate::model::{
    optional_text, project_key, required_text, Dependency, NewProject, NewTask, Note, NoteId, Project, ProjectId, ProjectPatch, ProjectRef,
    Task, TaskDetail, TaskFilter, TaskId, TaskPatch, MAX_ASSIGNEE_CHARS, MAX_TEXT_CHARS, MAX_TITLE_CHARS,
};
use crate::ports::{DependencyAdded, DependencyRemoved, ProjectDeleted, WorkStore};
use atlas_kernel::{Clock, OrgId, Page, PageRequest};
use atlas_runs::{Journal, JournalEntry, OutboxEvent};
use atlas_webhooks::{Event, EventType, Family};
use serde::Serialize;
use std::sync::Arc;
use time::OffsetDateTime;

/// The work use cases.
#[derive(Debug, Clone)]
pub struct Work {
    store: Arc<dyn WorkStore>,
    clock: Arc<dyn Clock>,
}

/// An event about `resource` in the task or project family.
fn event(
    org_id: OrgId,
    family: Family,
    name: &str,
    at: OffsetDateTime,
    data: &impl Serialize,
    id: String,
    version: i64,
) -> Vec<OutboxEvent> {
    let Ok(event_type) = EventType::open(family, name) else { return Vec::new() };
    let data = serde_json::to_value(data).unwrap_or(serde_json::Value::Null);
    vec![Event::new(org_id, event_type, at, data, Some(id), version).outbox()]
}

fn task_event(name: &str, task: &Task, at: OffsetDateTime) -> Vec<OutboxEvent> {
    event(task.org_id, Family::Task, name, at, task, task.id.to_string(), task.version)
}

fn project_event(name: &str, project: &Project, at: OffsetDateTime) -> Vec<OutboxEvent> {
    event(project.org_id, Family::Project, name, at, project, project.id.to_string(), project.version)
}

#[derive(Serialize)]
struct DependencyEventData<'a> {
    #[serde(flatten)]
    task: &'a Task,
    depends_on_task_id: TaskId,
}

/// `If-Match` as a version: `3`, `"3"` or `W/"3"`.
///
/// # Errors
/// `Invalid("If-Match")` for anything else.
pub fn parse_if_match(text: &str) -> Result<i64, WorkError> {
    let t = text.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    let t = t.trim_matches('"');
    t.parse::<i64>().map_err(|_| WorkError::invalid("If-Match", "must be a version as the ETag gave it, such as \"3\""))
}

/// The ETag of a version: `"3"`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

impl Work {
    /// The use cases over `store`, with time from `clock`.
    pub fn new(store: Arc<dyn WorkStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    // ---- projects

    /// Creates a project.
    ///
    /// # Errors
    /// `Invalid`, `DuplicateKey`, `Store`.
    pub async fn create_project(&self, org_id: OrgId, new: NewProject, journal: &dyn Journal<Project>) -> Result<Project, WorkError> {
        let now = self.clock.now();
        let project = Project {
            id: ProjectId::generate(),
            org_id,
            key: project_key(&new.key)?,
            name: required_text("name", &new.name, MAX_TITLE_CHARS)?,
            description: optional_text("description", new.description, MAX_TEXT_CHARS)?,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let journal = |p: &Project| with(journal.entry(p), project_event("created", p, now));
        self.store.create_project(&project, &journal).await?;
        Ok(project)
    }

    /// One live project, by id or key.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn project(&self, org_id: OrgId, project: &ProjectRef) -> Result<Project, WorkError> {
        self.store.project(org_id, project).await?.ok_or(WorkError::NotFound("project"))
    }

    /// The live projects, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn projects(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Project>, WorkError> {
        self.store.projects(org_id, page).await
    }

    /// Changes a project.
    ///
    /// # Errors
    /// `Invalid`, `NotFound`, `VersionConflict`, `DuplicateKey`, `Store`.
    pub async fn update_project(
        &self,
        org_id: OrgId,
        project: &ProjectRef,
        patch: ProjectPatch,
        if_match: Option<i64>,
        journal: &dyn Journal<Project>,
    ) -> Result<Project, WorkError> {
        let patch = ProjectPatch {
            key: patch.key.as_deref().map(project_key).transpose()?,
            name: patch.name.as_deref().map(|n| required_text("name", n, MAX_TITLE_CHARS)).transpose()?,
            description: patch.description.map(|d| optional_text("description", d, MAX_TEXT_CHARS)).transpose()?,
        };
        let now = self.clock.now();
        let journal = |p: &Project| with(journal.entry(p), project_event("updated", p, now));
        self.store.update_project(org_id, project, &patch, if_match, now, &journal).await
    }

    /// Soft-deletes a project and its tasks: `project.deleted`, then a `task.deleted` for each
    /// task deleted with it, all in the deletion's transaction.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn delete_project(
        &self,
        org_id: OrgId,
        project: &ProjectRef,
        journal: &dyn Journal<ProjectDeleted>,
    ) -> Result<ProjectDeleted, WorkError> {
        let now = self.clock.now();
        let journal = |d: &ProjectDeleted| {
            let mut events = project_event("deleted", &d.project, now);
            events.extend(d.tasks.iter().flat_map(|t| task_event("deleted", t, now)));
            with(journal.entry(d), events)
        };
        self.store.delete_project(org_id, project, now, &journal).await
    }

    // ---- tasks

    /// Creates a task in a live project, at the end of the order.
    ///
    /// # Errors
    /// `Invalid`, `NotFound("project")`, `Store`.
    pub async fn create_task(&self, org_id: OrgId, new: NewTask, journal: &dyn Journal<Task>) -> Result<Task, WorkError> {
        let project = self.project(org_id, &new.project).await?;
        let now = self.clock.now();
        let task = Task {
            id: TaskId::generate(),
            org_id,
            project_id: project.id,
            parent_task_id: new.parent_task_id,
            title: required_text("title", &new.title, MAX_TITLE_CHARS)?,
            description: optional_text("description", new.description, MAX_TEXT_CHARS)?,
            status: new.status,
            priority: new.priority,
            due_on: new.due_on,
            assignee: optional_text("assignee", new.assignee, MAX_ASSIGNEE_CHARS)?,
            rank: 0,
            version: 1,
            created_at: now,
            updated_at: now,
            completed_at: if new.status == crate::model::TaskStatus::Done { Some(now) } else { None },
        };
        let journal = |t: &Task| with(journal.entry(t), task_event("created", t, now));
        self.store.create_task(&task, &journal).await
    }

    /// One live task and what blocks it.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn task(&self, org_id: OrgId, id: TaskId) -> Result<TaskDetail, WorkError> {
        self.store.task(org_id, id).await?.ok_or(WorkError::NotFound("task"))
    }

    /// Live tasks matching `filter`, newest first.
    ///
    /// # Errors
    /// `NotFound("project")` when the filter names a project that is not live, `Store`.
    pub async fn tasks(&self, org_id: OrgId, filter: &TaskFilter, page: &PageRequest) -> Result<Page<Task>, WorkError> {
        self.store.tasks(org_id, filter, page).await
    }

    /// A live task's live subtasks, newest first.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn subtasks(&self, org_id: OrgId, id: TaskId, page: &PageRequest) -> Result<Page<Task>, WorkError> {
        self.task(org_id, id).await?;
        let filter = TaskFilter { parent_task_id: Some(id), ..TaskFilter::default() };
        self.store.tasks(org_id, &filter, page).await
    }

    /// Changes a task (`PATCH`, or `PUT …/status` with only a status). Emits `task.updated`,
    /// and `task.status_changed` when the status moved.
    ///
    /// # Errors
    /// `Invalid`, `NotFound`, `VersionConflict`, `Blocked`, `Cycle`, `Store`.
    pub async fn update_task(
        &self,
        org_id: OrgId,
        id: TaskId,
        patch: TaskPatch,
        if_match: Option<i64>,
        journal: &dyn Journal<Task>,
    ) -> Result<Task, WorkError> {
        if patch.parent_task_id == Some(Some(id)) {
            return Err(WorkError::Cycle { path: vec![id, id] });
        }
        let status_only = patch.status.is_some()
            && patch.title.is_none()
            && patch.description.is_none()
            && patch.priority.is_none()
            && patch.due_on.is_none()
            && patch.parent_task_id.is_none()
            && patch.assignee.is_none();
        let patch = TaskPatch {
            title: patch.title.as_deref().map(|t| required_text("title", t, MAX_TITLE_CHARS)).transpose()?,
            description: patch.description.map(|d| optional_text("description", d, MAX_TEXT_CHARS)).transpose()?,
            assignee: patch.assignee.map(|a| optional_text("assignee", a, MAX_ASSIGNEE_CHARS)).transpose()?,
            ..patch
        };
        let now = self.clock.now();
        let before = self.task(org_id, id).await?.task.status;
        let journal = |t: &Task| {
            let mut events = Vec::new();
            if !status_only {
                events.extend(task_event("updated", t, now));
            }
            if t.status != before || status_only {
                events.extend(task_event("status_changed", t, now));
            }
            with(journal.entry(t), events)
        };
        self.store.update_task(org_id, id, &patch, if_match, now, &journal).await
    }

    /// Soft-deletes a task.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn delete_task(&self, org_id: OrgId, id: TaskId, journal: &dyn Journal<Task>) -> Result<Task, WorkError> {
        let now = self.clock.now();
        let journal = |t: &Task| with(journal.entry(t), task_event("deleted", t, now));
        self.store.delete_task(org_id, id, now, &journal).await
    }

    // ---- dependencies

    /// "`task` depends on `depends_on`": refused with the cycle it would close; a duplicate is
    /// a no-op (no event).
    ///
    /// # Errors
    /// `NotFound`, `Cycle`, `Store`.
    pub async fn add_dependency(
        &self,
        org_id: OrgId,
        task: TaskId,
        depends_on: TaskId,
        journal: &dyn Journal<DependencyAdded>,
    ) -> Result<DependencyAdded, WorkError> {
        if task == depends_on {
            return Err(WorkError::Cycle { path: vec![task, task] });
        }
        let now = self.clock.now();
        let journal = |d: &DependencyAdded| {
            let events = if d.added {
                let data = DependencyEventData { task: &d.task, depends_on_task_id: d.depends_on_task_id };
                event(org_id, Family::Task, "dependency_added", now, &data, d.task.id.to_string(), d.task.version)
            } else {
                Vec::new()
            };
            with(journal.entry(d), events)
        };
        self.store.add_dependency(org_id, task, depends_on, now, &journal).await
    }

    /// Removes "`task` depends on `depends_on`".
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn remove_dependency(
        &self,
        org_id: OrgId,
        task: TaskId,
        depends_on: TaskId,
        journal: &dyn Journal<DependencyRemoved>,
    ) -> Result<DependencyRemoved, WorkError> {
        let now = self.clock.now();
        let journal = |d: &DependencyRemoved| {
            let data = DependencyEventData { task: &d.task, depends_on_task_id: d.depends_on_task_id };
            with(journal.entry(d), event(org_id, Family::Task, "dependency_removed", now, &data, d.task.id.to_string(), d.task.version))
        };
        self.store.remove_dependency(org_id, task, depends_on, now, &journal).await
    }

    /// A live task's dependencies.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn dependencies(&self, org_id: OrgId, task: TaskId) -> Result<Vec<Dependency>, WorkError> {
        self.store.dependencies(org_id, task).await
    }

    // ---- notes

    /// Adds a note to a live task.
    ///
    /// # Errors
    /// `Invalid`, `NotFound`, `Store`.
    pub async fn add_note(&self, org_id: OrgId, task: TaskId, content: &str, journal: &dyn Journal<Note>) -> Result<Note, WorkError> {
        let note = Note {
            id: NoteId::generate(),
            org_id,
            task_id: task,
            content: required_text("content", content, MAX_TEXT_CHARS)?,
            created_at: self.clock.now(),
        };
        self.store.add_note(&note, journal).await?;
        Ok(note)
    }

    /// A live task's notes, newest first.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn notes(&self, org_id: OrgId, task: TaskId, page: &PageRequest) -> Result<Page<Note>, WorkError> {
        self.store.notes(org_id, task, page).await
    }

    // ---- the graph

    /// A project's order, ready tasks and critical paths.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn graph(&self, org_id: OrgId, project: &ProjectRef) -> Result<(Project, Analysis), WorkError> {
        let project = self.project(org_id, project).await?;
        let tasks = self.store.project_tasks(org_id, project.id).await?;
        Ok((project, analyse(&tasks.tasks, &tasks.edges)))
    }
}

fn with(mut entry: JournalEntry, events: Vec<OutboxEvent>) -> JournalEntry {
    entry.events.extend(events);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_the_etag_forms() {
        assert_eq!(parse_if_match("\"3\"").unwrap(), 3);
        assert_eq!(parse_if_match("W/\"4\"").unwrap(), 4);
        assert_eq!(parse_if_match("5").unwrap(), 5);
        assert!(parse_if_match("abc").is_err());
        assert_eq!(etag(7), "\"7\"");
    }
}
