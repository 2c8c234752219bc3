//! The agents' worker: copies new inbound messages (`atlas.event.received` in the webhook
//! outbox) into agent jobs, claims them under a lease, and hands each to the agent serving its
//! conversation: a hosted or `faq` agent runs (its reply under governance, through the same
//! send path as the tool API, so a handed-off conversation refuses it), with a retry and
//! backoff when the model fails (its replies fenced, so a retry does not send them twice); an
//! external agent gets `agent.message_received`, addressed to its own endpoint, through the
//! webhook delivery queue (signed as every webhook) and answers through the tool API.

use atlas_agents::{Agent, AgentError, AgentKind, Executed, InboundJob, JobEnd};
use atlas_conversations::{ChannelId, ConversationId, ConversationStatus};
use atlas_http::{AppState, ConversationOutbound, ReplyFence};
use atlas_runs::JournalEntry;
use atlas_scopes::{Actor, Principal, Scope};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::watch;

/// Jobs claimed at once.
const BATCH: u32 = 16;
/// How long a claimed job is leased (a hosted run makes up to 6 model calls).
const LEASE: time::Duration = time::Duration::minutes(10);
/// Claims of one job before it fails for good.
const MAX_ATTEMPTS: i32 = 6;

/// The delay before the retry after `attempts` failed claims: 2 s, 4 s, 8 s … at most 5 min.
pub fn retry_delay(attempts: i32) -> time::Duration {
    let exponent = u32::try_from(attempts.clamp(1, 16)).unwrap_or(1);
    time::Duration::seconds((1_i64 << exponent).min(300))
}

/// Runs until `stop` turns true. Idle, it sleeps until it is woken (an inbound message recorded
/// by this process, or, on PostgreSQL, a `webhook_events` notification from any process), until
/// the earliest retry it scheduled itself falls due, or for the fallback poll at most, so an
/// idle process runs no statements of its own in between.
pub fn spawn_agent_worker(state: AppState, fallback_poll: Duration, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut next_retry: Option<time::OffsetDateTime> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            let busy = match step(&state).await {
                Ok(round) => {
                    next_retry = match (next_retry, round.next_retry) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    round.ran > 0
                }
                Err(e) => {
                    tracing::warn!(error = %e, "agent worker failed; its jobs return after their lease");
                    false
                }
            };
            if busy {
                continue;
            }
            let now = state.clock.now();
            if next_retry.is_some_and(|at| at <= now) {
                next_retry = None;
            }
            let nap =
                next_retry.map(|at| Duration::try_from(at - now).unwrap_or(Duration::ZERO).min(fallback_poll)).unwrap_or(fallback_poll);
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = state.wake.agents.notified() => {}
                _ = stop.changed() => {}
            }
        }
    });
}

/// What one round did.
#[derive(Debug, Default)]
pub struct Round {
    /// Jobs run.
    pub ran: usize,
    /// The earliest retry a failed job was scheduled for.
    pub next_retry: Option<time::OffsetDateTime>,
}

/// One round: queue new inbound messages, claim due jobs, run them.
///
/// # Errors
/// A store failure, described.
pub async fn step(state: &AppState) -> Result<Round, String> {
    let store = state.agents.store();
    let now = state.clock.now();
    store.queue_inbound(now, 500).await.map_err(|e| e.to_string())?;
    let jobs = store.claim_jobs(now, now + LEASE, BATCH).await.map_err(|e| e.to_string())?;
    let mut round = Round { ran: jobs.len(), next_retry: None };
    for job in &jobs {
        let end = handle(state, job).await;
        if let JobEnd::Retry { at, .. } = &end {
            round.next_retry = Some(round.next_retry.map_or(*at, |n| n.min(*at)));
        }
        if let JobEnd::Failed(why) = &end {
            tracing::warn!(job = %job.id, error = %why, "an inbound message was not answered by its agent");
        }
        if let Err(e) = store.finish_job(job, &end).await {
            tracing::warn!(job = %job.id, error = %e, "an agent job was not finished");
        }
    }
    Ok(round)
}

fn field<T: std::str::FromStr>(payload: &Value, pointer: &str) -> Option<T> {
    payload.pointer(pointer).and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// The principal an agent acts as: its own credential, with the agent scopes.
fn principal(agent: &Agent) -> Principal {
    Principal {
        org_id: agent.org_id,
        actor: agent.key_id.map_or(Actor::System, Actor::ApiKey),
        scopes: [Scope::ActionsExecute, Scope::KnowledgeRead, Scope::ConversationsRead].into_iter().collect(),
    }
}

async fn handle(state: &AppState, job: &InboundJob) -> JobEnd {
    let p = &job.payload;
    let (Some(conversation_id), Some(channel_id)) = (field::<ConversationId>(p, "/conversation_id"), field::<ChannelId>(p, "/channel_id"))
    else {
        return JobEnd::Done;
    };
    let Some(text) = p.pointer("/message/text").and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty()) else {
        return JobEnd::Done;
    };
    let agent = match state.agents.serving(job.org_id, channel_id, conversation_id).await {
        Ok(Some(agent)) => agent,
        Ok(None) => return JobEnd::Done,
        Err(e) => return retry(job, state, e.to_string()),
    };
    match state.messaging.conversation(job.org_id, conversation_id).await {
        Ok(c) if c.status == ConversationStatus::HandedOff => return JobEnd::Done,
        Ok(_) => {}
        Err(e) => return retry(job, state, e.to_string()),
    }
    let at = state.clock.now();
    let request_id = format!("agentjob_{}", job.id.simple());
    match agent.kind {
        AgentKind::External => {
            let data = json!({"agent_id": agent.id, "conversation_id": conversation_id, "channel_id": channel_id,
                              "customer": p.get("customer"), "message": p.get("message")});
            let event = atlas_webhooks::Event::new(
                job.org_id,
                atlas_webhooks::EventType::AGENT_MESSAGE_RECEIVED,
                at,
                data,
                Some(conversation_id.to_string()),
                1,
            );
            // To this agent's endpoint alone: another agent of the organization never sees it.
            let event = match agent.endpoint_id {
                Some(endpoint) => event.outbox_to(endpoint),
                None => event.outbox(),
            };
            let mut entry = JournalEntry::by_system(job.org_id, "agents.dispatch", agent.id.to_string(), request_id, at);
            entry.events.push(event);
            match state.runs.record(&entry).await {
                Ok(()) => {
                    state.wake.webhooks.notify_one();
                    JobEnd::Done
                }
                Err(e) => retry(job, state, e.to_string()),
            }
        }
        AgentKind::Hosted => {
            let caller = principal(&agent);
            let outbound = ConversationOutbound {
                messaging: state.messaging.clone(),
                clock: state.clock.clone(),
                org_id: job.org_id,
                conversation_id,
                actor: caller.actor,
                request_id: request_id.clone(),
                // A retry (the model failed midway) replays the replies the first attempt sent.
                fence: Some(ReplyFence::new(state.idempotency.clone(), format!("agentjob-{}", job.id.simple()))),
            };
            let runtime = atlas_http::agent_runtime(state);
            let journal = |executed: &Executed| {
                let mut entry =
                    JournalEntry::by_system(job.org_id, "agents.execute", executed.episode.id.to_string(), request_id.clone(), at);
                entry.run.actor = caller.actor;
                entry
            };
            match state
                .agents
                .execute(
                    &runtime,
                    &caller,
                    &agent,
                    text,
                    Some(conversation_id),
                    None,
                    Some(&outbound as &dyn atlas_agents::Outbound),
                    true,
                    &journal,
                )
                .await
            {
                Ok(_) => JobEnd::Done,
                Err(AgentError::Provider(e)) => retry(job, state, e.to_string()),
                Err(e) => JobEnd::Failed(e.to_string()),
            }
        }
    }
}

fn retry(job: &InboundJob, state: &AppState, error: String) -> JobEnd {
    if job.attempts >= MAX_ATTEMPTS {
        JobEnd::Failed(error)
    } else {
        JobEnd::Retry { at: state.clock.now() + retry_delay(job.attempts), error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        let delays: Vec<i64> = (1..=10).map(|a| retry_delay(a).whole_seconds()).collect();
        assert_eq!(&delays[..4], [2, 4, 8, 16]);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().unwrap(), 300);
    }
}
