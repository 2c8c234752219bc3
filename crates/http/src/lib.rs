//! The axum driving adapter: the router of `/v1/atlas`, the one response envelope, error
//! mapping, credentials and scopes per route, rate limits, idempotency, runs, request ids,
//! metrics and the generated OpenAPI document. Embedders build the router with their own
//! adapters through [`AppState`] and [`router`].

mod api;
mod auth;
mod contract;
mod envelope;
mod error;
mod extract;
mod jwt;
mod messaging;
mod messaging_contract;
mod metrics;
mod mutation;
mod openapi;
mod projects;
mod ratelimit;
mod reference;
mod request_id;
mod routes;
mod state;
mod tasks;
mod webhooks;

pub use contract::{Example, Payload};
pub use error::{ApiError, ErrorCode};
pub use jwt::JwtKeys;
pub use messaging::apply_statuses;
pub use metrics::Metrics;
pub use openapi::openapi_document;
pub use reference::{postman_collection, postman_environment};
pub use routes::{router, RouteSpec, ROUTES};
pub use state::{AppState, HttpConfig, ReadinessCheck, Wake};
