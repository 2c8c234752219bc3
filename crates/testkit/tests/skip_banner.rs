//! A service suite that skips because its server is unreachable says so where `cargo test`
//! shows it: past the harness's output capture, naming the test. Checked by running this test
//! binary again as a child (one probe test, output captured as usual) against a PostgreSQL
//! address where nothing listens, and reading the child's standard error.

use atlas_testkit::services::fresh_postgres_database;
use std::process::Command;

/// The child's probe: does nothing unless run as the child.
#[tokio::test]
async fn skip_probe() {
    if std::env::var_os("ATLAS_SKIP_BANNER_CHILD").is_none() {
        return;
    }
    assert_eq!(fresh_postgres_database().await, None, "an unreachable server skips");
}

#[test]
fn a_skipped_service_suite_says_so_past_the_output_capture() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let output = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "skip_probe", "--test-threads=1"])
        .env("ATLAS_SKIP_BANNER_CHILD", "1")
        .env("ATLAS_TEST_POSTGRES_URL", format!("postgres://postgres@{dead}/postgres"))
        .env_remove("ATLAS_REQUIRE_SERVICES")
        .output()
        .expect("the child runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the probe passes (skips): {stdout}\n{stderr}");
    assert!(stdout.contains("skip_probe ... ok"), "the harness reports it as ok: {stdout}");
    assert!(
        stderr.contains("SKIPPED skip_probe") && stderr.contains("PostgreSQL"),
        "the skip is visible next to that `ok`, naming the test and the service: {stderr}"
    );
}
