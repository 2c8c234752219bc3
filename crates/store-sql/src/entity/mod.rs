//! The sea-orm entities: one module per table of the `atlas-migrations` schema. Timestamps are
//! `i64` microseconds since the Unix epoch (`*_at_us`), ids are UUIDs, scope lists, IP
//! allowlists, message templates, outbound contents and webhook filters are JSON in text
//! columns. Rows are converted to domain records by the port implementations, never handed out
//! as they are.

pub mod agent_cursors;
pub mod agent_episodes;
pub mod agent_jobs;
pub mod agent_session_events;
pub mod agent_sessions;
pub mod agents;
pub mod api_keys;
pub mod blackouts;
pub mod catalog_items;
pub mod change_approvals;
pub mod changes;
pub mod channels;
pub mod cmdb_items;
pub mod cmdb_relationships;
pub mod conversations;
pub mod customers;
pub mod drafts;
pub mod idempotency_records;
pub mod incident_cis;
pub mod incident_sequences;
pub mod incident_timeline;
pub mod incidents;
pub mod knowledge_chunks;
pub mod knowledge_documents;
pub mod messages;
pub mod organizations;
pub mod outbox;
pub mod pending_statuses;
pub mod platform_state;
pub mod refresh_tokens;
pub mod runbook_executions;
pub mod runbooks;
pub mod runs;
pub mod service_requests;
pub mod templates;
pub mod users;
pub mod webhook_attempts;
pub mod webhook_deliveries;
pub mod webhook_endpoints;
pub mod webhook_events;
