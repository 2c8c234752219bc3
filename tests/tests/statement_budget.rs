//! The statement budget of the send request path, counted: every statement the store runs for
//! one `POST /v1/atlas/messages` (after authentication from the warm key cache) is tallied by
//! `atlas_store_sql::tally` (sea-orm's metric callback, attributed to the request's task), and
//! the test fails when a send, a send into a known conversation or a replay needs more than
//! its budget (docs/architecture.md, "Statement budgets"). The clock is a `ManualClock`, so the
//! one-second key cache never lapses between the warm-up and the counted requests.

use atlas_e2e::{Backend, Options, TestServer};
use atlas_kernel::ManualClock;
use atlas_store_sql::tally::{self, Tally};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use tower::ServiceExt;

/// Budgets on one backend: (statements, explicit transactions) at most.
struct Budgets {
    /// A template send to a number the organization has never seen (customer and conversation
    /// created): the benchmark's case.
    new_customer: (usize, usize),
    /// A send into the customer's existing conversation.
    known_conversation: (usize, usize),
    /// A replay of a completed send.
    replay: (usize, usize),
}

const POSTGRES: Budgets = Budgets { new_customer: (3, 0), known_conversation: (3, 0), replay: (1, 0) };
const SQLITE: Budgets = Budgets { new_customer: (11, 1), known_conversation: (6, 1), replay: (1, 0) };

async fn call(
    router: &axum::Router,
    key: &str,
    method: &str,
    path: &str,
    idempotency_key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>, Tally) {
    let mut request = Request::builder().method(method).uri(path).header("authorization", format!("Bearer {key}"));
    if let Some(k) = idempotency_key {
        request = request.header("idempotency-key", k);
    }
    let body = match body {
        Some(b) => {
            request = request.header("content-type", "application/json");
            Body::from(serde_json::to_vec(&b).expect("a JSON body"))
        }
        None => Body::empty(),
    };
    let mut request = request.body(body).expect("a request");
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let (response, tally) = tally::count(router.clone().oneshot(request)).await;
    let response = response.expect("the router answers");
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body, replayed, tally)
}

fn within(what: &str, tally: &Tally, (statements, transactions): (usize, usize)) {
    let listing = tally.statements.iter().enumerate().map(|(i, s)| format!("  {}. {s}", i + 1)).collect::<Vec<_>>().join("\n");
    println!(
        "{what}: {} statements, {} explicit transactions, {} round trips\n{listing}",
        tally.statements.len(),
        tally.transactions,
        tally.round_trips()
    );
    assert!(
        tally.statements.len() <= statements && tally.transactions <= transactions,
        "{what} ran {} statements in {} explicit transactions; the budget is {statements} in {transactions}:\n{listing}",
        tally.statements.len(),
        tally.transactions
    );
    assert!(!tally.statements.iter().any(|s| s.contains("api_keys")), "{what} read the API key although the key cache is warm:\n{listing}");
}

async fn budget(backend: Backend, budgets: Budgets) {
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let Some(server) = TestServer::start(backend, Options { clock: Some(clock), ..Options::default() }).await else {
        return;
    };
    let router = atlas_http::router(server.wiring().state.clone());
    let key = server.admin_key.clone();
    // Warm-up: the key cache, and a template the sends name.
    let (status, body, _, _) = call(
        &router,
        &key,
        "POST",
        "/v1/atlas/templates",
        Some("budget-template"),
        Some(json!({"name": "hello_world", "language": "en_US", "category": "utility", "body": "Hello"})),
    )
    .await;
    assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT, "registering the template: {status} {body}");

    let send = json!({"phone_number": "+14155550142", "template_id": "hello_world", "category": "utility"});
    let (status, first, _, tally) = call(&router, &key, "POST", "/v1/atlas/messages", Some("budget-send-1"), Some(send.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    within("a send to a new customer", &tally, budgets.new_customer);

    let (status, second, _, tally) = call(&router, &key, "POST", "/v1/atlas/messages", Some("budget-send-2"), Some(send.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(second["data"]["conversation_id"], first["data"]["conversation_id"], "the second send goes into the same conversation");
    assert_ne!(second["data"]["message_id"], first["data"]["message_id"]);
    within("a send into a known conversation", &tally, budgets.known_conversation);

    let (status, replay, replayed, tally) = call(&router, &key, "POST", "/v1/atlas/messages", Some("budget-send-2"), Some(send)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replay}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(replay, second, "a replay answers the stored bytes");
    within("a replay", &tally, budgets.replay);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_stays_within_its_statement_budget_on_postgres() {
    budget(Backend::Postgres, POSTGRES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_stays_within_its_statement_budget_on_sqlite() {
    budget(Backend::Sqlite, SQLITE).await;
}
