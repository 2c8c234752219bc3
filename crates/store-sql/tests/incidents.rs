//! The incident suite of `atlas-testkit` (`IncidentStore`), whole and check by check, against
//! SQLite (a fresh file per test) and PostgreSQL (a fresh database per test; skipped loudly
//! when the server is unreachable, failed when `ATLAS_REQUIRE_SERVICES=1`).

use atlas_incidents::IncidentStore;
use atlas_store_sql::SqlStore;
use atlas_testkit::services::{fresh_postgres_database, fresh_sqlite_url};
use std::sync::Arc;

/// A migrated store on a fresh SQLite file.
async fn sqlite() -> Option<Arc<dyn IncidentStore>> {
    let store = SqlStore::connect(&fresh_sqlite_url()).await.expect("opening a fresh SQLite file");
    store.migrate().await.expect("migrating SQLite");
    Some(Arc::new(store))
}

/// A migrated store on a fresh PostgreSQL database, or `None` when the server is unreachable.
async fn postgres() -> Option<Arc<dyn IncidentStore>> {
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
            async fn incident_suite() {
                if let Some(store) = super::$backend().await {
                    atlas_testkit::incidents::suite(store).await;
                }
            }

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    if let Some(store) = super::$backend().await {
                        atlas_testkit::incidents::$check(store).await;
                    }
                }
            )+
        }
    };
}

backend_tests!(sqlite:
    references_are_per_organization_and_never_reused,
    dedup_creates_appends_and_reopens_and_a_closed_incident_never_absorbs,
    the_timeline_is_sequenced_and_a_refused_move_writes_nothing,
    concurrent_transitions_from_one_state_have_exactly_one_winner,
    lists_filter_and_page_newest_first,
    a_failed_journal_leaves_no_incident_and_no_number,
);
backend_tests!(postgres:
    references_are_per_organization_and_never_reused,
    dedup_creates_appends_and_reopens_and_a_closed_incident_never_absorbs,
    the_timeline_is_sequenced_and_a_refused_move_writes_nothing,
    concurrent_transitions_from_one_state_have_exactly_one_winner,
    lists_filter_and_page_newest_first,
    a_failed_journal_leaves_no_incident_and_no_number,
);
