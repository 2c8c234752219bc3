//! The agent routes: agents (create with their own credential shown once, list by status,
//! maturity and text, get, replace, patch, delete), one execution (`/execute`), the drafts a
//! person approves or rejects, and handing a conversation back (`/release`). Scopes
//! `atlas.agents.read|write`, `atlas.messages.send` for drafts and release. The runtime's
//! ports are wired here ([`runtime`]): the model from the state, the registry's tools and the
//! knowledge search through thin adapters, and [`ConversationOutbound`] (the WhatsApp or
//! sandbox side of a reply, through the messaging use cases, as an agent).

use crate::auth::Caller;
use crate::contract::Example;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use async_trait::async_trait;
use atlas_accounts::MintKeyRequest;
use atlas_agents::{
    Agent, AgentDraft, AgentError, AgentFilter, AgentId, AgentKind, AgentPatch, AgentStatus, Executed, HostedSettings, KnowledgeHit,
    KnowledgeSearch, Maturity, ModelError, Outbound, Runtime, Serves, ToolDefinition, ToolFailure, ToolRunner,
};
use atlas_conversations::{
    Approval, ConversationId, Draft, DraftId, DraftState, Messaging, MessagingError, SendCommand, SendReceipt, SendRequest, SendTarget,
};
use atlas_idempotency::{
    claim, Claim, ClaimToken, Claimed, Decision, Fingerprint, IdempotencyKey, IdempotencyScope, IdempotencyStore, StoredResponse,
};
use atlas_kernel::{Clock, OrgId, PageRequest};
use atlas_runs::{JournalEntry, Run, RunId, RunStatus};
use atlas_scopes::{Actor, Principal, Scope, ScopeSet};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// The handler of an agent route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "agents.create" => on(filter, create),
        "agents.list" => on(filter, list),
        "agents.get" => on(filter, get),
        "agents.replace" => on(filter, replace),
        "agents.patch" => on(filter, patch),
        "agents.delete" => on(filter, delete),
        "agents.execute" => on(filter, execute),
        "drafts.list" => on(filter, drafts),
        "drafts.approve" => on(filter, approve),
        "drafts.reject" => on(filter, reject),
        "conversations.release" => on(filter, release),
        _ => return crate::sessions::endpoint(filter, operation),
    })
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Invalid { field, message } => ApiError::field(field, message),
            AgentError::NotFound(what) => ApiError::not_found(what),
            // The model endpoint is this call's upstream: unreachable or failing, 502.
            AgentError::Provider(ModelError::Unreachable(m)) => {
                ApiError::new(ErrorCode::ProviderBadGateway, format!("the agent's model endpoint is unreachable: {m}"))
            }
            AgentError::Provider(ModelError::Upstream(m)) => {
                ApiError::new(ErrorCode::ProviderBadGateway, format!("the agent's model endpoint answered with an error: {m}"))
            }
            AgentError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            AgentError::HandedOff => ApiError::new(ErrorCode::ConversationHandedOff, "handed off to a person"),
            AgentError::Secrets => ApiError::internal("the agent's stored API key does not decrypt (ATLAS_SECRET_KEY changed?)"),
            AgentError::Store(s) => ApiError::internal(s),
        }
    }
}

macro_rules! begin {
    ($state:expr, $op:literal, $caller:expr, $headers:expr, $raw:expr) => {
        match Mutation::begin(&$state, spec($op), &$caller, &$headers, $raw).await {
            Ok(Started::Execute(m)) => m,
            Ok(Started::Answer(r)) => return r,
            Err(e) => return e.into_response(),
        }
    };
}
pub(crate) use begin;

// ---------------------------------------------------------------- runtime wiring

/// The one tool registry as the runtime uses it: the tools the caller's scopes allow, run by
/// the server's tool host (the same flow as the tool API and MCP).
#[derive(Clone)]
pub struct RegistryTools(pub Arc<dyn atlas_tools::ToolHost>);

impl std::fmt::Debug for RegistryTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegistryTools")
    }
}

#[async_trait]
impl ToolRunner for RegistryTools {
    fn tools(&self, caller: &Principal) -> Vec<ToolDefinition> {
        atlas_tools::allowed(&caller.scopes)
            .into_iter()
            .map(|t| ToolDefinition { name: t.name.to_owned(), description: t.description.to_owned(), parameters: t.parameters })
            .collect()
    }

    async fn run(&self, caller: &Principal, name: &str, arguments: Value) -> Result<Value, ToolFailure> {
        self.0.call(caller, name, arguments).await.map_err(|e| ToolFailure::new(e.code(), e.to_string()))
    }
}

/// The knowledge base as the `faq` engine uses it.
#[derive(Debug, Clone)]
pub struct KnowledgeBase(pub Arc<atlas_knowledge::Knowledge>);

#[async_trait]
impl KnowledgeSearch for KnowledgeBase {
    async fn search(&self, org_id: OrgId, query: &str, limit: u32) -> Result<Vec<KnowledgeHit>, ToolFailure> {
        let hits = self.0.search(org_id, query, Some(limit)).await.map_err(|e| ToolFailure::new("KNOWLEDGE_UNAVAILABLE", e.to_string()))?;
        Ok(hits
            .into_iter()
            .map(|h| KnowledgeHit { title: h.title, content: h.content, score: h.score, document_id: h.document_id.to_string() })
            .collect())
    }
}

/// The runtime for one execution: the state's model, the registry's tools, the knowledge base.
pub fn runtime(state: &AppState) -> Runtime {
    Runtime {
        model: state.chat_model.clone(),
        tools: Arc::new(RegistryTools(crate::tools::tool_host(state))),
        knowledge: Arc::new(KnowledgeBase(state.knowledge.clone())),
    }
}

/// A reply's way to a real conversation (WhatsApp or sandbox): sends go through
/// `Messaging::send_as_agent` (so a handed-off conversation refuses them), drafts and handoffs
/// through the messaging use cases; each writes its own `tools.*` run.
#[derive(Debug)]
pub struct ConversationOutbound {
    pub messaging: Arc<Messaging>,
    pub clock: Arc<dyn Clock>,
    pub org_id: OrgId,
    pub conversation_id: ConversationId,
    pub actor: Actor,
    pub request_id: String,
    /// Makes each reply and draft of a run that may run again (an inbound job, retried when
    /// its model fails) happen once; `None` for a run that is not repeated.
    pub fence: Option<ReplyFence>,
}

/// The fence of a repeatable run: its n-th send (and n-th draft) is keyed `<run>-send-<n>`
/// under the idempotency store, claimed in the send's own transaction, so a run that runs
/// again after a failure gets the first run's answer back instead of writing to the customer
/// twice.
#[derive(Debug)]
pub struct ReplyFence {
    idempotency: Arc<dyn IdempotencyStore>,
    run_key: String,
    sends: AtomicU32,
    drafts: AtomicU32,
}

/// What fencing one effect decided.
enum Fenced {
    /// It happened already: its answer, as stored.
    Done(Value),
    /// Do it, committing this claim with it.
    Go(Claim),
}

impl ReplyFence {
    /// The fence of the run known as `run_key` (stable across its repetitions).
    pub fn new(idempotency: Arc<dyn IdempotencyStore>, run_key: impl Into<String>) -> Self {
        Self { idempotency, run_key: run_key.into(), sends: AtomicU32::new(0), drafts: AtomicU32::new(0) }
    }

    async fn enter(&self, org_id: OrgId, effect: &str, now: time::OffsetDateTime) -> Result<Fenced, ToolFailure> {
        let counter = if effect == "send" { &self.sends } else { &self.drafts };
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let key = IdempotencyKey::parse(&format!("{}-{effect}-{n}", self.run_key))
            .map_err(|e| ToolFailure::new("INTERNAL_ERROR", format!("the run's key: {e}")))?;
        let route = format!("AGENT {effect}");
        let scope = IdempotencyScope { org_id, scope: "agents".into(), route: route.clone(), key };
        let fingerprint = Fingerprint::of("AGENT", &route, &json!({"n": n}));
        let token = ClaimToken::from_entropy(crate::api::entropy());
        let at_commit = self.idempotency.claims_at_commit();
        let claimed = claim(self.idempotency.as_ref(), scope, token, fingerprint, now, at_commit)
            .await
            .map_err(|e| ToolFailure::new("INTERNAL_ERROR", e.to_string()))?;
        match claimed {
            Claimed::Execute(claim) => Ok(Fenced::Go(claim)),
            Claimed::Answer(Decision::Replay(stored)) => {
                Ok(Fenced::Done(serde_json::from_slice(&stored.body).map_err(|e| ToolFailure::new("INTERNAL_ERROR", e.to_string()))?))
            }
            Claimed::Answer(_) => {
                Err(ToolFailure::new("IDEMPOTENCY_IN_PROGRESS", "an earlier attempt of this run is still writing this reply"))
            }
        }
    }
}

impl ConversationOutbound {
    fn run(&self, operation: &str, status: RunStatus, resource_id: String) -> JournalEntry {
        let now = self.clock.now();
        JournalEntry {
            run: Run {
                id: RunId::generate(),
                org_id: self.org_id,
                actor: self.actor,
                operation: operation.to_owned(),
                status,
                request_id: self.request_id.clone(),
                idempotency_key: None,
                resource_id: Some(resource_id),
                error: None,
                created_at: now,
                updated_at: now,
            },
            idempotency: None,
            events: Vec::new(),
        }
    }

    /// The fence's verdict on the next `effect` (`send` or `draft`): `Done` with the earlier
    /// answer, or go ahead (with the claim to commit, when fenced).
    async fn enter(&self, effect: &str) -> Result<Result<Option<Claim>, Value>, ToolFailure> {
        let Some(fence) = &self.fence else { return Ok(Ok(None)) };
        Ok(match fence.enter(self.org_id, effect, self.clock.now()).await? {
            Fenced::Done(answer) => Err(answer),
            Fenced::Go(claim) => Ok(Some(claim)),
        })
    }

    /// `entry` with `claim` completed by `answer`, so a repetition replays it.
    fn fenced(mut entry: JournalEntry, claim: Option<&Claim>, answer: &Value) -> JournalEntry {
        if let Some(claim) = claim {
            entry.run.idempotency_key = Some(claim.scope.key.as_str().to_owned());
            let body = serde_json::to_vec(answer).unwrap_or_default();
            entry.idempotency =
                Some((claim.clone(), StoredResponse { status: 200, body, location: None, etag: None, shows_secret: false }));
        }
        entry
    }
}

fn failure(e: MessagingError) -> ToolFailure {
    let message = e.to_string();
    ToolFailure::new(e.code(), message)
}

fn sent(receipt: &SendReceipt) -> Value {
    json!({"conversation_id": receipt.conversation_id, "message_id": receipt.message_id, "queued": true, "window_open": receipt.window_open})
}

fn drafted(draft: &Draft) -> Value {
    json!({"draft_id": draft.id, "conversation_id": draft.conversation_id, "text": draft.text})
}

#[async_trait]
impl Outbound for ConversationOutbound {
    async fn send(&self, text: &str) -> Result<Value, ToolFailure> {
        let claim = match self.enter("send").await? {
            Ok(claim) => claim,
            Err(earlier) => return Ok(earlier),
        };
        let request = SendRequest { text: Some(text.to_owned()), template: None, media: None, interactive: None };
        let command = SendCommand { target: SendTarget::Conversation(self.conversation_id), request };
        let journal = |r: &SendReceipt| {
            let entry = self.run("tools.send_message", RunStatus::Pending, r.message_id.to_string());
            Self::fenced(entry, claim.as_ref(), &sent(r))
        };
        let receipt = self.messaging.send_as_agent(self.org_id, command, &journal).await.map_err(failure)?;
        Ok(sent(&receipt))
    }

    async fn draft(&self, text: &str) -> Result<Value, ToolFailure> {
        let claim = match self.enter("draft").await? {
            Ok(claim) => claim,
            Err(earlier) => return Ok(earlier),
        };
        let journal =
            |d: &Draft| Self::fenced(self.run("tools.draft_message", RunStatus::Succeeded, d.id.to_string()), claim.as_ref(), &drafted(d));
        let draft = self.messaging.draft(self.org_id, self.conversation_id, text, &journal).await.map_err(failure)?;
        Ok(drafted(&draft))
    }

    async fn handoff(&self, _reason: Option<&str>) -> Result<Value, ToolFailure> {
        let entry = self.run("tools.handoff", RunStatus::Succeeded, self.conversation_id.to_string());
        let conversation = self.messaging.handoff(self.org_id, self.conversation_id, &entry).await.map_err(failure)?;
        Ok(json!({"conversation_id": conversation.id, "status": conversation.status}))
    }

    fn journals(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------- agents

/// A hosted agent's model settings in a request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostedBody {
    /// The OpenAI-compatible endpoint (`https://api.openai.com/v1`); not needed for `faq`.
    #[serde(default, alias = "baseUrl")]
    pub base_url: Option<String>,
    /// The model, or `faq` for the built-in engine (no LLM). Default `faq`.
    #[serde(default)]
    pub model: Option<String>,
    /// Sealed at rest, never shown; `""` clears it.
    #[serde(default, alias = "apiKey")]
    pub api_key: Option<String>,
    #[serde(default, alias = "systemPrompt")]
    pub system_prompt: Option<String>,
}

impl From<HostedBody> for HostedSettings {
    fn from(b: HostedBody) -> Self {
        HostedSettings { base_url: b.base_url, model: b.model, api_key: b.api_key, system_prompt: b.system_prompt }
    }
}

/// What an agent serves.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServesBody {
    /// Every conversation of these channels.
    #[serde(default, alias = "channelIds")]
    #[schema(value_type = Vec<String>)]
    pub channel_ids: Vec<atlas_conversations::ChannelId>,
    /// These conversations.
    #[serde(default, alias = "conversationIds")]
    #[schema(value_type = Vec<String>)]
    pub conversation_ids: Vec<ConversationId>,
}

impl From<ServesBody> for Serves {
    fn from(b: ServesBody) -> Self {
        Serves { channel_ids: b.channel_ids, conversation_ids: b.conversation_ids }
    }
}

/// `POST /v1/atlas/agents` and `PUT /v1/atlas/agents/:id` (seed 001's `name` and `role`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentBody {
    pub name: String,
    /// `general-assistant`, `support`, … (default `assistant`).
    #[serde(default)]
    pub role: Option<String>,
    /// `hosted` (default) or `external`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub kind: Option<AgentKind>,
    /// `student` (default), `intern`, `supervised` or `autonomous`.
    #[serde(default, alias = "maturityLevel")]
    #[schema(value_type = Option<String>)]
    pub maturity_level: Option<Maturity>,
    /// `active` (default) or `paused`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Option<AgentStatus>,
    #[serde(default)]
    pub serves: Option<ServesBody>,
    /// Hosted agents.
    #[serde(default)]
    pub hosted: Option<HostedBody>,
    /// External agents: where inbound events are posted.
    #[serde(default)]
    pub url: Option<String>,
    /// The agent credential's scopes (a subset of the caller's); default
    /// `atlas.actions.execute`, `atlas.knowledge.read`, `atlas.conversations.read` (those the
    /// caller holds). `POST` only.
    #[serde(default)]
    #[schema(schema_with = crate::contract::scope_list)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

impl Example for AgentBody {
    fn example() -> Value {
        json!({"name": "Front desk", "role": "support", "kind": "hosted", "maturity_level": "intern",
               "serves": {"channel_ids": [], "conversation_ids": []},
               "hosted": {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key": "sk-example",
                          "system_prompt": "Answer from the knowledge base; hand off when unsure."}})
    }
}

impl AgentBody {
    fn draft(self) -> (AgentDraft, Option<Vec<String>>) {
        let kind = self.kind.unwrap_or(AgentKind::Hosted);
        let draft = AgentDraft {
            name: self.name,
            role: self.role,
            kind,
            maturity_level: self.maturity_level.unwrap_or(Maturity::Student),
            status: self.status.unwrap_or(AgentStatus::Active),
            serves: self.serves.map(Serves::from).unwrap_or_default(),
            hosted: match (kind, self.hosted) {
                (AgentKind::Hosted, None) => Some(HostedSettings::default()),
                (_, h) => h.map(HostedSettings::from),
            },
            url: self.url,
        };
        (draft, self.scopes)
    }
}

/// `PATCH /v1/atlas/agents/:id`: absent fields are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatchBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default, alias = "maturityLevel")]
    #[schema(value_type = Option<String>)]
    pub maturity_level: Option<Maturity>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Option<AgentStatus>,
    #[serde(default)]
    pub serves: Option<ServesBody>,
    #[serde(default)]
    pub hosted: Option<HostedBody>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

impl Example for AgentPatchBody {
    fn example() -> Value {
        json!({"maturity_level": "supervised"})
    }
}

/// An agent's own credential, shown once in the creation answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentCredential {
    pub key_id: String,
    /// `atlas_sk_…`: only here (`null` when the answer is replayed without it).
    pub key: Option<String>,
    pub scopes: Vec<String>,
    /// External agents: the webhook subscription inbound events come through
    /// (`agent.message_received`, signed as every webhook).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// External agents: the `whsec_…` secret that signs those events (only here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// An agent, as answers show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    #[serde(flatten)]
    pub agent: Agent,
    /// The creation answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<AgentCredential>,
}

fn example_agent() -> Value {
    json!({"id": "agt_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b", "name": "Front desk", "role": "support", "kind": "hosted",
           "maturity_level": "intern", "status": "active", "serves": {"channel_ids": [], "conversation_ids": []},
           "hosted": {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "system_prompt": null, "has_api_key": true},
           "url": null, "key_id": "key_0190c9a8f2a47c3d9a1b2c3d4e5f6a7c", "version": 1,
           "created_at": "2026-04-07T12:00:00Z", "updated_at": "2026-04-07T12:00:00Z"})
}

impl Example for AgentView {
    fn example() -> Value {
        let mut agent = example_agent();
        agent["credential"] =
            json!({"key_id": "key_0190c9a8f2a47c3d9a1b2c3d4e5f6a7c", "key": "atlas_sk_…", "scopes": ["atlas.actions.execute"]});
        agent
    }
}

impl Example for Agent {
    fn example() -> Value {
        example_agent()
    }
}

/// A page of agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
    pub next_cursor: Option<String>,
}

impl Example for AgentList {
    fn example() -> Value {
        json!({"agents": [example_agent()], "next_cursor": null})
    }
}

/// `GET /v1/atlas/agents` query (seed 001's filters).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AgentsQuery {
    /// `active` or `paused`.
    #[param(value_type = Option<String>)]
    pub status: Option<AgentStatus>,
    /// `student`, `intern`, `supervised` or `autonomous`.
    #[param(value_type = Option<String>)]
    pub maturity_level: Option<Maturity>,
    /// Text in the name or role.
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

fn agent_id(text: &str) -> Result<AgentId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("agent"))
}

/// The default scopes of an agent's credential.
const AGENT_SCOPES: [Scope; 3] = [Scope::ActionsExecute, Scope::KnowledgeRead, Scope::ConversationsRead];

fn credential_scopes(caller: &Principal, asked: Option<Vec<String>>) -> Result<ScopeSet, ApiError> {
    match asked {
        Some(names) => ScopeSet::parse(names.iter().map(String::as_str)).map_err(|e| ApiError::field("scopes", e.to_string())),
        None => Ok(AGENT_SCOPES.into_iter().filter(|s| caller.has(*s)).collect()),
    }
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<AgentBody>) -> Response {
    let raw = body.raw;
    let (draft, scopes) = body.value.draft();
    if let Err(e) = state.agents.validate(caller.org_id, &draft) {
        return ApiError::from(e).into_response();
    }
    let scopes = match credential_scopes(&caller, scopes) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "agents.create", caller, headers, &raw);
    // The credential and (external agents) the webhook endpoint are checked and made first,
    // then written with the agent in one transaction: all of it or none of it.
    let request = MintKeyRequest { name: format!("agent {}", draft.name.trim()), scopes, expires_at: None, allowed_ips: Vec::new() };
    let minted = match state.accounts.prepare_key(&caller, request, &crate::api::entropy()).await {
        Ok(m) => m,
        Err(e) => return mutation.fail(e.into()).await,
    };
    let mut webhook = None;
    if let (AgentKind::External, Some(url)) = (draft.kind, draft.url.as_deref()) {
        let request = atlas_webhooks::CreateEndpoint {
            url: url.trim().to_owned(),
            events: vec![atlas_webhooks::EventType::AGENT_MESSAGE_RECEIVED.as_str().to_owned()],
            description: Some(format!("agent {}", draft.name.trim())),
        };
        match state.webhooks.prepare(caller.org_id, request, &crate::api::entropy::<32>()).await {
            Ok(created) => webhook = Some(created),
            Err(e) => return mutation.fail(e.into()).await,
        }
    }
    let credential = AgentCredential {
        key_id: minted.record.id.to_string(),
        key: Some(minted.token.expose().to_owned()),
        scopes: minted.record.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        webhook_id: webhook.as_ref().map(|w| w.endpoint.id.to_string()),
        webhook_secret: webhook.as_ref().map(|w| w.secret.expose()),
    };
    let credential = std::sync::Mutex::new(Some(credential));
    let journal = |agent: &Agent| {
        let view = AgentView { agent: agent.clone(), credential: credential.lock().ok().and_then(|mut c| c.take()) };
        let location = format!("/v1/atlas/agents/{}", agent.id);
        mutation.entry_showing_secret(
            None,
            None,
            StatusCode::CREATED,
            &json!(view),
            Some("/credential/key"),
            Some(agent.id.to_string()),
            Some(location),
        )
    };
    let endpoint = webhook.as_ref().map(|w| &w.endpoint);
    match state.agents.create(caller.org_id, draft, Some(&minted.record), endpoint, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<AgentsQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = AgentFilter { status: q.status, maturity_level: q.maturity_level, q: q.q };
    let found = state.agents.agents(caller.org_id, &filter, &page).await?;
    Ok(Envelope::ok(AgentList { agents: found.items, next_cursor: found.next_cursor }).into_response())
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let agent = state.agents.agent(caller.org_id, agent_id(&id)?).await?;
    Ok(Envelope::ok(agent).into_response())
}

async fn replace(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<AgentBody>,
) -> Response {
    let id = match agent_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "agents.replace", caller, headers, &body.raw);
    let (draft, scopes) = body.value.draft();
    if scopes.is_some() {
        return mutation.fail(ApiError::field("scopes", "an agent's credential is set at creation")).await;
    }
    let checked = match checked_url(&state, draft.url.as_deref()).await {
        Ok(url) => url,
        Err(e) => return mutation.fail(e).await,
    };
    let journal = |agent: &Agent| mutation.entry(None, None, StatusCode::OK, &json!(agent), Some(agent.id.to_string()), None);
    match state.agents.replace(caller.org_id, id, draft, checked.as_deref(), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// An external agent's new URL, checked by the webhook rules (its endpoint moves there).
async fn checked_url(state: &AppState, url: Option<&str>) -> Result<Option<String>, ApiError> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => Ok(Some(state.webhooks.check_url(url).await?)),
        None => Ok(None),
    }
}

async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<AgentPatchBody>,
) -> Response {
    let id = match agent_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "agents.patch", caller, headers, &body.raw);
    let b = body.value;
    let patch = AgentPatch {
        name: b.name,
        role: b.role,
        maturity_level: b.maturity_level,
        status: b.status,
        serves: b.serves.map(Serves::from),
        hosted: b.hosted.map(HostedSettings::from),
        url: b.url,
    };
    let checked = match checked_url(&state, patch.url.as_deref()).await {
        Ok(url) => url,
        Err(e) => return mutation.fail(e).await,
    };
    let journal = |agent: &Agent| mutation.entry(None, None, StatusCode::OK, &json!(agent), Some(agent.id.to_string()), None);
    match state.agents.patch(caller.org_id, id, patch, checked.as_deref(), &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// The answer of a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedAgent {
    pub id: String,
    pub deleted: bool,
}

impl Example for DeletedAgent {
    fn example() -> Value {
        json!({"id": "agt_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b", "deleted": true})
    }
}

async fn delete(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id = match agent_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "agents.delete", caller, headers, &Value::Null);
    let answer = DeletedAgent { id: id.to_string(), deleted: true };
    let entry = mutation.entry(None, None, StatusCode::OK, &json!(answer), Some(id.to_string()), None);
    // The credential is revoked and the webhook endpoint deleted with the agent.
    match state.agents.delete(caller.org_id, id, &entry).await {
        Ok(agent) => {
            if let Some(key) = agent.key_id {
                state.accounts.forget_revoked(key);
            }
            mutation.respond().await
        }
        Err(e) => mutation.fail(e.into()).await,
    }
}

// ---------------------------------------------------------------- execute

/// `POST /v1/atlas/agents/:id/execute` (seed 001).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentExecuteBody {
    /// What the agent is asked.
    pub input: String,
    /// The conversation it acts in (its messaging tools reply there, under governance).
    #[serde(default, alias = "conversationId")]
    #[schema(value_type = Option<String>)]
    pub conversation_id: Option<ConversationId>,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

impl Example for AgentExecuteBody {
    fn example() -> Value {
        json!({"input": "What are your opening hours?"})
    }
}

/// What an execution did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionAnswer {
    pub agent_id: String,
    pub episode_id: String,
    /// The agent's final answer, if it gave one.
    pub answer: Option<String>,
    /// `answered`, `drafted`, `handed_off`, `step_limit`.
    #[schema(value_type = String)]
    pub outcome: atlas_agents::Outcome,
    /// Each tool call with its arguments and result; the ids pair calls with answers.
    pub tool_calls: Vec<atlas_agents::ToolCallRecord>,
    /// Model calls made (at most 6).
    pub steps: usize,
    /// A supervised agent's reply was sent and waits for review.
    pub flagged_for_review: bool,
    /// `{"id", "operation": "agents.execute", "status"}`.
    #[schema(value_type = Object)]
    pub run: Value,
}

impl Example for ExecutionAnswer {
    fn example() -> Value {
        json!({"agent_id": "agt_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b", "episode_id": "eps_0190c9a8f2a47c3d9a1b2c3d4e5f6a7d",
               "answer": "We open at 9.", "outcome": "answered",
               "tool_calls": [{"id": "call_1", "name": "search_knowledge", "arguments": {"q": "opening hours"},
                               "result": {"results": []}, "ok": true}],
               "steps": 2, "flagged_for_review": false,
               "run": {"id": "run_0190c9a8f2a47c3d9a1b2c3d4e5f6a7e", "operation": "agents.execute", "status": "succeeded"}})
    }
}

pub(crate) fn execution_answer(executed: &Executed, run: &Value) -> ExecutionAnswer {
    ExecutionAnswer {
        agent_id: executed.episode.agent_id.to_string(),
        episode_id: executed.episode.id.to_string(),
        answer: executed.execution.answer.clone(),
        outcome: executed.execution.outcome,
        tool_calls: executed.execution.tool_calls.clone(),
        steps: executed.execution.steps,
        flagged_for_review: executed.execution.flagged,
        run: run.clone(),
    }
}

async fn execute(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<AgentExecuteBody>,
) -> Response {
    let id = match agent_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "agents.execute", caller, headers, &body.raw);
    let agent = match state.agents.agent(caller.org_id, id).await {
        Ok(a) => a,
        Err(e) => return mutation.fail(e.into()).await,
    };
    let conversation_id = body.value.conversation_id;
    if let Some(conversation) = conversation_id {
        if let Err(e) = state.messaging.conversation(caller.org_id, conversation).await {
            let e = match e {
                MessagingError::NotFound => ApiError::field("conversation_id", "the organization has no such conversation"),
                other => other.into(),
            };
            return mutation.fail(e).await;
        }
    }
    let actor = agent.key_id.map_or(caller.actor, Actor::ApiKey);
    let outbound = conversation_id.map(|conversation_id| ConversationOutbound {
        messaging: state.messaging.clone(),
        clock: state.clock.clone(),
        org_id: caller.org_id,
        conversation_id,
        actor,
        request_id: crate::request_id::current(),
        fence: None,
    });
    let run = mutation.run_summary();
    let journal = |executed: &Executed| {
        let answer = execution_answer(executed, &run);
        mutation.entry(None, None, StatusCode::OK, &json!(answer), Some(executed.episode.id.to_string()), None)
    };
    let outbound_ref = outbound.as_ref().map(|o| o as &dyn Outbound);
    let runtime = runtime(&state);
    match state.agents.execute(&runtime, &caller, &agent, &body.value.input, conversation_id, None, outbound_ref, false, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

// ---------------------------------------------------------------- drafts and release

/// `POST /v1/atlas/conversations/:id/drafts/:draft_id/approve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The text to send instead of the draft's (a person's edit).
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

impl Example for ApproveBody {
    fn example() -> Value {
        json!({"text": "We open at 9, see you soon!"})
    }
}

/// `POST /v1/atlas/conversations/:id/drafts/:draft_id/reject`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    pub reason: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
}

impl Example for RejectBody {
    fn example() -> Value {
        json!({"reason": "The opening hours changed last week."})
    }
}

/// A person's decision on a draft.
#[derive(Debug, Serialize, ToSchema)]
pub struct DraftDecision {
    pub draft_id: String,
    pub conversation_id: String,
    /// `approved` or `rejected`.
    pub state: String,
    /// The text sent (approval).
    pub text: Option<String>,
    pub reason: Option<String>,
    /// The message the approval queued.
    pub message_id: Option<String>,
    #[schema(value_type = Object)]
    pub run: Value,
}

impl Example for DraftDecision {
    fn example() -> Value {
        json!({"draft_id": "drf_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b", "conversation_id": "cnv_0190c9a8f2a47c3d9a1b2c3d4e5f6a7c",
               "state": "approved", "text": "We open at 9.", "reason": null, "message_id": "msg_0190c9a8f2a47c3d9a1b2c3d4e5f6a7d",
               "run": {"id": "run_0190c9a8f2a47c3d9a1b2c3d4e5f6a7e", "operation": "drafts.approve", "status": "pending"}})
    }
}

/// A draft as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DraftView {
    pub id: String,
    pub conversation_id: String,
    /// The reply as drafted.
    pub text: String,
    /// `pending`, `approved` or `rejected`.
    pub state: &'static str,
    /// The message an approval queued.
    pub message_id: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// When a person decided it (RFC 3339).
    pub decided_at: Option<String>,
    pub created_at: String,
}

impl From<&Draft> for DraftView {
    fn from(d: &Draft) -> Self {
        let rfc3339 = |at: time::OffsetDateTime| at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        DraftView {
            id: d.id.to_string(),
            conversation_id: d.conversation_id.to_string(),
            text: d.text.clone(),
            state: d.state.as_str(),
            message_id: d.message_id.map(|m| m.to_string()),
            reason: d.reason.clone(),
            decided_at: d.decided_at.map(rfc3339),
            created_at: rfc3339(d.created_at),
        }
    }
}

/// A conversation's drafts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DraftList {
    pub drafts: Vec<DraftView>,
    pub next_cursor: Option<String>,
}

impl Example for DraftList {
    fn example() -> Value {
        json!({"drafts": [{"id": "drf_0190c9a8f2a47c3d9a1b2c3d4e5f6a7b", "conversation_id": "cnv_0190c9a8f2a47c3d9a1b2c3d4e5f6a7c",
               "text": "We open at 9.", "state": "pending", "message_id": null, "reason": null, "decided_at": null,
               "created_at": "2026-01-01T09:00:00Z"}], "next_cursor": null})
    }
}

/// `GET /v1/atlas/conversations/:id/drafts` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DraftsQuery {
    /// `pending` (the review queue), `approved` or `rejected`.
    #[param(value_type = Option<String>)]
    pub state: Option<DraftState>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

fn draft_path(conversation: &str, draft: &str) -> Result<(ConversationId, DraftId), ApiError> {
    let conversation = conversation.parse().map_err(|_| ApiError::not_found("conversation"))?;
    let draft = draft.parse().map_err(|_| ApiError::not_found("draft"))?;
    Ok((conversation, draft))
}

async fn drafts(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(conversation): Path<String>,
    QueryParams(q): QueryParams<DraftsQuery>,
) -> Result<Response, ApiError> {
    let conversation: ConversationId = conversation.parse().map_err(|_| ApiError::not_found("conversation"))?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.messaging.drafts(caller.org_id, conversation, q.state, &page).await?;
    Ok(Envelope::ok(DraftList { drafts: found.items.iter().map(DraftView::from).collect(), next_cursor: found.next_cursor })
        .into_response())
}

async fn approve(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path((conversation, draft)): Path<(String, String)>,
    body: JsonBody<ApproveBody>,
) -> Response {
    let (conversation_id, draft_id) = match draft_path(&conversation, &draft) {
        Ok(ids) => ids,
        Err(e) => return e.into_response(),
    };
    let mut mutation = begin!(state, "drafts.approve", caller, headers, &body.raw);
    mutation.set_pending();
    let run = mutation.run_summary();
    let edited = body.value.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let journal = |a: &Approval| {
        let answer = DraftDecision {
            draft_id: a.draft.id.to_string(),
            conversation_id: a.draft.conversation_id.to_string(),
            state: a.draft.state.as_str().into(),
            text: Some(a.text.clone()),
            reason: None,
            message_id: Some(a.receipt.message_id.to_string()),
            run: run.clone(),
        };
        mutation.entry(None, None, StatusCode::OK, &json!(answer), Some(a.receipt.message_id.to_string()), None)
    };
    // A person sends: the handoff does not stop it. The decision commits with the send.
    match state.messaging.approve_draft(caller.org_id, conversation_id, draft_id, edited, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn reject(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path((conversation, draft)): Path<(String, String)>,
    body: JsonBody<RejectBody>,
) -> Response {
    let (conversation_id, draft_id) = match draft_path(&conversation, &draft) {
        Ok(ids) => ids,
        Err(e) => return e.into_response(),
    };
    let mutation = begin!(state, "drafts.reject", caller, headers, &body.raw);
    let run = mutation.run_summary();
    let journal = |d: &Draft| {
        let answer = DraftDecision {
            draft_id: d.id.to_string(),
            conversation_id: d.conversation_id.to_string(),
            state: "rejected".into(),
            text: None,
            reason: d.reason.clone(),
            message_id: None,
            run: run.clone(),
        };
        mutation.entry(None, None, StatusCode::OK, &json!(answer), Some(d.id.to_string()), None)
    };
    match state.messaging.reject_draft(caller.org_id, conversation_id, draft_id, &body.value.reason, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

/// A conversation handed back.
#[derive(Debug, Serialize, ToSchema)]
pub struct Released {
    pub conversation_id: String,
    /// `open`.
    pub status: String,
    #[schema(value_type = Object)]
    pub run: Value,
}

impl Example for Released {
    fn example() -> Value {
        json!({"conversation_id": "cnv_0190c9a8f2a47c3d9a1b2c3d4e5f6a7c", "status": "open",
               "run": {"id": "run_0190c9a8f2a47c3d9a1b2c3d4e5f6a7e", "operation": "conversations.release", "status": "succeeded"}})
    }
}

async fn release(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<ConversationId>() else {
        return ApiError::not_found("conversation").into_response();
    };
    let mutation = begin!(state, "conversations.release", caller, headers, &Value::Null);
    let answer = Released { conversation_id: id.to_string(), status: "open".into(), run: mutation.run_summary() };
    let entry = mutation.entry(None, None, StatusCode::OK, &json!(answer), Some(id.to_string()), None);
    match state.messaging.release(caller.org_id, id, &entry).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}
