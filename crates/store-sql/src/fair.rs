//! Fair claims: which due rows a worker's claim takes, so that one organization's slow or busy
//! targets never crowd out another's. Shared by the outbox (rows per channel) and the webhook
//! queue (deliveries per endpoint).
//!
//! The rule, in one query over the claimable rows:
//! 1. a *target* (a channel, an endpoint) has a cap of leased rows at once: the rows already
//!    leased and not yet lapsed count against it, and only the target's earliest due rows up to
//!    the cap are candidates (its "turns": 1 for the next row it may take, 2 for the one after);
//! 2. within an organization, candidates are ordered by turn, so the organization's targets
//!    take turns (every target's first row before any target's second);
//! 3. across organizations, candidates are ordered by their turn within their organization
//!    (counting the rows the organization already has leased), then by due time: an
//!    organization with nothing in flight goes before one that already holds rows, so one
//!    organization's backlog never pushes another's work back, claim after claim.
//!
//! What a claim reads is bounded by what it can take, not by the backlog. On PostgreSQL it walks
//! the targets that have unfinished rows (a skip scan of the per-target due index: one probe per
//! target), reads at most the earliest claimable rows of each up to its cap or the claim's
//! limit, whichever is smaller (`LATERAL … LIMIT`), and counts the leased rows through the lease
//! index (migration `m20250101_000018`): the same choice as ranking every claimable row, since
//! only a target's first `cap` rows in due order can get a turn, and its rows take increasing
//! turns, so no claim of `limit` rows reaches past its first `limit`. SQLite ranks every
//! claimable row (one process, one connection).
//!
//! The query only picks ids; the claim locks them afterwards (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, re-checking that each is still claimable), because PostgreSQL forbids row locks
//! on a query with window functions. On PostgreSQL the outbox and webhook claims lock, lease and
//! read in later expressions of the same statement, run only after a cheap probe
//! ([`FairClaim::any_claimable`]) found a claimable row; on SQLite the query runs outside the
//! claim's transaction (so a claim that finds nothing, the idle case, is one statement and no
//! transaction either way). Two claims running at the same instant may each see the
//! same count of leased rows, so together they can pass a target's cap by at most one claim's
//! batch; a single claim never does.

use crate::error::{db, Failure};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// One kind of fairly claimed row: its table, the column naming its target, the condition that
/// makes a row claimable at `now` and the one that makes it leased at `now` (`{now}` stands for
/// the instant in microseconds), and its due order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FairClaim {
    /// The table (with a `d` alias in the claimable condition, none in the leased one).
    pub table: &'static str,
    /// The target column (`channel_id`, `endpoint_id`).
    pub target: &'static str,
    /// Extra `FROM` joins of the claimable rows (alias `d` is the table).
    pub joins: &'static str,
    /// The condition over alias `d` that a row is unfinished (claimable now or later, or
    /// leased): the predicate of the per-target due index.
    pub open: &'static str,
    /// The claimable condition over alias `d`.
    pub claimable: &'static str,
    /// The leased condition over the bare table.
    pub leased: &'static str,
    /// The due order over alias `d`'s columns, unqualified, ending with the primary key
    /// (`next_attempt_at_us, id`).
    pub order: &'static str,
}

impl FairClaim {
    /// The ids of at most `limit` rows to claim at `now_us`, in claim order, with at most
    /// `per_target` rows leased per target counting those already leased.
    pub(crate) async fn candidates<C: ConnectionTrait>(
        &self,
        txn: &C,
        now_us: i64,
        limit: u32,
        per_target: u32,
    ) -> Result<Vec<Uuid>, Failure> {
        let backend = txn.get_database_backend();
        let sql = format!("{} {}", self.ranked(backend, now_us, per_target, limit), self.chosen(limit));
        let rows = txn.query_all(Statement::from_string(backend, sql)).await.map_err(db("choosing the rows to claim"))?;
        rows.iter().map(|row| row.try_get::<Uuid>("", "id").map_err(db("reading a row to claim"))).collect()
    }

    /// The `WITH` clause that ranks the claimable rows on `backend` at `now_us` (its last
    /// expression, `allowed`, has `id`, the due order's columns and `org_turn`), for
    /// [`chosen`](Self::chosen) of at most `limit` rows to pick from; a claim may add its own
    /// expressions after it.
    ///
    /// On PostgreSQL each target's first rows in due order are read, up to its cap or `limit`,
    /// whichever is smaller: a target's rows take increasing turns, so its row after its first
    /// `limit` could only be chosen after those `limit`, never within one claim of `limit`.
    ///
    /// The instant is written into the text, not bound: PostgreSQL then plans each claim for
    /// the instant it asks about. With a bound instant, a connection's cached generic plan
    /// (estimated without the value, and sometimes while the tables were nearly empty) read
    /// whole backlogs again in some runs of the benchmark; planning costs about 1.5 ms. Checked
    /// again in issue 9's sixth round, on this shape: a generic plan of the outbox claim made
    /// while the tables are empty updates the leased rows and their messages through sequential
    /// scans (on an empty table a scan is cheapest), and keeps doing so over a backlog until an
    /// ANALYZE makes the connection plan again; written with `= ANY(ARRAY(…))` it still scans.
    /// That is why [`any_claimable`](Self::any_claimable) runs first: the claims that would find
    /// nothing cost its cached probe, not a plan.
    pub(crate) fn ranked(&self, backend: DbBackend, now_us: i64, per_target: u32, limit: u32) -> String {
        let FairClaim { table, target, joins, open, leased, order, .. } = *self;
        debug_assert!(order.ends_with(", id"), "the due order ends with the primary key");
        let claimable = self.claimable_at(now_us);
        let leased = leased.replace("{now}", &now_us.to_string());
        let qualified = |alias: &str| order.split(',').map(|c| format!("{alias}.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let selected = |alias: &str| {
            order.split(',').map(str::trim).filter(|c| *c != "id").map(|c| format!("{alias}.{c} AS {c}")).collect::<Vec<_>>().join(", ")
        };
        let (d_order, due_order) = (qualified("d"), qualified("due"));
        // Each target's claimable rows, numbered in due order after the rows it has leased.
        let due = if backend == DbBackend::Postgres {
            // Only a target's first `per_target` rows can get a turn, and only its first `limit`
            // can be chosen: read those alone, target by target, the targets found by a skip
            // scan of the due index.
            format!(
                "targets AS (\
                     (SELECT d.{target} AS target FROM {table} d WHERE {open} ORDER BY d.{target} LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT d.{target} FROM {table} d WHERE {open} AND d.{target} > t.target ORDER BY d.{target} LIMIT 1) \
                     FROM targets t WHERE t.target IS NOT NULL\
                 ), \
                 due AS (\
                     SELECT c.id AS id, c.org_id AS org_id, {c_cols}, \
                            ROW_NUMBER() OVER (PARTITION BY c.target ORDER BY {c_order}) + COALESCE(f.leased, 0) AS target_turn \
                     FROM targets t CROSS JOIN LATERAL (\
                         SELECT d.id AS id, d.org_id AS org_id, d.{target} AS target, {d_cols} FROM {table} d {joins} \
                         WHERE d.{target} = t.target AND {claimable} ORDER BY {d_order} LIMIT {read}\
                     ) c LEFT JOIN in_flight f ON f.target = c.target \
                     WHERE t.target IS NOT NULL\
                 )",
                c_cols = selected("c"),
                c_order = qualified("c"),
                d_cols = selected("d"),
                read = per_target.min(limit),
            )
        } else {
            format!(
                "due AS (\
                     SELECT d.id AS id, d.org_id AS org_id, {d_cols}, \
                            ROW_NUMBER() OVER (PARTITION BY d.{target} ORDER BY {d_order}) + COALESCE(f.leased, 0) AS target_turn \
                     FROM {table} d {joins} LEFT JOIN in_flight f ON f.target = d.{target} \
                     WHERE {claimable}\
                 )",
                d_cols = selected("d"),
            )
        };
        format!(
            "WITH RECURSIVE in_flight AS (\
                 SELECT {target} AS target, COUNT(*) AS leased FROM {table} WHERE {leased} GROUP BY {target}\
             ), \
             {due}, \
             org_flight AS (\
                 SELECT org_id, COUNT(*) AS leased FROM {table} WHERE {leased} GROUP BY org_id\
             ), \
             allowed AS (\
                 SELECT {due_order}, \
                        ROW_NUMBER() OVER (PARTITION BY due.org_id ORDER BY due.target_turn, {due_order}) + COALESCE(o.leased, 0) AS org_turn \
                 FROM due LEFT JOIN org_flight o ON o.org_id = due.org_id WHERE due.target_turn <= {per_target}\
             )",
        )
    }

    /// Whether any row is claimable at `now_us`, caps aside: one probe of the due index (the
    /// first claimable row in due order), asked before a PostgreSQL claim. Its text never
    /// changes (the instant is bound), and it costs a fraction of the claim (about 0.1 ms against
    /// 1 to 4 ms, most of it planning, see [`ranked`](Self::ranked)): a claim that would find
    /// nothing, the common case of a worker woken by its own item's end or by a notification of
    /// work another loop already took, costs this probe alone.
    pub(crate) async fn any_claimable<C: ConnectionTrait>(&self, conn: &C, now_us: i64) -> Result<bool, Failure> {
        let row = conn
            .query_one(Statement::from_sql_and_values(conn.get_database_backend(), self.claimable_probe(), [now_us.into()]))
            .await
            .map_err(db("looking for a claimable row"))?;
        Ok(row.is_some())
    }

    /// The statement of [`any_claimable`](Self::any_claimable), the instant as `$1`.
    pub(crate) fn claimable_probe(&self) -> String {
        let FairClaim { table, joins, claimable, order, .. } = *self;
        let first = order.split(',').next().unwrap_or(order).trim();
        format!("SELECT d.id FROM {table} d {joins} WHERE {} ORDER BY d.{first} LIMIT 1", claimable.replace("{now}", "$1"))
    }

    /// The claimable condition over alias `d` at `now_us`.
    pub(crate) fn claimable_at(&self, now_us: i64) -> String {
        self.claimable.replace("{now}", &now_us.to_string())
    }

    /// The query over [`ranked`](Self::ranked)'s `allowed` that picks at most `limit` rows in
    /// claim order: `id` and `turn` (1 for the first row to claim).
    pub(crate) fn chosen(&self, limit: u32) -> String {
        let order = self.order;
        format!("SELECT id, ROW_NUMBER() OVER (ORDER BY org_turn, {order}) AS turn FROM allowed ORDER BY org_turn, {order} LIMIT {limit}")
    }
}
