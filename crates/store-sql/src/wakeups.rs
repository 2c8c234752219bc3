//! Work notifications: a dedicated PostgreSQL connection `LISTEN`ing on `atlas_work`, the
//! channel the queue tables' insert triggers notify (migration `m20250101_000013`) with
//! `<schema>.<table>`, so a worker sleeps until another process (or this one) commits work
//! instead of polling. Notifications of other schemas (other deployments, or tests, sharing the
//! database) are ignored. SQLite has no
//! notifications: [`SqlStore::listen_for_work`] answers `None` there.
//!
//! The listener reconnects by itself when its connection is lost (a database restart):
//! notifications sent meanwhile are lost, so it then reports [`WorkNotice::Reconnected`] and
//! the caller looks at every queue once.

use crate::SqlStore;
use atlas_kernel::StoreError;
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

/// The channel the queue tables' triggers notify.
pub const WORK_CHANNEL: &str = "atlas_work";

/// A queue whose table got rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkQueue {
    /// `outbox`: messages to send.
    Outbox,
    /// `webhook_events`: events to fan out.
    WebhookEvents,
    /// `webhook_deliveries`: deliveries to attempt.
    WebhookDeliveries,
    /// `runbook_executions`: executions to run.
    RunbookExecutions,
}

impl WorkQueue {
    /// The queue a table name names.
    pub fn from_table(table: &str) -> Option<WorkQueue> {
        match table {
            "outbox" => Some(WorkQueue::Outbox),
            "webhook_events" => Some(WorkQueue::WebhookEvents),
            "webhook_deliveries" => Some(WorkQueue::WebhookDeliveries),
            "runbook_executions" => Some(WorkQueue::RunbookExecutions),
            _ => None,
        }
    }
}

/// What the listener heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkNotice {
    /// Rows were committed into this queue.
    Queued(WorkQueue),
    /// The connection was lost and made again: notifications may have been missed.
    Reconnected,
}

/// A connection listening for work notifications.
#[derive(Debug)]
pub struct WorkListener {
    listener: PgListener,
    /// `<schema>.`, the prefix of this store's notifications.
    prefix: String,
}

impl SqlStore {
    /// A listener for work notifications on a connection of its own (taken from the pool's
    /// settings); `None` on SQLite.
    ///
    /// # Errors
    /// A `StoreError` when the connection or the `LISTEN` fails.
    pub async fn listen_for_work(&self) -> Result<Option<WorkListener>, StoreError> {
        if !self.is_postgres() {
            return Ok(None);
        }
        let schema = self
            .db
            .query_one(Statement::from_string(DatabaseBackend::Postgres, "SELECT current_schema() AS schema"))
            .await
            .map_err(|e| StoreError::new("reading the current schema", e))?
            .map(|row| row.try_get::<String>("", "schema"))
            .transpose()
            .map_err(|e| StoreError::new("reading the current schema", e))?
            .unwrap_or_else(|| "public".to_owned());
        let pool = self.db.get_postgres_connection_pool();
        let mut listener = PgListener::connect_with(pool).await.map_err(|e| StoreError::new("connecting the work listener", e))?;
        listener.listen(WORK_CHANNEL).await.map_err(|e| StoreError::new("listening for work", e))?;
        Ok(Some(WorkListener { listener, prefix: format!("{schema}.") }))
    }
}

impl WorkListener {
    /// Waits for the next notification of this store's schema (others are skipped).
    ///
    /// # Errors
    /// A `StoreError` when the connection fails and cannot be made again; calling again retries.
    pub async fn next(&mut self) -> Result<WorkNotice, StoreError> {
        loop {
            match self.listener.try_recv().await {
                Ok(Some(notification)) => {
                    let ours = notification.payload().strip_prefix(self.prefix.as_str());
                    if let Some(queue) = ours.and_then(WorkQueue::from_table) {
                        return Ok(WorkNotice::Queued(queue));
                    }
                }
                Ok(None) => return Ok(WorkNotice::Reconnected),
                Err(e) => return Err(StoreError::new("waiting for work notifications", e)),
            }
        }
    }
}
