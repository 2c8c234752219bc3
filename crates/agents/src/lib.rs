//! AI agents: the model (hosted, external, the built-in `faq`), governance by maturity (one
//! pure rule, [`govern`]), the hosted tool-call loop and the `faq` engine over ports
//! ([`ChatModel`], [`ToolRunner`], [`KnowledgeSearch`], [`Outbound`]), episodes, test sessions,
//! the [`AgentStore`] port and the [`Agents`] use cases. Pure: no runtime, database or HTTP.

pub mod governance;
mod model;
pub mod runtime;
mod service;

pub use governance::{govern, Disposition};
pub use model::*;
pub use runtime::{
    messaging_definition, run_faq, run_hosted, ChatMessage, ChatModel, ChatReply, ChatRequest, ChatRole, Execution, KnowledgeHit,
    KnowledgeSearch, ModelEndpoint, ModelError, Outbound, ToolCall, ToolDefinition, ToolFailure, ToolRunner, Turn, FAQ_THRESHOLD,
    MAX_STEPS,
};
pub use service::{
    outcome_name, tool_runs, AgentDraft, AgentError, AgentPatch, AgentStore, AgentStoreError, Agents, Executed, HostedSettings, Runtime,
    SessionOutbound, SessionTurn,
};
