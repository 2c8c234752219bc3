//! `ConversationStore` for [`SqlStore`]: channels, templates, customers, conversations,
//! messages, drafts and pending provider statuses, and the row conversions the outbox shares.
//!
//! Every race is settled by the database (unique indexes, row and advisory locks), never by a
//! read before a write:
//! - a channel is inserted as the default with `ON CONFLICT (org_id) WHERE is_default DO
//!   NOTHING` and, when the organization already has its default, inserted again as an ordinary
//!   channel: of two concurrent first channels exactly one is the default;
//! - customers and conversations are upserted with `INSERT … ON CONFLICT DO NOTHING` (or `DO
//!   UPDATE` of the customer's name) and then selected: concurrent inbound and outbound messages
//!   converge on one row (on PostgreSQL the second insert waits for the first to commit);
//! - an inbound message is inserted with `ON CONFLICT (org_id, provider_message_id) DO NOTHING`
//!   inside a savepoint that also holds the customer and conversation upserts: when the
//!   constraint refuses it the savepoint is rolled back, so a duplicate changes nothing at all;
//! - a provider status and the completion that records its provider id serialise on a
//!   transaction-scoped advisory lock of (organization, provider id) on PostgreSQL, so a status
//!   is either applied to the message or kept pending where the completion will find it; the
//!   message row itself is read `FOR UPDATE` before `DeliveryRecord::apply` (on SQLite the one
//!   connection serialises both).
//!
//! A status that changes an outbound message's delivery record writes its
//! `agent.message_delivery` webhook event in the same transaction (see `events`).

use crate::convert::{corrupt, from_json, from_us, from_us_opt, to_json, to_us};
use crate::entity::{
    channels, conversations, customers, drafts, idempotency_records, messages, outbox, pending_statuses, runs, templates, webhook_events,
};
use crate::error::{classify, db, Failure};
use crate::events::{message_delivery_changed, message_delivery_event};
use crate::journal::{event_row, insert_events, write_journal};
use crate::runs::before_cursor;
use crate::runs::run_row;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_conversations::{
    Channel, ChannelId, ChannelProvider, Conversation, ConversationError, ConversationId, ConversationStatus, ConversationStore, Customer,
    CustomerId, DefaultRule, DeliveryRecord, DeliveryState, Direction, Draft, DraftId, DraftState, Enqueued, InboundRecorded, Journal,
    Message, MessageContent, MessageError, MessageId, MessageKind, MessageTemplate, NewChannel, NewInbound, NewOutbound, ProviderStatus,
    ReadQueued, SendContext, SendContexts, SendLookup, StatusApplied, StatusEvent, Template, TemplateCategory, TemplateId, TemplateStatus,
    TemplatesSynced,
};
use atlas_kernel::{OrgId, Page, PageRequest, PhoneNumber, StoreError};
use atlas_runs::JournalEntry;
use sea_orm::sea_query::{Expr, OnConflict, SimpleExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Statement, TransactionTrait, UpdateMany,
};
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// Opens the one transaction of a use case (or, on a transaction, a savepoint).
pub(crate) async fn begin(conn: &impl TransactionTrait) -> Result<DatabaseTransaction, Failure> {
    crate::tally::transaction();
    conn.begin().await.map_err(db("opening a transaction"))
}

/// Commits `txn`.
pub(crate) async fn commit(txn: DatabaseTransaction, context: &'static str) -> Result<(), Failure> {
    txn.commit().await.map_err(db(context))
}

/// Rolls `txn` back (a use case that decided to change nothing).
pub(crate) async fn rollback(txn: DatabaseTransaction) -> Result<(), Failure> {
    txn.rollback().await.map_err(db("rolling back"))
}

/// The advisory lock's key of (organization, provider message id): `apply_status` and
/// `Outbox::complete` take it.
fn provider_lock_key(org_id: Uuid, provider_message_id: &str) -> String {
    format!("atlas.provider_message:{org_id}:{provider_message_id}")
}

impl SqlStore {
    /// `query` with `FOR UPDATE` on PostgreSQL (SQLite's one connection already serialises).
    pub(crate) fn for_update<E: EntityTrait>(&self, query: Select<E>) -> Select<E> {
        if self.is_postgres() {
            query.lock_exclusive()
        } else {
            query
        }
    }

    /// On PostgreSQL, takes the transaction-scoped advisory lock of the organization's default
    /// channel, so moves of the default (connecting, `PATCH`, `DELETE`) take turns; the partial
    /// unique index still guarantees one default whatever happens.
    pub(crate) async fn lock_channel_defaults(&self, txn: &DatabaseTransaction, org_id: Uuid) -> Result<(), Failure> {
        if self.is_postgres() {
            txn.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [format!("atlas.channel_default:{org_id}").into()],
            ))
            .await
            .map_err(db("locking the organization's default channel"))?;
        }
        Ok(())
    }

    /// On PostgreSQL, takes the transaction-scoped advisory lock of (organization, provider
    /// message id) that `apply_status` and `Outbox::complete` share.
    pub(crate) async fn lock_provider_id(&self, txn: &DatabaseTransaction, org_id: Uuid, provider_message_id: &str) -> Result<(), Failure> {
        if self.is_postgres() {
            txn.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [provider_lock_key(org_id, provider_message_id).into()],
            ))
            .await
            .map_err(db("locking the provider message id"))?;
        }
        Ok(())
    }

    /// On PostgreSQL, takes the locks of `lock_provider_id` for every (organization, provider
    /// message id) of `ids` in one statement, in one order (their keys sorted), so two batches
    /// never wait for each other in a cycle.
    pub(crate) async fn lock_provider_ids<'a>(
        &self,
        txn: &DatabaseTransaction,
        ids: impl IntoIterator<Item = (Uuid, &'a str)>,
    ) -> Result<(), Failure> {
        if !self.is_postgres() {
            return Ok(());
        }
        let mut keys: Vec<String> = ids.into_iter().map(|(org_id, id)| provider_lock_key(org_id, id)).collect();
        if keys.is_empty() {
            return Ok(());
        }
        keys.sort_unstable();
        keys.dedup();
        let rows = (1..=keys.len()).map(|n| format!("(${n}, {n})")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM (VALUES {rows}) AS l(k, n) ORDER BY n");
        txn.execute(Statement::from_sql_and_values(DbBackend::Postgres, sql, keys.into_iter().map(sea_orm::Value::from)))
            .await
            .map_err(db("locking the provider message ids"))?;
        Ok(())
    }
}

// ---- rows ---------------------------------------------------------------------------------

fn channel_row(channel: &Channel, sealed_secrets: &[u8]) -> channels::ActiveModel {
    channels::ActiveModel {
        id: Set(channel.id.as_uuid()),
        org_id: Set(channel.org_id.as_uuid()),
        provider: Set(channel.provider.as_str().to_owned()),
        name: Set(channel.name.clone()),
        phone_number_id: Set(channel.phone_number_id.clone()),
        display_phone_number: Set(channel.display_phone_number.clone()),
        verify_token: Set(channel.verify_token.clone()),
        sealed_secrets: Set(sealed_secrets.to_vec()),
        is_default: Set(channel.is_default),
        created_at_us: Set(to_us(channel.created_at)),
        waba_id: Set(channel.waba_id.clone()),
        disconnected_at_us: Set(channel.disconnected_at.map(to_us)),
    }
}

fn channel_from_row(row: channels::Model) -> Result<Channel, StoreError> {
    let provider = ChannelProvider::parse(&row.provider)
        .ok_or_else(|| corrupt("reading a channel", format!("channel {} has an unknown provider `{}`", row.id, row.provider)))?;
    Ok(Channel {
        id: ChannelId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        provider,
        name: row.name,
        phone_number_id: row.phone_number_id,
        display_phone_number: row.display_phone_number,
        verify_token: row.verify_token,
        waba_id: row.waba_id,
        is_default: row.is_default,
        created_at: from_us(row.created_at_us)?,
        disconnected_at: from_us_opt(row.disconnected_at_us)?,
    })
}

fn template_row(template: &Template) -> Result<templates::ActiveModel, StoreError> {
    let components = template.components.as_ref().map(|c| to_json("writing a template's components", c)).transpose()?;
    Ok(templates::ActiveModel {
        id: Set(template.id.as_uuid()),
        org_id: Set(template.org_id.as_uuid()),
        name: Set(template.name.clone()),
        language: Set(template.language.clone()),
        category: Set(template.category.as_str().to_owned()),
        status: Set(template.status.as_str().to_owned()),
        body: Set(template.body.clone()),
        created_at_us: Set(to_us(template.created_at)),
        components: Set(components),
        channel_id: Set(template.channel_id.map(|c| c.as_uuid())),
    })
}

fn template_from_row(row: templates::Model) -> Result<Template, StoreError> {
    const CONTEXT: &str = "reading a template";
    let category = TemplateCategory::parse(&row.category)
        .ok_or_else(|| corrupt(CONTEXT, format!("template {} has an unknown category `{}`", row.id, row.category)))?;
    let status = TemplateStatus::parse(&row.status)
        .ok_or_else(|| corrupt(CONTEXT, format!("template {} has an unknown status `{}`", row.id, row.status)))?;
    Ok(Template {
        id: TemplateId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        name: row.name,
        language: row.language,
        category,
        status,
        body: row.body,
        components: row.components.as_deref().map(|c| from_json::<serde_json::Value>("reading a template's components", c)).transpose()?,
        channel_id: row.channel_id.map(ChannelId::from_uuid),
        created_at: from_us(row.created_at_us)?,
    })
}

pub(crate) fn phone_from_column(context: &'static str, stored: &str) -> Result<PhoneNumber, StoreError> {
    PhoneNumber::parse(stored).map_err(|e| corrupt(context, format!("the stored phone number is malformed: {e}")))
}

fn customer_from_row(row: customers::Model) -> Result<Customer, StoreError> {
    Ok(Customer {
        id: CustomerId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        phone_number: phone_from_column("reading a customer", &row.phone_number)?,
        name: row.name,
        created_at: from_us(row.created_at_us)?,
    })
}

fn conversation_from_rows(row: conversations::Model, customer: Customer) -> Result<Conversation, StoreError> {
    let status = ConversationStatus::parse(&row.status)
        .ok_or_else(|| corrupt("reading a conversation", format!("conversation {} has an unknown status `{}`", row.id, row.status)))?;
    Ok(Conversation {
        id: ConversationId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        channel_id: ChannelId::from_uuid(row.channel_id),
        customer,
        status,
        last_inbound_at: from_us_opt(row.last_inbound_at_us)?,
        created_at: from_us(row.created_at_us)?,
    })
}

/// The row that stores `message`.
pub(crate) fn message_row(message: &Message) -> Result<messages::ActiveModel, StoreError> {
    let template = message.template.as_ref().map(|t| to_json("writing a message's template", t)).transpose()?;
    let content = message.content.as_ref().map(|c| to_json("writing a message's content", c)).transpose()?;
    Ok(messages::ActiveModel {
        id: Set(message.id.as_uuid()),
        org_id: Set(message.org_id.as_uuid()),
        conversation_id: Set(message.conversation_id.as_uuid()),
        direction: Set(message.direction.as_str().to_owned()),
        kind: Set(message.kind.as_str().to_owned()),
        text: Set(message.text.clone()),
        template: Set(template),
        provider_message_id: Set(message.provider_message_id.clone()),
        delivery_state: Set(message.delivery_state.map(|s| s.as_str().to_owned())),
        sent_at_us: Set(message.sent_at.map(to_us)),
        delivered_at_us: Set(message.delivered_at.map(to_us)),
        read_at_us: Set(message.read_at.map(to_us)),
        failed_at_us: Set(message.failed_at.map(to_us)),
        error_code: Set(message.error.as_ref().map(|e| e.code.clone())),
        error_message: Set(message.error.as_ref().map(|e| e.message.clone())),
        created_at_us: Set(to_us(message.created_at)),
        content: Set(content),
    })
}

/// The message a row stores.
pub(crate) fn message_from_row(row: messages::Model) -> Result<Message, StoreError> {
    const CONTEXT: &str = "reading a message";
    let direction = Direction::parse(&row.direction)
        .ok_or_else(|| corrupt(CONTEXT, format!("message {} has an unknown direction `{}`", row.id, row.direction)))?;
    let kind =
        MessageKind::parse(&row.kind).ok_or_else(|| corrupt(CONTEXT, format!("message {} has an unknown kind `{}`", row.id, row.kind)))?;
    let delivery_state = row
        .delivery_state
        .as_deref()
        .map(|s| DeliveryState::parse(s).ok_or_else(|| corrupt(CONTEXT, format!("message {} has an unknown delivery state `{s}`", row.id))))
        .transpose()?;
    let template = row.template.as_deref().map(|t| from_json::<MessageTemplate>("reading a message's template", t)).transpose()?;
    let error = row.error_code.map(|code| MessageError { code, message: row.error_message.unwrap_or_default() });
    let content = row.content.as_deref().map(|c| from_json::<MessageContent>("reading a message's content", c)).transpose()?;
    Ok(Message {
        id: MessageId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        conversation_id: ConversationId::from_uuid(row.conversation_id),
        direction,
        kind,
        text: row.text,
        content,
        template,
        provider_message_id: row.provider_message_id,
        delivery_state,
        error,
        created_at: from_us(row.created_at_us)?,
        sent_at: from_us_opt(row.sent_at_us)?,
        delivered_at: from_us_opt(row.delivered_at_us)?,
        read_at: from_us_opt(row.read_at_us)?,
        failed_at: from_us_opt(row.failed_at_us)?,
    })
}

/// The `UPDATE` that writes `record` into message `id`.
pub(crate) fn delivery_update(id: MessageId, record: &DeliveryRecord) -> UpdateMany<messages::Entity> {
    messages::Entity::update_many()
        .col_expr(messages::Column::DeliveryState, Expr::value(record.state.as_str()))
        .col_expr(messages::Column::SentAtUs, Expr::value(record.sent_at.map(to_us)))
        .col_expr(messages::Column::DeliveredAtUs, Expr::value(record.delivered_at.map(to_us)))
        .col_expr(messages::Column::ReadAtUs, Expr::value(record.read_at.map(to_us)))
        .col_expr(messages::Column::FailedAtUs, Expr::value(record.failed_at.map(to_us)))
        .col_expr(messages::Column::ErrorCode, Expr::value(record.error.as_ref().map(|e| e.code.clone())))
        .col_expr(messages::Column::ErrorMessage, Expr::value(record.error.as_ref().map(|e| e.message.clone())))
        .filter(messages::Column::Id.eq(id.as_uuid()))
}

/// The update of many messages' delivery columns in one statement, each message's own
/// (`delivery_update`'s columns, through [`per_row`]).
pub(crate) fn deliveries_update(records: &[(MessageId, DeliveryRecord)]) -> UpdateMany<messages::Entity> {
    let column = |value: &dyn Fn(&DeliveryRecord) -> sea_orm::Value| {
        per_row(messages::Column::Id, records.iter().map(|(id, record)| (id.as_uuid(), value(record))))
    };
    messages::Entity::update_many()
        .col_expr(messages::Column::DeliveryState, column(&|r| r.state.as_str().into()))
        .col_expr(messages::Column::SentAtUs, column(&|r| r.sent_at.map(to_us).into()))
        .col_expr(messages::Column::DeliveredAtUs, column(&|r| r.delivered_at.map(to_us).into()))
        .col_expr(messages::Column::ReadAtUs, column(&|r| r.read_at.map(to_us).into()))
        .col_expr(messages::Column::FailedAtUs, column(&|r| r.failed_at.map(to_us).into()))
        .col_expr(messages::Column::ErrorCode, column(&|r| r.error.as_ref().map(|e| e.code.clone()).into()))
        .col_expr(messages::Column::ErrorMessage, column(&|r| r.error.as_ref().map(|e| e.message.clone()).into()))
        .filter(messages::Column::Id.is_in(records.iter().map(|(id, _)| id.as_uuid())))
}

/// `CASE WHEN key = k1 THEN v1 WHEN key = k2 THEN v2 … END`: each row's own value of a column
/// one `UPDATE` writes to many rows (every row it touches must be among `values`).
pub(crate) fn per_row<C: ColumnTrait>(key: C, values: impl IntoIterator<Item = (Uuid, sea_orm::Value)>) -> SimpleExpr {
    let mut cases: Option<sea_orm::sea_query::CaseStatement> = None;
    for (id, value) in values {
        cases = Some(match cases {
            None => Expr::case(key.eq(id), value),
            Some(cases) => cases.case(key.eq(id), value),
        });
    }
    cases.map_or_else(|| Expr::value(Option::<i64>::None), Into::into)
}

fn pending_row(org_id: OrgId, provider_message_id: &str, event: &StatusEvent, now: OffsetDateTime) -> pending_statuses::ActiveModel {
    pending_statuses::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(org_id.as_uuid()),
        provider_message_id: Set(provider_message_id.to_owned()),
        state: Set(event.state.as_str().to_owned()),
        at_us: Set(to_us(event.at)),
        error_code: Set(event.error.as_ref().map(|e| e.code.clone())),
        error_message: Set(event.error.as_ref().map(|e| e.message.clone())),
        created_at_us: Set(to_us(now)),
    }
}

/// The status event a pending row keeps.
pub(crate) fn pending_event(row: pending_statuses::Model) -> Result<StatusEvent, StoreError> {
    let state = DeliveryState::parse(&row.state)
        .ok_or_else(|| corrupt("reading a pending status", format!("pending status {} has an unknown state `{}`", row.id, row.state)))?;
    let error = row.error_code.map(|code| MessageError { code, message: row.error_message.unwrap_or_default() });
    Ok(StatusEvent { state, at: from_us(row.at_us)?, error })
}

fn draft_from_row(row: drafts::Model) -> Result<Draft, StoreError> {
    Ok(Draft {
        id: DraftId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        conversation_id: ConversationId::from_uuid(row.conversation_id),
        text: row.text,
        state: DraftState::parse(&row.state).ok_or_else(|| corrupt("reading a draft", format!("unknown state `{}`", row.state)))?,
        message_id: row.message_id.map(MessageId::from_uuid),
        reason: row.reason,
        decided_at: from_us_opt(row.decided_at_us)?,
        created_at: from_us(row.created_at_us)?,
    })
}

/// Decides the pending draft `id` of the conversation through `txn`: `changes` are the
/// columns the decision sets beside `state`. A draft that is absent or decided already
/// changes nothing and comes back as the error to roll back with.
async fn decide_draft(
    txn: &DatabaseTransaction,
    org_id: OrgId,
    conversation_id: ConversationId,
    id: DraftId,
    state: DraftState,
    changes: Vec<(drafts::Column, sea_orm::sea_query::SimpleExpr)>,
) -> Result<(), ConversationError> {
    let mut update = drafts::Entity::update_many().col_expr(drafts::Column::State, Expr::value(state.as_str()));
    for (column, value) in changes {
        update = update.col_expr(column, value);
    }
    let decided = update
        .filter(drafts::Column::OrgId.eq(org_id.as_uuid()))
        .filter(drafts::Column::ConversationId.eq(conversation_id.as_uuid()))
        .filter(drafts::Column::Id.eq(id.as_uuid()))
        .filter(drafts::Column::State.eq(DraftState::Pending.as_str()))
        .exec(txn)
        .await
        .map_err(db("deciding the draft"))?;
    if decided.rows_affected == 1 {
        return Ok(());
    }
    let found = drafts::Entity::find()
        .filter(drafts::Column::OrgId.eq(org_id.as_uuid()))
        .filter(drafts::Column::ConversationId.eq(conversation_id.as_uuid()))
        .filter(drafts::Column::Id.eq(id.as_uuid()))
        .one(txn)
        .await
        .map_err(db("reading the draft"))?;
    Err(match found {
        Some(row) => ConversationError::DraftDecided(draft_from_row(row)?.state),
        None => ConversationError::NotFound,
    })
}

// ---- shared steps -------------------------------------------------------------------------

/// Whether the organization has channel `id`.
async fn has_channel(conn: &impl ConnectionTrait, org_id: OrgId, id: ChannelId) -> Result<bool, Failure> {
    let found = channels::Entity::find()
        .select_only()
        .column(channels::Column::Id)
        .filter(channels::Column::OrgId.eq(org_id.as_uuid()))
        .filter(channels::Column::Id.eq(id.as_uuid()))
        .into_tuple::<Uuid>()
        .one(conn)
        .await
        .map_err(db("reading the channel"))?;
    Ok(found.is_some())
}

/// The organization's channel row `id`.
async fn find_channel_row(conn: &impl ConnectionTrait, org_id: OrgId, id: ChannelId) -> Result<Option<channels::Model>, Failure> {
    channels::Entity::find()
        .filter(channels::Column::OrgId.eq(org_id.as_uuid()))
        .filter(channels::Column::Id.eq(id.as_uuid()))
        .one(conn)
        .await
        .map_err(db("reading the channel"))
}

/// The organization's current default channel row.
async fn current_default(conn: &impl ConnectionTrait, org_id: Uuid) -> Result<Option<channels::Model>, Failure> {
    channels::Entity::find()
        .filter(channels::Column::OrgId.eq(org_id))
        .filter(channels::Column::IsDefault.eq(true))
        .one(conn)
        .await
        .map_err(db("reading the default channel"))
}

/// Clears the organization's default flag (before another channel takes it).
async fn clear_default(conn: &impl ConnectionTrait, org_id: Uuid) -> Result<(), Failure> {
    channels::Entity::update_many()
        .col_expr(channels::Column::IsDefault, Expr::value(false))
        .filter(channels::Column::OrgId.eq(org_id))
        .filter(channels::Column::IsDefault.eq(true))
        .exec(conn)
        .await
        .map_err(db("clearing the default channel"))?;
    Ok(())
}

/// Whether the organization has conversation `id`.
async fn has_conversation(conn: &impl ConnectionTrait, org_id: OrgId, id: ConversationId) -> Result<bool, Failure> {
    let found = conversations::Entity::find()
        .select_only()
        .column(conversations::Column::Id)
        .filter(conversations::Column::OrgId.eq(org_id.as_uuid()))
        .filter(conversations::Column::Id.eq(id.as_uuid()))
        .into_tuple::<Uuid>()
        .one(conn)
        .await
        .map_err(db("reading the conversation"))?;
    Ok(found.is_some())
}

/// Rows strictly after `cursor` in newest-first order, as one row comparison
/// `(created_at, id) < (cursor's time, cursor's id)`: the same rows as
/// [`before_cursor`](crate::runs::before_cursor), but PostgreSQL takes it as an index condition
/// of an `(org_id, [scope,] created_at_us DESC, id DESC)` index instead of filtering every newer
/// row (SQLite compares row values the same way).
fn before_row<E: EntityTrait, C: ColumnTrait>(table: E, created_at: C, id: C, cursor: &atlas_kernel::Cursor) -> SimpleExpr {
    Expr::tuple([Expr::col((table, created_at)).into(), Expr::col((table, id)).into()])
        .lt(Expr::tuple([Expr::val(to_us(cursor.created_at)).into(), Expr::val(cursor.id).into()]))
}

/// Inserts the customer of (organization, phone) unless it exists (setting its name to
/// `name` when one is given, either way), then reads it.
async fn upsert_customer(
    txn: &DatabaseTransaction,
    org_id: OrgId,
    phone_number: &PhoneNumber,
    name: Option<&str>,
    at: OffsetDateTime,
) -> Result<customers::Model, Failure> {
    let mut on_conflict = OnConflict::columns([customers::Column::OrgId, customers::Column::PhoneNumber]);
    if name.is_some() {
        on_conflict.update_column(customers::Column::Name);
    } else {
        on_conflict.do_nothing();
    }
    customers::Entity::insert(customers::ActiveModel {
        id: Set(CustomerId::generate().as_uuid()),
        org_id: Set(org_id.as_uuid()),
        phone_number: Set(phone_number.as_str().to_owned()),
        name: Set(name.map(str::to_owned)),
        created_at_us: Set(to_us(at)),
    })
    .on_conflict(on_conflict)
    .exec_without_returning(txn)
    .await
    .map_err(db("upserting the customer"))?;
    customers::Entity::find()
        .filter(customers::Column::OrgId.eq(org_id.as_uuid()))
        .filter(customers::Column::PhoneNumber.eq(phone_number.as_str()))
        .one(txn)
        .await
        .map_err(db("reading the customer"))?
        .ok_or_else(|| corrupt("upserting the customer", "the customer vanished after its upsert".into()).into())
}

/// Inserts the conversation of (organization, channel, customer) unless it exists, then reads
/// it (through `select`, which may lock it).
async fn upsert_conversation(
    txn: &DatabaseTransaction,
    select: impl FnOnce(Select<conversations::Entity>) -> Select<conversations::Entity>,
    org_id: OrgId,
    channel_id: ChannelId,
    customer_id: Uuid,
    at: OffsetDateTime,
) -> Result<conversations::Model, Failure> {
    conversations::Entity::insert(conversations::ActiveModel {
        id: Set(ConversationId::generate().as_uuid()),
        org_id: Set(org_id.as_uuid()),
        channel_id: Set(channel_id.as_uuid()),
        customer_id: Set(customer_id),
        status: Set(ConversationStatus::Open.as_str().to_owned()),
        last_inbound_at_us: Set(None),
        created_at_us: Set(to_us(at)),
    })
    .on_conflict(
        OnConflict::columns([conversations::Column::OrgId, conversations::Column::ChannelId, conversations::Column::CustomerId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await
    .map_err(db("upserting the conversation"))?;
    select(
        conversations::Entity::find()
            .filter(conversations::Column::OrgId.eq(org_id.as_uuid()))
            .filter(conversations::Column::ChannelId.eq(channel_id.as_uuid()))
            .filter(conversations::Column::CustomerId.eq(customer_id)),
    )
    .one(txn)
    .await
    .map_err(db("reading the conversation"))?
    .ok_or_else(|| corrupt("upserting the conversation", "the conversation vanished after its upsert".into()).into())
}

/// The conversations of `rows` with their customers (one query for all the customers).
async fn with_customers(conn: &impl ConnectionTrait, rows: Vec<conversations::Model>) -> Result<Vec<Conversation>, Failure> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.customer_id).collect();
    let customers: HashMap<Uuid, customers::Model> = customers::Entity::find()
        .filter(customers::Column::Id.is_in(ids))
        .all(conn)
        .await
        .map_err(db("reading the conversations' customers"))?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    rows.into_iter()
        .map(|row| {
            let customer = customers
                .get(&row.customer_id)
                .cloned()
                .ok_or_else(|| corrupt("reading a conversation", format!("the customer of conversation {} is missing", row.id)))?;
            Ok(conversation_from_rows(row, customer_from_row(customer)?)?)
        })
        .collect()
}

/// One conversation of the organization with its customer.
async fn load_conversation(conn: &impl ConnectionTrait, org_id: OrgId, id: ConversationId) -> Result<Option<Conversation>, Failure> {
    let row = conversations::Entity::find()
        .filter(conversations::Column::OrgId.eq(org_id.as_uuid()))
        .filter(conversations::Column::Id.eq(id.as_uuid()))
        .one(conn)
        .await
        .map_err(db("reading the conversation"))?;
    Ok(match row {
        Some(row) => with_customers(conn, vec![row]).await?.pop(),
        None => None,
    })
}

/// The one conversation `statement` selects (its columns, then the customer's as
/// `customer_phone_number`, `customer_name`, `customer_created_at_us`), with its customer.
async fn conversation_with_customer(conn: &impl ConnectionTrait, statement: Statement) -> Result<Option<Conversation>, ConversationError> {
    let read = "reading the customer's conversation";
    let Some(row) = conn.query_one(statement).await.map_err(db(read))? else {
        return Ok(None);
    };
    let conversation = conversations::Model::from_query_result(&row, "").map_err(db(read))?;
    let customer = customers::Model {
        id: conversation.customer_id,
        org_id: conversation.org_id,
        phone_number: row.try_get("", "customer_phone_number").map_err(db(read))?,
        name: row.try_get("", "customer_name").map_err(db(read))?,
        created_at_us: row.try_get("", "customer_created_at_us").map_err(db(read))?,
    };
    Ok(Some(conversation_from_rows(conversation, customer_from_row(customer)?)?))
}

// ---- the send's writes ---------------------------------------------------------------

/// The writes of a send whose customer and conversation are known, as plain `INSERT`s in
/// order: the message, its outbox row, the run, the events and, for a claim taken at commit
/// (or no key), the completed idempotency record. `None` when the entry completes a claim held
/// since `begin` (or stores an answer that must be sealed): the caller writes the journal the
/// general way. A key a concurrent request inserted first fails the record's `INSERT` (unique
/// violation), which refuses the whole send.
fn send_statements(
    outbound: &NewOutbound,
    enqueued: &Enqueued,
    entry: &JournalEntry,
    backend: DbBackend,
) -> Result<Option<Vec<Statement>>, Failure> {
    let record = match &entry.idempotency {
        None => None,
        Some((claim, response)) => match (&claim.at_commit, crate::idempotency::stored_body(response, None)) {
            (Some(fingerprint), Ok(body)) => {
                Some(crate::idempotency::completed_row(claim, fingerprint, response, body, entry.run.updated_at))
            }
            _ => return Ok(None),
        },
    };
    let message = Message::queued(outbound.message_id, outbound.org_id, enqueued.conversation_id, &outbound.content, outbound.queued_at);
    let mut statements = vec![
        messages::Entity::insert(message_row(&message)?).build(backend),
        outbox::Entity::insert(outbox::ActiveModel {
            id: Set(outbound.outbox_id.as_uuid()),
            org_id: Set(outbound.org_id.as_uuid()),
            channel_id: Set(outbound.channel_id.as_uuid()),
            conversation_id: Set(enqueued.conversation_id.as_uuid()),
            message_id: Set(outbound.message_id.as_uuid()),
            recipient: Set(outbound.to.as_str().to_owned()),
            content: Set(to_json("writing an outbound message's content", &outbound.content)?),
            attempt: Set(0),
            queued_at_us: Set(to_us(outbound.queued_at)),
            next_attempt_at_us: Set(to_us(outbound.queued_at)),
            lease_until_us: Set(None),
            deadline_at_us: Set(to_us(outbound.deadline)),
            finished_at_us: Set(None),
            last_error_code: Set(None),
            last_error_message: Set(None),
            run_id: Set(Some(entry.run.id.as_uuid())),
        })
        .build(backend),
        runs::Entity::insert(run_row(&entry.run)).build(backend),
    ];
    if !entry.events.is_empty() {
        let rows = entry.events.iter().map(|event| event_row(entry.run.org_id.as_uuid(), event));
        statements.push(webhook_events::Entity::insert_many(rows).build(backend));
    }
    if let Some(record) = record {
        statements.push(idempotency_records::Entity::insert(record).build(backend));
    }
    Ok(Some(statements))
}

/// PostgreSQL: the customer of (organization, phone) under `customer_id` and its conversation on
/// the send's channel under `conversation_id`, as the first two statements of a [`chained`]
/// send (the conversation reads the customer's `RETURNING` as `__prev__`, the clause before it).
/// When the customer already exists (or the organization has no such channel) neither is
/// inserted, and the message's reference to the conversation fails the whole statement.
fn new_conversation(outbound: &NewOutbound, customer_id: CustomerId, conversation_id: ConversationId) -> [Statement; 2] {
    let customer = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO customers (id, org_id, phone_number, name, created_at_us) \
         SELECT $1, $2, $3, NULL, $4 FROM channels WHERE org_id = $2 AND id = $5 \
         ON CONFLICT (org_id, phone_number) DO NOTHING RETURNING id",
        [
            customer_id.as_uuid().into(),
            outbound.org_id.as_uuid().into(),
            outbound.to.as_str().into(),
            to_us(outbound.queued_at).into(),
            outbound.channel_id.as_uuid().into(),
        ],
    );
    let conversation = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO conversations (id, org_id, channel_id, customer_id, status, last_inbound_at_us, created_at_us) \
         SELECT $1, $2, $3, __prev__.id, $4, NULL, $5 FROM __prev__",
        [
            conversation_id.as_uuid().into(),
            outbound.org_id.as_uuid().into(),
            outbound.channel_id.as_uuid().into(),
            ConversationStatus::Open.as_str().into(),
            to_us(outbound.queued_at).into(),
        ],
    );
    [customer, conversation]
}

/// PostgreSQL: creates or reuses the customer of (organization, phone) and its conversation on
/// the send's channel in one statement, returning (customer, conversation); `None` when the
/// organization has no such channel. Both rows stay locked until the send commits.
async fn upsert_send_conversation(
    txn: &DatabaseTransaction,
    outbound: &NewOutbound,
) -> Result<Option<(CustomerId, ConversationId)>, Failure> {
    const SQL: &str = "WITH ch AS (SELECT id FROM channels WHERE org_id = $1 AND id = $2), \
        c AS (INSERT INTO customers (id, org_id, phone_number, name, created_at_us) SELECT $3, $1, $4, NULL, $5 FROM ch \
              ON CONFLICT (org_id, phone_number) DO UPDATE SET phone_number = EXCLUDED.phone_number RETURNING id), \
        v AS (INSERT INTO conversations (id, org_id, channel_id, customer_id, status, last_inbound_at_us, created_at_us) \
              SELECT $6, $1, $2, c.id, $7, NULL, $5 FROM c \
              ON CONFLICT (org_id, channel_id, customer_id) DO UPDATE SET status = conversations.status RETURNING id, customer_id) \
        SELECT id, customer_id FROM v";
    let row = txn
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            SQL,
            [
                outbound.org_id.as_uuid().into(),
                outbound.channel_id.as_uuid().into(),
                CustomerId::generate().as_uuid().into(),
                outbound.to.as_str().into(),
                to_us(outbound.queued_at).into(),
                ConversationId::generate().as_uuid().into(),
                ConversationStatus::Open.as_str().into(),
            ],
        ))
        .await
        .map_err(db("upserting the customer and conversation"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let conversation: Uuid = row.try_get("", "id").map_err(db("reading the conversation"))?;
    let customer: Uuid = row.try_get("", "customer_id").map_err(db("reading the customer"))?;
    Ok(Some((CustomerId::from_uuid(customer), ConversationId::from_uuid(conversation))))
}

// ---- a send's context ----------------------------------------------------------------

/// `alias.column AS prefix_column, …` for every column of entity `E`.
fn prefixed<E: EntityTrait>(alias: &str, prefix: &str) -> String {
    use sea_orm::{IdenStatic, Iterable};
    E::Column::iter().map(|c| format!("{alias}.{name} AS {prefix}{name}", name = c.as_str())).collect::<Vec<_>>().join(", ")
}

/// The one statement of `SendContexts::send_context`: three CTEs (the conversation with its
/// customer, the routing channel, the templates) left-joined to one row, or to one row per
/// template. Parameters appear in the order they are numbered (SQLite numbers `$n` by first
/// appearance).
fn send_context_statement(backend: DbBackend, org_id: OrgId, lookup: &SendLookup, template: Option<&str>) -> Statement {
    // The select lists, built once: this is every send's read.
    static COLUMNS: std::sync::LazyLock<[String; 3]> = std::sync::LazyLock::new(|| {
        [
            format!("{}, {}", prefixed::<conversations::Entity>("v", "v_"), prefixed::<customers::Entity>("c", "cu_")),
            prefixed::<channels::Entity>("ch", "ch_"),
            prefixed::<templates::Entity>("t", "t_"),
        ]
    });
    let [conversation_columns, channel_columns, template_columns] = &*COLUMNS;
    let mut values: Vec<sea_orm::Value> = vec![org_id.as_uuid().into()];
    let (conversation, channel) = match lookup {
        SendLookup::Conversation(id) => {
            values.push(id.as_uuid().into());
            (
                format!(
                    "SELECT {conversation_columns} FROM conversations v JOIN customers c ON c.org_id = v.org_id AND c.id = v.customer_id \
                     WHERE v.org_id = $1 AND v.id = $2"
                ),
                "WHERE ch.org_id = $1 AND ch.id = (SELECT v_channel_id FROM conv)".to_owned(),
            )
        }
        SendLookup::Phone { phone_number, channel_id: Some(channel_id) } => {
            values.push(phone_number.as_str().into());
            values.push(channel_id.as_uuid().into());
            (
                format!(
                    "SELECT {conversation_columns} FROM customers c JOIN conversations v ON v.org_id = c.org_id AND v.customer_id = c.id \
                     WHERE c.org_id = $1 AND c.phone_number = $2 AND v.channel_id = $3"
                ),
                "WHERE ch.org_id = $1 AND ch.id = $3".to_owned(),
            )
        }
        SendLookup::Phone { phone_number, channel_id: None } => {
            values.push(phone_number.as_str().into());
            values.push(true.into());
            (
                // As `latest_conversation`: where the customer wrote last on a connected channel.
                format!(
                    "SELECT {conversation_columns} FROM customers c \
                     JOIN conversations v ON v.org_id = c.org_id AND v.customer_id = c.id \
                     JOIN channels lc ON lc.id = v.channel_id AND lc.org_id = v.org_id AND lc.disconnected_at_us IS NULL \
                     WHERE c.org_id = $1 AND c.phone_number = $2 \
                     ORDER BY v.last_inbound_at_us IS NULL, v.last_inbound_at_us DESC, v.created_at_us DESC, v.id DESC LIMIT 1"
                ),
                "WHERE ch.org_id = $1 AND ch.is_default = $3 AND ch.disconnected_at_us IS NULL AND NOT EXISTS (SELECT 1 FROM conv)"
                    .to_owned(),
            )
        }
    };
    let templates = match template {
        None => "WHERE 1 = 0".to_owned(),
        Some(reference) => {
            let n = values.len() + 1;
            values.push(reference.into());
            match reference.parse::<TemplateId>() {
                Ok(id) => {
                    values.push(id.as_uuid().into());
                    format!("WHERE t.org_id = $1 AND (t.name = ${n} OR t.id = ${})", n + 1)
                }
                Err(_) => format!("WHERE t.org_id = $1 AND t.name = ${n}"),
            }
        }
    };
    let sql = format!(
        "WITH conv AS ({conversation}), \
         chan AS (SELECT {channel_columns} FROM channels ch {channel}), \
         tmpl AS (SELECT {template_columns} FROM templates t {templates}) \
         SELECT conv.*, chan.*, tmpl.* FROM (SELECT 1 AS one) o \
         LEFT JOIN conv ON 1 = 1 LEFT JOIN chan ON 1 = 1 LEFT JOIN tmpl ON 1 = 1 \
         ORDER BY tmpl.t_created_at_us DESC, tmpl.t_id DESC"
    );
    Statement::from_sql_and_values(backend, sql, values)
}

#[async_trait]
impl SendContexts for SqlStore {
    async fn send_context(&self, org_id: OrgId, lookup: &SendLookup, template: Option<&str>) -> Result<SendContext, ConversationError> {
        const READ: &str = "reading the send's context";
        let rows =
            self.db.query_all(send_context_statement(self.db.get_database_backend(), org_id, lookup, template)).await.map_err(db(READ))?;
        let mut context = SendContext::default();
        if let Some(first) = rows.first() {
            if let Some(conversation) = conversations::Model::from_query_result_optional(first, "v_").map_err(db(READ))? {
                let customer = customers::Model::from_query_result(first, "cu_").map_err(db(READ))?;
                context.conversation = Some(conversation_from_rows(conversation, customer_from_row(customer)?)?);
            }
            if let Some(channel) = channels::Model::from_query_result_optional(first, "ch_").map_err(db(READ))? {
                context.channel = Some(channel_from_row(channel)?);
            }
        }
        for row in &rows {
            if let Some(template) = templates::Model::from_query_result_optional(row, "t_").map_err(db(READ))? {
                context.templates.push(template_from_row(template)?);
            }
        }
        Ok(context)
    }
}

#[async_trait]
impl ConversationStore for SqlStore {
    async fn create_channel<'j>(
        &self,
        channel: &NewChannel,
        sealed_secrets: &[u8],
        journal: &'j (dyn Journal<Channel> + 'j),
    ) -> Result<Channel, ConversationError> {
        let txn = begin(&self.db).await?;
        let org_id = channel.org_id.as_uuid();
        let wants_default = match channel.default {
            DefaultRule::Never => false,
            DefaultRule::IfNone => true,
            DefaultRule::Make => {
                self.lock_channel_defaults(&txn, org_id).await?;
                clear_default(&txn, org_id).await?;
                true
            }
            DefaultRule::IfNoneOrSandbox => {
                self.lock_channel_defaults(&txn, org_id).await?;
                let current = current_default(&txn, org_id).await?;
                if current.as_ref().is_some_and(|c| c.provider == ChannelProvider::Sandbox.as_str()) {
                    clear_default(&txn, org_id).await?;
                }
                current.is_none_or(|c| c.provider == ChannelProvider::Sandbox.as_str())
            }
        };
        // As the default when it should be and the organization has none (the partial unique
        // index decides); a duplicate phone_number_id still fails, on its own constraint.
        let as_default = channel.clone().into_channel(true);
        let inserted = if wants_default {
            channels::Entity::insert(channel_row(&as_default, sealed_secrets))
                .on_conflict(
                    OnConflict::column(channels::Column::OrgId)
                        .target_and_where(Expr::col(channels::Column::IsDefault).into())
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(db("inserting the channel"))?
        } else {
            0
        };
        let stored = if inserted == 1 {
            as_default
        } else {
            let ordinary = channel.clone().into_channel(false);
            channels::Entity::insert(channel_row(&ordinary, sealed_secrets))
                .exec_without_returning(&txn)
                .await
                .map_err(db("inserting the channel"))?;
            ordinary
        };
        for template in &channel.templates {
            templates::Entity::insert(template_row(template)?)
                .on_conflict(
                    OnConflict::columns([templates::Column::OrgId, templates::Column::Name, templates::Column::Language])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(db("inserting the channel's templates"))?;
        }
        write_journal(&txn, &journal.entry(&stored)).await?;
        commit(txn, "committing the channel").await?;
        Ok(stored)
    }

    async fn channel_by_phone_number_id(&self, org_id: OrgId, phone_number_id: &str) -> Result<Option<Channel>, ConversationError> {
        let row = channels::Entity::find()
            .filter(channels::Column::OrgId.eq(org_id.as_uuid()))
            .filter(channels::Column::PhoneNumberId.eq(phone_number_id))
            .filter(channels::Column::DisconnectedAtUs.is_null())
            .one(&self.db)
            .await
            .map_err(db("reading a channel by phone number id"))?;
        Ok(row.map(channel_from_row).transpose()?)
    }

    async fn set_default_channel<'j>(
        &self,
        org_id: OrgId,
        id: ChannelId,
        journal: &'j (dyn Journal<Channel> + 'j),
    ) -> Result<Channel, ConversationError> {
        let txn = begin(&self.db).await?;
        self.lock_channel_defaults(&txn, org_id.as_uuid()).await?;
        let Some(row) = find_channel_row(&txn, org_id, id).await? else {
            rollback(txn).await?;
            return Err(ConversationError::NotFound);
        };
        if row.disconnected_at_us.is_some() {
            rollback(txn).await?;
            return Err(ConversationError::Conflict("channel disconnected"));
        }
        if !row.is_default {
            clear_default(&txn, org_id.as_uuid()).await?;
            channels::Entity::update_many()
                .col_expr(channels::Column::IsDefault, Expr::value(true))
                .filter(channels::Column::Id.eq(row.id))
                .exec(&txn)
                .await
                .map_err(db("making the channel the default"))?;
        }
        let channel = channel_from_row(channels::Model { is_default: true, ..row })?;
        write_journal(&txn, &journal.entry(&channel)).await?;
        commit(txn, "committing the default channel").await?;
        Ok(channel)
    }

    async fn disconnect_channel<'j>(
        &self,
        org_id: OrgId,
        id: ChannelId,
        at: OffsetDateTime,
        journal: &'j (dyn Journal<Channel> + 'j),
    ) -> Result<Channel, ConversationError> {
        let txn = begin(&self.db).await?;
        self.lock_channel_defaults(&txn, org_id.as_uuid()).await?;
        let Some(row) = find_channel_row(&txn, org_id, id).await? else {
            rollback(txn).await?;
            return Err(ConversationError::NotFound);
        };
        let row = if row.disconnected_at_us.is_some() {
            row
        } else {
            channels::Entity::update_many()
                .col_expr(channels::Column::DisconnectedAtUs, Expr::value(to_us(at)))
                .col_expr(channels::Column::IsDefault, Expr::value(false))
                .filter(channels::Column::Id.eq(row.id))
                .exec(&txn)
                .await
                .map_err(db("disconnecting the channel"))?;
            if row.is_default {
                // The most recently connected remaining channel takes over as the default.
                let successor = channels::Entity::find()
                    .select_only()
                    .column(channels::Column::Id)
                    .filter(channels::Column::OrgId.eq(org_id.as_uuid()))
                    .filter(channels::Column::DisconnectedAtUs.is_null())
                    .filter(channels::Column::Id.ne(row.id))
                    .order_by_desc(channels::Column::CreatedAtUs)
                    .order_by_desc(channels::Column::Id)
                    .into_tuple::<Uuid>()
                    .one(&txn)
                    .await
                    .map_err(db("finding the next default channel"))?;
                if let Some(successor) = successor {
                    channels::Entity::update_many()
                        .col_expr(channels::Column::IsDefault, Expr::value(true))
                        .filter(channels::Column::Id.eq(successor))
                        .exec(&txn)
                        .await
                        .map_err(db("moving the default channel"))?;
                }
            }
            channels::Model { disconnected_at_us: Some(to_us(at)), is_default: false, ..row }
        };
        let channel = channel_from_row(row)?;
        write_journal(&txn, &journal.entry(&channel)).await?;
        commit(txn, "committing the disconnection").await?;
        Ok(channel)
    }

    async fn sync_templates<'j>(
        &self,
        org_id: OrgId,
        channel_id: ChannelId,
        templates: &[Template],
        journal: &'j (dyn Journal<TemplatesSynced> + 'j),
    ) -> Result<TemplatesSynced, ConversationError> {
        let txn = begin(&self.db).await?;
        for template in templates {
            templates::Entity::insert(template_row(template)?)
                .on_conflict(
                    OnConflict::columns([templates::Column::OrgId, templates::Column::Name, templates::Column::Language])
                        .update_columns([
                            templates::Column::Category,
                            templates::Column::Status,
                            templates::Column::Body,
                            templates::Column::Components,
                            templates::Column::ChannelId,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(db("upserting a synced template"))?;
        }
        let listed: std::collections::HashSet<(&str, &str)> = templates.iter().map(|t| (t.name.as_str(), t.language.as_str())).collect();
        let stored: Vec<(Uuid, String, String)> = templates::Entity::find()
            .select_only()
            .column(templates::Column::Id)
            .column(templates::Column::Name)
            .column(templates::Column::Language)
            .filter(templates::Column::OrgId.eq(org_id.as_uuid()))
            .filter(templates::Column::ChannelId.eq(channel_id.as_uuid()))
            .filter(templates::Column::Status.ne(TemplateStatus::Deleted.as_str()))
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db("reading the channel's templates"))?;
        let gone: Vec<Uuid> = stored
            .into_iter()
            .filter(|(_, name, language)| !listed.contains(&(name.as_str(), language.as_str())))
            .map(|(id, ..)| id)
            .collect();
        if !gone.is_empty() {
            templates::Entity::update_many()
                .col_expr(templates::Column::Status, Expr::value(TemplateStatus::Deleted.as_str()))
                .filter(templates::Column::Id.is_in(gone.clone()))
                .exec(&txn)
                .await
                .map_err(db("marking templates deleted"))?;
        }
        let outcome = TemplatesSynced { upserted: templates.len(), deleted: gone.len() };
        write_journal(&txn, &journal.entry(&outcome)).await?;
        commit(txn, "committing the template sync").await?;
        Ok(outcome)
    }

    async fn list_channels(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Channel>, ConversationError> {
        let mut query = channels::Entity::find().filter(channels::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(channels::Column::CreatedAtUs, channels::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(channels::Column::CreatedAtUs)
            .order_by_desc(channels::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing channels"))?;
        let channels = rows.into_iter().map(channel_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(channels, page, |c| (c.created_at, c.id.as_uuid())))
    }

    async fn get_channel(&self, org_id: OrgId, id: ChannelId) -> Result<Option<Channel>, ConversationError> {
        let row = channels::Entity::find()
            .filter(channels::Column::OrgId.eq(org_id.as_uuid()))
            .filter(channels::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a channel"))?;
        Ok(row.map(channel_from_row).transpose()?)
    }

    async fn default_channel(&self, org_id: OrgId) -> Result<Option<Channel>, ConversationError> {
        let row = channels::Entity::find()
            .filter(channels::Column::OrgId.eq(org_id.as_uuid()))
            .filter(channels::Column::IsDefault.eq(true))
            .filter(channels::Column::DisconnectedAtUs.is_null())
            .one(&self.db)
            .await
            .map_err(db("reading the default channel"))?;
        Ok(row.map(channel_from_row).transpose()?)
    }

    async fn channel_with_secrets(&self, id: ChannelId) -> Result<Option<(Channel, Vec<u8>)>, ConversationError> {
        let row = channels::Entity::find_by_id(id.as_uuid()).one(&self.db).await.map_err(db("reading a channel"))?;
        Ok(match row {
            Some(mut row) => {
                let sealed = std::mem::take(&mut row.sealed_secrets);
                Some((channel_from_row(row)?, sealed))
            }
            None => None,
        })
    }

    async fn create_template(&self, template: &Template, journal: &JournalEntry) -> Result<(), ConversationError> {
        let txn = begin(&self.db).await?;
        templates::Entity::insert(template_row(template)?).exec_without_returning(&txn).await.map_err(db("inserting the template"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the template").await?;
        Ok(())
    }

    async fn list_templates(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Template>, ConversationError> {
        let mut query = templates::Entity::find().filter(templates::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(templates::Column::CreatedAtUs, templates::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(templates::Column::CreatedAtUs)
            .order_by_desc(templates::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing templates"))?;
        let templates = rows.into_iter().map(template_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(templates, page, |t| (t.created_at, t.id.as_uuid())))
    }

    async fn find_templates(&self, org_id: OrgId, reference: &str) -> Result<Vec<Template>, ConversationError> {
        let mut matches = Condition::any().add(templates::Column::Name.eq(reference));
        if let Ok(id) = reference.parse::<TemplateId>() {
            matches = matches.add(templates::Column::Id.eq(id.as_uuid()));
        }
        let rows = templates::Entity::find()
            .filter(templates::Column::OrgId.eq(org_id.as_uuid()))
            .filter(matches)
            .order_by_desc(templates::Column::CreatedAtUs)
            .order_by_desc(templates::Column::Id)
            .all(&self.db)
            .await
            .map_err(db("finding templates"))?;
        Ok(rows.into_iter().map(template_from_row).collect::<Result<Vec<_>, _>>()?)
    }

    async fn record_inbound<'j>(
        &self,
        inbound: &NewInbound,
        journal: &'j (dyn Journal<InboundRecorded, Option<JournalEntry>> + 'j),
    ) -> Result<InboundRecorded, ConversationError> {
        let org_id = inbound.org_id;
        let txn = begin(&self.db).await?;
        if !has_channel(&txn, org_id, inbound.channel_id).await? {
            rollback(txn).await?;
            return Err(ConversationError::NotFound);
        }
        // The effect runs in a savepoint: when the message turns out to be a duplicate, rolling
        // it back undoes the customer and conversation upserts too.
        let effect = begin(&txn).await?;
        let customer = upsert_customer(&effect, org_id, &inbound.from, inbound.profile_name.as_deref(), inbound.received_at).await?;
        let conversation =
            upsert_conversation(&effect, |q| self.for_update(q), org_id, inbound.channel_id, customer.id, inbound.received_at).await?;
        let message = Message::inbound(
            inbound.message_id,
            org_id,
            ConversationId::from_uuid(conversation.id),
            inbound.kind,
            inbound.text.clone(),
            inbound.content.clone(),
            inbound.provider_message_id.clone(),
            inbound.timestamp,
        );
        let inserted = messages::Entity::insert(message_row(&message)?)
            .on_conflict(OnConflict::columns([messages::Column::OrgId, messages::Column::ProviderMessageId]).do_nothing().to_owned())
            .exec_without_returning(&effect)
            .await
            .map_err(db("inserting the inbound message"))?;
        let outcome = if inserted == 1 {
            let status = ConversationStatus::parse(&conversation.status)
                .ok_or_else(|| corrupt("reading a conversation", format!("conversation {} has an unknown status", conversation.id)))?
                .after_inbound();
            let last_inbound_at = atlas_conversations::bump_last_inbound(from_us_opt(conversation.last_inbound_at_us)?, inbound.timestamp);
            conversations::Entity::update_many()
                .col_expr(conversations::Column::Status, Expr::value(status.as_str()))
                .col_expr(conversations::Column::LastInboundAtUs, Expr::value(last_inbound_at.map(to_us)))
                .filter(conversations::Column::Id.eq(conversation.id))
                .exec(&effect)
                .await
                .map_err(db("bumping the conversation"))?;
            commit(effect, "releasing the savepoint").await?;
            let customer = customer_from_row(customer)?;
            let conversation = conversation_from_rows(
                conversations::Model { status: status.as_str().to_owned(), last_inbound_at_us: last_inbound_at.map(to_us), ..conversation },
                customer.clone(),
            )?;
            InboundRecorded { customer, conversation, message, duplicate: false }
        } else {
            rollback(effect).await?;
            // The constraint refused it: report what is stored.
            let existing = messages::Entity::find()
                .filter(messages::Column::OrgId.eq(org_id.as_uuid()))
                .filter(messages::Column::ProviderMessageId.eq(inbound.provider_message_id.as_deref()))
                .one(&txn)
                .await
                .map_err(db("reading the duplicate message"))?
                .ok_or_else(|| corrupt("recording an inbound message", "a conflicting message is not found".into()))?;
            let message = message_from_row(existing)?;
            let conversation = load_conversation(&txn, org_id, message.conversation_id)
                .await?
                .ok_or_else(|| corrupt("recording an inbound message", "the duplicate's conversation is missing".into()))?;
            InboundRecorded { customer: conversation.customer.clone(), conversation, message, duplicate: true }
        };
        if let Some(entry) = journal.entry(&outcome) {
            write_journal(&txn, &entry).await?;
        }
        commit(txn, "committing the inbound message").await?;
        Ok(outcome)
    }

    async fn enqueue_outbound<'j>(
        &self,
        outbound: &NewOutbound,
        journal: &'j (dyn Journal<Enqueued> + 'j),
    ) -> Result<Enqueued, ConversationError> {
        let org_id = outbound.org_id;
        // A send that found its conversation (read under the organization) skips the upserts:
        // conversations are never deleted, so the ids stay valid. On PostgreSQL everything the
        // send writes is then ONE statement, its own transaction (or a share of a group
        // commit): the message, its outbox row, the run, the events and the idempotency record
        // and, for a number never seen, the new customer and conversation (under fresh ids; if
        // the customer exists after all, the statement fails as a whole and the send is
        // written again the general way below, with upserts).
        let backend = self.db.get_database_backend();
        // A send that approves a draft takes the general way: the decision is a statement of
        // its own, whose refusal rolls the send back.
        let fast = outbound.approves.is_none();
        if fast && self.is_postgres() {
            let (customer_id, conversation_id, new) = match outbound.known {
                Some((customer, conversation)) => (customer, conversation, false),
                None => (CustomerId::generate(), ConversationId::generate(), true),
            };
            let enqueued = Enqueued { customer_id, conversation_id, message_id: outbound.message_id, outbox_id: outbound.outbox_id };
            let entry = journal.entry(&enqueued);
            if let Some(mut statements) = send_statements(outbound, &enqueued, &entry, backend)? {
                if new {
                    statements.splice(0..0, new_conversation(outbound, customer_id, conversation_id));
                }
                match self.write_send(statements).await {
                    Ok(()) => return Ok(enqueued),
                    Err(_) if new => {} // the customer or conversation exists: upsert below
                    Err(e) => return Err(classify("queueing the outbound message", e).into()),
                }
            }
        } else if let Some((customer_id, conversation_id)) = outbound.known.filter(|_| fast) {
            let enqueued = Enqueued { customer_id, conversation_id, message_id: outbound.message_id, outbox_id: outbound.outbox_id };
            let entry = journal.entry(&enqueued);
            if let Some(statements) = send_statements(outbound, &enqueued, &entry, backend)? {
                let txn = begin(&self.db).await?;
                for statement in statements {
                    txn.execute(statement).await.map_err(db("queueing the outbound message"))?;
                }
                commit(txn, "committing the outbound message").await?;
                return Ok(enqueued);
            }
        }
        let txn = begin(&self.db).await?;
        let (customer_id, conversation_id) = match outbound.known {
            Some((customer, conversation)) => (customer, conversation),
            None if self.is_postgres() => match upsert_send_conversation(&txn, outbound).await? {
                Some(ids) => ids,
                None => {
                    rollback(txn).await?;
                    return Err(ConversationError::NotFound);
                }
            },
            None => {
                if !has_channel(&txn, org_id, outbound.channel_id).await? {
                    rollback(txn).await?;
                    return Err(ConversationError::NotFound);
                }
                let customer = upsert_customer(&txn, org_id, &outbound.to, None, outbound.queued_at).await?;
                let conversation = upsert_conversation(&txn, |q| q, org_id, outbound.channel_id, customer.id, outbound.queued_at).await?;
                (CustomerId::from_uuid(customer.id), ConversationId::from_uuid(conversation.id))
            }
        };
        if let Some(draft) = outbound.approves {
            let changes = vec![
                (drafts::Column::MessageId, Expr::value(outbound.message_id.as_uuid())),
                (drafts::Column::DecidedAtUs, Expr::value(to_us(outbound.queued_at))),
            ];
            if let Err(e) = decide_draft(&txn, org_id, conversation_id, draft, DraftState::Approved, changes).await {
                rollback(txn).await?;
                return Err(e);
            }
        }
        let enqueued = Enqueued { customer_id, conversation_id, message_id: outbound.message_id, outbox_id: outbound.outbox_id };
        let entry = journal.entry(&enqueued);
        match send_statements(outbound, &enqueued, &entry, self.db.get_database_backend())? {
            Some(statements) if self.is_postgres() => {
                txn.execute(crate::group_commit::chained(statements)).await.map_err(db("queueing the outbound message"))?;
            }
            Some(statements) => {
                for statement in statements {
                    txn.execute(statement).await.map_err(db("queueing the outbound message"))?;
                }
            }
            None => {
                let message = Message::queued(outbound.message_id, org_id, enqueued.conversation_id, &outbound.content, outbound.queued_at);
                messages::Entity::insert(message_row(&message)?)
                    .exec_without_returning(&txn)
                    .await
                    .map_err(db("inserting the outbound message"))?;
                crate::outbox::insert_row(&txn, outbound, enqueued.conversation_id, entry.run.id).await?;
                write_journal(&txn, &entry).await?;
            }
        }
        commit(txn, "committing the outbound message").await?;
        Ok(enqueued)
    }

    async fn apply_status(
        &self,
        org_id: OrgId,
        provider_message_id: &str,
        event: &StatusEvent,
    ) -> Result<StatusApplied, ConversationError> {
        let txn = begin(&self.db).await?;
        // The lock, then the read in a statement of its own: a statement's snapshot is taken
        // when it starts, so a read that waited for the lock inside itself would not see the
        // provider id a completion committed meanwhile, and the status would stay pending.
        self.lock_provider_id(&txn, org_id.as_uuid(), provider_message_id).await?;
        let row = self
            .for_update(
                messages::Entity::find()
                    .filter(messages::Column::OrgId.eq(org_id.as_uuid()))
                    .filter(messages::Column::ProviderMessageId.eq(provider_message_id)),
            )
            .one(&txn)
            .await
            .map_err(db("reading the message"))?;
        let applied = match row {
            Some(row) => {
                let mut message = message_from_row(row)?;
                // An inbound message has no delivery record: a status about it changes nothing.
                let mut changed = false;
                if let Some(mut record) = message.delivery() {
                    if record.apply(event) {
                        delivery_update(message.id, &record).exec(&txn).await.map_err(db("applying the status"))?;
                        message.set_delivery(record);
                        message_delivery_changed(&txn, &message, event.at).await?;
                        changed = true;
                    }
                }
                StatusApplied::Applied { message: Box::new(message), changed }
            }
            None => {
                let now = OffsetDateTime::now_utc();
                pending_statuses::Entity::insert(pending_row(org_id, provider_message_id, event, now))
                    .on_conflict(
                        OnConflict::columns([
                            pending_statuses::Column::OrgId,
                            pending_statuses::Column::ProviderMessageId,
                            pending_statuses::Column::State,
                            pending_statuses::Column::AtUs,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .exec_without_returning(&txn)
                    .await
                    .map_err(db("keeping the status pending"))?;
                StatusApplied::Pending
            }
        };
        commit(txn, "committing the status").await?;
        Ok(applied)
    }

    async fn apply_statuses(&self, org_id: OrgId, statuses: &[ProviderStatus]) -> Result<Vec<StatusApplied>, ConversationError> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let txn = begin(&self.db).await?;
        let mut ids: Vec<&str> = statuses.iter().map(|s| s.provider_message_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        // The message rows are locked after.
        self.lock_provider_ids(&txn, ids.iter().map(|id| (org_id.as_uuid(), *id))).await?;
        let rows = self
            .for_update(
                messages::Entity::find()
                    .filter(messages::Column::OrgId.eq(org_id.as_uuid()))
                    .filter(messages::Column::ProviderMessageId.is_in(ids.iter().copied())),
            )
            .all(&txn)
            .await
            .map_err(db("reading the messages"))?;
        // Each message as the statuses so far left it, and whether any changed it.
        let mut found: HashMap<String, (Message, bool)> = HashMap::new();
        for row in rows {
            let message = message_from_row(row)?;
            if let Some(provider_id) = message.provider_message_id.clone() {
                found.insert(provider_id, (message, false));
            }
        }
        let now = OffsetDateTime::now_utc();
        let (mut applied, mut events, mut pending) = (Vec::with_capacity(statuses.len()), Vec::new(), Vec::new());
        let mut kept = std::collections::HashSet::new();
        for status in statuses {
            let Some((message, dirty)) = found.get_mut(&status.provider_message_id) else {
                if kept.insert((status.provider_message_id.as_str(), status.event.state.as_str(), to_us(status.event.at))) {
                    pending.push(pending_row(org_id, &status.provider_message_id, &status.event, now));
                }
                applied.push(StatusApplied::Pending);
                continue;
            };
            // An inbound message has no delivery record: a status about it changes nothing.
            let mut changed = false;
            if let Some(mut record) = message.delivery() {
                if record.apply(&status.event) {
                    message.set_delivery(record);
                    events.extend(message_delivery_event(message, status.event.at)?);
                    (*dirty, changed) = (true, true);
                }
            }
            applied.push(StatusApplied::Applied { message: Box::new(message.clone()), changed });
        }
        let changed: Vec<(MessageId, DeliveryRecord)> =
            found.values().filter(|(_, dirty)| *dirty).filter_map(|(message, _)| Some((message.id, message.delivery()?))).collect();
        if !changed.is_empty() {
            deliveries_update(&changed).exec(&txn).await.map_err(db("applying the statuses"))?;
        }
        if !pending.is_empty() {
            pending_statuses::Entity::insert_many(pending)
                .on_conflict(
                    OnConflict::columns([
                        pending_statuses::Column::OrgId,
                        pending_statuses::Column::ProviderMessageId,
                        pending_statuses::Column::State,
                        pending_statuses::Column::AtUs,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(db("keeping the statuses pending"))?;
        }
        if !events.is_empty() {
            insert_events(&txn, org_id.as_uuid(), &events).await?;
        }
        commit(txn, "committing the statuses").await?;
        Ok(applied)
    }

    async fn message_by_provider_id(&self, org_id: OrgId, provider_message_id: &str) -> Result<Option<Message>, ConversationError> {
        let row = messages::Entity::find()
            .filter(messages::Column::OrgId.eq(org_id.as_uuid()))
            .filter(messages::Column::ProviderMessageId.eq(provider_message_id))
            .one(&self.db)
            .await
            .map_err(db("reading a message"))?;
        Ok(row.map(message_from_row).transpose()?)
    }

    async fn list_conversations(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Conversation>, ConversationError> {
        // One round trip: the page joined with its customers, walked along
        // `ix_conversations_org_created` (the cursor as a row comparison, an index condition).
        let customer_of =
            conversations::Entity::belongs_to(customers::Entity).from(conversations::Column::CustomerId).to(customers::Column::Id).into();
        let mut query = conversations::Entity::find()
            .select_also(customers::Entity)
            .join(JoinType::InnerJoin, customer_of)
            .filter(conversations::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_row(conversations::Entity, conversations::Column::CreatedAtUs, conversations::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(conversations::Column::CreatedAtUs)
            .order_by_desc(conversations::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing conversations"))?;
        let conversations = rows
            .into_iter()
            .map(|(row, customer)| {
                let customer = customer
                    .ok_or_else(|| corrupt("reading a conversation", format!("the customer of conversation {} is missing", row.id)))?;
                conversation_from_rows(row, customer_from_row(customer)?)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Page::from_rows(conversations, page, |c| (c.created_at, c.id.as_uuid())))
    }

    async fn get_conversation(&self, org_id: OrgId, id: ConversationId) -> Result<Option<Conversation>, ConversationError> {
        Ok(load_conversation(&self.db, org_id, id).await?)
    }

    async fn latest_conversation(&self, org_id: OrgId, phone_number: &PhoneNumber) -> Result<Option<Conversation>, ConversationError> {
        // One statement: the customer's conversations on connected channels, where they wrote
        // last (one they never wrote in ranks below any they did), then the newest.
        const SQL: &str = "SELECT v.id, v.org_id, v.channel_id, v.customer_id, v.status, v.last_inbound_at_us, v.created_at_us, \
                c.phone_number AS customer_phone_number, c.name AS customer_name, c.created_at_us AS customer_created_at_us \
            FROM customers c \
            JOIN conversations v ON v.org_id = c.org_id AND v.customer_id = c.id \
            JOIN channels ch ON ch.id = v.channel_id AND ch.org_id = v.org_id AND ch.disconnected_at_us IS NULL \
            WHERE c.org_id = $1 AND c.phone_number = $2 \
            ORDER BY v.last_inbound_at_us IS NULL, v.last_inbound_at_us DESC, v.created_at_us DESC, v.id DESC LIMIT 1";
        let values: [sea_orm::Value; 2] = [org_id.as_uuid().into(), phone_number.as_str().into()];
        conversation_with_customer(&self.db, Statement::from_sql_and_values(self.db.get_database_backend(), SQL, values)).await
    }

    async fn latest_inbound(&self, org_id: OrgId, conversation_id: ConversationId) -> Result<Option<Message>, ConversationError> {
        let row = messages::Entity::find()
            .filter(messages::Column::OrgId.eq(org_id.as_uuid()))
            .filter(messages::Column::ConversationId.eq(conversation_id.as_uuid()))
            .filter(messages::Column::Direction.eq(Direction::Inbound.as_str()))
            .filter(messages::Column::ProviderMessageId.is_not_null())
            .order_by_desc(messages::Column::CreatedAtUs)
            .order_by_desc(messages::Column::Id)
            .one(&self.db)
            .await
            .map_err(db("reading the latest inbound message"))?;
        Ok(row.map(message_from_row).transpose()?)
    }

    async fn enqueue_read<'j>(
        &self,
        receipt: &NewOutbound,
        conversation_id: ConversationId,
        journal: &'j (dyn Journal<ReadQueued> + 'j),
    ) -> Result<ReadQueued, ConversationError> {
        let atlas_conversations::OutboundContent::Read { provider_message_id } = &receipt.content else {
            return Err(ConversationError::Conflict("a read receipt carries the message's provider id"));
        };
        let txn = begin(&self.db).await?;
        let mut outcome = ReadQueued {
            conversation_id,
            message_id: receipt.message_id,
            provider_message_id: provider_message_id.clone(),
            outbox_id: receipt.outbox_id,
            queued: true,
        };
        let entry = journal.entry(&outcome);
        outcome.queued = crate::outbox::insert_row_once(&txn, receipt, conversation_id, entry.run.id).await?;
        let entry = if outcome.queued {
            entry
        } else {
            // Already queued for that message: nothing new; the earlier row names its outbox id.
            if let Some(existing) = crate::outbox::row_of_message(&txn, receipt.message_id).await? {
                outcome.outbox_id = existing;
            }
            journal.entry(&outcome)
        };
        write_journal(&txn, &entry).await?;
        commit(txn, "committing the read receipt").await?;
        Ok(outcome)
    }

    async fn find_conversation(
        &self,
        org_id: OrgId,
        channel_id: ChannelId,
        phone_number: &PhoneNumber,
    ) -> Result<Option<Conversation>, ConversationError> {
        const SQL: &str = "SELECT v.id, v.org_id, v.channel_id, v.customer_id, v.status, v.last_inbound_at_us, v.created_at_us, \
                c.phone_number AS customer_phone_number, c.name AS customer_name, c.created_at_us AS customer_created_at_us \
            FROM customers c JOIN conversations v ON v.org_id = c.org_id AND v.customer_id = c.id \
            WHERE c.org_id = $1 AND c.phone_number = $2 AND v.channel_id = $3";
        let values: [sea_orm::Value; 3] = [org_id.as_uuid().into(), phone_number.as_str().into(), channel_id.as_uuid().into()];
        conversation_with_customer(&self.db, Statement::from_sql_and_values(self.db.get_database_backend(), SQL, values)).await
    }

    async fn list_messages(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        page: &PageRequest,
    ) -> Result<Page<Message>, ConversationError> {
        // One round trip for a page with messages (a message of the organization names a
        // conversation of the organization); only an empty page asks whether the conversation
        // exists at all.
        let mut query = messages::Entity::find()
            .filter(messages::Column::OrgId.eq(org_id.as_uuid()))
            .filter(messages::Column::ConversationId.eq(conversation_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_row(messages::Entity, messages::Column::CreatedAtUs, messages::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(messages::Column::CreatedAtUs)
            .order_by_desc(messages::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing messages"))?;
        if rows.is_empty() && !has_conversation(&self.db, org_id, conversation_id).await? {
            return Err(ConversationError::NotFound);
        }
        let messages = rows.into_iter().map(message_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(messages, page, |m| (m.created_at, m.id.as_uuid())))
    }

    async fn set_conversation_status(
        &self,
        org_id: OrgId,
        id: ConversationId,
        status: ConversationStatus,
        journal: &JournalEntry,
    ) -> Result<Conversation, ConversationError> {
        let txn = begin(&self.db).await?;
        let row = self
            .for_update(
                conversations::Entity::find()
                    .filter(conversations::Column::OrgId.eq(org_id.as_uuid()))
                    .filter(conversations::Column::Id.eq(id.as_uuid())),
            )
            .one(&txn)
            .await
            .map_err(db("reading the conversation"))?;
        let Some(row) = row else {
            rollback(txn).await?;
            return Err(ConversationError::NotFound);
        };
        if row.status != status.as_str() {
            conversations::Entity::update_many()
                .col_expr(conversations::Column::Status, Expr::value(status.as_str()))
                .filter(conversations::Column::Id.eq(row.id))
                .exec(&txn)
                .await
                .map_err(db("setting the conversation's status"))?;
        }
        let row = conversations::Model { status: status.as_str().to_owned(), ..row };
        let conversation = with_customers(&txn, vec![row])
            .await?
            .pop()
            .ok_or_else(|| corrupt("setting a conversation's status", "the conversation vanished".into()))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the conversation's status").await?;
        Ok(conversation)
    }

    async fn save_draft(&self, draft: &Draft, journal: &JournalEntry) -> Result<(), ConversationError> {
        let txn = begin(&self.db).await?;
        if !has_conversation(&txn, draft.org_id, draft.conversation_id).await? {
            rollback(txn).await?;
            return Err(ConversationError::NotFound);
        }
        drafts::Entity::insert(drafts::ActiveModel {
            id: Set(draft.id.as_uuid()),
            org_id: Set(draft.org_id.as_uuid()),
            conversation_id: Set(draft.conversation_id.as_uuid()),
            text: Set(draft.text.clone()),
            created_at_us: Set(to_us(draft.created_at)),
            state: Set(draft.state.as_str().to_owned()),
            message_id: Set(draft.message_id.map(|m| m.as_uuid())),
            reason: Set(draft.reason.clone()),
            decided_at_us: Set(draft.decided_at.map(to_us)),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(db("inserting the draft"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the draft").await?;
        Ok(())
    }

    async fn list_drafts(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        state: Option<DraftState>,
        page: &PageRequest,
    ) -> Result<Page<Draft>, ConversationError> {
        if !has_conversation(&self.db, org_id, conversation_id).await? {
            return Err(ConversationError::NotFound);
        }
        let mut query = drafts::Entity::find()
            .filter(drafts::Column::OrgId.eq(org_id.as_uuid()))
            .filter(drafts::Column::ConversationId.eq(conversation_id.as_uuid()));
        if let Some(state) = state {
            query = query.filter(drafts::Column::State.eq(state.as_str()));
        }
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(drafts::Column::CreatedAtUs, drafts::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(drafts::Column::CreatedAtUs)
            .order_by_desc(drafts::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing drafts"))?;
        let drafts = rows.into_iter().map(draft_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(drafts, page, |d| (d.created_at, d.id.as_uuid())))
    }

    async fn get_draft(&self, org_id: OrgId, conversation_id: ConversationId, id: DraftId) -> Result<Option<Draft>, ConversationError> {
        let row = drafts::Entity::find()
            .filter(drafts::Column::OrgId.eq(org_id.as_uuid()))
            .filter(drafts::Column::ConversationId.eq(conversation_id.as_uuid()))
            .filter(drafts::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading the draft"))?;
        Ok(row.map(draft_from_row).transpose()?)
    }

    async fn reject_draft(
        &self,
        org_id: OrgId,
        conversation_id: ConversationId,
        id: DraftId,
        reason: &str,
        at: OffsetDateTime,
        journal: &JournalEntry,
    ) -> Result<Draft, ConversationError> {
        let txn = begin(&self.db).await?;
        let changes = vec![(drafts::Column::Reason, Expr::value(reason)), (drafts::Column::DecidedAtUs, Expr::value(to_us(at)))];
        if let Err(e) = decide_draft(&txn, org_id, conversation_id, id, DraftState::Rejected, changes).await {
            rollback(txn).await?;
            return Err(e);
        }
        write_journal(&txn, journal).await?;
        let row = drafts::Entity::find_by_id(id.as_uuid()).one(&txn).await.map_err(db("reading the draft"))?;
        commit(txn, "committing the rejection").await?;
        row.map(draft_from_row).transpose()?.ok_or(ConversationError::NotFound)
    }
}
