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
//! The query only picks ids, outside the claim's transaction (so a claim that finds nothing,
//! the idle case, is one statement and no transaction); the claim then locks them (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, re-checking that each is still claimable), because PostgreSQL forbids row locks
//! on a query with window functions. Two claims running at the same instant may each see the
//! same count of leased rows, so together they can pass a target's cap by at most one claim's
//! batch; a single claim never does.

use crate::error::{db, Failure};
use sea_orm::{ConnectionTrait, Statement};
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
        let sql = format!("WITH {} {}", self.ranked(now_us, per_target), self.chosen(limit));
        let rows =
            txn.query_all(Statement::from_string(txn.get_database_backend(), sql)).await.map_err(db("choosing the rows to claim"))?;
        rows.iter().map(|row| row.try_get::<Uuid>("", "id").map_err(db("reading a row to claim"))).collect()
    }

    /// The common table expressions that rank the claimable rows at `now_us` (the last one,
    /// `allowed`, has `id`, the due order's columns and `org_turn`), for [`chosen`](Self::chosen)
    /// to pick from; a claim may add its own expressions after them.
    pub(crate) fn ranked(&self, now_us: i64, per_target: u32) -> String {
        let FairClaim { table, target, joins, claimable, leased, order } = *self;
        debug_assert!(order.ends_with(", id"), "the due order ends with the primary key");
        let claimable = claimable.replace("{now}", &now_us.to_string());
        let leased = leased.replace("{now}", &now_us.to_string());
        let qualified = |alias: &str| order.split(',').map(|c| format!("{alias}.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let (d_order, due_order) = (qualified("d"), qualified("due"));
        format!(
            "in_flight AS (\
                 SELECT {target} AS target, COUNT(*) AS leased FROM {table} WHERE {leased} GROUP BY {target}\
             ), \
             due AS (\
                 SELECT d.id AS id, d.org_id AS org_id, {order_cols}, \
                        ROW_NUMBER() OVER (PARTITION BY d.{target} ORDER BY {d_order}) + COALESCE(f.leased, 0) AS target_turn \
                 FROM {table} d {joins} LEFT JOIN in_flight f ON f.target = d.{target} \
                 WHERE {claimable}\
             ), \
             org_flight AS (\
                 SELECT org_id, COUNT(*) AS leased FROM {table} WHERE {leased} GROUP BY org_id\
             ), \
             allowed AS (\
                 SELECT {due_order}, \
                        ROW_NUMBER() OVER (PARTITION BY due.org_id ORDER BY due.target_turn, {due_order}) + COALESCE(o.leased, 0) AS org_turn \
                 FROM due LEFT JOIN org_flight o ON o.org_id = due.org_id WHERE due.target_turn <= {per_target}\
             )",
            order_cols = order.split(',').map(|c| format!("d.{0} AS {0}", c.trim())).filter(|c| !c.starts_with("d.id ")).collect::<Vec<_>>().join(", "),
        )
    }

    /// The query over [`ranked`](Self::ranked)'s `allowed` that picks at most `limit` rows in
    /// claim order: `id` and `turn` (1 for the first row to claim).
    pub(crate) fn chosen(&self, limit: u32) -> String {
        let order = self.order;
        format!("SELECT id, ROW_NUMBER() OVER (ORDER BY org_turn, {order}) AS turn FROM allowed ORDER BY org_turn, {order} LIMIT {limit}")
    }
}
