//! Work notifications (PostgreSQL only): a statement-level trigger on each queue table sends
//! `NOTIFY atlas_work, '<schema>.<queue>'` when rows are inserted (the schema tells apart
//! deployments that share one database in different schemas), so idle workers of every process wake
//! on new work instead of polling. The notification belongs to the inserting transaction: it is
//! delivered at its commit and never for a rolled-back insert, and PostgreSQL folds the same
//! payload sent many times in one transaction into one.
//!
//! Queues (the payload's table): `outbox` (messages to send), `webhook_events` (events to fan out),
//! `webhook_deliveries` (deliveries to attempt), `runbook_executions` (executions to run).
//! SQLite has no notifications: its one process wakes its workers in-process and polls slowly.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// Creates the notification function and triggers.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

/// The tables whose inserts notify, each with the trigger's name.
const QUEUES: [(&str, &str); 4] = [
    ("outbox", "tr_outbox_notify"),
    ("webhook_events", "tr_webhook_events_notify"),
    ("webhook_deliveries", "tr_webhook_deliveries_notify"),
    ("runbook_executions", "tr_runbook_executions_notify"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE OR REPLACE FUNCTION atlas_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_notify('atlas_work', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME); RETURN NULL; END $$",
        )
        .await?;
        for (table, trigger) in QUEUES {
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger} ON {table}")).await?;
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {trigger} AFTER INSERT ON {table} FOR EACH STATEMENT EXECUTE FUNCTION atlas_notify_work()"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (table, trigger) in QUEUES {
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger} ON {table}")).await?;
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS atlas_notify_work()").await?;
        Ok(())
    }
}
