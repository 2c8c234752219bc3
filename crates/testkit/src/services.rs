//! The real services the adapter suites run against. Where a server is unreachable the suite
//! says so loudly on stderr and skips; with `ATLAS_REQUIRE_SERVICES=1` it fails instead.

use sea_orm::{ConnectionTrait, Database, Statement};
use std::time::Duration;

/// The PostgreSQL server the tests use (`ATLAS_TEST_POSTGRES_URL`, default the local one).
pub fn postgres_admin_url() -> String {
    std::env::var("ATLAS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis server the tests use (`ATLAS_TEST_REDIS_URL`, default the local one).
pub fn redis_url() -> String {
    std::env::var("ATLAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether CI demands the real services.
pub fn services_required() -> bool {
    std::env::var("ATLAS_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn unavailable(service: &str, url: &str, why: &str) {
    if services_required() {
        panic!("{service} at {url} is required (ATLAS_REQUIRE_SERVICES=1) but unreachable: {why}");
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! SKIPPED: {service} at {url} is unreachable ({why}).");
    eprintln!("!!! The {service} adapter suite did NOT run. Set ATLAS_REQUIRE_SERVICES=1 to fail instead.");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!();
}

/// Creates a fresh, empty PostgreSQL database for one test and returns its URL, or `None`
/// (after a loud warning) when the server is unreachable and not required.
pub async fn fresh_postgres_database() -> Option<String> {
    let admin_url = postgres_admin_url();
    let admin = match tokio::time::timeout(Duration::from_secs(5), Database::connect(&admin_url)).await {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => {
            unavailable("PostgreSQL", &admin_url, &e.to_string());
            return None;
        }
        Err(_) => {
            unavailable("PostgreSQL", &admin_url, "connection timed out");
            return None;
        }
    };
    let name = format!("atlas_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(Statement::from_string(admin.get_database_backend(), format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    let _ = admin.close().await;
    let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin_url);
    Some(format!("{base}/{name}"))
}

/// A fresh SQLite database in a temporary file, and its URL.
pub fn fresh_sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!("atlas_test_{}.db", uuid::Uuid::new_v4().simple()));
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Whether the Redis server answers; `false` (after a loud warning) when it does not and is
/// not required.
pub async fn redis_available() -> bool {
    let url = redis_url();
    let addr = url.trim_start_matches("redis://").split('/').next().unwrap_or("127.0.0.1:6379").to_owned();
    match tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            unavailable("Redis", &url, &e.to_string());
            false
        }
        Err(_) => {
            unavailable("Redis", &url, "connection timed out");
            false
        }
    }
}
