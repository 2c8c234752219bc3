//! `AgentStore` for [`SqlStore`]: agents (compare-and-set on `version`), episodes with their
//! runs, sessions and their numbered events (the session row is locked while its next numbers
//! are taken), and the inbound jobs of the agents' worker.

use crate::conversations::{begin, commit, rollback};
use crate::convert::{corrupt, from_json, from_us, to_json, to_us};
use crate::entity::{
    agent_cursors, agent_episodes, agent_jobs, agent_session_events, agent_sessions, agents, api_keys, webhook_endpoints, webhook_events,
};
use crate::error::{db, Failure};
use crate::journal::{write_journal, write_journal_sealed};
use crate::runs::before_cursor;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_accounts::ApiKeyRecord;
use atlas_agents::{
    Agent, AgentFilter, AgentId, AgentKind, AgentStatus, AgentStore, AgentStoreError, Episode, EpisodeId, InboundJob, JobEnd, Maturity,
    Outcome, Session, SessionEvent, SessionEventKind, SessionId,
};
use atlas_conversations::ConversationId;
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::JournalEntry;
use atlas_scopes::KeyId;
use atlas_webhooks::{EndpointId, EventType, WebhookEndpoint};
use sea_orm::sea_query::{Expr, Func, LikeExpr, OnConflict, SimpleExpr};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};
use uuid::Uuid;

/// The cursor row of the inbound queue.
const INBOUND_CURSOR: &str = "inbound";
use serde_json::Value;
use time::OffsetDateTime;

impl SqlStore {
    /// Whether the inbound cursor exists and no event lies past it, in one statement outside any
    /// transaction (a missing cursor is not current: the first run starts it).
    async fn inbound_cursor_is_current(&self) -> Result<bool, Failure> {
        let found = look_past_the_inbound_cursor()
            .into_tuple::<(String, Option<Uuid>)>()
            .one(&self.db)
            .await
            .map_err(db("looking past the inbound cursor"))?;
        Ok(matches!(found, Some((_, None))))
    }
}

/// The agent worker's look for a job to claim at `now_us`, one statement outside any
/// transaction (the idle case): a claimable job's id. Through the due index, however many
/// finished jobs the table keeps (`crate::plans`).
pub(crate) fn look_for_a_due_job(now_us: i64) -> sea_orm::Select<agent_jobs::Entity> {
    claimable_jobs(now_us).select_only().column(agent_jobs::Column::Id)
}

/// The agent jobs claimable at `now_us`: queued, due, and not leased (or the lease lapsed).
fn claimable_jobs(now_us: i64) -> sea_orm::Select<agent_jobs::Entity> {
    agent_jobs::Entity::find()
        .filter(agent_jobs::Column::State.eq("queued"))
        .filter(agent_jobs::Column::NextAtUs.lte(now_us))
        .filter(Condition::any().add(agent_jobs::Column::LeaseUntilUs.is_null()).add(agent_jobs::Column::LeaseUntilUs.lte(now_us)))
}

/// The agent worker's look past its inbound cursor: the cursor's row with the first event past
/// it in id order (`NULL` when the cursor is current). The primary key's index finds that event
/// or its absence at once, however many events there are. (Asked as `EXISTS (… LIMIT 1)`,
/// PostgreSQL chose a sequential scan of every event, which finds nothing only at the end:
/// 28 ms on 55,000 events, at every wake-up of the agent worker.)
fn look_past_the_inbound_cursor() -> sea_orm::Select<agent_cursors::Entity> {
    let next = webhook_events::Entity::find()
        .select_only()
        .column(webhook_events::Column::Id)
        .filter(
            Expr::col((webhook_events::Entity, webhook_events::Column::Id))
                .gt(Expr::col((agent_cursors::Entity, agent_cursors::Column::LastEventId))),
        )
        .order_by_asc(webhook_events::Column::Id)
        .limit(1)
        .into_query();
    agent_cursors::Entity::find()
        .select_only()
        .column(agent_cursors::Column::Name)
        .expr_as(SimpleExpr::SubQuery(None, Box::new(next.into_sub_query_statement())), "next")
        .filter(agent_cursors::Column::Name.eq(INBOUND_CURSOR))
}

impl From<Failure> for AgentStoreError {
    fn from(f: Failure) -> Self {
        AgentStoreError::Store(f.into())
    }
}

fn kind_name(kind: AgentKind) -> &'static str {
    match kind {
        AgentKind::Hosted => "hosted",
        AgentKind::External => "external",
    }
}

fn agent_row(agent: &Agent) -> Result<agents::ActiveModel, StoreError> {
    Ok(agents::ActiveModel {
        id: Set(agent.id.as_uuid()),
        org_id: Set(agent.org_id.as_uuid()),
        name: Set(agent.name.clone()),
        role: Set(agent.role.clone()),
        kind: Set(kind_name(agent.kind).to_owned()),
        maturity_level: Set(agent.maturity_level.as_str().to_owned()),
        status: Set(agent.status.as_str().to_owned()),
        serves: Set(to_json("writing what an agent serves", &agent.serves)?),
        hosted: Set(agent.hosted.as_ref().map(|h| to_json("writing an agent's model settings", h)).transpose()?),
        url: Set(agent.url.clone()),
        key_id: Set(agent.key_id.map(|k| k.as_uuid())),
        endpoint_id: Set(agent.endpoint_id.map(|e| e.as_uuid())),
        sealed_api_key: Set(agent.sealed_api_key.clone()),
        version: Set(agent.version),
        created_at_us: Set(to_us(agent.created_at)),
        updated_at_us: Set(to_us(agent.updated_at)),
    })
}

fn agent_from_row(row: agents::Model) -> Result<Agent, StoreError> {
    const CONTEXT: &str = "reading an agent";
    let kind = match row.kind.as_str() {
        "hosted" => AgentKind::Hosted,
        "external" => AgentKind::External,
        other => return Err(corrupt(CONTEXT, format!("unknown kind `{other}`"))),
    };
    Ok(Agent {
        id: AgentId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        name: row.name,
        role: row.role,
        kind,
        maturity_level: Maturity::parse(&row.maturity_level)
            .ok_or_else(|| corrupt(CONTEXT, format!("unknown maturity `{}`", row.maturity_level)))?,
        status: AgentStatus::parse(&row.status).ok_or_else(|| corrupt(CONTEXT, format!("unknown status `{}`", row.status)))?,
        serves: from_json(CONTEXT, &row.serves)?,
        hosted: row.hosted.as_deref().map(|h| from_json(CONTEXT, h)).transpose()?,
        url: row.url,
        key_id: row.key_id.map(KeyId::from_uuid),
        endpoint_id: row.endpoint_id.map(EndpointId::from_uuid),
        sealed_api_key: row.sealed_api_key,
        version: row.version,
        created_at: from_us(row.created_at_us)?,
        updated_at: from_us(row.updated_at_us)?,
    })
}

fn outcome_from(text: &str) -> Result<Outcome, StoreError> {
    [Outcome::Answered, Outcome::Drafted, Outcome::HandedOff, Outcome::StepLimit, Outcome::Failed]
        .into_iter()
        .find(|o| o.as_str() == text)
        .ok_or_else(|| corrupt("reading an episode", format!("unknown outcome `{text}`")))
}

fn episode_from_row(row: agent_episodes::Model) -> Result<Episode, StoreError> {
    Ok(Episode {
        id: EpisodeId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        agent_id: AgentId::from_uuid(row.agent_id),
        conversation_id: row.conversation_id.map(ConversationId::from_uuid),
        session_id: row.session_id.map(SessionId::from_uuid),
        input: row.input,
        steps: from_json("reading an episode's steps", &row.steps)?,
        answer: row.answer,
        outcome: outcome_from(&row.outcome)?,
        intervened: row.intervened,
        created_at: from_us(row.created_at_us)?,
    })
}

fn session_from_row(row: agent_sessions::Model) -> Result<Session, StoreError> {
    Ok(Session {
        id: SessionId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        agent_id: AgentId::from_uuid(row.agent_id),
        handed_off: row.handed_off,
        created_at: from_us(row.created_at_us)?,
    })
}

fn event_from_row(row: agent_session_events::Model) -> Result<SessionEvent, StoreError> {
    Ok(SessionEvent {
        seq: row.seq,
        kind: SessionEventKind::parse(&row.kind)
            .ok_or_else(|| corrupt("reading a session event", format!("unknown kind `{}`", row.kind)))?,
        data: from_json("reading a session event", &row.data)?,
        at: from_us(row.at_us)?,
    })
}

#[async_trait]
impl AgentStore for SqlStore {
    async fn insert_agent(
        &self,
        agent: &Agent,
        credential: Option<&ApiKeyRecord>,
        endpoint: Option<&WebhookEndpoint>,
        journal: &JournalEntry,
    ) -> Result<(), AgentStoreError> {
        let row = agent_row(agent)?;
        let endpoint = endpoint.map(|e| crate::webhooks::endpoint_row(e, self.seal_secrets(&e.secrets)?)).transpose()?;
        let txn = begin(&self.db).await?;
        if let Some(key) = credential {
            crate::accounts::insert_key_row(&txn, key).await?;
        }
        if let Some(endpoint) = endpoint {
            webhook_endpoints::Entity::insert(endpoint).exec_without_returning(&txn).await.map_err(db("inserting the agent's endpoint"))?;
        }
        agents::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the agent"))?;
        // The answer shows the credential once: a replay keeps it sealed.
        write_journal_sealed(&txn, journal, self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the agent").await?;
        Ok(())
    }

    async fn update_agent(&self, agent: &Agent, endpoint_url: Option<&str>, journal: &JournalEntry) -> Result<(), AgentStoreError> {
        let row = agent_row(agent)?;
        let txn = begin(&self.db).await?;
        let changed = agents::Entity::update_many()
            .set(row)
            .filter(agents::Column::OrgId.eq(agent.org_id.as_uuid()))
            .filter(agents::Column::Id.eq(agent.id.as_uuid()))
            .filter(agents::Column::Version.eq(agent.version - 1))
            .exec(&txn)
            .await
            .map_err(db("updating the agent"))?;
        if changed.rows_affected != 1 {
            rollback(txn).await?;
            return Err(AgentStoreError::Conflict("the agent changed meanwhile; read it again".into()));
        }
        if let (Some(url), Some(endpoint)) = (endpoint_url, agent.endpoint_id) {
            webhook_endpoints::Entity::update_many()
                .col_expr(webhook_endpoints::Column::Url, Expr::value(url))
                .col_expr(webhook_endpoints::Column::Version, Expr::col(webhook_endpoints::Column::Version).add(1))
                .col_expr(webhook_endpoints::Column::UpdatedAtUs, Expr::value(to_us(agent.updated_at)))
                .filter(webhook_endpoints::Column::OrgId.eq(agent.org_id.as_uuid()))
                .filter(webhook_endpoints::Column::Id.eq(endpoint.as_uuid()))
                .exec(&txn)
                .await
                .map_err(db("moving the agent's endpoint"))?;
        }
        write_journal(&txn, journal).await?;
        commit(txn, "committing the agent").await?;
        Ok(())
    }

    async fn delete_agent(&self, org_id: OrgId, id: AgentId, at: OffsetDateTime, journal: &JournalEntry) -> Result<(), AgentStoreError> {
        let txn = begin(&self.db).await?;
        let found = agents::Entity::find()
            .select_only()
            .column(agents::Column::KeyId)
            .column(agents::Column::EndpointId)
            .filter(agents::Column::OrgId.eq(org_id.as_uuid()))
            .filter(agents::Column::Id.eq(id.as_uuid()))
            .into_tuple::<(Option<Uuid>, Option<Uuid>)>()
            .one(&txn)
            .await
            .map_err(db("reading the agent"))?;
        let deleted = agents::Entity::delete_many()
            .filter(agents::Column::OrgId.eq(org_id.as_uuid()))
            .filter(agents::Column::Id.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(db("deleting the agent"))?;
        let Some((key_id, endpoint_id)) = found.filter(|_| deleted.rows_affected == 1) else {
            rollback(txn).await?;
            return Err(AgentStoreError::NotFound);
        };
        if let Some(key_id) = key_id {
            api_keys::Entity::update_many()
                .col_expr(api_keys::Column::RevokedAtUs, Expr::value(to_us(at)))
                .filter(api_keys::Column::OrgId.eq(org_id.as_uuid()))
                .filter(api_keys::Column::Id.eq(key_id))
                .filter(api_keys::Column::RevokedAtUs.is_null())
                .exec(&txn)
                .await
                .map_err(db("revoking the agent's credential"))?;
        }
        if let Some(endpoint_id) = endpoint_id {
            crate::webhooks::remove_endpoint(&txn, endpoint_id).await?;
        }
        write_journal(&txn, journal).await?;
        commit(txn, "committing the deletion").await?;
        Ok(())
    }

    async fn agent(&self, org_id: OrgId, id: AgentId) -> Result<Option<Agent>, AgentStoreError> {
        let row = agents::Entity::find()
            .filter(agents::Column::OrgId.eq(org_id.as_uuid()))
            .filter(agents::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading an agent"))?;
        Ok(row.map(agent_from_row).transpose()?)
    }

    async fn agents(&self, org_id: OrgId, filter: &AgentFilter, page: &PageRequest) -> Result<Page<Agent>, AgentStoreError> {
        let mut query = agents::Entity::find().filter(agents::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(status) = filter.status {
            query = query.filter(agents::Column::Status.eq(status.as_str()));
        }
        if let Some(level) = filter.maturity_level {
            query = query.filter(agents::Column::MaturityLevel.eq(level.as_str()));
        }
        if let Some(q) = &filter.q {
            let pattern = format!("%{}%", q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            query = query.filter(
                Condition::any()
                    .add(Expr::expr(Func::lower(Expr::col(agents::Column::Name))).like(LikeExpr::new(&pattern).escape('\\')))
                    .add(Expr::expr(Func::lower(Expr::col(agents::Column::Role))).like(LikeExpr::new(&pattern).escape('\\'))),
            );
        }
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(agents::Column::CreatedAtUs, agents::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(agents::Column::CreatedAtUs)
            .order_by_desc(agents::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing agents"))?;
        let items = rows.into_iter().map(agent_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page, |a| (a.created_at, a.id.as_uuid())))
    }

    async fn active_agents(&self, org_id: OrgId) -> Result<Vec<Agent>, AgentStoreError> {
        let rows = agents::Entity::find()
            .filter(agents::Column::OrgId.eq(org_id.as_uuid()))
            .filter(agents::Column::Status.eq(AgentStatus::Active.as_str()))
            .order_by_asc(agents::Column::CreatedAtUs)
            .limit(1000)
            .all(&self.db)
            .await
            .map_err(db("reading active agents"))?;
        Ok(rows.into_iter().map(agent_from_row).collect::<Result<Vec<_>, _>>()?)
    }

    async fn record_episode(&self, episode: &Episode, entries: &[JournalEntry]) -> Result<(), AgentStoreError> {
        let row = agent_episodes::ActiveModel {
            id: Set(episode.id.as_uuid()),
            org_id: Set(episode.org_id.as_uuid()),
            agent_id: Set(episode.agent_id.as_uuid()),
            conversation_id: Set(episode.conversation_id.map(|c| c.as_uuid())),
            session_id: Set(episode.session_id.map(|s| s.as_uuid())),
            input: Set(episode.input.clone()),
            steps: Set(to_json("writing an episode's steps", &episode.steps)?),
            answer: Set(episode.answer.clone()),
            outcome: Set(episode.outcome.as_str().to_owned()),
            intervened: Set(episode.intervened),
            created_at_us: Set(to_us(episode.created_at)),
        };
        let txn = begin(&self.db).await?;
        agent_episodes::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the episode"))?;
        for entry in entries {
            write_journal(&txn, entry).await?;
        }
        commit(txn, "committing the episode").await?;
        Ok(())
    }

    async fn episodes(&self, org_id: OrgId, agent_id: AgentId, page: &PageRequest) -> Result<Page<Episode>, AgentStoreError> {
        let mut query = agent_episodes::Entity::find()
            .filter(agent_episodes::Column::OrgId.eq(org_id.as_uuid()))
            .filter(agent_episodes::Column::AgentId.eq(agent_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(agent_episodes::Column::CreatedAtUs, agent_episodes::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(agent_episodes::Column::CreatedAtUs)
            .order_by_desc(agent_episodes::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing episodes"))?;
        let items = rows.into_iter().map(episode_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page, |e| (e.created_at, e.id.as_uuid())))
    }

    async fn insert_session(&self, session: &Session, journal: &JournalEntry) -> Result<(), AgentStoreError> {
        let row = agent_sessions::ActiveModel {
            id: Set(session.id.as_uuid()),
            org_id: Set(session.org_id.as_uuid()),
            agent_id: Set(session.agent_id.as_uuid()),
            handed_off: Set(session.handed_off),
            last_seq: Set(0),
            created_at_us: Set(to_us(session.created_at)),
        };
        let txn = begin(&self.db).await?;
        agent_sessions::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the session"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the session").await?;
        Ok(())
    }

    async fn session(&self, org_id: OrgId, id: SessionId) -> Result<Option<Session>, AgentStoreError> {
        let row = agent_sessions::Entity::find()
            .filter(agent_sessions::Column::OrgId.eq(org_id.as_uuid()))
            .filter(agent_sessions::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a session"))?;
        Ok(row.map(session_from_row).transpose()?)
    }

    async fn sessions(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Session>, AgentStoreError> {
        let mut query = agent_sessions::Entity::find().filter(agent_sessions::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(agent_sessions::Column::CreatedAtUs, agent_sessions::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(agent_sessions::Column::CreatedAtUs)
            .order_by_desc(agent_sessions::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing sessions"))?;
        let items = rows.into_iter().map(session_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page, |s| (s.created_at, s.id.as_uuid())))
    }

    async fn delete_session(&self, org_id: OrgId, id: SessionId, journal: &JournalEntry) -> Result<(), AgentStoreError> {
        let txn = begin(&self.db).await?;
        let deleted = agent_sessions::Entity::delete_many()
            .filter(agent_sessions::Column::OrgId.eq(org_id.as_uuid()))
            .filter(agent_sessions::Column::Id.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(db("deleting the session"))?;
        if deleted.rows_affected != 1 {
            rollback(txn).await?;
            return Err(AgentStoreError::NotFound);
        }
        agent_session_events::Entity::delete_many()
            .filter(agent_session_events::Column::SessionId.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(db("deleting the session's events"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the session's deletion").await?;
        Ok(())
    }

    async fn append_events(
        &self,
        org_id: OrgId,
        id: SessionId,
        events: &[(SessionEventKind, Value)],
        at: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, AgentStoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let txn = begin(&self.db).await?;
        let row = self
            .for_update(
                agent_sessions::Entity::find()
                    .filter(agent_sessions::Column::OrgId.eq(org_id.as_uuid()))
                    .filter(agent_sessions::Column::Id.eq(id.as_uuid())),
            )
            .one(&txn)
            .await
            .map_err(db("locking the session"))?;
        let Some(row) = row else {
            rollback(txn).await?;
            return Err(AgentStoreError::NotFound);
        };
        let first = row.last_seq + 1;
        let last = row.last_seq + events.len() as i64;
        let handed_off = row.handed_off || events.iter().any(|(k, _)| *k == SessionEventKind::Handoff);
        agent_sessions::Entity::update_many()
            .col_expr(agent_sessions::Column::LastSeq, Expr::value(last))
            .col_expr(agent_sessions::Column::HandedOff, Expr::value(handed_off))
            .filter(agent_sessions::Column::Id.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(db("numbering the session's events"))?;
        let mut written = Vec::with_capacity(events.len());
        let mut rows = Vec::with_capacity(events.len());
        for (i, (kind, data)) in events.iter().enumerate() {
            let seq = first + i as i64;
            rows.push(agent_session_events::ActiveModel {
                session_id: Set(id.as_uuid()),
                seq: Set(seq),
                org_id: Set(org_id.as_uuid()),
                kind: Set(kind.as_str().to_owned()),
                data: Set(to_json("writing a session event", data)?),
                at_us: Set(to_us(at)),
            });
            written.push(SessionEvent { seq, kind: *kind, data: data.clone(), at: from_us(to_us(at))? });
        }
        agent_session_events::Entity::insert_many(rows).exec_without_returning(&txn).await.map_err(db("inserting session events"))?;
        commit(txn, "committing session events").await?;
        Ok(written)
    }

    async fn events(&self, org_id: OrgId, id: SessionId, after: i64, limit: u32) -> Result<Vec<SessionEvent>, AgentStoreError> {
        let rows = agent_session_events::Entity::find()
            .filter(agent_session_events::Column::OrgId.eq(org_id.as_uuid()))
            .filter(agent_session_events::Column::SessionId.eq(id.as_uuid()))
            .filter(agent_session_events::Column::Seq.gt(after))
            .order_by_asc(agent_session_events::Column::Seq)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(db("reading session events"))?;
        Ok(rows.into_iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?)
    }

    async fn queue_inbound(&self, now: OffsetDateTime, limit: u32) -> Result<usize, AgentStoreError> {
        // One statement and no transaction when no event is past the cursor (the idle case).
        if self.inbound_cursor_is_current().await? {
            return Ok(0);
        }
        let txn = begin(&self.db).await?;
        let cursor = self
            .for_update(agent_cursors::Entity::find().filter(agent_cursors::Column::Name.eq(INBOUND_CURSOR)))
            .one(&txn)
            .await
            .map_err(db("reading the inbound cursor"))?;
        let after = match &cursor {
            Some(c) => c.last_event_id,
            None => {
                // The first run starts from now: messages older than the agents are not answered.
                // UUIDv7 ids order by their leading 48 bits, the creation time in milliseconds.
                let ms = u128::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                let start = Uuid::from_u128(ms << 80);
                agent_cursors::Entity::insert(agent_cursors::ActiveModel { name: Set(INBOUND_CURSOR.into()), last_event_id: Set(start) })
                    .on_conflict(OnConflict::column(agent_cursors::Column::Name).do_nothing().to_owned())
                    .exec_without_returning(&txn)
                    .await
                    .map_err(db("starting the inbound cursor"))?;
                commit(txn, "committing the inbound cursor").await?;
                return Ok(0);
            }
        };
        // Every event past the cursor moves it, but only inbound ones become jobs: the others'
        // payloads (every delivery state of every message, under a send load) are not read.
        let inbound = Expr::col(webhook_events::Column::EventType).eq(EventType::EVENT_RECEIVED.as_str());
        let events = webhook_events::Entity::find()
            .select_only()
            .column(webhook_events::Column::Id)
            .column(webhook_events::Column::OrgId)
            .expr(Expr::case(inbound, Expr::col(webhook_events::Column::Payload)).finally(Expr::val(Option::<Vec<u8>>::None)))
            .filter(webhook_events::Column::Id.gt(after))
            .order_by_asc(webhook_events::Column::Id)
            .limit(u64::from(limit))
            .into_tuple::<(Uuid, Uuid, Option<Vec<u8>>)>()
            .all(&txn)
            .await
            .map_err(db("reading new events"))?;
        let Some(last) = events.last().map(|(id, _, _)| *id) else {
            rollback(txn).await?;
            return Ok(0);
        };
        let read = events.len();
        let mut jobs = Vec::new();
        for (id, org_id, payload) in events {
            let Some(payload) = payload else { continue };
            let body: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            let data = body.get("data").cloned().unwrap_or(Value::Null);
            jobs.push(agent_jobs::ActiveModel {
                id: Set(id),
                org_id: Set(org_id),
                payload: Set(to_json("writing an agent job", &data)?),
                state: Set("queued".into()),
                attempts: Set(0),
                next_at_us: Set(to_us(now)),
                lease_until_us: Set(None),
                error: Set(None),
                created_at_us: Set(to_us(now)),
            });
        }
        if !jobs.is_empty() {
            agent_jobs::Entity::insert_many(jobs)
                .on_conflict(OnConflict::column(agent_jobs::Column::Id).do_nothing().to_owned())
                .exec_without_returning(&txn)
                .await
                .map_err(db("queueing agent jobs"))?;
        }
        agent_cursors::Entity::update_many()
            .col_expr(agent_cursors::Column::LastEventId, Expr::value(last))
            .filter(agent_cursors::Column::Name.eq(INBOUND_CURSOR))
            .exec(&txn)
            .await
            .map_err(db("moving the inbound cursor"))?;
        commit(txn, "committing agent jobs").await?;
        Ok(read)
    }

    async fn claim_jobs(&self, now: OffsetDateTime, lease_until: OffsetDateTime, limit: u32) -> Result<Vec<InboundJob>, AgentStoreError> {
        let claimable = || claimable_jobs(to_us(now));
        // One statement and no transaction when no job is due (the idle case); the locking read
        // below re-checks.
        let due = look_for_a_due_job(to_us(now)).into_tuple::<Uuid>().one(&self.db).await.map_err(db("looking for due agent jobs"))?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let txn = begin(&self.db).await?;
        let mut query = claimable().order_by_asc(agent_jobs::Column::NextAtUs).limit(u64::from(limit));
        if self.is_postgres() {
            query = query.lock_with_behavior(sea_orm::sea_query::LockType::Update, sea_orm::sea_query::LockBehavior::SkipLocked);
        }
        let rows = query.all(&txn).await.map_err(db("claiming agent jobs"))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let attempts = row.attempts + 1;
            agent_jobs::Entity::update_many()
                .col_expr(agent_jobs::Column::Attempts, Expr::value(attempts))
                .col_expr(agent_jobs::Column::LeaseUntilUs, Expr::value(to_us(lease_until)))
                .filter(agent_jobs::Column::Id.eq(row.id))
                .exec(&txn)
                .await
                .map_err(db("leasing an agent job"))?;
            claimed.push(InboundJob {
                id: row.id,
                org_id: OrgId::from_uuid(row.org_id),
                payload: from_json("reading an agent job", &row.payload)?,
                attempts,
            });
        }
        commit(txn, "committing agent job claims").await?;
        Ok(claimed)
    }

    async fn finish_job(&self, job: &InboundJob, end: &JobEnd) -> Result<(), AgentStoreError> {
        let (state, next, error) = match end {
            JobEnd::Done => ("done", None, None),
            JobEnd::Retry { at, error } => ("queued", Some(to_us(*at)), Some(error.clone())),
            JobEnd::Failed(error) => ("failed", None, Some(error.clone())),
        };
        let mut update = agent_jobs::Entity::update_many()
            .col_expr(agent_jobs::Column::State, Expr::value(state))
            .col_expr(agent_jobs::Column::LeaseUntilUs, Expr::value(Option::<i64>::None))
            .col_expr(agent_jobs::Column::Error, Expr::value(error));
        if let Some(next) = next {
            update = update.col_expr(agent_jobs::Column::NextAtUs, Expr::value(next));
        }
        let done = update
            .filter(agent_jobs::Column::Id.eq(job.id))
            .filter(agent_jobs::Column::Attempts.eq(job.attempts))
            .exec(&self.db)
            .await
            .map_err(db("finishing an agent job"))?;
        if done.rows_affected != 1 {
            return Err(AgentStoreError::Conflict("the job was claimed again".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectionTrait, Statement};

    /// The agent worker looks past its cursor at every wake-up, so the look costs the same on a
    /// table of many events as on an empty one: PostgreSQL's plan probes the events' primary
    /// key and never scans the events. The look still tells a current cursor from one with an
    /// event past it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_look_past_the_inbound_cursor_probes_an_index_however_many_events_there_are() {
        let Some(url) = atlas_testkit::services::fresh_postgres_database().await else {
            return;
        };
        let store = SqlStore::connect(&url).await.expect("connecting to the fresh PostgreSQL database");
        store.migrate().await.expect("migrating PostgreSQL");
        let db = store.connection();
        for sql in [
            "INSERT INTO webhook_events (id, org_id, \"type\", resource_id, version, occurred_at_us, payload, fanned_out_at_us) \
             SELECT gen_random_uuid(), gen_random_uuid(), 'agent.message_delivery', 'msg', 1, g, '\\x7b7d'::bytea, g \
             FROM generate_series(1, 30000) g",
            "INSERT INTO agent_cursors (name, last_event_id) SELECT 'inbound', id FROM webhook_events ORDER BY id DESC LIMIT 1",
            "ANALYZE webhook_events",
        ] {
            db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        assert!(store.inbound_cursor_is_current().await.expect("looking"), "the cursor is at the newest event");

        let look = db.get_database_backend().build(&look_past_the_inbound_cursor().into_query());
        let explain = Statement { sql: format!("EXPLAIN {}", look.sql), ..look };
        let plan: Vec<String> = db
            .query_all(explain)
            .await
            .expect("explaining the look")
            .iter()
            .map(|row| row.try_get_by_index::<String>(0).expect("a plan line"))
            .collect();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan on webhook_events"), "the look scans the events:\n{plan}");
        assert!(plan.contains("webhook_events_pkey"), "the look probes the events' primary key:\n{plan}");

        db.execute_unprepared(
            "INSERT INTO webhook_events (id, org_id, \"type\", resource_id, version, occurred_at_us, payload) \
             VALUES ('ffffffff-ffff-7fff-bfff-ffffffffffff', gen_random_uuid(), 'atlas.event.received', 'evt', 1, 1, '\\x7b7d'::bytea)",
        )
        .await
        .expect("one more event");
        assert!(!store.inbound_cursor_is_current().await.expect("looking"), "an event past the cursor is seen");
    }
}
