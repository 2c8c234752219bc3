//! What the router needs from the outside: the use cases and ports, already wired to adapters
//! by the binary (or by an embedder), and the HTTP settings.

use crate::jwt::JwtKeys;
use crate::metrics::Metrics;
use async_trait::async_trait;
use atlas_accounts::Accounts;
use atlas_conversations::Messaging;
use atlas_idempotency::IdempotencyStore;
use atlas_incidents::Incidents;
use atlas_kernel::Clock;
use atlas_ratelimit::{Policies, RateLimiter};
use atlas_runbooks::Runbooks;
use atlas_runs::RunStore;
use atlas_tasks::Work;
use atlas_webhooks::Webhooks;
use std::sync::Arc;

/// A dependency `/readyz` checks (the database, Redis).
#[async_trait]
pub trait ReadinessCheck: Send + Sync + std::fmt::Debug {
    /// The dependency's name in the report.
    fn name(&self) -> &'static str;
    /// `Err` with a reason when the dependency is not usable.
    async fn check(&self) -> Result<(), String>;
    /// Whether the process is unready without it (a replica that falls back to local rate
    /// limits when Redis fails keeps serving, so Redis is not critical).
    fn critical(&self) -> bool {
        true
    }
}

/// Wakes this process's idle workers when a request queued work for them, so work is picked
/// up at once rather than at the next poll.
#[derive(Debug, Default)]
pub struct Wake {
    /// A message was queued.
    pub outbox: tokio::sync::Notify,
    /// Events were written.
    pub webhooks: tokio::sync::Notify,
    /// A runbook execution was queued.
    pub runbooks: tokio::sync::Notify,
    /// Webhook deliveries were made (another process's fan-out, heard through the database's
    /// notifications) or made due again (a replay in this process).
    pub deliveries: tokio::sync::Notify,
    /// A test session has new events (its streams look).
    pub sessions: tokio::sync::Notify,
    /// An inbound message may be waiting for an agent.
    pub agents: tokio::sync::Notify,
}

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body (default 1 MiB).
    pub max_body_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed (default none: the socket's peer is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The `Host` values (`name` or `name:port`) the MCP server at `/mcp` accepts (default
    /// loopback: `localhost`, `127.0.0.1`, `::1`); empty accepts any host.
    pub mcp_allowed_hosts: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            trusted_proxies: Vec::new(),
            mcp_allowed_hosts: crate::mcp::DEFAULT_ALLOWED_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
        }
    }
}

/// Everything the handlers use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub messaging: Arc<Messaging>,
    pub webhooks: Arc<Webhooks>,
    pub runs: Arc<dyn RunStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub policies: Arc<Policies>,
    pub clock: Arc<dyn Clock>,
    pub jwt: Arc<JwtKeys>,
    pub metrics: Arc<Metrics>,
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    pub config: HttpConfig,
    pub wake: Arc<Wake>,
    pub cmdb: Arc<atlas_cmdb::Cmdb>,
    pub changes: Arc<atlas_itsm::Changes>,
    pub service_desk: Arc<atlas_itsm::ServiceDesk>,
    pub root_causes: Arc<atlas_itsm::RootCauses>,
    pub incidents: Arc<Incidents>,
    pub runbooks: Arc<Runbooks>,
    pub work: Arc<Work>,
    /// Agents, episodes, draft reviews and test sessions.
    pub agents: Arc<atlas_agents::Agents>,
    /// The OpenAI-compatible chat model hosted agents call.
    pub chat_model: Arc<dyn atlas_agents::ChatModel>,
    pub knowledge: Arc<atlas_knowledge::Knowledge>,
}
