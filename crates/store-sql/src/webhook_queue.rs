//! `DeliveryQueue` for [`SqlStore`]: the workers' side of webhooks. Fan-out expands outbox
//! events into deliveries, workers claim due deliveries under a lease, record each attempt with
//! what follows it, and disable endpoints; every method commits all of its writes or none.
//!
//! - `fan_out` reads the oldest undispatched events with their organizations' enabled
//!   endpoints in one statement (the idle case ends there), matches filters in Rust
//!   (`EventFilters::matches_any`: exact equality or `starts_with` on the prefix, never `LIKE`;
//!   an event addressed to one endpoint, `endpoint_id`, matches that endpoint only), then on
//!   PostgreSQL writes in ONE more statement: the events still undispatched marked, the
//!   deliveries inserted with `ON CONFLICT (event_id, endpoint_id) DO NOTHING`, so concurrent
//!   fan-outs make each delivery once. SQLite (and a PostgreSQL batch of more deliveries than a
//!   statement carries) does the same in one transaction that locks the events (`FOR UPDATE
//!   SKIP LOCKED` on PostgreSQL).
//! - `claim` chooses pending, due, unleased deliveries of enabled endpoints fairly (at most
//!   `per_endpoint` leased per endpoint, endpoints and organizations taking turns, then oldest
//!   due first and in event order: see `crate::fair`), locks them with `FOR UPDATE SKIP
//!   LOCKED` on PostgreSQL; leases them, counts the attempt, starts the schedule's window on its first
//!   attempt, and hands out each with its endpoint's URL and opened secrets and the event's
//!   payload. A delivery whose endpoint's secrets cannot be opened (the secret key changed) is
//!   logged and left out, still leased: it comes back after its lease instead of failing every
//!   claim.
//! - An event whose stored type does not parse matches no endpoint (logged) and is marked
//!   dispatched, so it cannot stop fan-out either.
//! - `record_attempt` locks the endpoint, then applies the outcome to the delivery only while
//!   this worker's claim still holds (pending, `attempt_count` equal to the attempt's number,
//!   leased), inserts the attempt (unique per delivery and number) and updates the endpoint's
//!   `failing_since`. `record_attempts` writes the successes at endpoints without a failure
//!   streak together (`record_successes`: one transaction, five statements however many) and
//!   leaves every other attempt to `record_attempt`.
//! - `disable_endpoint` disables an enabled endpoint (bumping its version) and fails its
//!   pending deliveries.
//! - Retention: `purge_finished` removes finished deliveries past retention with their
//!   attempts; `purge_events` removes fanned-out events past retention that no delivery refers
//!   to any more (their payloads with them).
//!
//! On SQLite the same statements run without lock clauses: the one connection serialises them.

use crate::conversations::{begin, commit, rollback};
use crate::convert::{corrupt, from_us_opt, to_us};
use crate::entity::{webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events};
use crate::error::{db, Failure};
use crate::fair::FairClaim;
use crate::group_commit::chained;
use crate::webhooks::{
    attempt_row, event_type_from_column, fail_pending_deliveries, filters_from_column, new_delivery_row, DISABLED, ENABLED,
};
use crate::SqlStore;
use async_trait::async_trait;
use atlas_kernel::OrgId;
use atlas_webhooks::{
    AfterAttempt, Attempt, AttemptOutcome, AttemptRecord, DeliveryId, DeliveryItem, DeliveryQueue, DeliveryStatus, DisabledReason,
    EndpointHealth, EndpointId, EventFilters, EventId, EventType, FanOutReport, WebhookError,
};
use sea_orm::sea_query::{CaseStatement, Expr, LockBehavior, LockType, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult, Insert, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Statement,
};
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How a claim chooses deliveries: at most the endpoint's cap leased at once, endpoints and
/// organizations taking turns (see `crate::fair`).
pub(crate) const FAIR_DELIVERIES: FairClaim = FairClaim {
    table: "webhook_deliveries",
    target: "endpoint_id",
    joins: "JOIN webhook_endpoints e ON e.id = d.endpoint_id",
    open: "d.status = 'pending'",
    claimable: "d.status = 'pending' AND d.next_attempt_at_us <= {now} \
                AND (d.lease_until_us IS NULL OR d.lease_until_us <= {now}) AND e.state = 'enabled'",
    leased: "status = 'pending' AND lease_until_us > {now}",
    order: "next_attempt_at_us, event_id, id",
};

/// The deliveries' next due instant (`DeliveryQueue::next_due`): over the pending deliveries
/// alone, however many finished ones the table keeps (`crate::plans`).
pub(crate) const DELIVERIES_NEXT_DUE: &str =
    "SELECT MIN(CASE WHEN d.lease_until_us IS NOT NULL AND d.lease_until_us > d.next_attempt_at_us \
     THEN d.lease_until_us ELSE d.next_attempt_at_us END) AS due \
     FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
     WHERE d.status = 'pending' AND e.state = 'enabled'";

/// The most deliveries one `INSERT` carries (15 parameters each, within both backends' limits).
const DELIVERIES_PER_INSERT: usize = 500;

/// Whether endpoint `id` exists, through `txn`.
async fn endpoint_exists(txn: &DatabaseTransaction, id: Uuid) -> Result<bool, Failure> {
    let found = webhook_endpoints::Entity::find()
        .select_only()
        .column(webhook_endpoints::Column::Id)
        .filter(webhook_endpoints::Column::Id.eq(id))
        .into_tuple::<Uuid>()
        .one(txn)
        .await
        .map_err(db("reading the endpoint"))?;
    Ok(found.is_some())
}

/// The inserts of `rows`, at most [`DELIVERIES_PER_INSERT`] each, every one skipping any
/// (event, endpoint) that already has its delivery.
fn delivery_inserts(mut rows: Vec<webhook_deliveries::ActiveModel>) -> Vec<Insert<webhook_deliveries::ActiveModel>> {
    let mut inserts = Vec::new();
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(DELIVERIES_PER_INSERT));
        inserts.push(webhook_deliveries::Entity::insert_many(rows).on_conflict(
            OnConflict::columns([webhook_deliveries::Column::EventId, webhook_deliveries::Column::EndpointId]).do_nothing().to_owned(),
        ));
        rows = rest;
    }
    inserts
}

/// Inserts `rows` through `txn` ([`delivery_inserts`]); returns how many were inserted.
async fn insert_deliveries(txn: &DatabaseTransaction, rows: Vec<webhook_deliveries::ActiveModel>) -> Result<u64, Failure> {
    let mut inserted = 0;
    for insert in delivery_inserts(rows) {
        inserted += insert.exec_without_returning(txn).await.map_err(db("inserting the deliveries"))?;
    }
    Ok(inserted)
}

/// A claimed row with the attempt the claim made of it.
struct Claimed {
    row: webhook_deliveries::Model,
    attempt: u32,
    schedule_attempt: u32,
    first_attempt_at: OffsetDateTime,
}

/// `row` (as read before the claim's update) claimed at `now`.
fn claimed(row: webhook_deliveries::Model, now: OffsetDateTime) -> Result<Claimed, Failure> {
    const CONTEXT: &str = "claiming a delivery";
    let negative = || corrupt(CONTEXT, format!("delivery {} has a negative count", row.id));
    let before = u32::try_from(row.attempt_count).map_err(|_| negative())?;
    let base = u32::try_from(row.schedule_base).map_err(|_| negative())?;
    let attempt = before.saturating_add(1);
    let schedule_attempt = attempt.saturating_sub(base);
    let first_attempt_at = if schedule_attempt <= 1 { Some(now) } else { from_us_opt(row.first_attempt_at_us)? };
    // A later attempt whose first was never stamped (impossible through this store) counts from now.
    Ok(Claimed { attempt, schedule_attempt, first_attempt_at: first_attempt_at.unwrap_or(now), row })
}

/// When `attempt` ended, in the columns' microseconds.
fn ended_us(attempt: &Attempt) -> i64 {
    to_us(attempt.at + Duration::milliseconds(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX)))
}

/// The `attempt_count` a delivery holds while `attempt`'s claim holds. No delivery has a
/// negative count, so a number beyond i32 matches nothing (the claim is gone).
fn claim_number(attempt: &Attempt) -> i32 {
    i32::try_from(attempt.number).unwrap_or(-1)
}

impl SqlStore {
    /// Records the succeeded attempts `successes` (indices into `records`, each followed by
    /// `Succeed`) in one transaction of five statements (BEGIN and COMMIT included), however
    /// many they are: locks their
    /// endpoints shared, in id order, keeping those without a failure streak; finishes, in one
    /// `UPDATE … RETURNING`, the deliveries of those whose claim still holds (pending, leased,
    /// `attempt_count` equal to the attempt's number, at that endpoint); inserts their attempts.
    /// Returns the indices recorded. The others (a streak to clear, a reclaimed or unknown
    /// delivery) are left to `record_attempt`, which reports each as it would alone; so is
    /// every one of them when this fails (an attempt already recorded: nothing is kept).
    async fn record_successes(&self, records: &[AttemptRecord], successes: &[usize]) -> Result<Vec<usize>, Failure> {
        let mut endpoints: Vec<Uuid> = successes.iter().map(|&i| records[i].endpoint_id.as_uuid()).collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        let txn = begin(&self.db).await?;
        let healthy: Vec<Uuid> = self
            .lock_endpoint_shared(
                webhook_endpoints::Entity::find()
                    .select_only()
                    .column(webhook_endpoints::Column::Id)
                    .filter(webhook_endpoints::Column::Id.is_in(endpoints))
                    .filter(webhook_endpoints::Column::FailingSinceUs.is_null())
                    .order_by_asc(webhook_endpoints::Column::Id),
            )
            .into_tuple::<Uuid>()
            .all(&txn)
            .await
            .map_err(db("reading the endpoints"))?;
        let candidates: Vec<usize> =
            successes.iter().copied().filter(|&i| healthy.binary_search(&records[i].endpoint_id.as_uuid()).is_ok()).collect();
        if candidates.is_empty() {
            rollback(txn).await?;
            return Ok(Vec::new());
        }
        let mut claims = Condition::any();
        let mut finished_at: Option<CaseStatement> = None;
        for &i in &candidates {
            let attempt = &records[i].attempt;
            let this = Condition::all()
                .add(webhook_deliveries::Column::Id.eq(attempt.delivery_id.as_uuid()))
                .add(webhook_deliveries::Column::AttemptCount.eq(claim_number(attempt)));
            claims = claims.add(this.clone().add(webhook_deliveries::Column::EndpointId.eq(records[i].endpoint_id.as_uuid())));
            finished_at = Some(match finished_at {
                None => Expr::case(this, ended_us(attempt)),
                Some(cases) => cases.case(this, ended_us(attempt)),
            });
        }
        let none = Option::<i64>::None;
        let mut finish = webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::LeaseUntilUs, Expr::value(none))
            .col_expr(webhook_deliveries::Column::Status, Expr::value(DeliveryStatus::Succeeded.as_str()))
            .col_expr(webhook_deliveries::Column::NextAttemptAtUs, Expr::value(none))
            .col_expr(webhook_deliveries::Column::FinishedAtUs, finished_at.map_or_else(|| Expr::value(none), Into::into))
            .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::Column::LeaseUntilUs.is_not_null())
            .filter(claims)
            .into_query();
        finish.returning(Query::returning().columns([webhook_deliveries::Column::Id, webhook_deliveries::Column::AttemptCount]));
        let finished = txn.query_all(txn.get_database_backend().build(&finish)).await.map_err(db("finishing the deliveries"))?;
        // By delivery and attempt number: a stale worker's attempt at a delivery finished in
        // this batch under its current claim is not among them.
        let finished: std::collections::HashSet<(Uuid, i32)> = finished
            .iter()
            .map(|row| Ok((row.try_get_by_index::<Uuid>(0)?, row.try_get_by_index::<i32>(1)?)))
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(db("reading the finished deliveries"))?;
        let recorded: Vec<usize> = candidates
            .into_iter()
            .filter(|&i| {
                let attempt = &records[i].attempt;
                finished.contains(&(attempt.delivery_id.as_uuid(), claim_number(attempt)))
            })
            .collect();
        if !recorded.is_empty() {
            webhook_attempts::Entity::insert_many(recorded.iter().map(|&i| attempt_row(&records[i].attempt)))
                .exec_without_returning(&txn)
                .await
                .map_err(db("recording the attempts"))?;
        }
        commit(txn, "committing the attempts").await?;
        Ok(recorded)
    }

    /// Fan-out as one transaction: locks the oldest undispatched events (`SKIP LOCKED` on
    /// PostgreSQL, so concurrent fan-outs take different events and never wait) with their
    /// organizations' enabled endpoints, inserts the deliveries and marks the events. SQLite's
    /// way, and PostgreSQL's for a batch with more deliveries than one statement carries.
    async fn fan_out_in_transaction(&self, now_us: i64, limit: u32) -> Result<FanOutReport, Failure> {
        let txn = begin(&self.db).await?;
        let waiting = waiting_events(&txn, limit, true).await?;
        if waiting.is_empty() {
            rollback(txn).await?;
            return Ok(FanOutReport::default());
        }
        let deliveries = insert_deliveries(&txn, deliveries_of(&waiting, now_us)?).await?;
        webhook_events::Entity::update_many()
            .col_expr(webhook_events::Column::FannedOutAtUs, Expr::value(now_us))
            .filter(webhook_events::Column::Id.is_in(waiting.iter().map(|event| event.id)))
            .exec(&txn)
            .await
            .map_err(db("marking the events fanned out"))?;
        commit(txn, "committing the fan-out").await?;
        Ok(FanOutReport { events: count(waiting.len()), deliveries: count(deliveries), full: waiting.len() >= limit as usize })
    }

    /// The PostgreSQL claim, ONE statement (atomic without a transaction): chooses deliveries
    /// fairly (`crate::fair`), locks those still claimable one by one through the primary key
    /// (`FOR UPDATE SKIP LOCKED`: deliveries another claim holds are skipped, never waited
    /// for), leases them, counts the attempt, stamps the first attempt of the current schedule,
    /// and returns each with its endpoint's URL and sealed secrets and its event's payload, in
    /// claim order. With nothing due (the idle case) it changes nothing and returns nothing.
    async fn claim_deliveries_in_one_statement(
        &self,
        now: OffsetDateTime,
        limit: u32,
        lease: Duration,
        per_endpoint: u32,
    ) -> Result<Vec<DeliveryItem>, Failure> {
        const CONTEXT: &str = "claiming deliveries";
        let lease_until = now + lease;
        let (now_us, lease_until_us) = (to_us(now), to_us(lease_until));
        let sql = format!(
            "{ranked}, chosen AS ({chosen}), \
             locked AS (SELECT d.id, c.turn FROM chosen c CROSS JOIN LATERAL \
                        (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                         WHERE d.id = c.id AND {claimable} FOR UPDATE OF d SKIP LOCKED) d), \
             leased AS (UPDATE webhook_deliveries w SET lease_until_us = {lease_until_us}, attempt_count = w.attempt_count + 1, \
                            first_attempt_at_us = CASE WHEN w.attempt_count = w.schedule_base THEN {now_us} ELSE w.first_attempt_at_us END \
                        FROM locked WHERE w.id = locked.id RETURNING w.*, locked.turn AS claim_turn) \
             SELECT leased.*, e.url AS endpoint_url, e.sealed_secrets AS endpoint_secrets, ev.payload AS event_payload \
             FROM leased JOIN webhook_endpoints e ON e.id = leased.endpoint_id JOIN webhook_events ev ON ev.id = leased.event_id \
             ORDER BY leased.claim_turn",
            ranked = FAIR_DELIVERIES.ranked(DbBackend::Postgres, now_us, per_endpoint, limit),
            chosen = FAIR_DELIVERIES.chosen(limit),
            claimable = FAIR_DELIVERIES.claimable_at(now_us),
        );
        let rows = self.db.query_all(Statement::from_string(DbBackend::Postgres, sql)).await.map_err(db(CONTEXT))?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let mut leased = webhook_deliveries::Model::from_query_result(&row, "").map_err(db(CONTEXT))?;
            // The row as it was before this claim counted its attempt (`claimed` counts it).
            leased.attempt_count -= 1;
            let url: String = row.try_get("", "endpoint_url").map_err(db(CONTEXT))?;
            let sealed: Vec<u8> = row.try_get("", "endpoint_secrets").map_err(db(CONTEXT))?;
            let payload: Vec<u8> = row.try_get("", "event_payload").map_err(db(CONTEXT))?;
            items.extend(self.claimed_item(claimed(leased, now)?, &url, &sealed, payload, lease_until)?);
        }
        Ok(items)
    }

    /// The delivery item of `claim` (its endpoint's URL and sealed secrets, its event's
    /// payload), leased until `lease_until`; `None` (logged) when the endpoint's secrets cannot
    /// be opened (the secret key changed): the delivery stays leased until its lease ends.
    fn claimed_item(
        &self,
        claim: Claimed,
        url: &str,
        sealed_secrets: &[u8],
        payload: Vec<u8>,
        lease_until: OffsetDateTime,
    ) -> Result<Option<DeliveryItem>, Failure> {
        const CONTEXT: &str = "claiming a delivery";
        let row = &claim.row;
        let secrets = match self.open_secrets(row.endpoint_id, sealed_secrets) {
            Ok(secrets) => secrets,
            Err(e) => {
                tracing::error!(
                    delivery_id = %DeliveryId::from_uuid(row.id),
                    endpoint_id = %EndpointId::from_uuid(row.endpoint_id),
                    error = %e,
                    "the endpoint's secrets cannot be opened (was the secret key changed?): the delivery stays leased until its lease ends"
                );
                return Ok(None);
            }
        };
        Ok(Some(DeliveryItem {
            id: DeliveryId::from_uuid(row.id),
            org_id: OrgId::from_uuid(row.org_id),
            endpoint_id: EndpointId::from_uuid(row.endpoint_id),
            url: url.to_owned(),
            secrets,
            event_id: EventId::from_uuid(row.event_id),
            event_type: event_type_from_column(CONTEXT, &row.event_type)?,
            payload,
            attempt: claim.attempt,
            schedule_attempt: claim.schedule_attempt,
            first_attempt_at: claim.first_attempt_at,
            lease_until,
        }))
    }
}

/// A count as the port reports it.
fn count(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

/// An undispatched event as fan-out reads it, with the enabled endpoints of its organization.
struct Waiting {
    id: Uuid,
    org_id: Uuid,
    event_type: String,
    /// The endpoint an addressed event is for (`None`: every endpoint whose filters match).
    addressee: Option<Uuid>,
    /// The organization's enabled endpoints and their filters.
    endpoints: Vec<(Uuid, EventFilters)>,
}

/// The oldest undispatched events (at most `limit`, in creation order), each with its
/// organization's enabled endpoints, in ONE statement through `conn`. With `lock` (a
/// transaction's read) the events are locked on PostgreSQL (`FOR UPDATE SKIP LOCKED`);
/// without, the statement only reads.
async fn waiting_events(conn: &impl ConnectionTrait, limit: u32, lock: bool) -> Result<Vec<Waiting>, Failure> {
    const CONTEXT: &str = "reading the events to fan out";
    let backend = conn.get_database_backend();
    let lock = if lock && backend == DbBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "SELECT ev.id AS id, ev.org_id AS org_id, ev.\"type\" AS event_type, ev.endpoint_id AS addressee, \
                e.id AS endpoint_id, e.filters AS filters \
         FROM (SELECT id, org_id, \"type\", endpoint_id FROM webhook_events WHERE fanned_out_at_us IS NULL ORDER BY id LIMIT $1{lock}) ev \
         LEFT JOIN webhook_endpoints e ON e.org_id = ev.org_id AND e.state = '{ENABLED}' \
         ORDER BY ev.id, e.id"
    );
    let rows = conn.query_all(Statement::from_sql_and_values(backend, sql, [i64::from(limit).into()])).await.map_err(db(CONTEXT))?;
    let mut filters: HashMap<Uuid, EventFilters> = HashMap::new();
    let mut waiting: Vec<Waiting> = Vec::new();
    for row in rows {
        let id: Uuid = row.try_get("", "id").map_err(db(CONTEXT))?;
        if waiting.last().is_none_or(|last| last.id != id) {
            waiting.push(Waiting {
                id,
                org_id: row.try_get("", "org_id").map_err(db(CONTEXT))?,
                event_type: row.try_get("", "event_type").map_err(db(CONTEXT))?,
                addressee: row.try_get("", "addressee").map_err(db(CONTEXT))?,
                endpoints: Vec::new(),
            });
        }
        let Some(endpoint_id) = row.try_get::<Option<Uuid>>("", "endpoint_id").map_err(db(CONTEXT))? else {
            continue;
        };
        let endpoint_filters = match filters.get(&endpoint_id) {
            Some(known) => known.clone(),
            None => {
                let text: String = row.try_get("", "filters").map_err(db(CONTEXT))?;
                let parsed = filters_from_column(endpoint_id, &text)?;
                filters.insert(endpoint_id, parsed.clone());
                parsed
            }
        };
        if let Some(event) = waiting.last_mut() {
            event.endpoints.push((endpoint_id, endpoint_filters));
        }
    }
    Ok(waiting)
}

/// The deliveries `waiting` makes, due at `now_us`: an addressed event's to its endpoint alone
/// (while it is enabled and subscribes to the type), a broadcast's to every endpoint whose
/// filters match (`EventFilters::matches_any`: equality, or a wildcard's prefix, never `LIKE`).
/// An event whose stored type does not parse matches nothing (logged).
fn deliveries_of(waiting: &[Waiting], now_us: i64) -> Result<Vec<webhook_deliveries::ActiveModel>, Failure> {
    let mut rows = Vec::new();
    for event in waiting {
        let Ok(event_type) = EventType::parse(&event.event_type) else {
            tracing::warn!(event_id = %EventId::from_uuid(event.id), event_type = %event.event_type, "an event of an unknown type matches no endpoint");
            continue;
        };
        for (endpoint_id, filters) in &event.endpoints {
            if event.addressee.is_none_or(|to| to == *endpoint_id) && filters.matches_any(&event_type) {
                rows.push(new_delivery_row(
                    DeliveryId::generate().as_uuid(),
                    event.org_id,
                    *endpoint_id,
                    event.id,
                    &event.event_type,
                    now_us,
                ));
            }
        }
    }
    Ok(rows)
}

/// The most deliveries one fan-out statement carries (PostgreSQL takes 65,535 parameters in a
/// statement; a delivery binds 15).
const DELIVERIES_PER_STATEMENT: usize = 4 * DELIVERIES_PER_INSERT;

/// PostgreSQL's fan-out write, ONE statement (its own transaction): marks the events of
/// `waiting` still undispatched as fanned out and inserts `rows`, skipping any (event,
/// endpoint) that has its delivery already. Two processes that read the same events both send
/// it: the second's marking waits for the first's commit and then finds the events dispatched,
/// and the unique (event, endpoint) index turns its inserts into nothing, so every delivery is
/// made once. The report counts the events this statement marked (`full` is the caller's).
async fn dispatch_in_one_statement(
    conn: &impl ConnectionTrait,
    waiting: &[Waiting],
    rows: Vec<webhook_deliveries::ActiveModel>,
    now_us: i64,
) -> Result<FanOutReport, Failure> {
    const CONTEXT: &str = "fanning out the events";
    let backend = DbBackend::Postgres;
    let mark = Query::update()
        .table(webhook_events::Entity)
        .value(webhook_events::Column::FannedOutAtUs, now_us)
        .and_where(webhook_events::Column::Id.is_in(waiting.iter().map(|event| event.id)))
        .and_where(webhook_events::Column::FannedOutAtUs.is_null())
        .returning_col(webhook_events::Column::Id)
        .to_owned();
    let mut statements = vec![backend.build(&mark)];
    for insert in delivery_inserts(rows) {
        let mut insert = insert.into_query();
        insert.returning_col(webhook_deliveries::Column::Id);
        statements.push(backend.build(&insert));
    }
    let made = (1..statements.len()).map(|i| format!("(SELECT COUNT(*) FROM w{i})")).collect::<Vec<_>>();
    let made = if made.is_empty() { "0::bigint".to_owned() } else { made.join(" + ") };
    statements.push(Statement::from_string(backend, format!("SELECT (SELECT COUNT(*) FROM w0) AS events, {made} AS deliveries")));
    let row = conn.query_one(chained(statements)).await.map_err(db(CONTEXT))?;
    let (events, deliveries) = match row {
        Some(row) => (row.try_get::<i64>("", "events").map_err(db(CONTEXT))?, row.try_get::<i64>("", "deliveries").map_err(db(CONTEXT))?),
        None => (0, 0),
    };
    Ok(FanOutReport { events: count(events), deliveries: count(deliveries), full: false })
}

#[async_trait]
impl DeliveryQueue for SqlStore {
    async fn fan_out(&self, now: OffsetDateTime, limit: u32) -> Result<FanOutReport, WebhookError> {
        let now_us = to_us(now);
        // One statement, no transaction, when nothing waits (the idle case).
        let waiting = waiting_events(&self.db, limit, false).await?;
        if waiting.is_empty() {
            return Ok(FanOutReport::default());
        }
        if self.is_postgres() {
            let rows = deliveries_of(&waiting, now_us)?;
            if rows.len() <= DELIVERIES_PER_STATEMENT {
                let report = dispatch_in_one_statement(&self.db, &waiting, rows, now_us).await?;
                return Ok(FanOutReport { full: waiting.len() >= limit as usize, ..report });
            }
        }
        Ok(self.fan_out_in_transaction(now_us, limit).await?)
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, WebhookError> {
        let row = self
            .db
            .query_one(Statement::from_string(self.db.get_database_backend(), DELIVERIES_NEXT_DUE))
            .await
            .map_err(db("reading the deliveries' next due time"))?;
        let due = match row {
            Some(row) => row.try_get::<Option<i64>>("", "due").map_err(db("reading the deliveries' next due time"))?,
            None => None,
        };
        Ok(crate::convert::from_us_opt(due).map_err(Failure::from)?)
    }

    async fn claim(&self, now: OffsetDateTime, limit: u32, lease: Duration, per_endpoint: u32) -> Result<Vec<DeliveryItem>, WebhookError> {
        let now_us = to_us(now);
        if self.is_postgres() {
            if !FAIR_DELIVERIES.any_claimable(&self.db, now_us).await? {
                return Ok(Vec::new());
            }
            return Ok(self.claim_deliveries_in_one_statement(now, limit, lease, per_endpoint).await?);
        }
        // SQLite: chosen outside the transaction (with nothing due, the idle case, a claim is
        // this one statement), then re-checked, leased and read in one; the one connection
        // serialises claims.
        let chosen = FAIR_DELIVERIES.candidates(&self.db, now_us, limit, per_endpoint).await?;
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let txn = begin(&self.db).await?;
        let enabled = Query::select()
            .column(webhook_endpoints::Column::Id)
            .from(webhook_endpoints::Entity)
            .and_where(webhook_endpoints::Column::State.eq(ENABLED))
            .to_owned();
        // Still claimable once locked: another claim may have taken some since they were chosen.
        let mut query = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::Id.is_in(chosen.clone()))
            .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::Column::NextAttemptAtUs.lte(now_us))
            .filter(
                Condition::any()
                    .add(webhook_deliveries::Column::LeaseUntilUs.is_null())
                    .add(webhook_deliveries::Column::LeaseUntilUs.lte(now_us)),
            )
            .filter(webhook_deliveries::Column::EndpointId.in_subquery(enabled));
        if self.is_postgres() {
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let mut rows = query.all(&txn).await.map_err(db("claiming deliveries"))?;
        let turn: HashMap<Uuid, usize> = chosen.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        rows.sort_by_key(|row| turn.get(&row.id).copied().unwrap_or(usize::MAX));
        if rows.is_empty() {
            rollback(txn).await?;
            return Ok(Vec::new());
        }
        let lease_until = now + lease;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::LeaseUntilUs, Expr::value(to_us(lease_until)))
            .col_expr(webhook_deliveries::Column::AttemptCount, Expr::col(webhook_deliveries::Column::AttemptCount).add(1))
            .filter(webhook_deliveries::Column::Id.is_in(ids.clone()))
            .exec(&txn)
            .await
            .map_err(db("leasing the claimed deliveries"))?;
        // The first attempt of the current schedule opens its 24-hour window.
        webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::FirstAttemptAtUs, Expr::value(now_us))
            .filter(webhook_deliveries::Column::Id.is_in(ids))
            .filter(Expr::col(webhook_deliveries::Column::AttemptCount).eq(Expr::col(webhook_deliveries::Column::ScheduleBase).add(1)))
            .exec(&txn)
            .await
            .map_err(db("stamping the first attempts"))?;
        let claims = rows.into_iter().map(|row| claimed(row, now)).collect::<Result<Vec<_>, _>>()?;
        let mut endpoint_ids: Vec<Uuid> = claims.iter().map(|c| c.row.endpoint_id).collect();
        endpoint_ids.sort_unstable();
        endpoint_ids.dedup();
        let endpoints: HashMap<Uuid, webhook_endpoints::Model> = webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::Id.is_in(endpoint_ids))
            .all(&txn)
            .await
            .map_err(db("reading the claimed deliveries' endpoints"))?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let event_ids: Vec<Uuid> = claims.iter().map(|c| c.row.event_id).collect();
        let payloads: HashMap<Uuid, Vec<u8>> = webhook_events::Entity::find()
            .select_only()
            .column(webhook_events::Column::Id)
            .column(webhook_events::Column::Payload)
            .filter(webhook_events::Column::Id.is_in(event_ids))
            .into_tuple::<(Uuid, Vec<u8>)>()
            .all(&txn)
            .await
            .map_err(db("reading the claimed deliveries' events"))?
            .into_iter()
            .collect();
        let mut items = Vec::with_capacity(claims.len());
        for claim in claims {
            const CONTEXT: &str = "claiming a delivery";
            let row = &claim.row;
            let endpoint = endpoints
                .get(&row.endpoint_id)
                .ok_or_else(|| corrupt(CONTEXT, format!("the endpoint of delivery {} is missing", row.id)))?;
            let payload = payloads
                .get(&row.event_id)
                .cloned()
                .ok_or_else(|| corrupt(CONTEXT, format!("the event of delivery {} is missing", row.id)))?;
            items.extend(self.claimed_item(claim, &endpoint.url, &endpoint.sealed_secrets, payload, lease_until)?);
        }
        commit(txn, "committing the claim").await?;
        Ok(items)
    }

    async fn record_attempt(
        &self,
        endpoint_id: EndpointId,
        attempt: &Attempt,
        next: &AfterAttempt,
    ) -> Result<EndpointHealth, WebhookError> {
        let endpoint = endpoint_id.as_uuid();
        let delivery = attempt.delivery_id.as_uuid();
        // The endpoint first: the lock order of every method that touches both. A success at
        // an endpoint without a failure streak (the common case) leaves the endpoint as it is,
        // so it takes the endpoint's lock shared (`FOR SHARE` on PostgreSQL): the attempts in
        // flight at one endpoint record side by side, and each still waits for, and holds off,
        // whatever writes the endpoint (disabling it, a failure streak). Any other attempt, or
        // a success that finds a streak to clear, locks the endpoint for its update.
        let mut shared = attempt.outcome == AttemptOutcome::Succeeded;
        let (txn, failing_since) = loop {
            let txn = begin(&self.db).await?;
            let query = webhook_endpoints::Entity::find()
                .select_only()
                .column(webhook_endpoints::Column::FailingSinceUs)
                .filter(webhook_endpoints::Column::Id.eq(endpoint));
            let query = if shared { self.lock_endpoint_shared(query) } else { self.lock_endpoint(query) };
            let failing_since = query.into_tuple::<Option<i64>>().one(&txn).await.map_err(db("reading the endpoint"))?;
            let Some(failing_since) = failing_since else {
                rollback(txn).await?;
                return Err(WebhookError::NotFound);
            };
            if shared && failing_since.is_some() {
                rollback(txn).await?;
                shared = false;
                continue;
            }
            break (txn, failing_since);
        };
        let ended_us = ended_us(attempt);
        let none = Option::<i64>::None;
        let mut update = webhook_deliveries::Entity::update_many().col_expr(webhook_deliveries::Column::LeaseUntilUs, Expr::value(none));
        update = match next {
            AfterAttempt::Retry { at } => update
                .col_expr(webhook_deliveries::Column::NextAttemptAtUs, Expr::value(to_us(*at)))
                .col_expr(webhook_deliveries::Column::LastErrorCode, Expr::value(attempt.error.as_ref().map(|e| e.code.clone())))
                .col_expr(webhook_deliveries::Column::LastErrorMessage, Expr::value(attempt.error.as_ref().map(|e| e.message.clone()))),
            AfterAttempt::Succeed => update
                .col_expr(webhook_deliveries::Column::Status, Expr::value(DeliveryStatus::Succeeded.as_str()))
                .col_expr(webhook_deliveries::Column::NextAttemptAtUs, Expr::value(none))
                .col_expr(webhook_deliveries::Column::FinishedAtUs, Expr::value(ended_us)),
            AfterAttempt::GiveUp { error } => update
                .col_expr(webhook_deliveries::Column::Status, Expr::value(DeliveryStatus::Failed.as_str()))
                .col_expr(webhook_deliveries::Column::NextAttemptAtUs, Expr::value(none))
                .col_expr(webhook_deliveries::Column::FinishedAtUs, Expr::value(ended_us))
                .col_expr(webhook_deliveries::Column::LastErrorCode, Expr::value(error.code.clone()))
                .col_expr(webhook_deliveries::Column::LastErrorMessage, Expr::value(error.message.clone())),
        };
        let number = claim_number(attempt);
        let applied = update
            .filter(webhook_deliveries::Column::Id.eq(delivery))
            .filter(webhook_deliveries::Column::EndpointId.eq(endpoint))
            .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::Column::AttemptCount.eq(number))
            .filter(webhook_deliveries::Column::LeaseUntilUs.is_not_null())
            .exec(&txn)
            .await
            .map_err(db("applying the attempt's outcome"))?;
        if applied.rows_affected == 0 {
            let exists = webhook_deliveries::Entity::find()
                .select_only()
                .column(webhook_deliveries::Column::Id)
                .filter(webhook_deliveries::Column::Id.eq(delivery))
                .filter(webhook_deliveries::Column::EndpointId.eq(endpoint))
                .into_tuple::<Uuid>()
                .one(&txn)
                .await
                .map_err(db("reading the delivery"))?
                .is_some();
            rollback(txn).await?;
            return Err(if exists { WebhookError::Conflict("delivery_reclaimed") } else { WebhookError::NotFound });
        }
        match webhook_attempts::Entity::insert(attempt_row(attempt)).exec_without_returning(&txn).await.map_err(db("recording the attempt"))
        {
            Ok(_) => {}
            Err(Failure::Conflict(..)) => {
                rollback(txn).await?;
                return Err(WebhookError::Conflict("delivery_reclaimed"));
            }
            Err(other) => return Err(other.into()),
        }
        let failing_since = if attempt.outcome == AttemptOutcome::Succeeded {
            if failing_since.is_some() {
                webhook_endpoints::Entity::update_many()
                    .col_expr(webhook_endpoints::Column::FailingSinceUs, Expr::value(none))
                    .filter(webhook_endpoints::Column::Id.eq(endpoint))
                    .exec(&txn)
                    .await
                    .map_err(db("clearing the endpoint's failure streak"))?;
            }
            None
        } else if let Some(since) = failing_since {
            Some(since)
        } else {
            let since = to_us(attempt.at);
            webhook_endpoints::Entity::update_many()
                .col_expr(webhook_endpoints::Column::FailingSinceUs, Expr::value(since))
                .filter(webhook_endpoints::Column::Id.eq(endpoint))
                .filter(webhook_endpoints::Column::FailingSinceUs.is_null())
                .exec(&txn)
                .await
                .map_err(db("starting the endpoint's failure streak"))?;
            Some(since)
        };
        commit(txn, "committing the attempt").await?;
        Ok(EndpointHealth { failing_since: from_us_opt(failing_since)? })
    }

    async fn record_attempts(&self, records: &[AttemptRecord]) -> Vec<Result<EndpointHealth, WebhookError>> {
        // Successes at endpoints without a failure streak (nearly every attempt under load)
        // together, in one transaction; every other attempt (and any success the batch left
        // out) one by one, as `record_attempt` records it alone.
        let successes: Vec<usize> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.attempt.outcome == AttemptOutcome::Succeeded && r.next == AfterAttempt::Succeed)
            .map(|(i, _)| i)
            .collect();
        let mut together = vec![false; records.len()];
        if successes.len() > 1 {
            match self.record_successes(records, &successes).await {
                Ok(recorded) => recorded.into_iter().for_each(|i| together[i] = true),
                Err(e) => {
                    tracing::warn!(error = ?e, attempts = successes.len(), "recording attempts together failed; recording them one by one")
                }
            }
        }
        let mut results = Vec::with_capacity(records.len());
        for (record, recorded) in records.iter().zip(together) {
            results.push(if recorded {
                Ok(EndpointHealth { failing_since: None })
            } else {
                self.record_attempt(record.endpoint_id, &record.attempt, &record.next).await
            });
        }
        results
    }

    async fn disable_endpoint(&self, endpoint_id: EndpointId, reason: DisabledReason, at: OffsetDateTime) -> Result<bool, WebhookError> {
        let id = endpoint_id.as_uuid();
        let at_us = to_us(at);
        let txn = begin(&self.db).await?;
        let disabled = webhook_endpoints::Entity::update_many()
            .col_expr(webhook_endpoints::Column::State, Expr::value(DISABLED))
            .col_expr(webhook_endpoints::Column::DisabledReason, Expr::value(reason.as_str()))
            .col_expr(webhook_endpoints::Column::DisabledAtUs, Expr::value(at_us))
            .col_expr(webhook_endpoints::Column::UpdatedAtUs, Expr::value(at_us))
            .col_expr(webhook_endpoints::Column::Version, Expr::col(webhook_endpoints::Column::Version).add(1))
            .filter(webhook_endpoints::Column::Id.eq(id))
            .filter(webhook_endpoints::Column::State.eq(ENABLED))
            .exec(&txn)
            .await
            .map_err(db("disabling the endpoint"))?;
        if disabled.rows_affected == 0 {
            let exists = endpoint_exists(&txn, id).await?;
            rollback(txn).await?;
            return if exists { Ok(false) } else { Err(WebhookError::NotFound) };
        }
        fail_pending_deliveries(&txn, id, Some(reason.as_str()), at_us).await?;
        commit(txn, "committing the disabling").await?;
        Ok(true)
    }
    async fn purge_finished(&self, before: OffsetDateTime, limit: u32) -> Result<u64, WebhookError> {
        let before_us = to_us(before);
        let txn = begin(&self.db).await?;
        let ids: Vec<Uuid> = webhook_deliveries::Entity::find()
            .select_only()
            .column(webhook_deliveries::Column::Id)
            .filter(webhook_deliveries::Column::Status.ne(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::Column::FinishedAtUs.lt(before_us))
            .limit(u64::from(limit))
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db("choosing finished deliveries to remove"))?;
        if ids.is_empty() {
            rollback(txn).await?;
            return Ok(0);
        }
        webhook_attempts::Entity::delete_many()
            .filter(webhook_attempts::Column::DeliveryId.is_in(ids.clone()))
            .exec(&txn)
            .await
            .map_err(db("removing the finished deliveries' attempts"))?;
        // A replay may have made one pending again since it was chosen: it stays.
        let removed = webhook_deliveries::Entity::delete_many()
            .filter(webhook_deliveries::Column::Id.is_in(ids))
            .filter(webhook_deliveries::Column::Status.ne(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::Column::FinishedAtUs.lt(before_us))
            .exec(&txn)
            .await
            .map_err(db("removing finished deliveries"))?;
        commit(txn, "committing the removal of finished deliveries").await?;
        Ok(removed.rows_affected)
    }

    async fn purge_events(&self, before: OffsetDateTime, limit: u32) -> Result<u64, WebhookError> {
        let orphaned = |table_alias: &str| {
            format!(
                "{table_alias}fanned_out_at_us IS NOT NULL AND {table_alias}fanned_out_at_us < {before} AND NOT EXISTS \
                 (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = {table_alias}id)",
                before = to_us(before)
            )
        };
        let txn = begin(&self.db).await?;
        let backend = txn.get_database_backend();
        let chosen = txn
            .query_all(Statement::from_string(
                backend,
                format!("SELECT e.id AS id FROM webhook_events e WHERE {} LIMIT {limit}", orphaned("e.")),
            ))
            .await
            .map_err(db("choosing events to remove"))?;
        let ids = chosen
            .iter()
            .map(|row| row.try_get::<Uuid>("", "id").map_err(db("reading an event to remove")))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            rollback(txn).await?;
            return Ok(0);
        }
        // Re-checked in the delete: a replay or a late fan-out never loses its event.
        let removed = webhook_events::Entity::delete_many()
            .filter(webhook_events::Column::Id.is_in(ids))
            .filter(Expr::cust(orphaned("webhook_events.")))
            .exec(&txn)
            .await
            .map_err(db("removing events"))?;
        commit(txn, "committing the removal of events").await?;
        Ok(removed.rows_affected)
    }
}
