//! Upkeep of the PostgreSQL tables: VACUUM and ANALYZE of the tables whose rows churned, as
//! often as the work queues need, whatever PostgreSQL's own autovacuum does.
//!
//! Why: every claim, lease, completion and fan-out updates a queue row, and each update leaves
//! the row's old version behind, in the table and in the partial indexes the worker's probes walk
//! (`ix_outbox_channel_due` and its kind hold the unfinished rows, but also the dead versions of
//! rows finished since the last VACUUM, and those sort first). Until a VACUUM removes them, every
//! claim steps over them: on a server with autovacuum off, 12,000 sends left the outbox's due probe
//! reading 106 index pages (0.9 ms) to find one row; after a VACUUM (30 ms) it read 2 (0.05 ms).
//! Autovacuum, where it is on, waits by default for a fifth of a table to be dead, so on an outbox
//! of a million retained rows for 200,000 dead versions. And without ANALYZE the planner keeps
//! estimating from the tables' first rows.
//!
//! The rule, applied by [`SqlStore::upkeep`] (the server runs it every `ATLAS_DB_UPKEEP_SECS`):
//! - a *queue* table ([`QUEUES`]: the tables whose rows the workers find through a partial
//!   index of the unfinished ones) with at least [`DEAD_ROWS`] dead row versions is vacuumed,
//!   indexes included (`INDEX_CLEANUP ON`: PostgreSQL would otherwise skip the indexes when the
//!   dead versions sit on few pages, which is exactly a queue's case): a probe's cost follows the
//!   number of dead versions, whatever the table's size;
//! - any other table of this schema is vacuumed once its dead versions are [`DEAD_ROWS`] plus a
//!   tenth of its live rows (autovacuum's rule at half its default scale): there they cost space
//!   and scans, not the workers' probes;
//! - a table with [`CHANGED_ROWS`] rows changed since its last ANALYZE, and a tenth of its rows,
//!   is analysed, so the planner's estimates follow the tables as they grow.
//!
//! A table another VACUUM or ANALYZE holds is skipped (`SKIP_LOCKED`), so replicas never wait on
//! each other. One read of `pg_stat_user_tables` when nothing is due. SQLite keeps no dead
//! versions: nothing to do there.

use crate::error::{db, Failure};
use crate::SqlStore;
use atlas_kernel::StoreError;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// Dead row versions that make a queue table due for VACUUM (other tables: this plus a tenth of
/// their live rows).
pub const DEAD_ROWS: i64 = 1_000;
/// The tables whose rows the workers find through a partial index of the unfinished ones.
pub const QUEUES: [&str; 6] = ["agent_jobs", "outbox", "pending_statuses", "runbook_executions", "webhook_deliveries", "webhook_events"];
/// Rows changed since the last ANALYZE that make a table due for ANALYZE (and a tenth of its rows).
pub const CHANGED_ROWS: i64 = 1_000;

/// What one upkeep did: the tables it vacuumed and those it analysed, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Upkept {
    pub vacuumed: Vec<String>,
    pub analyzed: Vec<String>,
}

impl Upkept {
    /// Whether it did nothing.
    pub fn is_empty(&self) -> bool {
        self.vacuumed.is_empty() && self.analyzed.is_empty()
    }
}

/// The tables of the current schema due for upkeep: whether each needs a VACUUM, an ANALYZE, or
/// both. `$1` is [`DEAD_ROWS`], `$2` [`CHANGED_ROWS`].
fn due() -> String {
    let queues = QUEUES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT name, to_vacuum, to_analyze FROM (\
             SELECT relname::text AS name, \
                    n_dead_tup >= $1 + CASE WHEN relname IN ({queues}) THEN 0 ELSE n_live_tup / 10 END AS to_vacuum, \
                    n_mod_since_analyze >= GREATEST($2, n_live_tup / 10) AS to_analyze \
             FROM pg_stat_user_tables WHERE schemaname = current_schema()\
         ) t WHERE to_vacuum OR to_analyze ORDER BY name"
    )
}

impl SqlStore {
    /// VACUUMs and ANALYZEs the tables due for it (see the module doc); on SQLite does nothing.
    ///
    /// # Errors
    /// A `StoreError` when the statistics cannot be read or a VACUUM or ANALYZE fails (what was
    /// done before it stays done).
    pub async fn upkeep(&self) -> Result<Upkept, StoreError> {
        if !self.is_postgres() {
            return Ok(Upkept::default());
        }
        Ok(self.upkeep_postgres().await?)
    }

    async fn upkeep_postgres(&self) -> Result<Upkept, Failure> {
        const CONTEXT: &str = "reading which tables need upkeep";
        let due = Statement::from_sql_and_values(DbBackend::Postgres, due(), [DEAD_ROWS.into(), CHANGED_ROWS.into()]);
        let rows = self.db.query_all(due).await.map_err(db(CONTEXT))?;
        let mut done = Upkept::default();
        for row in rows {
            let name: String = row.try_get("", "name").map_err(db(CONTEXT))?;
            let vacuum: bool = row.try_get("", "to_vacuum").map_err(db(CONTEXT))?;
            let analyze: bool = row.try_get("", "to_analyze").map_err(db(CONTEXT))?;
            let table = quoted(&name);
            // Each outside any transaction (VACUUM refuses one): the pool's connection in autocommit.
            if vacuum {
                self.db
                    .execute_unprepared(&format!("VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON) {table}"))
                    .await
                    .map_err(db("vacuuming a table"))?;
                done.vacuumed.push(name.clone());
            }
            if analyze {
                self.db.execute_unprepared(&format!("ANALYZE (SKIP_LOCKED) {table}")).await.map_err(db("analysing a table"))?;
                done.analyzed.push(name);
            }
        }
        Ok(done)
    }
}

/// `name` as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identifier_is_quoted_with_its_quotes_doubled() {
        assert_eq!(quoted("outbox"), "\"outbox\"");
        assert_eq!(quoted("odd\"name"), "\"odd\"\"name\"");
    }
}
