//! Counting what a piece of work asks of the database: every statement sea-orm executes for the
//! store (through the connection's metric callback, installed at connect) and every explicit
//! transaction the store opens through [`crate::conversations::begin`], attributed to the tokio
//! task that runs them. Work wrapped in [`count`] is tallied; work outside any tally costs one
//! task-local look-up per statement. The statement-budget tests use it to fail when a hot use
//! case grows (see "Statement budgets" in docs/architecture.md).

use std::future::Future;
use std::sync::{Arc, Mutex};

/// What a tallied piece of work ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The statements, in order, as sent (placeholders, not values); `BEGIN`/`COMMIT` are not
    /// statements sea-orm reports, see `transactions`.
    pub statements: Vec<String>,
    /// Explicit transactions opened (each adds a `BEGIN` and a `COMMIT`/`ROLLBACK` round trip).
    pub transactions: usize,
}

impl Tally {
    /// Round trips to the database: the statements plus `BEGIN` and `COMMIT` of each explicit
    /// transaction (a statement outside one is its own implicit transaction).
    pub fn round_trips(&self) -> usize {
        self.statements.len() + 2 * self.transactions
    }
}

tokio::task_local! {
    static CURRENT: Arc<Mutex<Tally>>;
}

/// Runs `work` and returns what it ran on the database (statements run by tasks it spawns are
/// not counted).
pub async fn count<F: Future>(work: F) -> (F::Output, Tally) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let output = CURRENT.scope(tally.clone(), work).await;
    let counted = tally.lock().map(|t| t.clone()).unwrap_or_default();
    (output, counted)
}

/// The metric callback: adds a statement to the current task's tally, if any.
pub(crate) fn statement(info: &sea_orm::metric::Info<'_>) {
    let _ = CURRENT.try_with(|tally| {
        if let Ok(mut tally) = tally.lock() {
            tally.statements.push(info.statement.sql.clone());
        }
    });
}

/// Adds an explicit transaction to the current task's tally, if any.
pub(crate) fn transaction() {
    let _ = CURRENT.try_with(|tally| {
        if let Ok(mut tally) = tally.lock() {
            tally.transactions += 1;
        }
    });
}
