//! Specification of the fake Graph API that end-to-end tests rely on.

use std::time::{Duration, Instant};

use atlas_whatsapp::fake::{FakeGraph, Reply};
use atlas_whatsapp::OutboundMessage;

fn text(body: &str) -> OutboundMessage {
    OutboundMessage::Text { to: "15551234567".into(), body: body.into() }
}

#[tokio::test]
async fn by_default_every_send_is_accepted_with_a_fresh_wamid() {
    let graph = FakeGraph::start().await;
    let client = graph.client();

    let a = client.send("1065", "t", &text("a")).await.unwrap();
    let b = client.send("1065", "t", &text("b")).await.unwrap();

    assert!(a.wamid.starts_with("wamid."));
    assert_ne!(a.wamid, b.wamid);
    let recorded: Vec<Option<String>> = graph.received().into_iter().map(|r| r.wamid).collect();
    assert_eq!(recorded, [Some(a.wamid), Some(b.wamid)]);
}

#[tokio::test]
async fn scripted_replies_are_used_in_order_then_the_default() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::service_unavailable(), Reply::accept_with_wamid("wamid.PREDICTABLE")]);
    graph.set_default(Reply::re_engagement_required());
    let client = graph.client();

    let first = client.send("1065", "t", &text("1")).await.unwrap_err();
    let second = client.send("1065", "t", &text("2")).await.unwrap();
    let third = client.send("1065", "t", &text("3")).await.unwrap_err();
    let fourth = client.send("1065", "t", &text("4")).await.unwrap_err();

    assert_eq!(first.code, Some(131016));
    assert_eq!(second.wamid, "wamid.PREDICTABLE");
    assert_eq!(third.code, Some(131047));
    assert_eq!(fourth.code, Some(131047));
    assert_eq!(graph.pending_script(), 0);
}

#[tokio::test]
async fn every_request_is_recorded_with_path_headers_and_json_body() {
    let graph = FakeGraph::start().await;
    graph.client().send("106540352242922", "secret-token", &text("hello")).await.unwrap();

    let [req] = graph.received().try_into().unwrap();
    assert_eq!(req.seq, 0);
    assert!(req.is_send());
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v23.0/106540352242922/messages");
    assert_eq!(req.query, None);
    assert_eq!(req.header("authorization"), Some("Bearer secret-token"));
    assert_eq!(req.bearer_token(), Some("secret-token"));
    assert_eq!(req.phone_number_id(), Some("106540352242922"));
    assert_eq!(req.to(), Some("15551234567"));
    assert_eq!(req.message_type(), Some("text"));
    assert_eq!(req.text_body(), Some("hello"));
    assert_eq!(req.template_name(), None);
    assert_eq!(req.response_status, 200);
    assert!(req.raw_body.contains("\"hello\""));
}

#[tokio::test]
async fn other_paths_are_refused_with_code_100_and_do_not_consume_the_script() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::throughput_limited()]);
    let http = reqwest::Client::new();

    let response = http.get(format!("{}/v23.0/1065/message_templates?limit=5", graph.url)).send().await.unwrap();

    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 100);
    assert_eq!(graph.pending_script(), 1);
    let [req] = graph.received().try_into().unwrap();
    assert!(!req.is_send());
    assert_eq!(req.query.as_deref(), Some("limit=5"));
    assert_eq!(graph.sends().len(), 0);
}

#[tokio::test]
async fn a_delayed_reply_is_recorded_before_it_is_answered() {
    let graph = FakeGraph::start().await;
    let delay = Duration::from_millis(300);
    graph.script([Reply::accept().with_delay(delay)]);
    let client = graph.client();

    let started = Instant::now();
    let send = tokio::spawn(async move { client.send("1065", "t", &text("slow")).await });
    let seen = graph.wait_for_requests(1, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 1, "the request is recorded (what the caller waits on), whatever the delay");
    assert_eq!(graph.sends().len(), 1);

    send.await.unwrap().unwrap();
    // A lower bound the fake guarantees (it sleeps the delay before answering), not a speed.
    assert!(started.elapsed() >= delay, "the answer waited for its delay");
}

#[tokio::test]
async fn error_replies_look_like_metas_envelope() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::graph_error(400, 131056).with_subcode(2494055).with_message("custom message")]);

    let response = reqwest::Client::new()
        .post(format!("{}/v23.0/1065/messages", graph.url))
        .json(&serde_json::json!({"to": "1"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], 131056);
    assert_eq!(error["error_subcode"], 2494055);
    assert_eq!(error["message"], "custom message");
    assert_eq!(error["type"], "OAuthException");
    assert!(error["error_data"]["details"].is_string());
    assert!(error["fbtrace_id"].is_string());
}

#[tokio::test]
async fn concurrent_sends_each_take_exactly_one_scripted_reply() {
    let graph = FakeGraph::start().await;
    graph.script_times(Reply::throughput_limited(), 5);
    let client = graph.client();

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.send("1065", "t", &text(&i.to_string())).await })
        })
        .collect();
    let mut limited = 0;
    for task in tasks {
        if task.await.unwrap().is_err() {
            limited += 1;
        }
    }

    assert_eq!(limited, 5);
    let received = graph.received();
    assert_eq!(received.len(), 20);
    // the first five arrivals got the scripted errors
    let statuses: Vec<u16> = received.iter().map(|r| r.response_status).collect();
    assert_eq!(&statuses[..5], [400; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 200));
    let seqs: Vec<usize> = received.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn reset_forgets_requests_and_script() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::throughput_limited()]);
    graph.set_default(Reply::service_unavailable());
    graph.client().send("1065", "t", &text("x")).await.unwrap_err();

    graph.reset();

    assert!(graph.received().is_empty());
    assert_eq!(graph.pending_script(), 0);
    graph.client().send("1065", "t", &text("y")).await.unwrap();
    assert_eq!(graph.received()[0].seq, 1);
}

#[tokio::test]
#[should_panic(expected = "expected at least 1 request(s)")]
async fn waiting_for_requests_that_never_come_panics_with_what_arrived() {
    let graph = FakeGraph::start().await;
    graph.wait_for_requests(1, Duration::from_millis(50)).await;
}
