//! The SQL adapter: [`SqlStore`] implements the `AccountStore`, `RunStore`,
//! `IdempotencyStore`, `ConversationStore`, `Outbox`, `WebhookStore` and `DeliveryQueue` ports
//! over sea-orm, on PostgreSQL or SQLite (chosen by the URL), with the schema of
//! `atlas-migrations`.
//!
//! # Transactions
//! Every mutating port method opens one transaction, does its effect, writes the call's
//! [`atlas_runs::JournalEntry`] (the run, and the completion of the claimed idempotency record
//! when the entry carries one) and commits: all of it or nothing. The idempotency store
//! therefore reports `commits_with_effect() == true`.
//!
//! # Webhook events
//! The journal entry's `events` are written into the webhook outbox (`webhook_events`) in the
//! same transaction, and the messaging adapter writes its own (`agent.message_delivery` when an
//! outbound message's delivery state changes, `atlas.run.updated` when a send's run finishes)
//! beside the changes they are news of: an event exists exactly when its cause committed.
//!
//! # Webhook secrets
//! Endpoint secrets reach the store in the clear and are stored sealed by the cipher set with
//! [`SqlStore::with_secret_cipher`]. **The server always sets one.** Without it (tests only)
//! they are stored as they are, in the clear.
//!
//! # SQLite
//! A SQLite database has one writer at a time, and a deferred transaction that starts reading
//! and later writes fails at once with `SQLITE_BUSY` instead of waiting for the writer. So a
//! SQLite store opens the file in WAL mode (readers never block the writer), with foreign keys
//! on and a busy timeout, and keeps a pool of exactly **one** connection: every query and
//! transaction of the process takes turns on it, and no transaction can ever meet another one
//! of this process. The consequence for code in this crate: while a use case holds a
//! transaction it must run every query *through that transaction*; a query issued through the
//! pool meanwhile would wait for the connection the transaction holds, forever (until the
//! acquire timeout). The single connection is never recycled, so `sqlite::memory:` works too.
//! One process per SQLite file; several processes or replicas need PostgreSQL.
//!
//! # PostgreSQL
//! A pool of connections at READ COMMITTED. Races are settled by unique constraints (the
//! bootstrap guard, idempotency storage keys, one customer per phone number and one
//! conversation per channel and customer, one message per provider id, one webhook delivery
//! per event and endpoint, one attempt number per delivery), `INSERT … ON CONFLICT DO NOTHING`,
//! compare-and-set updates, `SELECT … FOR UPDATE` (refresh-token rotation, delivery statuses,
//! webhook endpoints), `FOR UPDATE SKIP LOCKED` (outbox claims, webhook fan-out and delivery
//! claims) and one transaction-scoped advisory lock (a provider status against the completion
//! that records its provider id).
//!
//! # Time
//! Timestamps are stored as microseconds since the Unix epoch: a record read back carries its
//! times truncated to the microsecond.

mod accounts;
mod agents;
mod cmdb;
mod conversations;
mod convert;
pub mod entity;
mod error;
mod events;
mod fair;
mod group_commit;
mod idempotency;
mod incidents;
mod itsm;
mod journal;
mod knowledge;
mod outbox;
#[cfg(test)]
mod plans;
mod runbooks;
mod runs;
pub mod tally;
mod upkeep;
mod wakeups;
mod webhook_queue;
mod webhooks;
mod work;

pub use upkeep::{Upkept, CHANGED_ROWS, DEAD_ROWS, QUEUES};
pub use wakeups::{WorkListener, WorkNotice, WorkQueue, WORK_CHANNEL};

use atlas_conversations::SecretCipher;
use atlas_kernel::StoreError;
use atlas_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, SqlxSqliteConnector, TransactionTrait};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The PostgreSQL advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x0041_544C_4153_4D31; // "ATLASM1"

/// How long a SQLite statement waits for another process's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQL store: a sea-orm connection pool to PostgreSQL or SQLite. Cheap to clone (clones
/// share the pool).
#[derive(Clone, Debug)]
pub struct SqlStore {
    db: DatabaseConnection,
    /// Seals webhook endpoint secrets at rest; `None` stores them in the clear (tests only).
    secret_cipher: Option<Arc<dyn SecretCipher>>,
    /// The group committer of sends, when batching is on (`with_send_batching`).
    send_batch: Option<Arc<group_commit::SendBatcher>>,
}

/// PostgreSQL connections a store opens at most, by default: enough for 32 concurrent
/// requests without queueing for a connection; they are opened only as load needs them.
pub const DEFAULT_POOL_SIZE: u32 = 32;

impl SqlStore {
    /// Connects to `url`: `postgres://…` (a pool) or `sqlite://path?mode=rwc` /
    /// `sqlite::memory:` (WAL, foreign keys, busy timeout, one connection; see the module doc).
    ///
    /// # Errors
    /// A `StoreError` when the URL is malformed or the database does not answer.
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        Self::connect_with_pool(url, DEFAULT_POOL_SIZE).await
    }

    /// [`connect`](Self::connect) with at most `pool_size` PostgreSQL connections (SQLite
    /// always uses one).
    ///
    /// # Errors
    /// A `StoreError` when the URL is malformed or the database does not answer.
    pub async fn connect_with_pool(url: &str, pool_size: u32) -> Result<SqlStore, StoreError> {
        let mut db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::new("parsing the SQLite URL", e))?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(|e| StoreError::new("opening the SQLite database", e))?;
            SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)
        } else {
            let mut options = ConnectOptions::new(url);
            options.sqlx_logging(false).max_connections(pool_size).min_connections(0).acquire_timeout(Duration::from_secs(10));
            Database::connect(options).await.map_err(|e| StoreError::new("connecting to the database", e))?
        };
        // Statement budgets are tested by counting (see `tally`).
        db.set_metric_callback(tally::statement);
        Ok(SqlStore { db, secret_cipher: None, send_batch: None })
    }

    /// Wraps an existing sea-orm connection (which must follow the SQLite rules of the module
    /// doc when it is a SQLite one).
    pub fn from_connection(db: DatabaseConnection) -> SqlStore {
        SqlStore { db, secret_cipher: None, send_batch: None }
    }

    /// The store, sealing webhook endpoint secrets with `cipher` (the AEAD that seals channel
    /// secrets). Used for nothing else: channel secrets arrive sealed already.
    ///
    /// **The server must always set one.** A store without a cipher stores webhook secrets in
    /// the clear, which only tests may do; and a store reading rows sealed under a cipher needs
    /// that same cipher.
    #[must_use]
    pub fn with_secret_cipher(self, cipher: Arc<dyn SecretCipher>) -> SqlStore {
        SqlStore { secret_cipher: Some(cipher), ..self }
    }

    /// Applies every pending migration of `atlas-migrations`.
    ///
    /// # Errors
    /// A `StoreError` when a migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if !self.is_postgres() {
            return Migrator::up(&self.db, None).await.map_err(|e| StoreError::new("applying migrations", e));
        }
        // Replicas starting together on one database take turns: each migrates inside a
        // transaction holding one advisory lock, so the second finds the schema made.
        let txn = self.db.begin().await.map_err(|e| StoreError::new("applying migrations", e))?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await
            .map_err(|e| StoreError::new("waiting for another replica's migrations", e))?;
        Migrator::up(&txn, None).await.map_err(|e| StoreError::new("applying migrations", e))?;
        txn.commit().await.map_err(|e| StoreError::new("applying migrations", e))
    }

    /// The sea-orm connection, for adapters of other ports that share this pool.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// A `StoreError` when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(|e| StoreError::new("pinging the database", e))
    }

    /// `"postgres"`, `"sqlite"` (or `"mysql"`, which Atlas does not support).
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DatabaseBackend::Postgres => "postgres",
            DatabaseBackend::Sqlite => "sqlite",
            DatabaseBackend::MySql => "mysql",
        }
    }

    fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == DatabaseBackend::Postgres
    }
}
