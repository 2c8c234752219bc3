//! The knowledge suite of `atlas-testkit` against SQLite (a fresh file per test) and PostgreSQL
//! (a fresh database per test; skipped loudly when the server is unreachable, failed when
//! `ATLAS_REQUIRE_SERVICES=1`), and the two backends' rankings of one corpus compared.

use atlas_kernel::OrgId;
use atlas_store_sql::SqlStore;
use atlas_testkit::knowledge::{load_corpus, ranking, CORPUS, QUERIES};
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
async fn knowledge_suite_on_sqlite() {
    atlas_testkit::knowledge::suite(&sqlite().await).await;
}

#[tokio::test]
async fn knowledge_suite_on_postgres() {
    if let Some(store) = postgres().await {
        atlas_testkit::knowledge::suite(&store).await;
    }
}

/// For the fixed corpus, PostgreSQL and SQLite put the same document first for every query
/// (compared by corpus position, since each store has its own ids).
#[tokio::test]
async fn both_backends_rank_the_same_document_first() {
    let Some(pg) = postgres().await else { return };
    let lite = sqlite().await;
    let (pg_org, lite_org) = (OrgId::generate(), OrgId::generate());
    let pg_docs = load_corpus(&pg, pg_org).await;
    let lite_docs = load_corpus(&lite, lite_org).await;
    for (query, _) in QUERIES.iter().chain([("password reset link email", 1), ("closed on sundays", 0)].iter()) {
        let position = |docs: &[atlas_knowledge::Document], id| docs.iter().position(|d| d.id == id).map(|i| CORPUS[i].0);
        let pg_first = ranking(&pg, pg_org, query).await.first().and_then(|id| position(&pg_docs, *id));
        let lite_first = ranking(&lite, lite_org, query).await.first().and_then(|id| position(&lite_docs, *id));
        assert!(pg_first.is_some(), "{query}: PostgreSQL found nothing");
        assert_eq!(pg_first, lite_first, "{query}: both backends rank the same document first");
    }
}
