//! The real services the adapter suites run against. Where a server is unreachable the suite
//! says so loudly on stderr, past the harness's output capture (so `cargo test` shows which
//! test skipped what, next to its `ok`), and skips; with `ATLAS_REQUIRE_SERVICES=1` it fails
//! instead.

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
    skipped_banner(service, url, why);
}

/// Writes the skip banner straight to the process's standard error: the test harness captures
/// what `eprintln!` prints (and shows it only for failures), so a skipped suite would otherwise
/// read as a plain `ok`. The banner names the test (the harness names each test's thread).
fn skipped_banner(service: &str, url: &str, why: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = "!".repeat(88);
    let banner = format!(
        "\n{line}\n!!! SKIPPED {test}: {service} at {url} is unreachable ({why}).\n\
         !!! Its {service} part did NOT run and its `ok` means nothing. Set ATLAS_REQUIRE_SERVICES=1 to fail instead.\n{line}\n"
    );
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(banner.as_bytes());
    let _ = stderr.flush();
}

/// Creates a fresh, empty PostgreSQL schema for one test and returns a URL whose connections
/// use it (`search_path`), or `None` (after a loud warning) when the server is unreachable and
/// not required. A schema is as isolated as a database for our tables and far cheaper to make
/// and drop than one.
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
    sweep_abandoned(&admin).await;
    let name = format!("atlas_test_{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    admin
        .execute(Statement::from_string(admin.get_database_backend(), format!("CREATE SCHEMA {name}")))
        .await
        .unwrap_or_else(|e| panic!("creating test schema {name}: {e}"));
    let _ = admin.close().await;
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    Some(format!("{admin_url}{separator}options=-c%20search_path%3D{name}"))
}

/// Drops, once per test process, the test schemas (and databases, from older runs) of
/// processes that no longer run: their names carry the creating process's id.
async fn sweep_abandoned(admin: &sea_orm::DatabaseConnection) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let backend = admin.get_database_backend();
    let abandoned = |name: &str| {
        let pid = name.trim_start_matches("atlas_test_").split('_').next().and_then(|p| p.parse::<u32>().ok());
        !pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    let query = |sql: &str| Statement::from_string(backend, sql.to_owned());
    if let Ok(rows) = admin.query_all(query("SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE 'atlas\\_test\\_%'")).await {
        for name in rows.iter().filter_map(|r| r.try_get::<String>("", "name").ok()).filter(|n| abandoned(n)) {
            let _ = admin.execute(query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))).await;
        }
    }
    if let Ok(rows) = admin.query_all(query("SELECT datname AS name FROM pg_database WHERE datname LIKE 'atlas\\_test\\_%'")).await {
        for name in rows.iter().filter_map(|r| r.try_get::<String>("", "name").ok()).filter(|n| abandoned(n)) {
            let _ = admin.execute(query(&format!("DROP DATABASE IF EXISTS \"{name}\""))).await;
        }
    }
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
