//! The background pipeline's statement budget, measured on PostgreSQL through a proxy that
//! records every statement the server runs (`atlas_e2e::pgproxy`), BEGIN and COMMIT included.
//!
//! Sandbox messages are sent one after another, each followed until the sandbox's third receipt
//! (`read`) is applied; then the statements are grouped into units (a transaction, or one
//! statement outside any) on their connection and each unit is named by what it touches. A
//! delivery is everything the outbox worker runs: its claim probes (every wake-up's look for a
//! claimable row), its claims (run when the probe found one), its reads of the next due time,
//! the channel read and the completion. A unit that takes the provider-id lock without touching the outbox applies
//! receipts; fan-out and the webhook claims are counted apart; the request path and the test's
//! own reads are left out.
//!
//! The test prints the table and fails when a delivery or a receipt costs more than its budget
//! (docs/architecture.md, "Statement budgets of the pipeline").
//!
//! Two more hold the workers' records of their successes to theirs: succeeded attempts at a
//! healthy endpoint, and sends the provider accepted, are each recorded together, in one
//! transaction of a fixed number of statements however many they are.

use atlas_e2e::pgproxy::{CountingProxy, Executed};
use atlas_e2e::{Backend, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Messages sent.
const MESSAGES: usize = 10;
/// Statements the outbox worker may run per delivered message (claim probes, claims, due
/// reads, channel read, completion), on average.
const DELIVERY_BUDGET: f64 = 15.0;
/// Claims (the fair choice, lock and lease: parsed and planned at every call) per delivered
/// message, on average: every other wake-up costs a probe of the due index alone.
const CLAIM_BUDGET: f64 = 1.5;
/// Statements one receipt may cost, on average (the sandbox applies the receipts due at once
/// in one transaction; one after another, as here, a batch is mostly one receipt).
const RECEIPT_BUDGET: f64 = 5.0;

/// What a unit of work was.
fn kind(unit: &[&Executed]) -> &'static str {
    let has = |needle: &str| unit.iter().any(|e| e.sql.contains(needle));
    let provider_lock = has("pg_advisory_xact_lock");
    if provider_lock && has("outbox") {
        "completion"
    } else if provider_lock && has("\"messages\"") && !has("INSERT INTO \"messages\"") {
        "receipt"
    } else if has("outbox") && has("lease_until_us") && !has("INSERT") && !has("MIN(CASE") && !has("finished_at_us <") {
        if has("WITH RECURSIVE") {
            "claim"
        } else {
            "claim probe"
        }
    } else if has("MIN(CASE") {
        "due probe"
    } else if has("sealed_secrets") && !has("INSERT") && !has("UPDATE") && !has("WITH conv AS") {
        // (A send's context read names the channel's columns too; it is the request path's.)
        "channel read"
    } else if has("webhook_events") && has("fanned_out_at_us") && !has("INSERT INTO \"outbox\"") {
        "fan-out"
    } else if has("webhook_deliveries") && !has("INSERT INTO \"outbox\"") {
        "webhook claims"
    } else if has("runbook_executions") {
        "runbook claims"
    } else if has("LISTEN") {
        "listener"
    } else {
        "request path and reads"
    }
}

/// The statements grouped into units: per connection, BEGIN … COMMIT/ROLLBACK or one statement.
fn units(log: &[Executed]) -> Vec<Vec<&Executed>> {
    let mut open: BTreeMap<usize, Vec<&Executed>> = BTreeMap::new();
    let mut done = Vec::new();
    for e in log {
        let sql = e.sql.trim_start().to_ascii_uppercase();
        if sql.starts_with("BEGIN") || sql.starts_with("START TRANSACTION") {
            open.insert(e.connection, vec![e]);
        } else if let Some(unit) = open.get_mut(&e.connection) {
            unit.push(e);
            if sql.starts_with("COMMIT") || sql.starts_with("ROLLBACK") {
                done.push(open.remove(&e.connection).unwrap_or_default());
            }
        } else {
            done.push(vec![e]);
        }
    }
    done.extend(open.into_values());
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_message_and_its_receipts_stay_within_their_statement_budgets() {
    let Some(url) = atlas_testkit::services::fresh_postgres_database().await else {
        return;
    };
    let proxy = CountingProxy::start(CountingProxy::upstream_of(&url)).await;
    let server = TestServer::start(Backend::Postgres, Options { database_url: Some(proxy.url_for(&url)), ..Options::default() })
        .await
        .expect("PostgreSQL answered a moment ago");
    let key = server.admin_key.clone();
    let event = server
        .call(
            Method::POST,
            "/v1/atlas/events",
            Some(&key),
            Some(json!({"idempotency_key": "evt-budget", "channel": "whatsapp", "customer": {"phone_number": "+14155552671"},
                        "event_type": "message.received", "message": {"text": "Hi"}})),
        )
        .await;
    assert_eq!(event.status, StatusCode::OK, "{:?}", event.body);
    let conversation = event.data()["conversation_id"].as_str().unwrap().to_owned();
    let from = proxy.count();
    for n in 0..MESSAGES {
        let send = server
            .call(
                Method::POST,
                "/agent/v1/tools/send_message",
                Some(&key),
                Some(json!({"conversation_id": conversation, "text": format!("Reply {n}")})),
            )
            .await;
        assert_eq!(send.status, StatusCode::ACCEPTED, "{:?}", send.body);
        let message = send.data()["message_id"].as_str().unwrap().to_owned();
        let started = Instant::now();
        loop {
            let listed = server.call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/messages"), Some(&key), None).await;
            let found = listed.data()["messages"].as_array().unwrap().iter().find(|m| m["id"] == message.as_str()).cloned().unwrap();
            if found["delivery_state"] == "read" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "message {n} never read: {found}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let log = proxy.since(from);
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for unit in units(&log) {
        let entry = by_kind.entry(kind(&unit)).or_default();
        entry.0 += 1;
        entry.1 += unit.len();
    }
    eprintln!("{MESSAGES} messages delivered and read; units and statements by kind:");
    for (kind, (units, statements)) in &by_kind {
        eprintln!("  {kind:<24} {units:>5} units {statements:>6} statements");
    }
    let statements = |k: &str| by_kind.get(k).map_or(0, |(_, s)| *s) as f64;
    let delivery =
        (statements("claim probe") + statements("claim") + statements("due probe") + statements("channel read") + statements("completion"))
            / MESSAGES as f64;
    let claims = statements("claim") / MESSAGES as f64;
    let receipt = statements("receipt") / (3 * MESSAGES) as f64;
    let fan_out = statements("fan-out") / MESSAGES as f64;
    eprintln!(
        "per message: delivery {delivery:.1} (claim probes {:.1}, claims {claims:.1}), fan-out {fan_out:.1}; per receipt {receipt:.1}",
        statements("claim probe") / MESSAGES as f64
    );
    assert!(by_kind.get("completion").map_or(0, |(u, _)| *u) >= MESSAGES, "every message was completed: {by_kind:?}");
    assert!(delivery <= DELIVERY_BUDGET, "a delivery costs {delivery:.1} statements, budget {DELIVERY_BUDGET}");
    assert!(claims <= CLAIM_BUDGET, "a delivery costs {claims:.1} claims, budget {CLAIM_BUDGET}");
    assert!(receipt <= RECEIPT_BUDGET, "a receipt costs {receipt:.1} statements, budget {RECEIPT_BUDGET}");
    server.stop().await;
}

/// A migrated store on a fresh PostgreSQL database, reached through a recording proxy; `None`
/// (said loudly) without PostgreSQL.
async fn proxied_store() -> Option<(CountingProxy, atlas_store_sql::SqlStore)> {
    let url = atlas_testkit::services::fresh_postgres_database().await?;
    let proxy = CountingProxy::start(CountingProxy::upstream_of(&url)).await;
    let store = atlas_store_sql::SqlStore::connect(&proxy.url_for(&url)).await.expect("connecting through the proxy");
    store.migrate().await.expect("migrating");
    Some((proxy, store))
}

/// Statements (BEGIN and COMMIT included) that recording a batch of succeeded attempts at
/// healthy endpoints may take, however many attempts it holds.
const RECORD_BATCH_BUDGET: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeeded_attempts_at_a_healthy_endpoint_are_recorded_in_one_transaction() {
    let Some((proxy, store)) = proxied_store().await else {
        return;
    };
    let ports = atlas_testkit::webhooks::WebhookPorts {
        store: std::sync::Arc::new(store.clone()),
        queue: std::sync::Arc::new(store.clone()),
        runs: std::sync::Arc::new(store.clone()),
    };
    for n in [2, 40] {
        let records = atlas_testkit::webhooks::claimed_successes(&ports, n).await;
        let from = proxy.count();
        let results = atlas_webhooks::DeliveryQueue::record_attempts(&store, &records).await;
        let log = proxy.since(from);
        assert!(results.iter().all(Result::is_ok), "every attempt recorded: {results:?}");
        let units = units(&log);
        eprintln!("{n} succeeded attempts recorded in {} statements, {} unit(s)", log.len(), units.len());
        assert_eq!(units.len(), 1, "{n} attempts, one transaction: {:#?}", log.iter().map(|e| &e.sql).collect::<Vec<_>>());
        assert!(log.len() <= RECORD_BATCH_BUDGET, "{n} attempts cost {} statements, budget {RECORD_BATCH_BUDGET}", log.len());
    }
}

/// Statements that record any number of accepted sends (`Outbox::complete_many`): BEGIN, the
/// rows locked, their provider ids' locks, their messages locked, the pending statuses read,
/// the messages, the rows and the runs updated, the events inserted, COMMIT.
const COMPLETE_BATCH_BUDGET: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_the_provider_accepted_are_completed_in_one_transaction() {
    let Some((proxy, store)) = proxied_store().await else {
        return;
    };
    let ports = atlas_testkit::conversations::MessagingPorts {
        store: std::sync::Arc::new(store.clone()),
        outbox: std::sync::Arc::new(store.clone()),
        runs: std::sync::Arc::new(store.clone()),
    };
    for n in [2, 40] {
        let completions = atlas_testkit::conversations::claimed_sends(&ports, n).await;
        let from = proxy.count();
        let results = atlas_conversations::Outbox::complete_many(&store, &completions).await;
        let log = proxy.since(from);
        assert!(results.iter().all(Result::is_ok), "every send completed: {results:?}");
        let units = units(&log);
        eprintln!("{n} accepted sends completed in {} statements, {} unit(s)", log.len(), units.len());
        assert_eq!(units.len(), 1, "{n} completions, one transaction: {:#?}", log.iter().map(|e| &e.sql).collect::<Vec<_>>());
        assert!(log.len() <= COMPLETE_BATCH_BUDGET, "{n} completions cost {} statements, budget {COMPLETE_BATCH_BUDGET}", log.len());
    }
}
