//! The axum driving adapter: the router of `/v1/atlas`, the one response envelope, error
//! mapping, credentials and scopes per route, rate limits, idempotency, runs, request ids,
//! metrics and the generated OpenAPI document. Embedders build the router with their own
//! adapters through [`AppState`] and [`router`].

mod agents;
mod alerts;
mod api;
mod auth;
mod changes;
mod cmdb;
mod contract;
mod envelope;
mod error;
mod extract;
mod incidents;
mod jwt;
mod knowledge;
mod mcp;
mod messaging;
mod metrics;
mod mutation;
mod openapi;
mod operations_contract;
mod projects;
mod ratelimit;
mod rca;
mod reference;
mod request_id;
mod routes;
mod runbooks;
mod service_requests;
mod sessions;
mod state;
mod tasks;
mod tools;
mod webhooks;

pub use agents::{runtime as agent_runtime, ConversationOutbound, KnowledgeBase, RegistryTools, ReplyFence};
pub use contract::{Example, Payload};
pub use error::{ApiError, ErrorCode};
pub use jwt::JwtKeys;
pub use mcp::{DEFAULT_ALLOWED_HOSTS as DEFAULT_MCP_ALLOWED_HOSTS, MCP_PATH};
pub use metrics::Metrics;
pub use openapi::openapi_document;
pub use reference::{postman_collection, postman_environment};
pub use routes::{router, RouteSpec, ROUTES};
pub use state::{AppState, HttpConfig, ReadinessCheck, Wake};
pub use tools::{tool_host, HttpToolHost};
