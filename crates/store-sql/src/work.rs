//! `WorkStore` for [`SqlStore`]: projects, tasks, dependencies and notes, one transaction per
//! use case, written in plain SQL that runs unchanged on both backends (`$n` parameters become
//! `?n` on SQLite).
//!
//! The dependency graph is never loaded whole. Adding "`task` depends on `depends_on`" reads the
//! two tasks' ranks; an edge that respects the order is inserted at once (`ON CONFLICT DO
//! NOTHING`: a duplicate is a no-op); otherwise only the edges whose both ends rank between the
//! two are read into a [`Region`], `atlas_tasks::plan_insertion` decides (the cycle, or the
//! re-ranking of the tasks it found) and one `UPDATE` moves the ranks.
//!
//! Serialisation: every change that could race another into a cycle or a blocked completion
//! (adding a dependency, creating a task, which takes the next rank, changing a parent,
//! completing a task) first takes the organization's transaction-scoped advisory lock on
//! PostgreSQL (`pg_advisory_xact_lock`); on SQLite the one connection serialises every
//! transaction already.

use crate::conversations::{begin, commit};
use crate::convert::{corrupt, from_us, from_us_opt, to_us};
use crate::error::{db, Failure};
use crate::journal::write_journal;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::Journal;
use atlas_tasks::{
    plan_insertion, Dependency, DependencyAdded, DependencyRemoved, GraphEdge, GraphTask, Insertion, Note, NoteId, Priority, Project,
    ProjectDeleted, ProjectId, ProjectPatch, ProjectRef, ProjectTasks, Region, Task, TaskDetail, TaskFilter, TaskId, TaskPatch, TaskStatus,
    WorkError, WorkStore,
};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr, FromQueryResult, SqlErr, Statement, Value};
use uuid::Uuid;

impl From<Failure> for WorkError {
    fn from(f: Failure) -> Self {
        WorkError::Store(f.into())
    }
}

const PROJECT_COLUMNS: &str = "id, org_id, key, name, description, version, created_at_us, updated_at_us";
const TASK_COLUMNS: &str = r#"id, org_id, project_id, parent_id, title, description, status, priority, due_at_us, assignee, "rank", version, created_at_us, updated_at_us, completed_at_us"#;

/// The most rank moves one `UPDATE` carries (two parameters each).
const MOVES_PER_UPDATE: usize = 4_000;

#[derive(Debug, FromQueryResult)]
struct ProjectRow {
    id: Uuid,
    org_id: Uuid,
    key: String,
    name: String,
    description: Option<String>,
    version: i64,
    created_at_us: i64,
    updated_at_us: i64,
}

impl ProjectRow {
    fn into_project(self) -> Result<Project, StoreError> {
        Ok(Project {
            id: ProjectId::from_uuid(self.id),
            org_id: OrgId::from_uuid(self.org_id),
            key: self.key,
            name: self.name,
            description: self.description,
            version: self.version,
            created_at: from_us(self.created_at_us)?,
            updated_at: from_us(self.updated_at_us)?,
        })
    }
}

#[derive(Debug, FromQueryResult)]
struct TaskRow {
    id: Uuid,
    org_id: Uuid,
    project_id: Uuid,
    parent_id: Option<Uuid>,
    title: String,
    description: Option<String>,
    status: String,
    priority: String,
    due_at_us: Option<i64>,
    assignee: Option<String>,
    rank: i64,
    version: i64,
    created_at_us: i64,
    updated_at_us: i64,
    completed_at_us: Option<i64>,
}

fn status_from_column(text: &str) -> Result<TaskStatus, StoreError> {
    TaskStatus::parse(text).ok_or_else(|| corrupt("reading a task", format!("unknown status `{text}`")))
}

impl TaskRow {
    fn into_task(self) -> Result<Task, StoreError> {
        Ok(Task {
            id: TaskId::from_uuid(self.id),
            org_id: OrgId::from_uuid(self.org_id),
            project_id: ProjectId::from_uuid(self.project_id),
            parent_task_id: self.parent_id.map(TaskId::from_uuid),
            title: self.title,
            description: self.description,
            status: status_from_column(&self.status)?,
            priority: Priority::parse(&self.priority)
                .ok_or_else(|| corrupt("reading a task", format!("unknown priority `{}`", self.priority)))?,
            due_on: from_us_opt(self.due_at_us)?,
            assignee: self.assignee,
            rank: self.rank,
            version: self.version,
            created_at: from_us(self.created_at_us)?,
            updated_at: from_us(self.updated_at_us)?,
            completed_at: from_us_opt(self.completed_at_us)?,
        })
    }
}

#[derive(Debug, FromQueryResult)]
struct NoteRow {
    id: Uuid,
    org_id: Uuid,
    task_id: Uuid,
    content: String,
    created_at_us: i64,
}

#[derive(Debug, FromQueryResult)]
struct EdgeRow {
    task_id: Uuid,
    task_rank: i64,
    depends_on_id: Uuid,
    depends_on_rank: i64,
}

#[derive(Debug, FromQueryResult)]
struct DependencyRow {
    task_id: Uuid,
    depends_on_id: Uuid,
    title: String,
    status: String,
}

#[derive(Debug, FromQueryResult)]
struct IdRow {
    id: Uuid,
}

#[derive(Debug, FromQueryResult)]
struct GraphTaskRow {
    id: Uuid,
    status: String,
    due_at_us: Option<i64>,
    rank: i64,
}

#[derive(Debug, FromQueryResult)]
struct GraphEdgeRow {
    task_id: Uuid,
    depends_on_id: Uuid,
    status: String,
}

/// Whether `err` is the violation of the project-key index.
fn is_duplicate_key(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(m)) if m.contains("ux_projects_org_key") || m.contains("projects.key"))
}

/// The keyset condition "older than the cursor" on `created_at_us` and `id`, with its values
/// appended to `values`.
fn before_cursor(page: &PageRequest, prefix: &str, values: &mut Vec<Value>) -> String {
    match &page.after {
        None => String::new(),
        Some(cursor) => {
            values.push(to_us(cursor.created_at).into());
            let at = values.len();
            values.push(cursor.id.into());
            let id = values.len();
            format!(" AND ({prefix}created_at_us < ${at} OR ({prefix}created_at_us = ${at} AND {prefix}id < ${id}))")
        }
    }
}

impl SqlStore {
    /// A statement for this store's backend: `$n` parameters become `?n` on SQLite.
    fn sql(&self, text: &str, values: Vec<Value>) -> Statement {
        let backend = self.db.get_database_backend();
        let text = if backend == DatabaseBackend::Sqlite { text.replace('$', "?") } else { text.to_owned() };
        Statement::from_sql_and_values(backend, text, values)
    }

    /// `FOR UPDATE` on PostgreSQL, nothing on SQLite.
    fn locking(&self) -> &'static str {
        if self.is_postgres() {
            " FOR UPDATE"
        } else {
            ""
        }
    }

    /// Serialises the organization's graph changes (PostgreSQL; SQLite's one writer already does).
    async fn lock_work(&self, txn: &DatabaseTransaction, org_id: OrgId) -> Result<(), Failure> {
        if self.is_postgres() {
            txn.execute(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [format!("atlas.work:{org_id}").into()],
            ))
            .await
            .map_err(db("locking the organization's task graph"))?;
        }
        Ok(())
    }

    async fn project_row(
        &self,
        conn: &impl ConnectionTrait,
        org_id: OrgId,
        project: &ProjectRef,
        lock: bool,
    ) -> Result<Option<ProjectRow>, Failure> {
        let (column, value): (&str, Value) = match project {
            ProjectRef::Id(id) => ("id", id.as_uuid().into()),
            ProjectRef::Key(key) => ("key", key.clone().into()),
        };
        let text = format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE org_id = $1 AND {column} = $2 AND deleted_at_us IS NULL{}",
            if lock { self.locking() } else { "" }
        );
        ProjectRow::find_by_statement(self.sql(&text, vec![org_id.as_uuid().into(), value]))
            .one(conn)
            .await
            .map_err(db("reading a project"))
    }

    async fn task_row(&self, conn: &impl ConnectionTrait, org_id: OrgId, id: TaskId, lock: bool) -> Result<Option<Task>, Failure> {
        let text = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE org_id = $1 AND id = $2 AND deleted_at_us IS NULL{}",
            if lock { self.locking() } else { "" }
        );
        let row = TaskRow::find_by_statement(self.sql(&text, vec![org_id.as_uuid().into(), id.as_uuid().into()]))
            .one(conn)
            .await
            .map_err(db("reading a task"))?;
        Ok(row.map(TaskRow::into_task).transpose()?)
    }

    /// The live, unfinished tasks `id` depends on, in the order.
    async fn blocked_by(&self, conn: &impl ConnectionTrait, org_id: OrgId, id: TaskId) -> Result<Vec<TaskId>, Failure> {
        let rows = IdRow::find_by_statement(self.sql(
            r#"SELECT o.id AS id FROM task_dependencies d JOIN tasks o ON o.id = d.depends_on_id
               WHERE d.org_id = $1 AND d.task_id = $2 AND o.deleted_at_us IS NULL AND o.status NOT IN ('done', 'cancelled')
               ORDER BY o."rank""#,
            vec![org_id.as_uuid().into(), id.as_uuid().into()],
        ))
        .all(conn)
        .await
        .map_err(db("reading what blocks a task"))?;
        Ok(rows.into_iter().map(|r| TaskId::from_uuid(r.id)).collect())
    }

    async fn write_task(&self, txn: &DatabaseTransaction, task: &Task) -> Result<(), Failure> {
        txn.execute(self.sql(
            r#"UPDATE tasks SET parent_id = $3, title = $4, description = $5, status = $6, priority = $7, due_at_us = $8,
               assignee = $9, version = $10, updated_at_us = $11, completed_at_us = $12 WHERE org_id = $1 AND id = $2"#,
            vec![
                task.org_id.as_uuid().into(),
                task.id.as_uuid().into(),
                task.parent_task_id.map(|p| p.as_uuid()).into(),
                task.title.clone().into(),
                task.description.clone().into(),
                task.status.as_str().into(),
                task.priority.as_str().into(),
                task.due_on.map(to_us).into(),
                task.assignee.clone().into(),
                task.version.into(),
                to_us(task.updated_at).into(),
                task.completed_at.map(to_us).into(),
            ],
        ))
        .await
        .map_err(db("updating a task"))?;
        Ok(())
    }

    /// Checks that `parent` is a live task of `project` and that `task` is not among its
    /// ancestors (the cycle path when it is: `task`, its would-be parent, …, `task`).
    async fn check_parent(
        &self,
        txn: &DatabaseTransaction,
        org_id: OrgId,
        project: ProjectId,
        parent: TaskId,
        task: Option<TaskId>,
    ) -> Result<(), WorkError> {
        let Some(found) = self.task_row(txn, org_id, parent, false).await? else {
            return Err(WorkError::invalid("parent_task_id", "no such task"));
        };
        if found.project_id != project {
            return Err(WorkError::invalid("parent_task_id", "must be a task of the same project"));
        }
        let Some(task) = task else { return Ok(()) };
        let rows = IdRow::find_by_statement(self.sql(
            r#"WITH RECURSIVE up(id, parent_id, depth) AS (
                   SELECT id, parent_id, 0 FROM tasks WHERE org_id = $1 AND id = $2
                   UNION ALL
                   SELECT t.id, t.parent_id, up.depth + 1 FROM tasks t JOIN up ON t.id = up.parent_id
                   WHERE t.org_id = $1 AND up.depth < 100000
               ) SELECT id FROM up ORDER BY depth"#,
            vec![org_id.as_uuid().into(), parent.as_uuid().into()],
        ))
        .all(txn)
        .await
        .map_err(db("walking up the parents"))?;
        let chain: Vec<TaskId> = rows.into_iter().map(|r| TaskId::from_uuid(r.id)).collect();
        if let Some(at) = chain.iter().position(|t| *t == task) {
            let mut path = vec![task];
            path.extend_from_slice(&chain[..=at]);
            return Err(WorkError::Cycle { path });
        }
        Ok(())
    }

    /// Removes every dependency of and on the tasks `WHERE` selects (`tasks_where` over `tasks`,
    /// with the given values, `$1` being the organization).
    async fn drop_edges(&self, txn: &DatabaseTransaction, tasks_where: &str, values: Vec<Value>) -> Result<(), Failure> {
        let text = format!(
            "DELETE FROM task_dependencies WHERE org_id = $1 AND (task_id IN (SELECT id FROM tasks WHERE {tasks_where}) \
             OR depends_on_id IN (SELECT id FROM tasks WHERE {tasks_where}))"
        );
        txn.execute(self.sql(&text, values)).await.map_err(db("removing dependencies"))?;
        Ok(())
    }
}

fn task_page(rows: Vec<TaskRow>, page: &PageRequest) -> Result<Page<Task>, StoreError> {
    let tasks = rows.into_iter().map(TaskRow::into_task).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(tasks, page, |t| (t.created_at, t.id.as_uuid())))
}

#[async_trait]
impl WorkStore for SqlStore {
    async fn create_project(&self, project: &Project, journal: &dyn Journal<Project>) -> Result<(), WorkError> {
        let txn = begin(&self.db).await?;
        let inserted = txn
            .execute(self.sql(
                &format!("INSERT INTO projects ({PROJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                vec![
                    project.id.as_uuid().into(),
                    project.org_id.as_uuid().into(),
                    project.key.clone().into(),
                    project.name.clone().into(),
                    project.description.clone().into(),
                    project.version.into(),
                    to_us(project.created_at).into(),
                    to_us(project.updated_at).into(),
                ],
            ))
            .await;
        match inserted {
            Err(e) if is_duplicate_key(&e) => return Err(WorkError::DuplicateKey),
            other => {
                other.map_err(db("inserting a project"))?;
            }
        }
        write_journal(&txn, &journal.entry(project)).await?;
        commit(txn, "committing a project").await?;
        Ok(())
    }

    async fn project(&self, org_id: OrgId, project: &ProjectRef) -> Result<Option<Project>, WorkError> {
        let row = self.project_row(&self.db, org_id, project, false).await?;
        Ok(row.map(ProjectRow::into_project).transpose()?)
    }

    async fn projects(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Project>, WorkError> {
        let mut values: Vec<Value> = vec![org_id.as_uuid().into()];
        let cursor = before_cursor(page, "", &mut values);
        let text = format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE org_id = $1 AND deleted_at_us IS NULL{cursor} \
             ORDER BY created_at_us DESC, id DESC LIMIT {}",
            page.fetch_limit()
        );
        let rows = ProjectRow::find_by_statement(self.sql(&text, values)).all(&self.db).await.map_err(db("listing projects"))?;
        let projects = rows.into_iter().map(ProjectRow::into_project).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(projects, page, |p| (p.created_at, p.id.as_uuid())))
    }

    async fn update_project(
        &self,
        org_id: OrgId,
        project: &ProjectRef,
        patch: &ProjectPatch,
        expected_version: Option<i64>,
        at: time::OffsetDateTime,
        journal: &dyn Journal<Project>,
    ) -> Result<Project, WorkError> {
        let txn = begin(&self.db).await?;
        let Some(row) = self.project_row(&txn, org_id, project, true).await? else {
            return Err(WorkError::NotFound("project"));
        };
        let mut project = row.into_project()?;
        if let Some(expected) = expected_version {
            if expected != project.version {
                return Err(WorkError::VersionConflict { current: project.version });
            }
        }
        if let Some(key) = &patch.key {
            project.key = key.clone();
        }
        if let Some(name) = &patch.name {
            project.name = name.clone();
        }
        if let Some(description) = &patch.description {
            project.description = description.clone();
        }
        project.version += 1;
        project.updated_at = at;
        let updated = txn
            .execute(self.sql(
                "UPDATE projects SET key = $3, name = $4, description = $5, version = $6, updated_at_us = $7 WHERE org_id = $1 AND id = $2",
                vec![
                    org_id.as_uuid().into(),
                    project.id.as_uuid().into(),
                    project.key.clone().into(),
                    project.name.clone().into(),
                    project.description.clone().into(),
                    project.version.into(),
                    to_us(at).into(),
                ],
            ))
            .await;
        match updated {
            Err(e) if is_duplicate_key(&e) => return Err(WorkError::DuplicateKey),
            other => {
                other.map_err(db("updating a project"))?;
            }
        }
        write_journal(&txn, &journal.entry(&project)).await?;
        commit(txn, "committing a project change").await?;
        Ok(project)
    }

    async fn delete_project(
        &self,
        org_id: OrgId,
        project: &ProjectRef,
        at: time::OffsetDateTime,
        journal: &dyn Journal<ProjectDeleted>,
    ) -> Result<ProjectDeleted, WorkError> {
        let txn = begin(&self.db).await?;
        let Some(row) = self.project_row(&txn, org_id, project, true).await? else {
            return Err(WorkError::NotFound("project"));
        };
        let mut project = row.into_project()?;
        project.version += 1;
        project.updated_at = at;
        let org: Value = org_id.as_uuid().into();
        let id: Value = project.id.as_uuid().into();
        txn.execute(self.sql(
            "UPDATE projects SET deleted_at_us = $3, version = $4, updated_at_us = $3 WHERE org_id = $1 AND id = $2",
            vec![org.clone(), id.clone(), to_us(at).into(), project.version.into()],
        ))
        .await
        .map_err(db("deleting a project"))?;
        self.drop_edges(&txn, "org_id = $1 AND project_id = $2", vec![org.clone(), id.clone()]).await?;
        let rows = TaskRow::find_by_statement(self.sql(
            &format!(
                "UPDATE tasks SET deleted_at_us = $3, version = version + 1, updated_at_us = $3 \
                 WHERE org_id = $1 AND project_id = $2 AND deleted_at_us IS NULL RETURNING {TASK_COLUMNS}"
            ),
            vec![org, id, to_us(at).into()],
        ))
        .all(&txn)
        .await
        .map_err(db("deleting a project's tasks"))?;
        let mut tasks = rows.into_iter().map(TaskRow::into_task).collect::<Result<Vec<_>, _>>()?;
        tasks.sort_by_key(|t| t.rank);
        let deleted = ProjectDeleted { project, tasks };
        write_journal(&txn, &journal.entry(&deleted)).await?;
        commit(txn, "committing a project deletion").await?;
        Ok(deleted)
    }

    async fn create_task(&self, task: &Task, journal: &dyn Journal<Task>) -> Result<Task, WorkError> {
        let txn = begin(&self.db).await?;
        self.lock_work(&txn, task.org_id).await?;
        if let Some(parent) = task.parent_task_id {
            self.check_parent(&txn, task.org_id, task.project_id, parent, None).await?;
        }
        let text = format!(
            r#"INSERT INTO tasks ({TASK_COLUMNS}, deleted_at_us)
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                      (SELECT COALESCE(MAX("rank"), 0) + 1 FROM tasks WHERE org_id = $2), $11, $12, $13, $14, NULL
               WHERE EXISTS (SELECT 1 FROM projects WHERE org_id = $2 AND id = $3 AND deleted_at_us IS NULL)
               RETURNING "rank""#
        );
        let row = txn
            .query_one(self.sql(
                &text,
                vec![
                    task.id.as_uuid().into(),
                    task.org_id.as_uuid().into(),
                    task.project_id.as_uuid().into(),
                    task.parent_task_id.map(|p| p.as_uuid()).into(),
                    task.title.clone().into(),
                    task.description.clone().into(),
                    task.status.as_str().into(),
                    task.priority.as_str().into(),
                    task.due_on.map(to_us).into(),
                    task.assignee.clone().into(),
                    task.version.into(),
                    to_us(task.created_at).into(),
                    to_us(task.updated_at).into(),
                    task.completed_at.map(to_us).into(),
                ],
            ))
            .await
            .map_err(db("inserting a task"))?;
        let Some(row) = row else { return Err(WorkError::NotFound("project")) };
        let rank: i64 = row.try_get("", "rank").map_err(db("reading a new task's rank"))?;
        let created = Task { rank, ..task.clone() };
        write_journal(&txn, &journal.entry(&created)).await?;
        commit(txn, "committing a task").await?;
        Ok(created)
    }

    async fn task(&self, org_id: OrgId, id: TaskId) -> Result<Option<TaskDetail>, WorkError> {
        let Some(task) = self.task_row(&self.db, org_id, id, false).await? else { return Ok(None) };
        let blocked_by = self.blocked_by(&self.db, org_id, id).await?;
        Ok(Some(TaskDetail { task, blocked_by }))
    }

    async fn tasks(&self, org_id: OrgId, filter: &TaskFilter, page: &PageRequest) -> Result<Page<Task>, WorkError> {
        let mut values: Vec<Value> = vec![org_id.as_uuid().into()];
        let mut conditions = String::new();
        let mut add = |column: &str, value: Value, values: &mut Vec<Value>| {
            values.push(value);
            conditions.push_str(&format!(" AND {column} = ${}", values.len()));
        };
        if let Some(project) = filter.project_id {
            add("project_id", project.as_uuid().into(), &mut values);
        }
        if let Some(status) = filter.status {
            add("status", status.as_str().into(), &mut values);
        }
        if let Some(priority) = filter.priority {
            add("priority", priority.as_str().into(), &mut values);
        }
        if let Some(assignee) = &filter.assignee {
            add("assignee", assignee.clone().into(), &mut values);
        }
        if let Some(parent) = filter.parent_task_id {
            add("parent_id", parent.as_uuid().into(), &mut values);
        }
        let cursor = before_cursor(page, "", &mut values);
        let text = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE org_id = $1 AND deleted_at_us IS NULL{conditions}{cursor} \
             ORDER BY created_at_us DESC, id DESC LIMIT {}",
            page.fetch_limit()
        );
        let rows = TaskRow::find_by_statement(self.sql(&text, values)).all(&self.db).await.map_err(db("listing tasks"))?;
        Ok(task_page(rows, page)?)
    }

    async fn update_task(
        &self,
        org_id: OrgId,
        id: TaskId,
        patch: &TaskPatch,
        expected_version: Option<i64>,
        at: time::OffsetDateTime,
        journal: &dyn Journal<Task>,
    ) -> Result<Task, WorkError> {
        let txn = begin(&self.db).await?;
        let serialise = patch.status == Some(TaskStatus::Done) || matches!(patch.parent_task_id, Some(Some(_)));
        if serialise {
            self.lock_work(&txn, org_id).await?;
        }
        let Some(task) = self.task_row(&txn, org_id, id, true).await? else {
            return Err(WorkError::NotFound("task"));
        };
        if let Some(expected) = expected_version {
            if expected != task.version {
                return Err(WorkError::VersionConflict { current: task.version });
            }
        }
        if patch.completes(&task) {
            let blocked_by = self.blocked_by(&txn, org_id, id).await?;
            if !blocked_by.is_empty() {
                return Err(WorkError::Blocked { blocked_by });
            }
        }
        if let Some(parent) = patch.new_parent(&task) {
            self.check_parent(&txn, org_id, task.project_id, parent, Some(id)).await?;
        }
        let next = patch.apply(&task, at);
        self.write_task(&txn, &next).await?;
        write_journal(&txn, &journal.entry(&next)).await?;
        commit(txn, "committing a task change").await?;
        Ok(next)
    }

    async fn delete_task(
        &self,
        org_id: OrgId,
        id: TaskId,
        at: time::OffsetDateTime,
        journal: &dyn Journal<Task>,
    ) -> Result<Task, WorkError> {
        let txn = begin(&self.db).await?;
        let Some(mut task) = self.task_row(&txn, org_id, id, true).await? else {
            return Err(WorkError::NotFound("task"));
        };
        task.version += 1;
        task.updated_at = at;
        let org: Value = org_id.as_uuid().into();
        let tid: Value = id.as_uuid().into();
        txn.execute(self.sql(
            "UPDATE tasks SET deleted_at_us = $3, version = $4, updated_at_us = $3 WHERE org_id = $1 AND id = $2",
            vec![org.clone(), tid.clone(), to_us(at).into(), task.version.into()],
        ))
        .await
        .map_err(db("deleting a task"))?;
        txn.execute(self.sql(
            "DELETE FROM task_dependencies WHERE org_id = $1 AND (task_id = $2 OR depends_on_id = $2)",
            vec![org.clone(), tid.clone()],
        ))
        .await
        .map_err(db("removing a deleted task's dependencies"))?;
        txn.execute(self.sql("UPDATE tasks SET parent_id = NULL WHERE org_id = $1 AND parent_id = $2", vec![org, tid]))
            .await
            .map_err(db("detaching a deleted task's subtasks"))?;
        write_journal(&txn, &journal.entry(&task)).await?;
        commit(txn, "committing a task deletion").await?;
        Ok(task)
    }

    async fn add_dependency(
        &self,
        org_id: OrgId,
        task_id: TaskId,
        depends_on: TaskId,
        at: time::OffsetDateTime,
        journal: &dyn Journal<DependencyAdded>,
    ) -> Result<DependencyAdded, WorkError> {
        if task_id == depends_on {
            return Err(WorkError::Cycle { path: vec![task_id, task_id] });
        }
        let txn = begin(&self.db).await?;
        self.lock_work(&txn, org_id).await?;
        let rows = TaskRow::find_by_statement(self.sql(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE org_id = $1 AND id IN ($2, $3) AND deleted_at_us IS NULL"),
            vec![org_id.as_uuid().into(), task_id.as_uuid().into(), depends_on.as_uuid().into()],
        ))
        .all(&txn)
        .await
        .map_err(db("reading the tasks of a dependency"))?;
        let mut task = None;
        let mut dependency_rank = None;
        for row in rows {
            let t = row.into_task()?;
            if t.id == depends_on {
                dependency_rank = Some(t.rank);
            }
            if t.id == task_id {
                task = Some(t);
            }
        }
        let (Some(mut task), Some(dependency_rank)) = (task, dependency_rank) else {
            return Err(WorkError::NotFound("task"));
        };
        let mut reranked = 0;
        if dependency_rank > task.rank {
            // Out of order: decide on the region between the two ranks only. Both ends name the
            // organization so `ix_tasks_org_rank` bounds the scan by (org_id, rank), not by rank
            // alone over every organization's tasks.
            let edges = EdgeRow::find_by_statement(self.sql(
                r#"SELECT d.task_id AS task_id, t."rank" AS task_rank, d.depends_on_id AS depends_on_id, o."rank" AS depends_on_rank
                   FROM task_dependencies d JOIN tasks t ON t.id = d.task_id JOIN tasks o ON o.id = d.depends_on_id
                   WHERE d.org_id = $1 AND t.org_id = $1 AND o.org_id = $1
                     AND t."rank" BETWEEN $2 AND $3 AND o."rank" BETWEEN $2 AND $3"#,
                vec![org_id.as_uuid().into(), task.rank.into(), dependency_rank.into()],
            ))
            .all(&txn)
            .await
            .map_err(db("reading the affected region of the graph"))?;
            let mut region = Region::new();
            region.task(task.id, task.rank);
            region.task(depends_on, dependency_rank);
            for e in &edges {
                region.task(TaskId::from_uuid(e.task_id), e.task_rank);
                region.task(TaskId::from_uuid(e.depends_on_id), e.depends_on_rank);
                region.edge(TaskId::from_uuid(e.task_id), TaskId::from_uuid(e.depends_on_id));
            }
            match plan_insertion(&region, task.id, depends_on) {
                Err(cycle) => return Err(WorkError::Cycle { path: cycle.path }),
                Ok(Insertion::InOrder) => {}
                Ok(Insertion::Reranked(moves)) => {
                    reranked = moves.len();
                    for chunk in moves.chunks(MOVES_PER_UPDATE) {
                        let mut values: Vec<Value> = vec![org_id.as_uuid().into()];
                        let mut cases = String::new();
                        let mut ids = Vec::new();
                        for (t, rank) in chunk {
                            values.push(t.as_uuid().into());
                            let id_at = values.len();
                            values.push((*rank).into());
                            cases.push_str(&format!(" WHEN ${id_at} THEN ${}", values.len()));
                            ids.push(format!("${id_at}"));
                            if *t == task.id {
                                task.rank = *rank;
                            }
                        }
                        let text =
                            format!(r#"UPDATE tasks SET "rank" = CASE id{cases} END WHERE org_id = $1 AND id IN ({})"#, ids.join(", "));
                        txn.execute(self.sql(&text, values)).await.map_err(db("re-ranking the affected region"))?;
                    }
                }
            }
        }
        let inserted = txn
            .execute(self.sql(
                "INSERT INTO task_dependencies (org_id, task_id, depends_on_id, created_at_us) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (task_id, depends_on_id) DO NOTHING",
                vec![org_id.as_uuid().into(), task_id.as_uuid().into(), depends_on.as_uuid().into(), to_us(at).into()],
            ))
            .await
            .map_err(db("inserting a dependency"))?;
        let added = inserted.rows_affected() == 1;
        if added {
            task.version += 1;
            task.updated_at = at;
            txn.execute(self.sql(
                "UPDATE tasks SET version = $3, updated_at_us = $4 WHERE org_id = $1 AND id = $2",
                vec![org_id.as_uuid().into(), task_id.as_uuid().into(), task.version.into(), to_us(at).into()],
            ))
            .await
            .map_err(db("moving a task's version on"))?;
        }
        let outcome = DependencyAdded { task, depends_on_task_id: depends_on, added, reranked };
        write_journal(&txn, &journal.entry(&outcome)).await?;
        commit(txn, "committing a dependency").await?;
        Ok(outcome)
    }

    async fn remove_dependency(
        &self,
        org_id: OrgId,
        task_id: TaskId,
        depends_on: TaskId,
        at: time::OffsetDateTime,
        journal: &dyn Journal<DependencyRemoved>,
    ) -> Result<DependencyRemoved, WorkError> {
        let txn = begin(&self.db).await?;
        let Some(mut task) = self.task_row(&txn, org_id, task_id, true).await? else {
            return Err(WorkError::NotFound("task"));
        };
        let removed = txn
            .execute(self.sql(
                "DELETE FROM task_dependencies WHERE org_id = $1 AND task_id = $2 AND depends_on_id = $3",
                vec![org_id.as_uuid().into(), task_id.as_uuid().into(), depends_on.as_uuid().into()],
            ))
            .await
            .map_err(db("removing a dependency"))?;
        if removed.rows_affected() == 0 {
            return Err(WorkError::NotFound("dependency"));
        }
        task.version += 1;
        task.updated_at = at;
        txn.execute(self.sql(
            "UPDATE tasks SET version = $3, updated_at_us = $4 WHERE org_id = $1 AND id = $2",
            vec![org_id.as_uuid().into(), task_id.as_uuid().into(), task.version.into(), to_us(at).into()],
        ))
        .await
        .map_err(db("moving a task's version on"))?;
        let outcome = DependencyRemoved { task, depends_on_task_id: depends_on };
        write_journal(&txn, &journal.entry(&outcome)).await?;
        commit(txn, "committing a dependency removal").await?;
        Ok(outcome)
    }

    async fn dependencies(&self, org_id: OrgId, task: TaskId) -> Result<Vec<Dependency>, WorkError> {
        if self.task_row(&self.db, org_id, task, false).await?.is_none() {
            return Err(WorkError::NotFound("task"));
        }
        let rows = DependencyRow::find_by_statement(self.sql(
            r#"SELECT d.task_id AS task_id, d.depends_on_id AS depends_on_id, o.title AS title, o.status AS status
               FROM task_dependencies d JOIN tasks o ON o.id = d.depends_on_id
               WHERE d.org_id = $1 AND d.task_id = $2 AND o.deleted_at_us IS NULL ORDER BY o."rank""#,
            vec![org_id.as_uuid().into(), task.as_uuid().into()],
        ))
        .all(&self.db)
        .await
        .map_err(db("listing dependencies"))?;
        rows.into_iter()
            .map(|r| {
                let status = status_from_column(&r.status)?;
                Ok(Dependency {
                    task_id: TaskId::from_uuid(r.task_id),
                    depends_on_task_id: TaskId::from_uuid(r.depends_on_id),
                    title: r.title,
                    status,
                    blocking: !status.is_finished(),
                })
            })
            .collect()
    }

    async fn add_note(&self, note: &Note, journal: &dyn Journal<Note>) -> Result<(), WorkError> {
        let txn = begin(&self.db).await?;
        let inserted = txn
            .execute(self.sql(
                "INSERT INTO task_notes (id, org_id, task_id, content, created_at_us) SELECT $1, $2, $3, $4, $5 \
                 WHERE EXISTS (SELECT 1 FROM tasks WHERE org_id = $2 AND id = $3 AND deleted_at_us IS NULL)",
                vec![
                    note.id.as_uuid().into(),
                    note.org_id.as_uuid().into(),
                    note.task_id.as_uuid().into(),
                    note.content.clone().into(),
                    to_us(note.created_at).into(),
                ],
            ))
            .await
            .map_err(db("inserting a note"))?;
        if inserted.rows_affected() == 0 {
            return Err(WorkError::NotFound("task"));
        }
        write_journal(&txn, &journal.entry(note)).await?;
        commit(txn, "committing a note").await?;
        Ok(())
    }

    async fn notes(&self, org_id: OrgId, task: TaskId, page: &PageRequest) -> Result<Page<Note>, WorkError> {
        if self.task_row(&self.db, org_id, task, false).await?.is_none() {
            return Err(WorkError::NotFound("task"));
        }
        let mut values: Vec<Value> = vec![org_id.as_uuid().into(), task.as_uuid().into()];
        let cursor = before_cursor(page, "", &mut values);
        let text = format!(
            "SELECT id, org_id, task_id, content, created_at_us FROM task_notes WHERE org_id = $1 AND task_id = $2{cursor} \
             ORDER BY created_at_us DESC, id DESC LIMIT {}",
            page.fetch_limit()
        );
        let rows = NoteRow::find_by_statement(self.sql(&text, values)).all(&self.db).await.map_err(db("listing notes"))?;
        let notes = rows
            .into_iter()
            .map(|r| {
                Ok(Note {
                    id: NoteId::from_uuid(r.id),
                    org_id: OrgId::from_uuid(r.org_id),
                    task_id: TaskId::from_uuid(r.task_id),
                    content: r.content,
                    created_at: from_us(r.created_at_us)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Page::from_rows(notes, page, |n| (n.created_at, n.id.as_uuid())))
    }

    async fn project_tasks(&self, org_id: OrgId, project: ProjectId) -> Result<ProjectTasks, WorkError> {
        let values = || vec![Value::from(org_id.as_uuid()), Value::from(project.as_uuid())];
        let tasks = GraphTaskRow::find_by_statement(self.sql(
            r#"SELECT id, status, due_at_us, "rank" FROM tasks WHERE org_id = $1 AND project_id = $2 AND deleted_at_us IS NULL ORDER BY "rank""#,
            values(),
        ))
        .all(&self.db)
        .await
        .map_err(db("reading a project's tasks"))?;
        let edges = GraphEdgeRow::find_by_statement(self.sql(
            r#"SELECT d.task_id AS task_id, d.depends_on_id AS depends_on_id, o.status AS status
               FROM task_dependencies d JOIN tasks t ON t.id = d.task_id JOIN tasks o ON o.id = d.depends_on_id
               WHERE d.org_id = $1 AND t.project_id = $2 AND t.deleted_at_us IS NULL AND o.deleted_at_us IS NULL"#,
            values(),
        ))
        .all(&self.db)
        .await
        .map_err(db("reading a project's dependencies"))?;
        let tasks = tasks
            .into_iter()
            .map(|r| {
                Ok(GraphTask {
                    id: TaskId::from_uuid(r.id),
                    status: status_from_column(&r.status)?,
                    due_on: from_us_opt(r.due_at_us)?,
                    rank: r.rank,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let edges = edges
            .into_iter()
            .map(|r| {
                Ok(GraphEdge {
                    task: TaskId::from_uuid(r.task_id),
                    depends_on: TaskId::from_uuid(r.depends_on_id),
                    depends_on_status: status_from_column(&r.status)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ProjectTasks { tasks, edges })
    }
}
