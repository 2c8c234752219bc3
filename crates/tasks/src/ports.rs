//! The port the work use cases need: [`WorkStore`], one method per use case, each committing its
//! effect and its journal entry (run, idempotency outcome, events) in one transaction.
//!
//! The rules that need a consistent view of the data are checked by the store *inside* that
//! transaction, with the pure functions of this crate: the cycle check
//! ([`crate::graph::plan_insertion`] over the [`crate::graph::Region`] between the two ranks,
//! never the whole graph), the parent-cycle check, the blocked check and `If-Match`. Edge
//! changes, rank assignment, parent changes and completions are serialised per organization
//! (PostgreSQL: a transaction-scoped advisory lock; SQLite: its single writer), so two
//! concurrent requests can never together close a cycle or complete a blocked task.

use crate::error::WorkError;
use crate::graph::{GraphEdge, GraphTask};
use crate::model::{Dependency, Note, Project, ProjectId, ProjectPatch, ProjectRef, Task, TaskDetail, TaskFilter, TaskId, TaskPatch};
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest};
use atlas_runs::Journal;
use time::OffsetDateTime;

/// What deleting a project did: the project and every task deleted with it (each one's
/// version moved on), so each gets its own `task.deleted` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectDeleted {
    pub project: Project,
    pub tasks: Vec<Task>,
}

/// What adding a dependency did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyAdded {
    /// The dependent task after the change (its version moved on when `added`).
    pub task: Task,
    pub depends_on_task_id: TaskId,
    /// `false` when the dependency existed already (nothing changed).
    pub added: bool,
    /// How many tasks the insertion re-ranked (0 when the edge respected the order).
    pub reranked: usize,
}

/// What removing a dependency did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyRemoved {
    pub task: Task,
    pub depends_on_task_id: TaskId,
}

/// A project's tasks and the dependencies of those tasks, for the graph answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectTasks {
    pub tasks: Vec<GraphTask>,
    pub edges: Vec<GraphEdge>,
}

/// Where projects, tasks, dependencies and notes live. Every read and write is confined to
/// `org_id`; a deleted project or task is absent to every method but the ones that say so.
#[async_trait]
pub trait WorkStore: Send + Sync + std::fmt::Debug {
    /// Inserts a project.
    ///
    /// # Errors
    /// `DuplicateKey` when a live project of the organization has the key; `Store`.
    async fn create_project(&self, project: &Project, journal: &dyn Journal<Project>) -> Result<(), WorkError>;

    /// One live project.
    ///
    /// # Errors
    /// `Store`.
    async fn project(&self, org_id: OrgId, project: &ProjectRef) -> Result<Option<Project>, WorkError>;

    /// The live projects, newest first.
    ///
    /// # Errors
    /// `Store`.
    async fn projects(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Project>, WorkError>;

    /// Applies `patch` (compare-and-set on `expected_version` when given).
    ///
    /// # Errors
    /// `NotFound`, `VersionConflict`, `DuplicateKey`, `Store`.
    async fn update_project(
        &self,
        org_id: OrgId,
        project: &ProjectRef,
        patch: &ProjectPatch,
        expected_version: Option<i64>,
        at: OffsetDateTime,
        journal: &dyn Journal<Project>,
    ) -> Result<Project, WorkError>;

    /// Soft-deletes a project and its live tasks (their dependencies go with them), returning
    /// the tasks as deleted.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    async fn delete_project(
        &self,
        org_id: OrgId,
        project: &ProjectRef,
        at: OffsetDateTime,
        journal: &dyn Journal<ProjectDeleted>,
    ) -> Result<ProjectDeleted, WorkError>;

    /// Inserts a task into the live project `task.project_id` at the end of the organization's
    /// order (the store assigns `rank`); its parent, when given, is a live task of the same
    /// project.
    ///
    /// # Errors
    /// `NotFound("project")`, `Invalid("parent_task_id")`, `Store`.
    async fn create_task(&self, task: &Task, journal: &dyn Journal<Task>) -> Result<Task, WorkError>;

    /// One live task with its unfinished dependencies.
    ///
    /// # Errors
    /// `Store`.
    async fn task(&self, org_id: OrgId, id: TaskId) -> Result<Option<TaskDetail>, WorkError>;

    /// Live tasks of live projects matching `filter`, newest first.
    ///
    /// # Errors
    /// `Store`.
    async fn tasks(&self, org_id: OrgId, filter: &TaskFilter, page: &PageRequest) -> Result<Page<Task>, WorkError>;

    /// Applies `patch`: `If-Match` (`expected_version`), the blocked check when it completes the
    /// task, the parent checks (a live task of the same project, no cycle of parents).
    ///
    /// # Errors
    /// `NotFound`, `VersionConflict`, `Blocked`, `Cycle`, `Invalid("parent_task_id")`, `Store`.
    async fn update_task(
        &self,
        org_id: OrgId,
        id: TaskId,
        patch: &TaskPatch,
        expected_version: Option<i64>,
        at: OffsetDateTime,
        journal: &dyn Journal<Task>,
    ) -> Result<Task, WorkError>;

    /// Soft-deletes a task: hidden from then on, its dependencies (both ways) removed, so it
    /// blocks nobody; its subtasks lose their parent.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    async fn delete_task(&self, org_id: OrgId, id: TaskId, at: OffsetDateTime, journal: &dyn Journal<Task>) -> Result<Task, WorkError>;

    /// Adds "`task` depends on `depends_on`" (any live task of the organization): refused with
    /// the cycle it would close; a duplicate changes nothing (and journals `added: false`).
    ///
    /// # Errors
    /// `NotFound("task")` (either task), `Cycle`, `Store`.
    async fn add_dependency(
        &self,
        org_id: OrgId,
        task: TaskId,
        depends_on: TaskId,
        at: OffsetDateTime,
        journal: &dyn Journal<DependencyAdded>,
    ) -> Result<DependencyAdded, WorkError>;

    /// Removes "`task` depends on `depends_on`".
    ///
    /// # Errors
    /// `NotFound("task")` or `NotFound("dependency")`, `Store`.
    async fn remove_dependency(
        &self,
        org_id: OrgId,
        task: TaskId,
        depends_on: TaskId,
        at: OffsetDateTime,
        journal: &dyn Journal<DependencyRemoved>,
    ) -> Result<DependencyRemoved, WorkError>;

    /// The live dependencies of a live task, in the order (dependencies first).
    ///
    /// # Errors
    /// `NotFound("task")`, `Store`.
    async fn dependencies(&self, org_id: OrgId, task: TaskId) -> Result<Vec<Dependency>, WorkError>;

    /// Adds a note to a live task.
    ///
    /// # Errors
    /// `NotFound("task")`, `Store`.
    async fn add_note(&self, note: &Note, journal: &dyn Journal<Note>) -> Result<(), WorkError>;

    /// A live task's notes, newest first.
    ///
    /// # Errors
    /// `NotFound("task")`, `Store`.
    async fn notes(&self, org_id: OrgId, task: TaskId, page: &PageRequest) -> Result<Page<Note>, WorkError>;

    /// A live project's live tasks and their dependencies (with the status of what they depend
    /// on, in any project).
    ///
    /// # Errors
    /// `NotFound("project")`, `Store`.
    async fn project_tasks(&self, org_id: OrgId, project: ProjectId) -> Result<ProjectTasks, WorkError>;
}
