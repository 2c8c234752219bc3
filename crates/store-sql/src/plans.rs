//! Plan checks: each look a worker makes when it wakes (before any transaction, so also when
//! there is nothing to do) stays an index probe however many finished rows the tables keep.
//! Each check fills a fresh PostgreSQL database with 30,000 finished rows and a few open ones,
//! runs ANALYZE, EXPLAINs the exact statement the store runs (built by the same function or
//! constant), fails on a sequential scan of the table, and checks that the look still finds the
//! open rows. The agent worker's look past its cursor has its own check (`crate::agents`).
//! Skipped loudly without PostgreSQL; failed with `ATLAS_REQUIRE_SERVICES=1`.

use crate::SqlStore;
use sea_orm::{ConnectionTrait, QuerySelect, QueryTrait, Statement};

/// Finished rows each check writes before it EXPLAINs.
const FINISHED: u32 = 30_000;

/// A migrated store on a fresh PostgreSQL database, or `None` (said loudly) without one.
async fn fresh() -> Option<SqlStore> {
    let url = atlas_testkit::services::fresh_postgres_database().await?;
    let store = SqlStore::connect(&url).await.expect("connecting to the fresh PostgreSQL database");
    store.migrate().await.expect("migrating PostgreSQL");
    Some(store)
}

/// Runs `sql` (several statements) on one connection with foreign keys and triggers off, so
/// rows can be written without their parents, then ANALYZEs `table` (alone, in a statement of
/// its own: a database-wide ANALYZE in the insert's transaction once failed with a deadlock).
async fn fill(store: &SqlStore, table: &str, sql: &str) {
    let batch = format!("SET session_replication_role = replica; {sql}; SET session_replication_role = origin");
    store.connection().execute_unprepared(&batch).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    store.connection().execute_unprepared(&format!("ANALYZE {table}")).await.unwrap_or_else(|e| panic!("ANALYZE {table}: {e}"));
}

/// PostgreSQL's plan of `statement`, one line per node.
async fn plan(store: &SqlStore, statement: Statement) -> String {
    let explain = Statement { sql: format!("EXPLAIN {}", statement.sql), ..statement };
    let rows = store.connection().query_all(explain).await.expect("explaining the look");
    rows.iter().map(|row| row.try_get_by_index::<String>(0).expect("a plan line")).collect::<Vec<_>>().join("\n")
}

/// Fails when `plan` scans `table` whole.
fn assert_no_scan_of(plan: &str, table: &str) {
    assert!(!plan.contains(&format!("Seq Scan on {table}")), "the look scans {table}:\n{plan}");
}

/// Checks that `look` (a select of ids, run by the worker with `one()`, so with one row asked
/// for) does not scan `table` whole; returns the ids it finds.
async fn probe_without_scanning<E: sea_orm::EntityTrait>(store: &SqlStore, look: sea_orm::Select<E>, table: &str) -> Vec<uuid::Uuid> {
    let statement = sea_orm::DbBackend::Postgres.build(&look.clone().limit(1).into_query());
    assert_no_scan_of(&plan(store, statement).await, table);
    look.into_tuple::<uuid::Uuid>().all(store.connection()).await.expect("looking")
}

/// `sql` as a PostgreSQL statement without values.
fn raw(sql: &str) -> Statement {
    Statement::from_string(sea_orm::DbBackend::Postgres, sql)
}

/// The first due instant among the open rows, in microseconds, as the checks write it.
const DUE_US: i64 = 500_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_next_due_probe_reads_only_unfinished_rows() {
    let Some(store) = fresh().await else { return };
    fill(
        &store,
        "outbox",
        &format!(
            "INSERT INTO outbox (id, org_id, channel_id, conversation_id, message_id, recipient, content, attempt, queued_at_us, \
                                 next_attempt_at_us, deadline_at_us, finished_at_us) \
             SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), '+14155550100', \
                    '{{}}', 1, g, g, g + 86400000000, CASE WHEN g <= {FINISHED} THEN g + 1 END \
             FROM generate_series(1, {FINISHED} + 2) g; \
             UPDATE outbox SET next_attempt_at_us = {DUE_US} + (next_attempt_at_us - {FINISHED}) WHERE finished_at_us IS NULL"
        ),
    )
    .await;
    assert_no_scan_of(&plan(&store, raw(crate::outbox::OUTBOX_NEXT_DUE)).await, "outbox");
    let due = atlas_conversations::Outbox::next_due(&store).await.expect("next_due");
    assert_eq!(due.map(crate::convert::to_us), Some(DUE_US + 1), "the earliest unfinished row's due time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deliveries_next_due_probe_reads_only_pending_deliveries() {
    let Some(store) = fresh().await else { return };
    fill(
        &store,
        "webhook_deliveries",
        &format!(
            "INSERT INTO webhook_endpoints (id, org_id, url, filters, state, sealed_secrets, version, created_at_us, updated_at_us) \
             VALUES ('00000000-0000-7000-8000-000000000001', gen_random_uuid(), 'https://example.com/hook', '[]', 'enabled', \
                     '\\x00'::bytea, 1, 1, 1); \
             INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, event_type, status, attempt_count, schedule_base, \
                                             created_at_us, next_attempt_at_us, finished_at_us) \
             SELECT gen_random_uuid(), gen_random_uuid(), '00000000-0000-7000-8000-000000000001', gen_random_uuid(), \
                    'incident.created', CASE WHEN g <= {FINISHED} THEN 'succeeded' ELSE 'pending' END, 1, 0, g, \
                    CASE WHEN g <= {FINISHED} THEN NULL ELSE {DUE_US} + g - {FINISHED} END, CASE WHEN g <= {FINISHED} THEN g END \
             FROM generate_series(1, {FINISHED} + 2) g"
        ),
    )
    .await;
    assert_no_scan_of(&plan(&store, raw(crate::webhook_queue::DELIVERIES_NEXT_DUE)).await, "webhook_deliveries");
    let due = atlas_webhooks::DeliveryQueue::next_due(&store).await.expect("next_due");
    assert_eq!(due.map(crate::convert::to_us), Some(DUE_US + 1), "the earliest pending delivery's due time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_worker_look_for_a_due_job_probes_the_due_index() {
    let Some(store) = fresh().await else { return };
    fill(
        &store,
        "agent_jobs",
        &format!(
            "INSERT INTO agent_jobs (id, org_id, payload, state, attempts, next_at_us, created_at_us) \
             SELECT gen_random_uuid(), gen_random_uuid(), '{{}}', CASE WHEN g <= {FINISHED} THEN 'done' ELSE 'queued' END, 1, g, g \
             FROM generate_series(1, {FINISHED} + 1) g"
        ),
    )
    .await;
    let found = probe_without_scanning(&store, crate::agents::look_for_a_due_job(DUE_US), "agent_jobs").await;
    assert_eq!(found.len(), 1, "the one queued job is found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_worker_look_for_a_waiting_execution_probes_the_unfinished_index() {
    let Some(store) = fresh().await else { return };
    fill(
        &store,
        "runbook_executions",
        &format!(
            "INSERT INTO runbook_executions (id, org_id, runbook_id, runbook_version, status, plan_hash, parameters, steps, attempts, \
                                             created_at_us, updated_at_us, finished_at_us) \
             SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 1, CASE WHEN g <= {FINISHED} THEN 'succeeded' ELSE 'queued' END, \
                    'h', '{{}}', '[]', 1, g, g, CASE WHEN g <= {FINISHED} THEN g END \
             FROM generate_series(1, {FINISHED} + 1) g"
        ),
    )
    .await;
    let found = probe_without_scanning(&store, crate::runbooks::look_for_a_waiting_execution(DUE_US), "runbook_executions").await;
    assert_eq!(found.len(), 1, "the one queued execution is found");
}
