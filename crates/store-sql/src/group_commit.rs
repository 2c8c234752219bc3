//! The send's writes as one PostgreSQL statement, and group commit of concurrent sends.
//!
//! [`chained`] joins data-modifying statements into ONE statement (all but the last as `WITH`
//! clauses): sent alone it is its own transaction, so a send's message, outbox row, run,
//! events and idempotency record commit together or not at all.
//!
//! With a batching window ([`SqlStore::with_send_batching`], `ATLAS_SEND_BATCH_WINDOW_MS`), the
//! sends of one process that arrive within the window of the first are chained into one
//! statement (at most [`MAX_BATCH`]): one round trip and one commit for all of them. If that
//! statement fails (one send's idempotency key was taken, a new customer existed after all),
//! nothing of it was written and every send of the batch is written again on its own, so each
//! request still commits all or nothing from its own point of view, and no request is answered
//! before the statement that holds its writes committed.

use crate::SqlStore;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The most sends one group commit chains (each binds about 70 parameters; PostgreSQL takes
/// 65,535 in one statement).
pub(crate) const MAX_BATCH: usize = 64;

/// How many sends may wait for a batch before a send is written on its own instead.
const QUEUE: usize = 4 * MAX_BATCH;

/// `statements` (data-modifying, `$n` placeholders) as ONE statement: all but the last as
/// `WITH w0 AS (…), w1 AS (…)`, placeholders renumbered. A statement may read the `RETURNING`
/// rows of the clause just before it as `__prev__`.
pub(crate) fn chained(statements: Vec<Statement>) -> Statement {
    let count = statements.len();
    let mut sql = String::new();
    let mut values = Vec::new();
    for (i, statement) in statements.into_iter().enumerate() {
        let mut renumbered = renumber(&statement.sql, values.len());
        if i > 0 && renumbered.contains("__prev__") {
            renumbered = renumbered.replace("__prev__", &format!("w{}", i - 1));
        }
        if i + 1 < count {
            sql.push_str(if i == 0 { "WITH " } else { ", " });
            sql.push_str(&format!("w{i} AS ({renumbered})"));
        } else {
            if i > 0 {
                sql.push(' ');
            }
            sql.push_str(&renumbered);
        }
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `sql` with every placeholder `$n` (outside quotes) moved to `$(n + offset)`.
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                out.push('$');
                out.push_str(&(n + offset).to_string());
            }
            None => out.push(c),
        }
    }
    out
}

/// One send waiting for its batch: its statements, and where to say how they went.
type Pending = (Vec<Statement>, oneshot::Sender<Result<(), DbErr>>);

/// The group committer of one store: a queue and the task that drains it.
#[derive(Debug)]
pub(crate) struct SendBatcher {
    queue: mpsc::Sender<Pending>,
}

impl SendBatcher {
    fn start(db: DatabaseConnection, window: Duration) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(collect(db, receiver, window));
        Self { queue }
    }
}

/// Collects a batch (the first send, then whatever arrives within `window`, up to
/// [`MAX_BATCH`]) and writes it in a task of its own, so the next batch collects meanwhile.
async fn collect(db: DatabaseConnection, mut receiver: mpsc::Receiver<Pending>, window: Duration) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(pending)) => batch.push(pending),
                Ok(None) | Err(_) => break,
            }
        }
        tokio::spawn(write_batch(db.clone(), batch));
    }
}

/// Writes a batch as one statement; if it fails, each send on its own.
async fn write_batch(db: DatabaseConnection, batch: Vec<Pending>) {
    if batch.len() > 1 {
        let all = batch.iter().flat_map(|(statements, _)| statements.iter().cloned()).collect();
        if db.execute(chained(all)).await.is_ok() {
            for (_, done) in batch {
                let _ = done.send(Ok(()));
            }
            return;
        }
    }
    for (statements, done) in batch {
        let _ = done.send(db.execute(chained(statements)).await.map(|_| ()));
    }
}

impl SqlStore {
    /// Lets concurrent sends on PostgreSQL share one statement and commit: a send waits up to
    /// `window` for others (see the module doc). `Duration::ZERO` (the default) writes each
    /// send on its own. Needs a tokio runtime; SQLite ignores it.
    pub fn with_send_batching(mut self, window: Duration) -> SqlStore {
        self.send_batch = (self.is_postgres() && !window.is_zero()).then(|| Arc::new(SendBatcher::start(self.db.clone(), window)));
        self
    }

    /// Writes a send's statements (PostgreSQL) as one statement: through the group committer
    /// when there is one (on its own when its queue is full), else directly.
    pub(crate) async fn write_send(&self, statements: Vec<Statement>) -> Result<(), DbErr> {
        if let Some(batcher) = &self.send_batch {
            let (done, outcome) = oneshot::channel();
            match batcher.queue.try_send((statements, done)) {
                Ok(()) => {
                    return outcome.await.unwrap_or_else(|_| Err(DbErr::Custom("the group committer stopped".into())));
                }
                Err(mpsc::error::TrySendError::Full((statements, _)) | mpsc::error::TrySendError::Closed((statements, _))) => {
                    return self.db.execute(chained(statements)).await.map(|_| ());
                }
            }
        }
        self.db.execute(chained(statements)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes_only() {
        assert_eq!(renumber(r#"INSERT INTO "t" ("a$1") VALUES ($1, '$2', $12)"#, 3), r#"INSERT INTO "t" ("a$1") VALUES ($4, '$2', $15)"#);
    }

    #[test]
    fn statements_chain_into_one_with_their_values_in_order() {
        let a = Statement::from_sql_and_values(DbBackend::Postgres, "INSERT INTO a (x) VALUES ($1) RETURNING x", [1i64.into()]);
        let b =
            Statement::from_sql_and_values(DbBackend::Postgres, "INSERT INTO b (y, z) SELECT $1, __prev__.x FROM __prev__", [2i64.into()]);
        let c = Statement::from_sql_and_values(DbBackend::Postgres, "INSERT INTO c (p, q) VALUES ($1, $2)", [3i64.into(), 4i64.into()]);
        let chained = chained(vec![a, b, c]);
        assert_eq!(
            chained.sql,
            "WITH w0 AS (INSERT INTO a (x) VALUES ($1) RETURNING x), w1 AS (INSERT INTO b (y, z) SELECT $2, w0.x FROM w0) \
             INSERT INTO c (p, q) VALUES ($3, $4)"
        );
        let values: Vec<sea_orm::Value> = chained.values.map(|v| v.0).unwrap_or_default();
        assert_eq!(values, vec![1i64.into(), 2i64.into(), 3i64.into(), 4i64.into()]);
    }
}
