//! The work suite of `atlas-testkit` (`WorkStore`), whole and check by check, against SQLite (a
//! fresh file per test) and PostgreSQL (a fresh database per test; skipped loudly when the
//! server is unreachable, failed when `ATLAS_REQUIRE_SERVICES=1`); the concurrent-cycle race
//! with many trials on PostgreSQL's pool of connections; and the SQL store's own checks: the
//! use cases' events and runs commit with their change, a refused change commits nothing.

use atlas_kernel::{ManualClock, OrgId};
use atlas_store_sql::entity::{runs, webhook_events};
use atlas_store_sql::SqlStore;
use atlas_tasks::{NewProject, NewTask, Priority, ProjectRef, TaskStatus, Work, WorkError};
use atlas_testkit::services::{fresh_postgres_database, fresh_sqlite_url};
use atlas_testkit::work::journal;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use std::sync::Arc;

async fn sqlite() -> Option<SqlStore> {
    let store = SqlStore::connect(&fresh_sqlite_url()).await.expect("opening a fresh SQLite file");
    store.migrate().await.expect("migrating SQLite");
    Some(store)
}

async fn postgres() -> Option<SqlStore> {
    let url = fresh_postgres_database().await?;
    let store = SqlStore::connect(&url).await.expect("connecting to the fresh PostgreSQL database");
    store.migrate().await.expect("migrating PostgreSQL");
    Some(store)
}

async fn events_of(store: &SqlStore, org: OrgId) -> Vec<String> {
    let mut rows = webhook_events::Entity::find()
        .filter(webhook_events::Column::OrgId.eq(org.as_uuid()))
        .all(store.connection())
        .await
        .expect("reading the outbox");
    rows.sort_by_key(|r| r.id);
    rows.into_iter().map(|r| r.event_type).collect()
}

async fn runs_of(store: &SqlStore, org: OrgId) -> u64 {
    runs::Entity::find().filter(runs::Column::OrgId.eq(org.as_uuid())).count(store.connection()).await.expect("counting runs")
}

/// Every use case writes its run and its events (with the version) in its transaction; a
/// refused cycle writes neither.
async fn events_and_runs_commit_with_the_change(store: SqlStore) {
    let work = Work::new(Arc::new(store.clone()), Arc::new(ManualClock::new(time::macros::datetime!(2026-03-01 08:00 UTC))));
    let org = OrgId::generate();
    let project = work
        .create_project(org, NewProject { key: "ops".into(), name: "Ops".into(), description: None }, &journal(org, "projects.create"))
        .await
        .unwrap();
    let new = |title: &str| NewTask {
        project: ProjectRef::Id(project.id),
        parent_task_id: None,
        title: title.into(),
        description: None,
        status: TaskStatus::Todo,
        priority: Priority::High,
        due_on: None,
        assignee: None,
    };
    let a = work.create_task(org, new("a"), &journal(org, "tasks.create")).await.unwrap();
    let b = work.create_task(org, new("b"), &journal(org, "tasks.create")).await.unwrap();
    work.add_dependency(org, b.id, a.id, &journal(org, "deps")).await.unwrap();
    let refused = work.add_dependency(org, a.id, b.id, &journal(org, "deps")).await;
    assert!(matches!(refused, Err(WorkError::Cycle { .. })));
    let blocked = work
        .update_task(org, b.id, atlas_tasks::TaskPatch { status: Some(TaskStatus::Done), ..Default::default() }, None, &journal(org, "s"))
        .await;
    assert!(matches!(blocked, Err(WorkError::Blocked { .. })));
    work.update_task(org, a.id, atlas_tasks::TaskPatch { status: Some(TaskStatus::Done), ..Default::default() }, None, &journal(org, "s"))
        .await
        .unwrap();
    work.remove_dependency(org, b.id, a.id, &journal(org, "deps")).await.unwrap();
    work.delete_task(org, b.id, &journal(org, "tasks.delete")).await.unwrap();
    assert_eq!(
        events_of(&store, org).await,
        vec![
            "project.created",
            "task.created",
            "task.created",
            "task.dependency_added",
            "task.status_changed",
            "task.dependency_removed",
            "task.deleted"
        ],
        "one event per committed change, none for the refused ones"
    );
    assert_eq!(runs_of(&store, org).await, 7, "one run per committed change; refusals are recorded by the caller");
    let payloads = webhook_events::Entity::find()
        .filter(webhook_events::Column::OrgId.eq(org.as_uuid()))
        .filter(webhook_events::Column::EventType.eq("task.dependency_added"))
        .one(store.connection())
        .await
        .unwrap()
        .expect("the dependency event");
    let body: serde_json::Value = serde_json::from_slice(&payloads.payload).unwrap();
    assert_eq!(body["data"]["version"], 2, "the event carries the task's version: {body}");
    assert_eq!(body["data"]["depends_on_task_id"], a.id.to_string());
    assert_eq!(payloads.version, 2);
}

macro_rules! suite_checks {
    ($backend:ident: $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(store) = super::$backend().await {
                    atlas_testkit::work::$check(&store).await;
                }
            }
        )+
    };
}

macro_rules! backend_tests {
    ($backend:ident) => {
        mod $backend {
            /// The whole suite on one database, every check sharing it.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn work_suite() {
                let Some(store) = super::$backend().await else { return };
                atlas_testkit::work::suite(&store).await;
            }

            suite_checks!($backend:
                projects_have_unique_keys_versions_and_soft_deletes,
                tasks_take_increasing_ranks_and_list_with_filters,
                task_lists_page_with_a_cursor_stable_under_inserts,
                dependencies_keep_the_order_and_refuse_cycles_with_their_path,
                a_blocked_task_cannot_be_done_until_its_blockers_are,
                parent_links_never_form_a_cycle,
                another_organization_sees_none_of_the_work,
                the_graph_agrees_with_the_in_memory_reference,
            );

            /// Many trials of two requests racing to close a cycle: never both commit.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_edges_never_both_close_a_cycle() {
                let Some(store) = super::$backend().await else { return };
                atlas_testkit::work::concurrent_edges_never_both_close_a_cycle(&store, 200).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sql_events_and_runs_commit_with_the_change() {
                let Some(store) = super::$backend().await else { return };
                super::events_and_runs_commit_with_the_change(store).await;
            }
        }
    };
}

backend_tests!(sqlite);
backend_tests!(postgres);
