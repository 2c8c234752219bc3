//! Plan checks: each look a worker makes when it wakes (before any transaction, so also when
//! there is nothing to do) stays an index probe however many finished rows the tables keep.
//! Each check fills a fresh PostgreSQL database with 30,000 finished rows and a few open ones,
//! runs ANALYZE, EXPLAINs the exact statement the store runs (built by the same function or
//! constant), fails on a sequential scan of the table, and checks that the look still finds the
//! open rows. The look a claim makes first (`FairClaim::any_claimable`) is checked in the plan a
//! connection caches for it (generic: the instant bound, not known). The agent worker's look
//! past its cursor has its own check (`crate::agents`). The upkeep (`crate::upkeep`) is checked
//! here too: the dead versions a drain leaves in the due index, and the claim's read over them.
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

/// PostgreSQL's generic plan (the one a connection caches for a statement it runs often) of
/// `sql`, whose one parameter `$1` is a `bigint` instant, one line per node.
async fn generic_plan(store: &SqlStore, sql: &str) -> String {
    use sea_orm::TransactionTrait;
    let txn = store.connection().begin().await.expect("a transaction");
    txn.execute_unprepared(&format!("SET LOCAL plan_cache_mode = force_generic_plan; PREPARE look(bigint) AS {sql}"))
        .await
        .expect("preparing the look");
    let rows = txn.query_all(raw("EXPLAIN EXECUTE look(0)")).await.expect("explaining the look");
    txn.rollback().await.expect("rolling back");
    rows.iter().map(|row| row.try_get_by_index::<String>(0).expect("a plan line")).collect::<Vec<_>>().join("\n")
}

/// Checks the look a claim of `fair` makes first: its generic plan (the one every connection ends
/// up caching) does not scan `table`, and it finds nothing before the first open row is due
/// (`DUE_US + 1`) and that row once it is.
async fn claimable_probe_finds_the_first_open_row(store: &SqlStore, fair: &crate::fair::FairClaim, table: &str) {
    assert_no_scan_of(&generic_plan(store, &fair.claimable_probe()).await, table);
    assert!(
        !fair.any_claimable(store.connection(), DUE_US).await.expect("looking"),
        "nothing is claimable before the first open row is due"
    );
    assert!(fair.any_claimable(store.connection(), DUE_US + 1).await.expect("looking"), "the first open row is claimable when due");
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
    claimable_probe_finds_the_first_open_row(&store, &crate::outbox::FAIR_ROWS, "outbox").await;
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
    claimable_probe_finds_the_first_open_row(&store, &crate::webhook_queue::FAIR_DELIVERIES, "webhook_deliveries").await;
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

/// Buffers (pages) `sql` touches when run, from `EXPLAIN (ANALYZE, BUFFERS)`.
async fn pages_read(store: &SqlStore, sql: &str) -> u64 {
    let explain = raw(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"));
    let row = store.connection().query_one(explain).await.expect("explaining the claim").expect("a plan");
    let plan: serde_json::Value = row.try_get_by_index(0).expect("a JSON plan");
    let top = &plan[0]["Plan"];
    top["Shared Hit Blocks"].as_u64().expect("hit blocks") + top["Shared Read Blocks"].as_u64().expect("read blocks")
}

/// The statistics of `table` in the store's schema: dead row versions and vacuums so far.
async fn dead_and_vacuums(store: &SqlStore, table: &str) -> (i64, i64) {
    let sql = format!(
        "SELECT n_dead_tup AS dead, vacuum_count AS vacuums FROM pg_stat_user_tables \
         WHERE schemaname = current_schema() AND relname = '{table}'"
    );
    let row = store.connection().query_one(raw(&sql)).await.expect("reading the table's statistics").expect("the table");
    (row.try_get("", "dead").expect("dead"), row.try_get("", "vacuums").expect("vacuums"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_drain_upkeep_vacuums_the_outbox_and_the_claim_reads_a_few_pages_again() {
    let Some(store) = fresh().await else { return };
    // One channel's 5,000 sends, drained (each row finished by an update, as the worker does:
    // its unfinished version stays in the due index, dead, until a VACUUM), and one still due.
    let drained = 5_000;
    fill(
        &store,
        "outbox",
        &format!(
            "INSERT INTO outbox (id, org_id, channel_id, conversation_id, message_id, recipient, content, attempt, queued_at_us, \
                                 next_attempt_at_us, deadline_at_us) \
             SELECT gen_random_uuid(), '00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000003', \
                    gen_random_uuid(), gen_random_uuid(), '+14155550100', '{{}}', 0, g, g, g + 86400000000 \
             FROM generate_series(1, {drained} + 1) g; \
             UPDATE outbox SET finished_at_us = next_attempt_at_us + 1, attempt = 1 WHERE next_attempt_at_us <= {drained}; \
             SELECT pg_stat_force_next_flush()"
        ),
    )
    .await;
    until_dead(&store, "outbox", drained).await;
    let outbox = &crate::outbox::FAIR_ROWS;
    let now_us = drained + 10;
    let claim_read = format!("{} {}", outbox.ranked(sea_orm::DbBackend::Postgres, now_us, 16, 16), outbox.chosen(16));
    let before = pages_read(&store, &claim_read).await;

    let done = store.upkeep().await.expect("upkeep");
    assert!(done.vacuumed.iter().any(|t| t == "outbox"), "the outbox is vacuumed: {done:?}");
    // A version some other session's snapshot may still see (a concurrent test's transaction)
    // survives a VACUUM, counted dead; the next upkeep takes it.
    let mut rounds = 1;
    while dead_and_vacuums(&store, "outbox").await.0 > 0 {
        assert!(rounds < 100, "dead versions outlived {rounds} upkeeps: {:?}", dead_and_vacuums(&store, "outbox").await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        store.upkeep().await.expect("upkeep");
        rounds += 1;
    }
    let after = pages_read(&store, &claim_read).await;
    assert!(after * 4 < before, "the claim read {before} pages over the dead versions, {after} after the vacuum");
    let found = store.connection().query_all(raw(&claim_read)).await.expect("choosing");
    assert_eq!(found.len(), 1, "the one due row is still chosen");
    let again = store.upkeep().await.expect("upkeep");
    assert!(!again.vacuumed.iter().any(|t| t == "outbox"), "a vacuumed table is not vacuumed again: {again:?}");
}

/// Waits until `table`'s statistics show at least `dead` dead row versions (they arrive when the
/// writing connection reports them).
async fn until_dead(store: &SqlStore, table: &str, dead: i64) {
    let mut waited = 0;
    while dead_and_vacuums(store, table).await.0 < dead {
        assert!(waited < 200, "{table}'s dead rows never showed in its statistics");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upkeep_vacuums_a_queue_at_its_dead_rows_and_another_table_only_past_a_tenth_of_its_rows() {
    let Some(store) = fresh().await else { return };
    let (dead, live) = (crate::upkeep::DEAD_ROWS * 3 / 2, 10 * crate::upkeep::DEAD_ROWS);
    // The same number of dead versions in a queue table and in an idempotency table ten times
    // its size: past the queue's threshold, short of the other's (DEAD_ROWS + live / 10).
    fill(
        &store,
        "pending_statuses",
        &format!(
            "INSERT INTO pending_statuses (id, org_id, provider_message_id, state, at_us, created_at_us) \
             SELECT gen_random_uuid(), gen_random_uuid(), 'wamid.' || g, 'delivered', g, g FROM generate_series(1, {dead}) g; \
             DELETE FROM pending_statuses; \
             INSERT INTO idempotency_records (storage_key, org_id, fingerprint, state, created_at_us, updated_at_us) \
             SELECT 'k' || g, gen_random_uuid(), 'f', 'completed', g, g FROM generate_series(1, {live} + {dead}) g; \
             DELETE FROM idempotency_records WHERE created_at_us > {live}; \
             SELECT pg_stat_force_next_flush()"
        ),
    )
    .await;
    until_dead(&store, "pending_statuses", dead).await;
    until_dead(&store, "idempotency_records", dead).await;
    let done = store.upkeep().await.expect("upkeep");
    assert!(done.vacuumed.iter().any(|t| t == "pending_statuses"), "the queue is vacuumed: {done:?}");
    assert!(!done.vacuumed.iter().any(|t| t == "idempotency_records"), "the other table waits for a tenth more: {done:?}");
    assert!(done.analyzed.iter().any(|t| t == "idempotency_records"), "its rows all changed since ANALYZE: {done:?}");
    assert_eq!(dead_and_vacuums(&store, "idempotency_records").await.1, 0, "never vacuumed");
}
