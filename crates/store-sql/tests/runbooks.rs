//! The runbook suite of `atlas-testkit` (`RunbookStore`), whole and check by check, against
//! SQLite (a fresh file per test) and PostgreSQL (a fresh database per test; skipped loudly
//! when the server is unreachable, failed when `ATLAS_REQUIRE_SERVICES=1`).

use atlas_runbooks::RunbookStore;
use atlas_store_sql::SqlStore;
use atlas_testkit::services::{fresh_postgres_database, fresh_sqlite_url};
use std::sync::Arc;

async fn sqlite() -> Option<Arc<dyn RunbookStore>> {
    let store = SqlStore::connect(&fresh_sqlite_url()).await.expect("opening a fresh SQLite file");
    store.migrate().await.expect("migrating SQLite");
    Some(Arc::new(store))
}

async fn postgres() -> Option<Arc<dyn RunbookStore>> {
    let url = fresh_postgres_database().await?;
    let store = SqlStore::connect(&url).await.expect("connecting to the fresh PostgreSQL database");
    store.migrate().await.expect("migrating PostgreSQL");
    Some(Arc::new(store))
}

macro_rules! backend_tests {
    ($backend:ident: $($check:ident),+ $(,)?) => {
        mod $backend {
            /// The whole suite on one database, every check sharing it.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn runbook_suite() {
                if let Some(store) = super::$backend().await {
                    atlas_testkit::runbooks::suite(store).await;
                }
            }

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    if let Some(store) = super::$backend().await {
                        atlas_testkit::runbooks::$check(store).await;
                    }
                }
            )+
        }
    };
}

backend_tests!(sqlite:
    runbooks_read_back_and_a_replace_grows_the_version,
    an_execution_is_queued_only_at_the_planned_version,
    each_execution_is_claimed_once_then_again_only_after_its_lease,
    only_the_current_claim_finishes_an_execution,
);
backend_tests!(postgres:
    runbooks_read_back_and_a_replace_grows_the_version,
    an_execution_is_queued_only_at_the_planned_version,
    each_execution_is_claimed_once_then_again_only_after_its_lease,
    only_the_current_claim_finishes_an_execution,
);
