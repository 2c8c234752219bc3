//! The agent model: an agent (hosted, external or the built-in `faq`), its maturity level,
//! status and the conversations it serves; an episode (one execution kept for graduation); a
//! test session and its events.

use atlas_conversations::{ChannelId, ConversationId};
use atlas_kernel::{typed_id, OrgId};
use atlas_scopes::KeyId;
use atlas_webhooks::EndpointId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

typed_id!(
    /// An agent.
    AgentId,
    "agt"
);
typed_id!(
    /// One execution of an agent, kept for graduation.
    EpisodeId,
    "eps"
);
typed_id!(
    /// A test session: an agent on a conversation with no WhatsApp.
    SessionId,
    "ses"
);

/// The longest name, role or system prompt accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest system prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 20_000;
/// The longest input of one execution or session message, in characters.
pub const MAX_INPUT_CHARS: usize = 4096;
/// The model name that selects the built-in `faq` engine (no LLM).
pub const FAQ_MODEL: &str = "faq";

/// Who runs the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Atlas runs it: an OpenAI-compatible chat model with the registry's tools, or the
    /// built-in `faq` engine (model `faq`, no LLM).
    Hosted,
    /// It runs elsewhere: Atlas posts inbound events to its URL; it answers through the tool API.
    External,
}

/// How far an agent is trusted, least first. Ordered: `Student < Intern < Supervised < Autonomous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Maturity {
    Student,
    Intern,
    Supervised,
    Autonomous,
}

impl Maturity {
    /// Every level, least trusted first.
    pub const ALL: [Maturity; 4] = [Maturity::Student, Maturity::Intern, Maturity::Supervised, Maturity::Autonomous];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Maturity::Student => "student",
            Maturity::Intern => "intern",
            Maturity::Supervised => "supervised",
            Maturity::Autonomous => "autonomous",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// Whether an agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Answers the conversations it serves.
    Active,
    /// Kept, but runs on nothing.
    Paused,
}

impl AgentStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Paused => "paused",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [AgentStatus::Active, AgentStatus::Paused].into_iter().find(|s| s.as_str() == text)
    }
}

/// A hosted agent's model settings (its API key is sealed apart, never shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostedConfig {
    /// The OpenAI-compatible endpoint (`https://api.openai.com/v1`); none for `faq`.
    pub base_url: Option<String>,
    /// The model (`gpt-4o-mini`), or `faq` for the built-in engine.
    pub model: String,
    pub system_prompt: Option<String>,
    /// Whether an API key is stored (sealed at rest).
    pub has_api_key: bool,
}

impl HostedConfig {
    /// Whether this is the built-in `faq` engine.
    pub fn is_faq(&self) -> bool {
        self.model == FAQ_MODEL
    }
}

/// What an agent serves: conversations by id, or every conversation of some channels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Serves {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    #[serde(default)]
    pub channel_ids: Vec<ChannelId>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    #[serde(default)]
    pub conversation_ids: Vec<ConversationId>,
}

impl Serves {
    /// Whether a conversation on `channel_id` with id `conversation_id` is served.
    pub fn covers(&self, channel_id: ChannelId, conversation_id: ConversationId) -> bool {
        self.channel_ids.contains(&channel_id) || self.conversation_ids.contains(&conversation_id)
    }
}

/// An agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: AgentId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub name: String,
    pub role: String,
    pub kind: AgentKind,
    pub maturity_level: Maturity,
    pub status: AgentStatus,
    pub serves: Serves,
    /// Hosted agents only.
    pub hosted: Option<HostedConfig>,
    /// External agents only: where inbound events are posted.
    pub url: Option<String>,
    /// The agent's own credential (an API key bound to it).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub key_id: Option<KeyId>,
    /// External agents: the webhook endpoint its inbound events are addressed to.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub endpoint_id: Option<EndpointId>,
    /// The agent's API key for its model, sealed (never serialized).
    #[serde(skip)]
    pub sealed_api_key: Option<Vec<u8>>,
    /// Bumped by each change.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Which agents to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    pub status: Option<AgentStatus>,
    pub maturity_level: Option<Maturity>,
    /// Case-insensitive substring of the name or role.
    pub q: Option<String>,
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It answered (and, where it replied, the reply was sent).
    Answered,
    /// Its reply waits for a person's approval.
    Drafted,
    /// It handed the conversation to a person.
    HandedOff,
    /// It used every step without a final answer.
    StepLimit,
    /// The model failed.
    Failed,
}

impl Outcome {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Drafted => "drafted",
            Outcome::HandedOff => "handed_off",
            Outcome::StepLimit => "step_limit",
            Outcome::Failed => "failed",
        }
    }
}

/// One tool call an execution made, with what it returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolCallRecord {
    /// The model's id for the call (the tool message answering it carries the same id).
    pub id: String,
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub arguments: serde_json::Value,
    /// The tool's answer, or `{"error": {"code", "message"}}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub result: serde_json::Value,
    pub ok: bool,
    /// Whether whatever ran the call wrote its `tools.<name>` run itself (the tool host, a
    /// conversation's outbound side); the execution writes one for the others.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub journaled: bool,
}

/// One execution, kept for graduation: input, steps (the tool calls), outcome, and whether a
/// person intervened (a draft to approve, a handoff).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Episode {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: EpisodeId,
    #[serde(skip)]
    pub org_id: OrgId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_id: AgentId,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub conversation_id: Option<ConversationId>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub session_id: Option<SessionId>,
    pub input: String,
    pub steps: Vec<ToolCallRecord>,
    pub answer: Option<String>,
    pub outcome: Outcome,
    pub intervened: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A test session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: SessionId,
    #[serde(skip)]
    pub org_id: OrgId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_id: AgentId,
    /// Whether the agent handed the session to a person.
    pub handed_off: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What a session event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionEventKind {
    /// The tester wrote (as the customer).
    CustomerMessage,
    /// The agent's reply, sent.
    AgentMessage,
    /// The agent's reply, kept as a draft (student, intern).
    Draft,
    /// A tool call the agent made.
    ToolCall,
    /// The agent handed the session to a person.
    Handoff,
}

impl SessionEventKind {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionEventKind::CustomerMessage => "customer_message",
            SessionEventKind::AgentMessage => "agent_message",
            SessionEventKind::Draft => "draft",
            SessionEventKind::ToolCall => "tool_call",
            SessionEventKind::Handoff => "handoff",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::CustomerMessage, Self::AgentMessage, Self::Draft, Self::ToolCall, Self::Handoff].into_iter().find(|k| k.as_str() == text)
    }
}

/// One event of a session, numbered from 1 in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionEvent {
    pub seq: i64,
    pub kind: SessionEventKind,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An inbound message for the agents' worker: the `atlas.event.received` event it came as.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundJob {
    /// The event's id.
    pub id: uuid::Uuid,
    pub org_id: OrgId,
    /// The event's `data` (`conversation_id`, `channel_id`, `customer`, `message`).
    pub payload: serde_json::Value,
    /// Claims so far, this one included (the fence of `finish_job`).
    pub attempts: i32,
}

/// How a claimed job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Done,
    /// Try again at this time (the model failed).
    Retry {
        at: OffsetDateTime,
        error: String,
    },
    Failed(String),
}
