//! The Atlas schema as sea-orm migrations. One set of migrations runs unchanged on PostgreSQL
//! and SQLite, so the schema only uses what both understand:
//!
//! - ids are UUIDs (`uuid` on PostgreSQL, a 16-byte blob on SQLite);
//! - every timestamp is a `BIGINT` of microseconds since the Unix epoch, in a column named
//!   `*_at_us`, so ordering and keyset-cursor comparisons behave identically on both backends;
//! - scope lists and IP allowlists are JSON arrays held in text columns;
//! - every tenant row carries `org_id`, and every list query has an
//!   `(org_id, created_at_us DESC, id DESC)` index.
//!
//! Tables: `organizations`, `api_keys`, `users`, `refresh_tokens`, `platform_state` (the
//! bootstrap guard), `runs`, `idempotency_records`, and messaging's `channels`, `templates`,
//! `customers`, `conversations`, `messages`, `pending_statuses`, `drafts` and `outbox`, and the
//! webhooks' `webhook_events` (the outbox of events), `webhook_endpoints`, `webhook_deliveries`
//! and `webhook_attempts`; knowledge's `knowledge_documents` and `knowledge_chunks` (with
//! PostgreSQL full text or SQLite FTS5); the agents' `agents`, `agent_episodes`, `agent_sessions`,
//! `agent_session_events`, `agent_jobs` and `agent_cursors`. The unique indexes are named (`ux_…`) so the SQL store can tell
//! which one a violation hit.

pub use sea_orm_migration::{MigrationTrait, MigratorTrait};

mod m20250101_000001_accounts;
mod m20250101_000002_runs;
mod m20250101_000003_idempotency;
mod m20250101_000004_messaging;
mod m20250101_000005_webhooks;
mod m20250101_000006_messaging_routing;
mod m20250101_000007_hardening;
mod m20250101_000008_work;
mod m20250101_000009_incidents;
mod m20250101_000010_retention;
mod m20250101_000011_itsm_cmdb;
mod m20250101_000013_work_notifications;
mod m20250101_000015_knowledge;
mod m20250101_000016_agents;
mod m20250101_000017_agent_delivery;
mod m20250101_000018_bounded_claims;

/// Every Atlas migration, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250101_000001_accounts::Migration),
            Box::new(m20250101_000002_runs::Migration),
            Box::new(m20250101_000003_idempotency::Migration),
            Box::new(m20250101_000004_messaging::Migration),
            Box::new(m20250101_000005_webhooks::Migration),
            Box::new(m20250101_000006_messaging_routing::Migration),
            Box::new(m20250101_000007_hardening::Migration),
            Box::new(m20250101_000008_work::Migration),
            Box::new(m20250101_000009_incidents::Migration),
            Box::new(m20250101_000010_retention::Migration),
            Box::new(m20250101_000011_itsm_cmdb::Migration),
            Box::new(m20250101_000013_work_notifications::Migration),
            Box::new(m20250101_000015_knowledge::Migration),
            Box::new(m20250101_000016_agents::Migration),
            Box::new(m20250101_000017_agent_delivery::Migration),
            Box::new(m20250101_000018_bounded_claims::Migration),
        ]
    }
}
