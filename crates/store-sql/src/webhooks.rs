//! `WebhookStore` for [`SqlStore`]: endpoints (compare-and-swap on `version`), deliveries with
//! their newest attempts as the API lists them, replays, test events and `publish`; and the row
//! conversions and steps the delivery queue (`webhook_queue`) shares.
//!
//! Secrets: an endpoint's `SecretRotation` is written as a small JSON document, sealed by the
//! store's cipher ([`SqlStore::with_secret_cipher`]; stored as is without one, which only tests
//! do) into `webhook_endpoints.sealed_secrets`, and opened again on every read.
//!
//! Locks (PostgreSQL): a method that changes an endpoint and its deliveries locks the endpoint
//! row first (`FOR NO KEY UPDATE`, which leaves fan-out's foreign-key checks free), then
//! touches the deliveries; the queue's `record_attempt` and `disable_endpoint` take the same
//! order, so none of them can deadlock another. On SQLite the one connection serialises all.

use crate::conversations::{begin, commit, rollback};
use crate::convert::{corrupt, from_json, from_us, from_us_opt, to_json, to_us};
use crate::entity::{webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events};
use crate::error::{db, Failure};
use crate::journal::{event_row, insert_event_rows, write_journal};
use crate::runs::before_cursor;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::JournalEntry;
use atlas_webhooks::{
    Attempt, AttemptError, AttemptId, AttemptOutcome, Delivery, DeliveryFilter, DeliveryId, DeliveryStatus, DisabledReason, EndpointId,
    EndpointState, EventFilters, EventId, EventType, NewDelivery, PendingEvent, ResponseExcerpt, RetiringSecret, SecretRotation, TargetUrl,
    WebhookEndpoint, WebhookError, WebhookSecret, WebhookStore, MAX_LISTED_ATTEMPTS,
};
use sea_orm::sea_query::{Alias, Asterisk, Expr, LockType, Order, Query, WindowStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// `webhook_endpoints.state` of an endpoint that receives deliveries.
pub(crate) const ENABLED: &str = "enabled";
/// `webhook_endpoints.state` of an endpoint that does not.
pub(crate) const DISABLED: &str = "disabled";
/// The error a pending delivery fails with when its endpoint is disabled.
const ENDPOINT_DISABLED: &str = "endpoint_disabled";

impl From<Failure> for WebhookError {
    fn from(f: Failure) -> Self {
        WebhookError::Store(f.into())
    }
}

// ---- secrets ------------------------------------------------------------------------------

/// A `SecretRotation` as the sealed document holds it.
#[derive(Serialize, Deserialize)]
struct StoredSecrets {
    /// `whsec_…`.
    current: String,
    previous: Option<StoredRetiring>,
}

#[derive(Serialize, Deserialize)]
struct StoredRetiring {
    /// `whsec_…`.
    secret: String,
    expires_at_us: i64,
}

impl SqlStore {
    /// `secrets` as JSON, sealed by the store's cipher (as is without one).
    pub(crate) fn seal_secrets(&self, secrets: &SecretRotation) -> Result<Vec<u8>, StoreError> {
        let stored = StoredSecrets {
            current: secrets.current.expose(),
            previous: secrets.previous.as_ref().map(|p| StoredRetiring { secret: p.secret.expose(), expires_at_us: to_us(p.expires_at) }),
        };
        let plaintext = serde_json::to_vec(&stored).map_err(|e| StoreError::new("writing an endpoint's secrets", e))?;
        Ok(match &self.secret_cipher {
            Some(cipher) => cipher.seal(&plaintext),
            None => plaintext,
        })
    }

    /// The secrets `sealed_secrets` of endpoint `id` holds. The errors never quote the bytes.
    pub(crate) fn open_secrets(&self, id: Uuid, sealed: &[u8]) -> Result<SecretRotation, StoreError> {
        const CONTEXT: &str = "reading an endpoint's secrets";
        let unreadable = || corrupt(CONTEXT, format!("the secrets of endpoint {id} are unreadable"));
        let plaintext = match &self.secret_cipher {
            Some(cipher) => cipher.open(sealed).map_err(|_| unreadable())?,
            None => sealed.to_vec(),
        };
        let stored: StoredSecrets = serde_json::from_slice(&plaintext).map_err(|_| unreadable())?;
        let current = WebhookSecret::parse(&stored.current).map_err(|_| unreadable())?;
        let previous = match stored.previous {
            Some(p) => Some(RetiringSecret {
                secret: WebhookSecret::parse(&p.secret).map_err(|_| unreadable())?,
                expires_at: from_us(p.expires_at_us)?,
            }),
            None => None,
        };
        Ok(SecretRotation { current, previous })
    }

    /// `query` locked `FOR NO KEY UPDATE` on PostgreSQL (SQLite's one connection already
    /// serialises): the lock every endpoint change takes before touching its deliveries.
    pub(crate) fn lock_endpoint<E: EntityTrait>(&self, query: Select<E>) -> Select<E> {
        self.lock_endpoint_as(query, LockType::NoKeyUpdate)
    }

    /// `query` (over the endpoint's row) taking the endpoint's lock shared on PostgreSQL
    /// (`FOR SHARE`: shared with other holders of this lock, exclusive of [`lock_endpoint`]'s).
    pub(crate) fn lock_endpoint_shared<E: EntityTrait>(&self, query: Select<E>) -> Select<E> {
        self.lock_endpoint_as(query, LockType::Share)
    }

    /// `query` locked as `lock` on PostgreSQL; unchanged on SQLite (its one connection serialises).
    fn lock_endpoint_as<E: EntityTrait>(&self, query: Select<E>, lock: LockType) -> Select<E> {
        if self.is_postgres() {
            query.lock(lock)
        } else {
            query
        }
    }
}

// ---- rows ---------------------------------------------------------------------------------

/// The `state`, `disabled_reason` and `disabled_at_us` columns of `state`.
fn state_columns(state: &EndpointState) -> (&'static str, Option<&'static str>, Option<i64>) {
    match state {
        EndpointState::Enabled => (ENABLED, None, None),
        EndpointState::Disabled { reason, at } => (DISABLED, Some(reason.as_str()), Some(to_us(*at))),
    }
}

pub(crate) fn endpoint_row(endpoint: &WebhookEndpoint, sealed_secrets: Vec<u8>) -> Result<webhook_endpoints::ActiveModel, StoreError> {
    let (state, reason, disabled_at) = state_columns(&endpoint.state);
    Ok(webhook_endpoints::ActiveModel {
        id: Set(endpoint.id.as_uuid()),
        org_id: Set(endpoint.org_id.as_uuid()),
        url: Set(endpoint.url.to_string()),
        description: Set(endpoint.description.clone()),
        filters: Set(to_json("writing an endpoint's filters", &endpoint.filters)?),
        state: Set(state.to_owned()),
        disabled_reason: Set(reason.map(str::to_owned)),
        disabled_at_us: Set(disabled_at),
        failing_since_us: Set(endpoint.failing_since.map(to_us)),
        sealed_secrets: Set(sealed_secrets),
        version: Set(endpoint.version),
        created_at_us: Set(to_us(endpoint.created_at)),
        updated_at_us: Set(to_us(endpoint.updated_at)),
    })
}

/// The filters of a stored endpoint.
pub(crate) fn filters_from_column(id: Uuid, text: &str) -> Result<EventFilters, StoreError> {
    from_json::<EventFilters>("reading an endpoint's filters", text)
        .map_err(|e| corrupt("reading an endpoint", format!("endpoint {id} has unreadable filters: {e}")))
}

impl SqlStore {
    /// The endpoint a row stores, its secrets opened.
    pub(crate) fn endpoint_from_row(&self, row: webhook_endpoints::Model) -> Result<WebhookEndpoint, StoreError> {
        const CONTEXT: &str = "reading an endpoint";
        let url = row.url.parse::<TargetUrl>().map_err(|e| corrupt(CONTEXT, format!("endpoint {} has an unusable URL: {e}", row.id)))?;
        let state = match (row.state.as_str(), row.disabled_reason.as_deref(), row.disabled_at_us) {
            (ENABLED, _, _) => EndpointState::Enabled,
            (DISABLED, Some(reason), Some(at)) => EndpointState::Disabled {
                reason: DisabledReason::parse(reason)
                    .ok_or_else(|| corrupt(CONTEXT, format!("endpoint {} has an unknown disabled reason `{reason}`", row.id)))?,
                at: from_us(at)?,
            },
            (state, _, _) => return Err(corrupt(CONTEXT, format!("endpoint {} has an unreadable state `{state}`", row.id))),
        };
        Ok(WebhookEndpoint {
            id: EndpointId::from_uuid(row.id),
            org_id: OrgId::from_uuid(row.org_id),
            url,
            description: row.description,
            filters: filters_from_column(row.id, &row.filters)?,
            state,
            secrets: self.open_secrets(row.id, &row.sealed_secrets)?,
            failing_since: from_us_opt(row.failing_since_us)?,
            created_at: from_us(row.created_at_us)?,
            updated_at: from_us(row.updated_at_us)?,
            version: row.version,
        })
    }
}

/// An event type read back from a column.
pub(crate) fn event_type_from_column(context: &'static str, stored: &str) -> Result<EventType, StoreError> {
    EventType::parse(stored).map_err(|e| corrupt(context, format!("the stored event type is unreadable: {e}")))
}

fn count(context: &'static str, stored: i32) -> Result<u32, StoreError> {
    u32::try_from(stored).map_err(|_| corrupt(context, format!("a stored count is negative ({stored})")))
}

/// The delivery a row stores, with `attempts` (its newest first).
fn delivery_from_row(row: webhook_deliveries::Model, attempts: Vec<Attempt>) -> Result<Delivery, StoreError> {
    const CONTEXT: &str = "reading a delivery";
    let status = DeliveryStatus::parse(&row.status)
        .ok_or_else(|| corrupt(CONTEXT, format!("delivery {} has an unknown status `{}`", row.id, row.status)))?;
    Ok(Delivery {
        id: DeliveryId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        endpoint_id: EndpointId::from_uuid(row.endpoint_id),
        event_id: EventId::from_uuid(row.event_id),
        event_type: event_type_from_column(CONTEXT, &row.event_type)?,
        status,
        attempt_count: count(CONTEXT, row.attempt_count)?,
        schedule_base: count(CONTEXT, row.schedule_base)?,
        first_attempt_at: from_us_opt(row.first_attempt_at_us)?,
        next_attempt_at: from_us_opt(row.next_attempt_at_us)?,
        last_error: row.last_error_code.map(|code| AttemptError { code, message: row.last_error_message.unwrap_or_default() }),
        created_at: from_us(row.created_at_us)?,
        finished_at: from_us_opt(row.finished_at_us)?,
        attempts,
    })
}

const fn outcome_str(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
    }
}

/// The row that stores `attempt`.
pub(crate) fn attempt_row(attempt: &Attempt) -> webhook_attempts::ActiveModel {
    webhook_attempts::ActiveModel {
        id: Set(attempt.id.as_uuid()),
        delivery_id: Set(attempt.delivery_id.as_uuid()),
        // A number beyond i32 cannot match a delivery's attempt_count: the caller refuses it first.
        number: Set(i32::try_from(attempt.number).unwrap_or(i32::MAX)),
        at_us: Set(to_us(attempt.at)),
        latency_ms: Set(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX)),
        outcome: Set(outcome_str(attempt.outcome).to_owned()),
        status_code: Set(attempt.status_code.map(i32::from)),
        response_excerpt: Set(attempt.response_excerpt.as_ref().map(|e| e.text().to_owned())),
        response_truncated: Set(attempt.response_excerpt.as_ref().map(ResponseExcerpt::truncated)),
        error_code: Set(attempt.error.as_ref().map(|e| e.code.clone())),
        error_message: Set(attempt.error.as_ref().map(|e| e.message.clone())),
    }
}

fn attempt_from_row(row: webhook_attempts::Model) -> Result<Attempt, StoreError> {
    const CONTEXT: &str = "reading an attempt";
    let outcome = match row.outcome.as_str() {
        "succeeded" => AttemptOutcome::Succeeded,
        "failed" => AttemptOutcome::Failed,
        other => return Err(corrupt(CONTEXT, format!("attempt {} has an unknown outcome `{other}`", row.id))),
    };
    let status_code = row
        .status_code
        .map(|code| u16::try_from(code).map_err(|_| corrupt(CONTEXT, format!("attempt {} has status code {code}", row.id))))
        .transpose()?;
    Ok(Attempt {
        id: AttemptId::from_uuid(row.id),
        delivery_id: DeliveryId::from_uuid(row.delivery_id),
        number: count(CONTEXT, row.number)?,
        at: from_us(row.at_us)?,
        latency_ms: u64::try_from(row.latency_ms).unwrap_or(0),
        outcome,
        status_code,
        response_excerpt: row.response_excerpt.map(|text| ResponseExcerpt::from_stored(&text, row.response_truncated.unwrap_or(false))),
        error: row.error_code.map(|code| AttemptError { code, message: row.error_message.unwrap_or_default() }),
    })
}

// ---- shared steps -------------------------------------------------------------------------

/// Whether the organization has endpoint `id`.
/// Deletes endpoint `id` with its deliveries and their attempts, through `txn`.
pub(crate) async fn remove_endpoint(txn: &DatabaseTransaction, id: Uuid) -> Result<(), Failure> {
    let deliveries = Query::select()
        .column(webhook_deliveries::Column::Id)
        .from(webhook_deliveries::Entity)
        .and_where(webhook_deliveries::Column::EndpointId.eq(id))
        .to_owned();
    webhook_attempts::Entity::delete_many()
        .filter(webhook_attempts::Column::DeliveryId.in_subquery(deliveries))
        .exec(txn)
        .await
        .map_err(db("deleting the endpoint's attempts"))?;
    webhook_deliveries::Entity::delete_many()
        .filter(webhook_deliveries::Column::EndpointId.eq(id))
        .exec(txn)
        .await
        .map_err(db("deleting the endpoint's deliveries"))?;
    webhook_endpoints::Entity::delete_by_id(id).exec(txn).await.map_err(db("deleting the endpoint"))?;
    Ok(())
}

async fn has_endpoint(conn: &impl ConnectionTrait, org_id: OrgId, id: EndpointId) -> Result<bool, Failure> {
    let found = webhook_endpoints::Entity::find()
        .select_only()
        .column(webhook_endpoints::Column::Id)
        .filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()))
        .filter(webhook_endpoints::Column::Id.eq(id.as_uuid()))
        .into_tuple::<Uuid>()
        .one(conn)
        .await
        .map_err(db("reading the endpoint"))?;
    Ok(found.is_some())
}

/// Fails every pending delivery of endpoint `endpoint_id` (`endpoint_disabled`), disabled for
/// `reason` at `at`, through `txn`.
pub(crate) async fn fail_pending_deliveries(
    txn: &DatabaseTransaction,
    endpoint_id: Uuid,
    reason: Option<&str>,
    at: i64,
) -> Result<(), Failure> {
    let message = match reason {
        Some(reason) => format!("the endpoint was disabled ({reason})"),
        None => "the endpoint was disabled".to_owned(),
    };
    webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::Status, Expr::value(DeliveryStatus::Failed.as_str()))
        .col_expr(webhook_deliveries::Column::FinishedAtUs, Expr::value(at))
        .col_expr(webhook_deliveries::Column::NextAttemptAtUs, Expr::value(Option::<i64>::None))
        .col_expr(webhook_deliveries::Column::LeaseUntilUs, Expr::value(Option::<i64>::None))
        .col_expr(webhook_deliveries::Column::LastErrorCode, Expr::value(ENDPOINT_DISABLED))
        .col_expr(webhook_deliveries::Column::LastErrorMessage, Expr::value(message))
        .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id))
        .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(txn)
        .await
        .map_err(db("failing the endpoint's pending deliveries"))?;
    Ok(())
}

/// The newest attempts (at most `MAX_LISTED_ATTEMPTS`) of each delivery of `ids`, newest first:
/// one query, ranking each delivery's attempts with `ROW_NUMBER()` (both backends have window
/// functions) so a delivery replayed many times never loads its whole history.
async fn newest_attempts(conn: &impl ConnectionTrait, ids: Vec<Uuid>) -> Result<HashMap<Uuid, Vec<Attempt>>, Failure> {
    let mut attempts: HashMap<Uuid, Vec<Attempt>> = HashMap::new();
    if ids.is_empty() {
        return Ok(attempts);
    }
    let recency = Alias::new("recency");
    let ranked = Query::select()
        .column(Asterisk)
        .expr_window_as(
            Expr::cust("ROW_NUMBER()"),
            WindowStatement::partition_by(webhook_attempts::Column::DeliveryId)
                .order_by(webhook_attempts::Column::Number, Order::Desc)
                .to_owned(),
            recency.clone(),
        )
        .from(webhook_attempts::Entity)
        .and_where(webhook_attempts::Column::DeliveryId.is_in(ids))
        .to_owned();
    let limit = i64::try_from(MAX_LISTED_ATTEMPTS).unwrap_or(i64::MAX);
    let query = Query::select()
        .column(Asterisk)
        .from_subquery(ranked, Alias::new("ranked"))
        .and_where(Expr::col(recency).lte(limit))
        .order_by(webhook_attempts::Column::DeliveryId, Order::Asc)
        .order_by(webhook_attempts::Column::Number, Order::Desc)
        .to_owned();
    let rows = webhook_attempts::Model::find_by_statement(conn.get_database_backend().build(&query))
        .all(conn)
        .await
        .map_err(db("reading the deliveries' attempts"))?;
    for row in rows {
        let delivery_id = row.delivery_id;
        attempts.entry(delivery_id).or_default().push(attempt_from_row(row)?);
    }
    Ok(attempts)
}

/// The deliveries of `rows`, each with its newest attempts.
async fn with_attempts(conn: &impl ConnectionTrait, rows: Vec<webhook_deliveries::Model>) -> Result<Vec<Delivery>, Failure> {
    let mut attempts = newest_attempts(conn, rows.iter().map(|r| r.id).collect()).await?;
    rows.into_iter()
        .map(|row| {
            let own = attempts.remove(&row.id).unwrap_or_default();
            Ok(delivery_from_row(row, own)?)
        })
        .collect()
}

/// The pending row of a delivery inserted directly, due (and created) at `due_at`.
pub(crate) fn new_delivery_row(
    id: Uuid,
    org_id: Uuid,
    endpoint_id: Uuid,
    event_id: Uuid,
    event_type: &str,
    due_at: i64,
) -> webhook_deliveries::ActiveModel {
    webhook_deliveries::ActiveModel {
        id: Set(id),
        org_id: Set(org_id),
        endpoint_id: Set(endpoint_id),
        event_id: Set(event_id),
        event_type: Set(event_type.to_owned()),
        status: Set(DeliveryStatus::Pending.as_str().to_owned()),
        attempt_count: Set(0),
        schedule_base: Set(0),
        first_attempt_at_us: Set(None),
        next_attempt_at_us: Set(Some(due_at)),
        lease_until_us: Set(None),
        created_at_us: Set(due_at),
        finished_at_us: Set(None),
        last_error_code: Set(None),
        last_error_message: Set(None),
    }
}

// ---- the port -----------------------------------------------------------------------------

#[async_trait]
impl WebhookStore for SqlStore {
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint, journal: &JournalEntry) -> Result<(), WebhookError> {
        let row = endpoint_row(endpoint, self.seal_secrets(&endpoint.secrets)?)?;
        let txn = begin(&self.db).await?;
        webhook_endpoints::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the endpoint"))?;
        crate::journal::write_journal_sealed(&txn, journal, self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the endpoint").await?;
        Ok(())
    }

    async fn list_endpoints(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<WebhookEndpoint>, WebhookError> {
        let mut query = webhook_endpoints::Entity::find().filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(webhook_endpoints::Column::CreatedAtUs, webhook_endpoints::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(webhook_endpoints::Column::CreatedAtUs)
            .order_by_desc(webhook_endpoints::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing endpoints"))?;
        let endpoints = rows.into_iter().map(|row| self.endpoint_from_row(row)).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(endpoints, page, |e| (e.created_at, e.id.as_uuid())))
    }

    async fn get_endpoint(&self, org_id: OrgId, id: EndpointId) -> Result<Option<WebhookEndpoint>, WebhookError> {
        let row = webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()))
            .filter(webhook_endpoints::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading an endpoint"))?;
        Ok(row.map(|row| self.endpoint_from_row(row)).transpose()?)
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, expected_version: i64, journal: &JournalEntry) -> Result<(), WebhookError> {
        let id = endpoint.id.as_uuid();
        let txn = begin(&self.db).await?;
        let stored = self
            .lock_endpoint(
                webhook_endpoints::Entity::find()
                    .select_only()
                    .column(webhook_endpoints::Column::State)
                    .column(webhook_endpoints::Column::Version)
                    .filter(webhook_endpoints::Column::OrgId.eq(endpoint.org_id.as_uuid()))
                    .filter(webhook_endpoints::Column::Id.eq(id)),
            )
            .into_tuple::<(String, i64)>()
            .one(&txn)
            .await
            .map_err(db("reading the endpoint"))?;
        let Some((stored_state, stored_version)) = stored else {
            rollback(txn).await?;
            return Err(WebhookError::NotFound);
        };
        if stored_version != expected_version {
            rollback(txn).await?;
            return Err(WebhookError::Conflict("endpoint_changed"));
        }
        let was_enabled = stored_state == ENABLED;
        let (state, reason, disabled_at) = state_columns(&endpoint.state);
        let mut update = webhook_endpoints::Entity::update_many()
            .col_expr(webhook_endpoints::Column::Url, Expr::value(endpoint.url.to_string()))
            .col_expr(webhook_endpoints::Column::Description, Expr::value(endpoint.description.clone()))
            .col_expr(webhook_endpoints::Column::Filters, Expr::value(to_json("writing an endpoint's filters", &endpoint.filters)?))
            .col_expr(webhook_endpoints::Column::State, Expr::value(state))
            .col_expr(webhook_endpoints::Column::DisabledReason, Expr::value(reason))
            .col_expr(webhook_endpoints::Column::DisabledAtUs, Expr::value(disabled_at))
            .col_expr(webhook_endpoints::Column::UpdatedAtUs, Expr::value(to_us(endpoint.updated_at)))
            .col_expr(webhook_endpoints::Column::Version, Expr::value(endpoint.version));
        if !was_enabled && endpoint.is_enabled() {
            update = update.col_expr(webhook_endpoints::Column::FailingSinceUs, Expr::value(Option::<i64>::None));
        }
        let updated = update
            .filter(webhook_endpoints::Column::Id.eq(id))
            .filter(webhook_endpoints::Column::Version.eq(expected_version))
            .exec(&txn)
            .await
            .map_err(db("updating the endpoint"))?;
        if updated.rows_affected == 0 {
            rollback(txn).await?;
            return Err(WebhookError::Conflict("endpoint_changed"));
        }
        if was_enabled {
            if let EndpointState::Disabled { reason, at } = endpoint.state {
                fail_pending_deliveries(&txn, id, Some(reason.as_str()), to_us(at)).await?;
            }
        }
        write_journal(&txn, journal).await?;
        commit(txn, "committing the endpoint").await?;
        Ok(())
    }

    async fn rotate_secret(&self, endpoint: &WebhookEndpoint, expected_version: i64, journal: &JournalEntry) -> Result<(), WebhookError> {
        let sealed = self.seal_secrets(&endpoint.secrets)?;
        let txn = begin(&self.db).await?;
        let updated = webhook_endpoints::Entity::update_many()
            .col_expr(webhook_endpoints::Column::SealedSecrets, Expr::value(sealed))
            .col_expr(webhook_endpoints::Column::UpdatedAtUs, Expr::value(to_us(endpoint.updated_at)))
            .col_expr(webhook_endpoints::Column::Version, Expr::value(endpoint.version))
            .filter(webhook_endpoints::Column::OrgId.eq(endpoint.org_id.as_uuid()))
            .filter(webhook_endpoints::Column::Id.eq(endpoint.id.as_uuid()))
            .filter(webhook_endpoints::Column::Version.eq(expected_version))
            .exec(&txn)
            .await
            .map_err(db("rotating the endpoint's secret"))?;
        if updated.rows_affected == 0 {
            let exists = has_endpoint(&txn, endpoint.org_id, endpoint.id).await?;
            rollback(txn).await?;
            return Err(if exists { WebhookError::Conflict("endpoint_changed") } else { WebhookError::NotFound });
        }
        crate::journal::write_journal_sealed(&txn, journal, self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the rotation").await?;
        Ok(())
    }

    async fn delete_endpoint(&self, org_id: OrgId, id: EndpointId, journal: &JournalEntry) -> Result<(), WebhookError> {
        let txn = begin(&self.db).await?;
        let found = self
            .lock_endpoint(
                webhook_endpoints::Entity::find()
                    .select_only()
                    .column(webhook_endpoints::Column::Id)
                    .filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()))
                    .filter(webhook_endpoints::Column::Id.eq(id.as_uuid())),
            )
            .into_tuple::<Uuid>()
            .one(&txn)
            .await
            .map_err(db("reading the endpoint"))?;
        if found.is_none() {
            rollback(txn).await?;
            return Err(WebhookError::NotFound);
        }
        remove_endpoint(&txn, id.as_uuid()).await?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the deletion").await?;
        Ok(())
    }

    async fn list_deliveries(
        &self,
        org_id: OrgId,
        endpoint_id: EndpointId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, WebhookError> {
        if !has_endpoint(&self.db, org_id, endpoint_id).await? {
            return Err(WebhookError::NotFound);
        }
        let mut query = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::OrgId.eq(org_id.as_uuid()))
            .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id.as_uuid()));
        if let Some(status) = filter.status {
            query = query.filter(webhook_deliveries::Column::Status.eq(status.as_str()));
        }
        if let Some(event_type) = &filter.event_type {
            query = query.filter(webhook_deliveries::Column::EventType.eq(event_type.as_str()));
        }
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(webhook_deliveries::Column::CreatedAtUs, webhook_deliveries::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(webhook_deliveries::Column::CreatedAtUs)
            .order_by_desc(webhook_deliveries::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing deliveries"))?;
        let deliveries = with_attempts(&self.db, rows).await?;
        Ok(Page::from_rows(deliveries, page, |d| (d.created_at, d.id.as_uuid())))
    }

    async fn get_delivery(&self, org_id: OrgId, endpoint_id: EndpointId, id: DeliveryId) -> Result<Option<Delivery>, WebhookError> {
        let row = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::OrgId.eq(org_id.as_uuid()))
            .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id.as_uuid()))
            .filter(webhook_deliveries::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a delivery"))?;
        Ok(match row {
            Some(row) => with_attempts(&self.db, vec![row]).await?.pop(),
            None => None,
        })
    }

    async fn replay_delivery(&self, delivery: &Delivery, journal: &JournalEntry) -> Result<(), WebhookError> {
        let txn = begin(&self.db).await?;
        let updated = webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::Status, Expr::value(DeliveryStatus::Pending.as_str()))
            // The schedule starts after the attempts made so far, whatever the caller read.
            .col_expr(webhook_deliveries::Column::ScheduleBase, Expr::col(webhook_deliveries::Column::AttemptCount).into())
            .col_expr(webhook_deliveries::Column::FirstAttemptAtUs, Expr::value(Option::<i64>::None))
            .col_expr(webhook_deliveries::Column::NextAttemptAtUs, Expr::value(delivery.next_attempt_at.map(to_us)))
            .col_expr(webhook_deliveries::Column::FinishedAtUs, Expr::value(Option::<i64>::None))
            .col_expr(webhook_deliveries::Column::LeaseUntilUs, Expr::value(Option::<i64>::None))
            .filter(webhook_deliveries::Column::OrgId.eq(delivery.org_id.as_uuid()))
            .filter(webhook_deliveries::Column::EndpointId.eq(delivery.endpoint_id.as_uuid()))
            .filter(webhook_deliveries::Column::Id.eq(delivery.id.as_uuid()))
            .filter(webhook_deliveries::Column::Status.ne(DeliveryStatus::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(db("replaying the delivery"))?;
        if updated.rows_affected == 0 {
            let exists = webhook_deliveries::Entity::find()
                .select_only()
                .column(webhook_deliveries::Column::Id)
                .filter(webhook_deliveries::Column::OrgId.eq(delivery.org_id.as_uuid()))
                .filter(webhook_deliveries::Column::EndpointId.eq(delivery.endpoint_id.as_uuid()))
                .filter(webhook_deliveries::Column::Id.eq(delivery.id.as_uuid()))
                .into_tuple::<Uuid>()
                .one(&txn)
                .await
                .map_err(db("reading the delivery"))?
                .is_some();
            rollback(txn).await?;
            return Err(if exists { WebhookError::Conflict("delivery_pending") } else { WebhookError::NotFound });
        }
        write_journal(&txn, journal).await?;
        commit(txn, "committing the replay").await?;
        Ok(())
    }

    async fn enqueue_test(&self, event: &PendingEvent, delivery: &NewDelivery, journal: &JournalEntry) -> Result<(), WebhookError> {
        let due_at = to_us(delivery.due_at);
        let txn = begin(&self.db).await?;
        if !has_endpoint(&txn, delivery.org_id, delivery.endpoint_id).await? {
            rollback(txn).await?;
            return Err(WebhookError::NotFound);
        }
        // Born fanned out: fan-out never sees it, so it reaches this endpoint alone.
        let mut row = event_row(event.org_id.as_uuid(), &event.outbox());
        row.fanned_out_at_us = Set(Some(due_at));
        insert_event_rows(&txn, vec![row]).await?;
        webhook_deliveries::Entity::insert(new_delivery_row(
            delivery.id.as_uuid(),
            delivery.org_id.as_uuid(),
            delivery.endpoint_id.as_uuid(),
            delivery.event_id.as_uuid(),
            delivery.event_type.as_str(),
            due_at,
        ))
        .exec_without_returning(&txn)
        .await
        .map_err(db("inserting the test delivery"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the test event").await?;
        Ok(())
    }

    async fn publish(&self, events: &[PendingEvent]) -> Result<(), WebhookError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows: Vec<webhook_events::ActiveModel> = events.iter().map(|e| event_row(e.org_id.as_uuid(), &e.outbox())).collect();
        let txn = begin(&self.db).await?;
        insert_event_rows(&txn, rows).await?;
        commit(txn, "committing the events").await?;
        Ok(())
    }
}
