//! The agents use cases over the [`AgentStore`] port: agents (create, read, list, replace,
//! patch, delete), one execution (hosted loop or `faq`, kept as an episode with its runs),
//! and test sessions whose outbound side is the session itself
//! ([`SessionOutbound`]).

use crate::model::{
    Agent, AgentFilter, AgentId, AgentKind, AgentStatus, Episode, EpisodeId, HostedConfig, InboundJob, JobEnd, Maturity, Outcome, Serves,
    Session, SessionEvent, SessionEventKind, SessionId, MAX_INPUT_CHARS, MAX_NAME_CHARS, MAX_PROMPT_CHARS,
};
use crate::runtime::{
    run_faq, run_hosted, ChatModel, Execution, KnowledgeSearch, ModelEndpoint, ModelError, Outbound, ToolFailure, ToolRunner, Turn,
    FAQ_THRESHOLD,
};
use async_trait::async_trait;
use atlas_accounts::ApiKeyRecord;
use atlas_conversations::{ConversationId, SecretCipher};
use atlas_kernel::{Clock, OrgId, Page, PageRequest, StoreError};
use atlas_runs::{Journal, JournalEntry, Run, RunId, RunStatus};
use atlas_scopes::Principal;
use atlas_webhooks::WebhookEndpoint;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use time::OffsetDateTime;

/// Why an agent store call failed.
#[derive(Debug, Error)]
pub enum AgentStoreError {
    #[error("not found")]
    NotFound,
    /// A compare-and-set lost (the agent changed).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where agents, episodes and sessions live.
#[async_trait]
pub trait AgentStore: Send + Sync + std::fmt::Debug {
    /// Inserts `agent` with its credential (`agent.key_id`) and, for an external agent, its
    /// webhook endpoint (`agent.endpoint_id`), and `journal`, in one transaction.
    async fn insert_agent(
        &self,
        agent: &Agent,
        credential: Option<&ApiKeyRecord>,
        endpoint: Option<&WebhookEndpoint>,
        journal: &JournalEntry,
    ) -> Result<(), AgentStoreError>;
    /// Replaces the agent whose stored version is `agent.version - 1` (else `Conflict`); with
    /// `endpoint_url`, its webhook endpoint now posts there, in the same transaction.
    async fn update_agent(&self, agent: &Agent, endpoint_url: Option<&str>, journal: &JournalEntry) -> Result<(), AgentStoreError>;
    /// Deletes an agent with what was made for it, in one transaction: its credential is
    /// revoked at `at` and its webhook endpoint deleted (`NotFound` when absent).
    async fn delete_agent(&self, org_id: OrgId, id: AgentId, at: OffsetDateTime, journal: &JournalEntry) -> Result<(), AgentStoreError>;
    async fn agent(&self, org_id: OrgId, id: AgentId) -> Result<Option<Agent>, AgentStoreError>;
    /// The organization's agents matching `filter`, newest first.
    async fn agents(&self, org_id: OrgId, filter: &AgentFilter, page: &PageRequest) -> Result<Page<Agent>, AgentStoreError>;
    /// The organization's active agents (to find who serves a conversation).
    async fn active_agents(&self, org_id: OrgId) -> Result<Vec<Agent>, AgentStoreError>;
    /// Stores an episode with its entries (the execution's run, the tool runs) in one transaction.
    async fn record_episode(&self, episode: &Episode, entries: &[JournalEntry]) -> Result<(), AgentStoreError>;
    /// An agent's episodes, newest first.
    async fn episodes(&self, org_id: OrgId, agent_id: AgentId, page: &PageRequest) -> Result<Page<Episode>, AgentStoreError>;
    async fn insert_session(&self, session: &Session, journal: &JournalEntry) -> Result<(), AgentStoreError>;
    async fn session(&self, org_id: OrgId, id: SessionId) -> Result<Option<Session>, AgentStoreError>;
    async fn sessions(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Session>, AgentStoreError>;
    /// Deletes a session and its events.
    async fn delete_session(&self, org_id: OrgId, id: SessionId, journal: &JournalEntry) -> Result<(), AgentStoreError>;
    /// Appends events (numbered after the last), marking the session handed off on a `Handoff`.
    async fn append_events(
        &self,
        org_id: OrgId,
        id: SessionId,
        events: &[(SessionEventKind, Value)],
        at: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, AgentStoreError>;
    /// A session's events after `after` (a sequence number), in order.
    async fn events(&self, org_id: OrgId, id: SessionId, after: i64, limit: u32) -> Result<Vec<SessionEvent>, AgentStoreError>;
    /// Queues, as jobs, the inbound messages (`atlas.event.received` events) written since the
    /// last call, at most `limit`; returns how many were read.
    async fn queue_inbound(&self, now: OffsetDateTime, limit: u32) -> Result<usize, AgentStoreError>;
    /// Claims due jobs under a lease until `lease_until`.
    async fn claim_jobs(&self, now: OffsetDateTime, lease_until: OffsetDateTime, limit: u32) -> Result<Vec<InboundJob>, AgentStoreError>;
    /// Ends a claimed job (`Conflict` when another claim took it meanwhile).
    async fn finish_job(&self, job: &InboundJob, end: &JobEnd) -> Result<(), AgentStoreError>;
}

/// Why an agents use case refused or failed.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The model endpoint failed a synchronous call (`PROVIDER_UNAVAILABLE`).
    #[error(transparent)]
    Provider(#[from] ModelError),
    /// The agent changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// The conversation belongs to a person (`CONVERSATION_HANDED_OFF`).
    #[error("the conversation is handed off to a person")]
    HandedOff,
    #[error("the stored API key does not decrypt")]
    Secrets,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AgentStoreError> for AgentError {
    fn from(e: AgentStoreError) -> Self {
        match e {
            AgentStoreError::NotFound => AgentError::NotFound("agent"),
            AgentStoreError::Conflict(what) => AgentError::Conflict(what),
            AgentStoreError::Store(s) => AgentError::Store(s),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AgentError {
    AgentError::Invalid { field, message: message.into() }
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<String, AgentError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(invalid(field, format!("1 to {max} characters")));
    }
    Ok(value.to_owned())
}

fn http_url(field: &'static str, value: &str) -> Result<String, AgentError> {
    let value = value.trim();
    if !(value.starts_with("http://") || value.starts_with("https://")) || value.len() > 2048 || value.contains(char::is_whitespace) {
        return Err(invalid(field, "an http(s) URL"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// The clock at microsecond precision, as stored.
fn now(clock: &dyn Clock) -> OffsetDateTime {
    let at = clock.now();
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

/// A hosted agent's settings as a request gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostedSettings {
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// `Some("")` clears the stored key; `None` keeps it.
    pub api_key: Option<String>,
    pub system_prompt: Option<String>,
}

/// A whole agent as `POST` and `PUT` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDraft {
    pub name: String,
    pub role: Option<String>,
    pub kind: AgentKind,
    pub maturity_level: Maturity,
    pub status: AgentStatus,
    pub serves: Serves,
    pub hosted: Option<HostedSettings>,
    pub url: Option<String>,
}

/// A `PATCH`: absent fields are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub role: Option<String>,
    pub maturity_level: Option<Maturity>,
    pub status: Option<AgentStatus>,
    pub serves: Option<Serves>,
    pub hosted: Option<HostedSettings>,
    pub url: Option<String>,
}

/// What an execution produced: the episode kept and what the runtime did.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    pub episode: Episode,
    pub execution: Execution,
}

/// A session message's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionTurn {
    pub executed: Executed,
    pub events: Vec<SessionEvent>,
}

/// The runs of an execution's tool calls: one `tools.<name>` run per call, by the execution's
/// actor, as the execution's run was (the messaging tools' sends record their own).
pub fn tool_runs(execution_run: &Run, execution: &Execution) -> Vec<JournalEntry> {
    execution
        .tool_calls
        .iter()
        .map(|call| {
            let mut run = execution_run.clone();
            run.id = RunId::generate();
            run.operation = format!("tools.{}", call.name);
            run.idempotency_key = None;
            run.status = if call.ok { RunStatus::Succeeded } else { RunStatus::Failed };
            run.error = (!call.ok).then(|| atlas_runs::RunError {
                code: call.result.pointer("/error/code").and_then(Value::as_str).unwrap_or("TOOL_FAILED").to_owned(),
                message: call.result.pointer("/error/message").and_then(Value::as_str).unwrap_or("").to_owned(),
            });
            JournalEntry { run, idempotency: None, events: Vec::new() }
        })
        .collect()
}

/// The ports an execution drives.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub model: Arc<dyn ChatModel>,
    pub tools: Arc<dyn ToolRunner>,
    pub knowledge: Arc<dyn KnowledgeSearch>,
}

/// The agents use cases.
#[derive(Debug, Clone)]
pub struct Agents {
    store: Arc<dyn AgentStore>,
    cipher: Arc<dyn SecretCipher>,
    clock: Arc<dyn Clock>,
}

impl Agents {
    /// The use cases over `store`, sealing model API keys with `cipher`. Executions take the
    /// [`Runtime`] (model, tools, knowledge) per call, as the driving adapter wires it.
    pub fn new(store: Arc<dyn AgentStore>, cipher: Arc<dyn SecretCipher>, clock: Arc<dyn Clock>) -> Self {
        Self { store, cipher, clock }
    }

    /// The store (for adapters that read it directly, such as the session stream).
    pub fn store(&self) -> &Arc<dyn AgentStore> {
        &self.store
    }

    fn hosted(
        &self,
        settings: Option<HostedSettings>,
        previous: Option<(&HostedConfig, Option<&Vec<u8>>)>,
    ) -> Result<(HostedConfig, Option<Vec<u8>>), AgentError> {
        let settings = settings.unwrap_or_default();
        let model = match (settings.model, previous) {
            (Some(m), _) => bounded("hosted.model", &m, MAX_NAME_CHARS)?,
            (None, Some((p, _))) => p.model.clone(),
            (None, None) => crate::model::FAQ_MODEL.to_owned(),
        };
        let base_url = match (settings.base_url, previous) {
            (Some(u), _) if u.trim().is_empty() => None,
            (Some(u), _) => Some(http_url("hosted.base_url", &u)?),
            (None, Some((p, _))) => p.base_url.clone(),
            (None, None) => None,
        };
        if model != crate::model::FAQ_MODEL && base_url.is_none() {
            return Err(invalid("hosted.base_url", "a hosted agent with a model needs the endpoint's base URL (or model `faq`)"));
        }
        let system_prompt = match (settings.system_prompt, previous) {
            (Some(p), _) if p.trim().is_empty() => None,
            (Some(p), _) => Some(bounded("hosted.system_prompt", &p, MAX_PROMPT_CHARS)?),
            (None, Some((p, _))) => p.system_prompt.clone(),
            (None, None) => None,
        };
        let sealed = match (settings.api_key, previous) {
            (Some(k), _) if k.is_empty() => None,
            (Some(k), _) => Some(self.cipher.seal(bounded("hosted.api_key", &k, 4096)?.as_bytes())),
            (None, Some((_, sealed))) => sealed.cloned(),
            (None, None) => None,
        };
        Ok((HostedConfig { base_url, model, system_prompt, has_api_key: sealed.is_some() }, sealed))
    }

    fn build(&self, org_id: OrgId, draft: AgentDraft, previous: Option<&Agent>) -> Result<Agent, AgentError> {
        let name = bounded("name", &draft.name, MAX_NAME_CHARS)?;
        let role = match draft.role {
            Some(r) => bounded("role", &r, MAX_NAME_CHARS)?,
            None => "assistant".to_owned(),
        };
        let (hosted, sealed, url) = match draft.kind {
            AgentKind::Hosted => {
                if draft.url.is_some() {
                    return Err(invalid("url", "only an external agent has a URL"));
                }
                let prev = previous.and_then(|p| p.hosted.as_ref().map(|h| (h, p.sealed_api_key.as_ref())));
                let (config, sealed) = self.hosted(draft.hosted, prev)?;
                (Some(config), sealed, None)
            }
            AgentKind::External => {
                if draft.hosted.is_some() {
                    return Err(invalid("hosted", "only a hosted agent has model settings"));
                }
                let url = draft.url.ok_or_else(|| invalid("url", "an external agent needs the URL its events are posted to"))?;
                (None, None, Some(http_url("url", &url)?))
            }
        };
        if draft.serves.channel_ids.len() + draft.serves.conversation_ids.len() > 1000 {
            return Err(invalid("serves", "at most 1000 channels and conversations"));
        }
        let at = now(self.clock.as_ref());
        Ok(Agent {
            id: previous.map_or_else(AgentId::generate, |p| p.id),
            org_id,
            name,
            role,
            kind: draft.kind,
            maturity_level: draft.maturity_level,
            status: draft.status,
            serves: draft.serves,
            hosted,
            url,
            key_id: previous.and_then(|p| p.key_id),
            endpoint_id: previous.and_then(|p| p.endpoint_id),
            sealed_api_key: sealed,
            version: previous.map_or(1, |p| p.version + 1),
            created_at: previous.map_or(at, |p| p.created_at),
            updated_at: at,
        })
    }

    /// Creates an agent with its own credential (prepared by the accounts use cases) and, for
    /// an external agent, the webhook endpoint its events are addressed to (prepared by the
    /// webhooks use cases): all of it commits in one transaction, or none of it.
    ///
    /// # Errors
    /// `Invalid` for a bad field (an endpoint for a hosted agent, none for an external one);
    /// `Store`.
    pub async fn create(
        &self,
        org_id: OrgId,
        draft: AgentDraft,
        credential: Option<&ApiKeyRecord>,
        endpoint: Option<&WebhookEndpoint>,
        journal: &dyn Journal<Agent>,
    ) -> Result<Agent, AgentError> {
        let mut agent = self.build(org_id, draft, None)?;
        match (agent.kind, endpoint) {
            (AgentKind::External, None) => return Err(invalid("url", "an external agent needs its webhook endpoint")),
            (AgentKind::Hosted, Some(_)) => return Err(invalid("url", "only an external agent has a webhook endpoint")),
            _ => {}
        }
        if credential.is_some_and(|c| c.org_id != org_id) || endpoint.is_some_and(|e| e.org_id != org_id) {
            return Err(invalid("credential", "made for another organization"));
        }
        agent.key_id = credential.map(|c| c.id);
        agent.endpoint_id = endpoint.map(|e| e.id);
        self.store.insert_agent(&agent, credential, endpoint, &journal.entry(&agent)).await?;
        Ok(agent)
    }

    /// Checks a draft without storing it (so a credential is minted only for a valid agent).
    ///
    /// # Errors
    /// `Invalid` for a bad field.
    pub fn validate(&self, org_id: OrgId, draft: &AgentDraft) -> Result<(), AgentError> {
        self.build(org_id, draft.clone(), None).map(|_| ())
    }

    /// One agent.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn agent(&self, org_id: OrgId, id: AgentId) -> Result<Agent, AgentError> {
        self.store.agent(org_id, id).await?.ok_or(AgentError::NotFound("agent"))
    }

    /// Agents, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn agents(&self, org_id: OrgId, filter: &AgentFilter, page: &PageRequest) -> Result<Page<Agent>, AgentError> {
        let filter = AgentFilter { q: filter.q.as_deref().map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty()), ..filter.clone() };
        Ok(self.store.agents(org_id, &filter, page).await?)
    }

    /// Replaces an agent (`PUT`); its kind cannot change. `checked_url` is the request's `url`
    /// as the webhook rules checked it: when an external agent's URL changes, its endpoint
    /// follows, in the same transaction.
    ///
    /// # Errors
    /// `NotFound`, `Invalid`, `Conflict` (changed meanwhile), `Store`.
    pub async fn replace(
        &self,
        org_id: OrgId,
        id: AgentId,
        draft: AgentDraft,
        checked_url: Option<&str>,
        journal: &dyn Journal<Agent>,
    ) -> Result<Agent, AgentError> {
        let previous = self.agent(org_id, id).await?;
        if previous.kind != draft.kind {
            return Err(invalid("kind", "an agent's kind cannot change; create another agent"));
        }
        let agent = self.build(org_id, draft, Some(&previous))?;
        self.update(&previous, agent, checked_url, journal).await
    }

    async fn update(
        &self,
        previous: &Agent,
        agent: Agent,
        checked_url: Option<&str>,
        journal: &dyn Journal<Agent>,
    ) -> Result<Agent, AgentError> {
        let endpoint_url = match (agent.endpoint_id, agent.url != previous.url) {
            (Some(_), true) => Some(checked_url.ok_or_else(|| invalid("url", "the new URL was not checked"))?),
            _ => None,
        };
        self.store.update_agent(&agent, endpoint_url, &journal.entry(&agent)).await?;
        Ok(agent)
    }

    /// Changes some of an agent's fields (`PATCH`); `checked_url` as for [`replace`](Self::replace).
    ///
    /// # Errors
    /// `NotFound`, `Invalid`, `Conflict`, `Store`.
    pub async fn patch(
        &self,
        org_id: OrgId,
        id: AgentId,
        patch: AgentPatch,
        checked_url: Option<&str>,
        journal: &dyn Journal<Agent>,
    ) -> Result<Agent, AgentError> {
        let previous = self.agent(org_id, id).await?;
        let draft = AgentDraft {
            name: patch.name.unwrap_or_else(|| previous.name.clone()),
            role: Some(patch.role.unwrap_or_else(|| previous.role.clone())),
            kind: previous.kind,
            maturity_level: patch.maturity_level.unwrap_or(previous.maturity_level),
            status: patch.status.unwrap_or(previous.status),
            serves: patch.serves.unwrap_or_else(|| previous.serves.clone()),
            hosted: match previous.kind {
                AgentKind::Hosted => Some(patch.hosted.unwrap_or_default()),
                AgentKind::External => patch.hosted,
            },
            url: match previous.kind {
                AgentKind::External => Some(patch.url.unwrap_or_else(|| previous.url.clone().unwrap_or_default())),
                AgentKind::Hosted => patch.url,
            },
        };
        let agent = self.build(org_id, draft, Some(&previous))?;
        self.update(&previous, agent, checked_url, journal).await
    }

    /// Deletes an agent.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn delete(&self, org_id: OrgId, id: AgentId, journal: &JournalEntry) -> Result<Agent, AgentError> {
        let agent = self.agent(org_id, id).await?;
        self.store.delete_agent(org_id, id, now(self.clock.as_ref()), journal).await?;
        Ok(agent)
    }

    /// The active agent that serves a conversation (on `channel_id`), if any (the first
    /// created when several do).
    ///
    /// # Errors
    /// `Store`.
    pub async fn serving(
        &self,
        org_id: OrgId,
        channel_id: atlas_conversations::ChannelId,
        conversation_id: ConversationId,
    ) -> Result<Option<Agent>, AgentError> {
        let mut agents = self.store.active_agents(org_id).await?;
        agents.sort_by_key(|a| (a.created_at, a.id));
        Ok(agents.into_iter().find(|a| a.serves.covers(channel_id, conversation_id)))
    }

    fn endpoint(&self, agent: &Agent) -> Result<Option<ModelEndpoint>, AgentError> {
        let Some(hosted) = &agent.hosted else { return Ok(None) };
        if hosted.is_faq() {
            return Ok(None);
        }
        let api_key = match &agent.sealed_api_key {
            Some(sealed) => {
                Some(String::from_utf8(self.cipher.open(sealed).map_err(|_| AgentError::Secrets)?).map_err(|_| AgentError::Secrets)?)
            }
            None => None,
        };
        let base_url = hosted.base_url.clone().ok_or_else(|| invalid("hosted.base_url", "missing"))?;
        Ok(Some(ModelEndpoint { base_url, model: hosted.model.clone(), api_key }))
    }

    /// Runs a hosted agent (or `faq`) once, as `caller` (the agent's own credential when the
    /// server runs it): `outbound` is where replies go (none for a bare execute), and the
    /// final answer is itself delivered when `reply_with_answer`. The episode, the execution's
    /// run (`journal`) and one `tools.*` run per tool call commit together.
    ///
    /// # Errors
    /// `NotFound`; `Invalid` (`input`, or an external agent); `Provider` when the model fails;
    /// `Store`.
    #[allow(clippy::too_many_arguments)]
    pub async fn execute(
        &self,
        runtime: &Runtime,
        caller: &Principal,
        agent: &Agent,
        input: &str,
        conversation_id: Option<ConversationId>,
        session_id: Option<SessionId>,
        outbound: Option<&dyn Outbound>,
        reply_with_answer: bool,
        journal: &dyn Journal<Executed>,
    ) -> Result<Executed, AgentError> {
        let input = input.trim();
        if input.is_empty() || input.chars().count() > MAX_INPUT_CHARS {
            return Err(invalid("input", format!("1 to {MAX_INPUT_CHARS} characters")));
        }
        let Some(hosted) = &agent.hosted else {
            return Err(invalid("agent_id", "an external agent runs elsewhere; it answers through the tool API"));
        };
        let turn = Turn {
            caller,
            maturity: agent.maturity_level,
            system_prompt: hosted.system_prompt.as_deref(),
            input,
            conversation_id,
            outbound,
            reply_with_answer,
        };
        let execution = match self.endpoint(agent)? {
            None => run_faq(runtime.knowledge.as_ref(), &turn, FAQ_THRESHOLD).await,
            Some(endpoint) => run_hosted(runtime.model.as_ref(), &endpoint, runtime.tools.as_ref(), &turn).await?,
        };
        let episode = Episode {
            id: EpisodeId::generate(),
            org_id: agent.org_id,
            agent_id: agent.id,
            conversation_id,
            session_id,
            input: input.to_owned(),
            steps: execution.tool_calls.clone(),
            answer: execution.answer.clone(),
            outcome: execution.outcome,
            intervened: execution.needs_person(),
            created_at: now(self.clock.as_ref()),
        };
        let executed = Executed { episode, execution };
        let entry = journal.entry(&executed);
        let mut entries = vec![entry.clone()];
        // One run per tool call: those that ran elsewhere wrote theirs.
        let mut tools = executed.execution.clone();
        tools.tool_calls.retain(|c| !c.journaled);
        entries.extend(tool_runs(&entry.run, &tools));
        self.store.record_episode(&executed.episode, &entries).await?;
        Ok(executed)
    }

    /// An agent's episodes, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn episodes(&self, org_id: OrgId, agent_id: AgentId, page: &PageRequest) -> Result<Page<Episode>, AgentError> {
        Ok(self.store.episodes(org_id, agent_id, page).await?)
    }

    /// Opens a test session with an agent.
    ///
    /// # Errors
    /// `NotFound` (`agent_id`); `Invalid` for an external agent; `Store`.
    pub async fn open_session(&self, org_id: OrgId, agent_id: AgentId, journal: &dyn Journal<Session>) -> Result<Session, AgentError> {
        let agent = self
            .store
            .agent(org_id, agent_id)
            .await?
            .ok_or(AgentError::Invalid { field: "agent_id", message: "the organization has no such agent".into() })?;
        if agent.kind == AgentKind::External {
            return Err(invalid("agent_id", "an external agent runs elsewhere; test it through the tool API"));
        }
        let session = Session { id: SessionId::generate(), org_id, agent_id, handed_off: false, created_at: now(self.clock.as_ref()) };
        self.store.insert_session(&session, &journal.entry(&session)).await?;
        Ok(session)
    }

    /// One session.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn session(&self, org_id: OrgId, id: SessionId) -> Result<Session, AgentError> {
        self.store.session(org_id, id).await?.ok_or(AgentError::NotFound("session"))
    }

    /// Sessions, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn sessions(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Session>, AgentError> {
        Ok(self.store.sessions(org_id, page).await?)
    }

    /// Deletes a session.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn close_session(&self, org_id: OrgId, id: SessionId, journal: &JournalEntry) -> Result<Session, AgentError> {
        let session = self.session(org_id, id).await?;
        self.store.delete_session(org_id, id, journal).await.map_err(|e| match e {
            AgentStoreError::NotFound => AgentError::NotFound("session"),
            other => other.into(),
        })?;
        Ok(session)
    }

    /// A session's events after sequence number `after`.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn session_events(&self, org_id: OrgId, id: SessionId, after: i64, limit: u32) -> Result<Vec<SessionEvent>, AgentError> {
        self.session(org_id, id).await?;
        Ok(self.store.events(org_id, id, after, limit).await?)
    }

    /// The tester writes `text` as the customer: the agent runs through the same pipeline,
    /// its replies going to the session (sent or kept as drafts under governance), and every
    /// step is a session event.
    ///
    /// # Errors
    /// `NotFound`; `Invalid` (`text`); `HandedOff` when the session was handed to a person;
    /// `Provider` when the model fails; `Store`.
    pub async fn session_message(
        &self,
        runtime: &Runtime,
        caller: &Principal,
        id: SessionId,
        text: &str,
        journal: &dyn Journal<Executed>,
    ) -> Result<SessionTurn, AgentError> {
        let session = self.session(caller.org_id, id).await?;
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_INPUT_CHARS {
            return Err(invalid("text", format!("1 to {MAX_INPUT_CHARS} characters")));
        }
        if session.handed_off {
            return Err(AgentError::HandedOff);
        }
        let agent = self.agent(caller.org_id, session.agent_id).await?;
        let at = now(self.clock.as_ref());
        let mut events =
            self.store.append_events(caller.org_id, id, &[(SessionEventKind::CustomerMessage, json!({"text": text}))], at).await?;
        let outbound = SessionOutbound::new(self.store.clone(), caller.org_id, id, at);
        let executed = self.execute(runtime, caller, &agent, text, None, Some(id), Some(&outbound as &dyn Outbound), true, journal).await?;
        let tool_events: Vec<(SessionEventKind, Value)> = executed
            .execution
            .tool_calls
            .iter()
            .filter(|c| !matches!(c.name.as_str(), "send_message" | "draft_message" | "handoff"))
            .map(|c| (SessionEventKind::ToolCall, json!(c)))
            .collect();
        events.extend(outbound.take());
        if !tool_events.is_empty() {
            events.extend(self.store.append_events(caller.org_id, id, &tool_events, at).await?);
        }
        events.sort_by_key(|e| e.seq);
        Ok(SessionTurn { executed, events })
    }
}

/// A test session as the outbound side: a reply becomes an `agent_message` event, a draft a
/// `draft` event, a handoff a `handoff` event (after which sends are refused).
#[derive(Debug)]
pub struct SessionOutbound {
    store: Arc<dyn AgentStore>,
    org_id: OrgId,
    id: SessionId,
    at: OffsetDateTime,
    written: Mutex<Vec<SessionEvent>>,
    handed_off: Mutex<bool>,
}

impl SessionOutbound {
    /// The outbound side of session `id`, writing events stamped `at`.
    pub fn new(store: Arc<dyn AgentStore>, org_id: OrgId, id: SessionId, at: OffsetDateTime) -> Self {
        Self { store, org_id, id, at, written: Mutex::new(Vec::new()), handed_off: Mutex::new(false) }
    }

    /// The events written so far.
    pub fn take(&self) -> Vec<SessionEvent> {
        self.written.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default()
    }

    async fn write(&self, kind: SessionEventKind, data: Value) -> Result<Value, ToolFailure> {
        let written = self
            .store
            .append_events(self.org_id, self.id, &[(kind, data)], self.at)
            .await
            .map_err(|e| ToolFailure::new("INTERNAL_ERROR", e.to_string()))?;
        let shown =
            written.first().map(|e| json!({"session_id": self.id.to_string(), "seq": e.seq, "kind": e.kind})).unwrap_or(Value::Null);
        if let Ok(mut w) = self.written.lock() {
            w.extend(written);
        }
        Ok(shown)
    }

    fn is_handed_off(&self) -> bool {
        self.handed_off.lock().map(|h| *h).unwrap_or(false)
    }
}

#[async_trait]
impl Outbound for SessionOutbound {
    async fn send(&self, text: &str) -> Result<Value, ToolFailure> {
        if self.is_handed_off() {
            return Err(ToolFailure::new("CONVERSATION_HANDED_OFF", "the session is handed off to a person"));
        }
        self.write(SessionEventKind::AgentMessage, json!({"text": text})).await
    }

    async fn draft(&self, text: &str) -> Result<Value, ToolFailure> {
        self.write(SessionEventKind::Draft, json!({"text": text})).await
    }

    async fn handoff(&self, reason: Option<&str>) -> Result<Value, ToolFailure> {
        if let Ok(mut h) = self.handed_off.lock() {
            *h = true;
        }
        self.write(SessionEventKind::Handoff, json!({"reason": reason})).await
    }
}

/// What an execution's episode says for a run's outcome (`answered`, `drafted`, …).
pub fn outcome_name(outcome: Outcome) -> &'static str {
    outcome.as_str()
}
