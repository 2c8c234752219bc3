//! The behavioural suite every `AgentStore` must pass: agents read back as written (the sealed
//! key too), list newest first with the status, maturity and text filters, change only by
//! compare-and-set on their version, and stay in their organization; an episode commits with
//! its runs; session events are numbered 1, 2, 3… per session, a handoff marks the session,
//! and a deleted session takes its events along.

use crate::accounts::{create_organization, journal, now, sample_key};
use crate::webhooks::new_endpoint;
use atlas_accounts::AccountStore;
use atlas_agents::{
    Agent, AgentFilter, AgentId, AgentKind, AgentStatus, AgentStore, AgentStoreError, Episode, EpisodeId, HostedConfig, Maturity, Outcome,
    Serves, Session, SessionEventKind, SessionId, ToolCallRecord,
};
use atlas_conversations::{ChannelId, ConversationId};
use atlas_kernel::{OrgId, PageRequest};
use atlas_webhooks::WebhookStore;
use serde_json::json;
use time::Duration;

/// Runs every check of the suite against `store` (which also keeps the keys and webhook
/// endpoints an agent is created and deleted with).
pub async fn suite<S: AgentStore + AccountStore + WebhookStore>(store: &S) {
    agents_read_back_filter_and_change_by_version(store).await;
    an_agent_commits_and_leaves_with_its_credential_and_endpoint(store).await;
    episodes_commit_with_their_runs(store).await;
    session_events_are_numbered_per_session(store).await;
}

/// A hosted agent of `org` created `offset_s` seconds after now.
pub fn sample_agent(org_id: OrgId, name: &str, maturity: Maturity, offset_s: i64) -> Agent {
    let at = now() + Duration::seconds(offset_s);
    Agent {
        id: AgentId::generate(),
        org_id,
        name: name.into(),
        role: "support".into(),
        kind: AgentKind::Hosted,
        maturity_level: maturity,
        status: AgentStatus::Active,
        serves: Serves { channel_ids: vec![ChannelId::generate()], conversation_ids: Vec::new() },
        hosted: Some(HostedConfig {
            base_url: Some("https://llm.example/v1".into()),
            model: "gpt".into(),
            system_prompt: Some("Be brief.".into()),
            has_api_key: true,
        }),
        url: None,
        key_id: None,
        endpoint_id: None,
        sealed_api_key: Some(vec![1, 2, 3, 4]),
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

async fn agents_read_back_filter_and_change_by_version(store: &dyn AgentStore) {
    let org = OrgId::generate();
    let first = sample_agent(org, "Front desk", Maturity::Intern, 0);
    let mut second = sample_agent(org, "Billing helper", Maturity::Autonomous, 1);
    second.status = AgentStatus::Paused;
    for a in [&first, &second] {
        store.insert_agent(a, None, None, &journal(org, "agents.create")).await.unwrap();
    }
    assert_eq!(store.agent(org, first.id).await.unwrap().as_ref(), Some(&first), "an agent reads back as written");
    let all = store.agents(org, &AgentFilter::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(all.items.iter().map(|a| a.id).collect::<Vec<_>>(), [second.id, first.id], "newest first");
    let interns = AgentFilter { maturity_level: Some(Maturity::Intern), ..AgentFilter::default() };
    assert_eq!(store.agents(org, &interns, &PageRequest::default()).await.unwrap().items, std::slice::from_ref(&first));
    let paused = AgentFilter { status: Some(AgentStatus::Paused), ..AgentFilter::default() };
    assert_eq!(store.agents(org, &paused, &PageRequest::default()).await.unwrap().items, [second.clone()]);
    let text = AgentFilter { q: Some("billing".into()), ..AgentFilter::default() };
    assert_eq!(store.agents(org, &text, &PageRequest::default()).await.unwrap().items, [second.clone()]);
    let wildcard = AgentFilter { q: Some("%".into()), ..AgentFilter::default() };
    assert!(store.agents(org, &wildcard, &PageRequest::default()).await.unwrap().items.is_empty(), "`%` is text, not a wildcard");
    assert_eq!(store.active_agents(org).await.unwrap(), std::slice::from_ref(&first));

    let mut changed = first.clone();
    changed.maturity_level = Maturity::Supervised;
    changed.version = 2;
    store.update_agent(&changed, None, &journal(org, "agents.patch")).await.unwrap();
    let stale = store.update_agent(&changed, None, &journal(org, "agents.patch")).await;
    assert!(matches!(stale, Err(AgentStoreError::Conflict(_))), "a change from a stale version is refused: {stale:?}");
    assert_eq!(store.agent(org, first.id).await.unwrap().unwrap().maturity_level, Maturity::Supervised);

    let stranger = OrgId::generate();
    assert!(store.agent(stranger, first.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_agent(stranger, first.id, now(), &journal(stranger, "agents.delete")).await,
        Err(AgentStoreError::NotFound)
    ));
    store.delete_agent(org, first.id, now(), &journal(org, "agents.delete")).await.unwrap();
    assert!(store.agent(org, first.id).await.unwrap().is_none());
}

/// An external agent commits with its credential and webhook endpoint in one transaction (a
/// refused insert leaves neither behind), and deleting it revokes the credential and removes
/// the endpoint in the same transaction.
async fn an_agent_commits_and_leaves_with_its_credential_and_endpoint<S: AgentStore + AccountStore + WebhookStore>(store: &S) {
    let (org, _) = create_organization(store, "Agents").await;
    let key = sample_key(org.id, "agent Outside", now());
    let endpoint = new_endpoint(org.id, &["agent.message_received"], now());
    let mut agent = sample_agent(org.id, "Outside", Maturity::Autonomous, 0);
    agent.kind = AgentKind::External;
    agent.hosted = None;
    agent.sealed_api_key = None;
    agent.url = Some("https://agents.example.com/inbound".into());
    agent.key_id = Some(key.id);
    agent.endpoint_id = Some(endpoint.id);
    store.insert_agent(&agent, Some(&key), Some(&endpoint), &journal(org.id, "agents.create")).await.unwrap();
    assert_eq!(store.agent(org.id, agent.id).await.unwrap().as_ref(), Some(&agent));
    assert_eq!(store.find_key(org.id, key.id).await.unwrap().map(|k| k.revoked_at), Some(None), "the credential is stored, live");
    assert_eq!(store.get_endpoint(org.id, endpoint.id).await.unwrap().map(|e| e.id), Some(endpoint.id), "the endpoint is stored");

    // The same agent again, with a new credential and endpoint: refused, and neither is left.
    let (late_key, late_endpoint) = (sample_key(org.id, "agent again", now()), new_endpoint(org.id, &["agent.message_received"], now()));
    let again = Agent { key_id: Some(late_key.id), endpoint_id: Some(late_endpoint.id), ..agent.clone() };
    let refused = store.insert_agent(&again, Some(&late_key), Some(&late_endpoint), &journal(org.id, "agents.create")).await;
    assert!(refused.is_err(), "an agent id is unique");
    assert_eq!(store.find_key(org.id, late_key.id).await.unwrap(), None, "no credential outlives a refused agent");
    assert_eq!(store.get_endpoint(org.id, late_endpoint.id).await.unwrap().map(|e| e.id), None, "nor an endpoint");

    // A new URL moves the endpoint with the agent, in the same transaction.
    let moved = Agent { url: Some("https://agents.example.com/v2".into()), version: 2, ..agent.clone() };
    store.update_agent(&moved, Some("https://agents.example.com/v2"), &journal(org.id, "agents.patch")).await.unwrap();
    let endpoint_now = store.get_endpoint(org.id, endpoint.id).await.unwrap().expect("the endpoint");
    assert_eq!((endpoint_now.url.to_string().as_str(), endpoint_now.version), ("https://agents.example.com/v2", endpoint.version + 1));

    let at = now() + Duration::minutes(5);
    store.delete_agent(org.id, agent.id, at, &journal(org.id, "agents.delete")).await.unwrap();
    assert_eq!(store.agent(org.id, agent.id).await.unwrap(), None);
    assert_eq!(store.find_key(org.id, key.id).await.unwrap().and_then(|k| k.revoked_at), Some(at), "the credential is revoked with it");
    assert_eq!(store.get_endpoint(org.id, endpoint.id).await.unwrap().map(|e| e.id), None, "the endpoint goes with it");
}

async fn episodes_commit_with_their_runs(store: &dyn AgentStore) {
    let org = OrgId::generate();
    let agent = sample_agent(org, "Runner", Maturity::Autonomous, 0);
    store.insert_agent(&agent, None, None, &journal(org, "agents.create")).await.unwrap();
    let episode = Episode {
        id: EpisodeId::generate(),
        org_id: org,
        agent_id: agent.id,
        conversation_id: Some(ConversationId::generate()),
        session_id: None,
        input: "Hours?".into(),
        steps: vec![ToolCallRecord {
            id: "call_1".into(),
            name: "search_knowledge".into(),
            arguments: json!({"q": "hours"}),
            result: json!({"results": []}),
            ok: true,
            journaled: false,
        }],
        answer: Some("9 to 5".into()),
        outcome: Outcome::Answered,
        intervened: false,
        created_at: now(),
    };
    let runs = [journal(org, "agents.execute"), journal(org, "tools.search_knowledge")];
    store.record_episode(&episode, &runs).await.unwrap();
    let listed = store.episodes(org, agent.id, &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items, std::slice::from_ref(&episode), "an episode reads back as written");
    // The same runs again: the run ids collide, so nothing of the second episode is kept.
    let mut twice = episode.clone();
    twice.id = EpisodeId::generate();
    assert!(store.record_episode(&twice, &runs).await.is_err());
    assert_eq!(store.episodes(org, agent.id, &PageRequest::default()).await.unwrap().items.len(), 1, "all or nothing");
}

async fn session_events_are_numbered_per_session(store: &dyn AgentStore) {
    let org = OrgId::generate();
    let agent = sample_agent(org, "Tester", Maturity::Autonomous, 0);
    let one = Session { id: SessionId::generate(), org_id: org, agent_id: agent.id, handed_off: false, created_at: now() };
    let two = Session { id: SessionId::generate(), created_at: now() + Duration::seconds(1), ..one.clone() };
    for s in [&one, &two] {
        store.insert_session(s, &journal(org, "sessions.create")).await.unwrap();
    }
    let at = now();
    let first = store.append_events(org, one.id, &[(SessionEventKind::CustomerMessage, json!({"text": "Hi"}))], at).await.unwrap();
    let more = store
        .append_events(
            org,
            one.id,
            &[(SessionEventKind::AgentMessage, json!({"text": "Hello"})), (SessionEventKind::Handoff, json!({"reason": null}))],
            at,
        )
        .await
        .unwrap();
    let other = store.append_events(org, two.id, &[(SessionEventKind::CustomerMessage, json!({"text": "Yo"}))], at).await.unwrap();
    assert_eq!(first.iter().chain(&more).map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(other[0].seq, 1, "numbers are per session");
    let read = store.events(org, one.id, 1, 10).await.unwrap();
    assert_eq!(read, more, "events after a number read back in order");
    assert!(store.session(org, one.id).await.unwrap().unwrap().handed_off, "a handoff event marks the session");
    assert!(!store.session(org, two.id).await.unwrap().unwrap().handed_off);
    let listed = store.sessions(org, &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|s| s.id).collect::<Vec<_>>(), [two.id, one.id]);

    let stranger = OrgId::generate();
    assert!(store.session(stranger, one.id).await.unwrap().is_none());
    assert!(store.events(stranger, one.id, 0, 10).await.unwrap().is_empty());
    assert!(matches!(
        store.append_events(stranger, one.id, &[(SessionEventKind::CustomerMessage, json!({}))], at).await,
        Err(AgentStoreError::NotFound)
    ));
    store.delete_session(org, one.id, &journal(org, "sessions.delete")).await.unwrap();
    assert!(store.session(org, one.id).await.unwrap().is_none());
    assert!(store.events(org, one.id, 0, 10).await.unwrap().is_empty(), "a deleted session takes its events along");
}
