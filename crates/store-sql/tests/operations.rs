//! The CMDB and ITSM suites of `atlas-testkit` against SQLite (a fresh file per test) and
//! PostgreSQL (a fresh database per test; skipped loudly when the server is unreachable,
//! failed when `ATLAS_REQUIRE_SERVICES=1`).

use atlas_store_sql::SqlStore;
use atlas_testkit::services::{fresh_postgres_database, fresh_sqlite_url};

async fn sqlite() -> SqlStore {
    let store = SqlStore::connect(&fresh_sqlite_url()).await.expect("opening a fresh SQLite file");
    store.migrate().await.expect("migrating SQLite");
    store
}

async fn postgres() -> Option<SqlStore> {
    let url = fresh_postgres_database().await?;
    let store = SqlStore::connect(&url).await.expect("connecting to the fresh PostgreSQL database");
    store.migrate().await.expect("migrating PostgreSQL");
    Some(store)
}

#[tokio::test]
async fn cmdb_suite_on_sqlite() {
    atlas_testkit::cmdb::suite(&sqlite().await).await;
}

#[tokio::test]
async fn cmdb_suite_on_postgres() {
    if let Some(store) = postgres().await {
        atlas_testkit::cmdb::suite(&store).await;
    }
}

#[tokio::test]
async fn itsm_suite_on_sqlite() {
    atlas_testkit::itsm::suite(&sqlite().await).await;
}

#[tokio::test]
async fn itsm_suite_on_postgres() {
    if let Some(store) = postgres().await {
        atlas_testkit::itsm::suite(&store).await;
    }
}

#[tokio::test]
async fn agents_suite_on_sqlite() {
    atlas_testkit::agents::suite(&sqlite().await).await;
}

#[tokio::test]
async fn agents_suite_on_postgres() {
    if let Some(store) = postgres().await {
        atlas_testkit::agents::suite(&store).await;
    }
}
