//! Specification of `GraphClient::send` against the local fake Graph API: what goes on the
//! wire, what comes back, and how every class of failure is reported.

use std::time::Duration;

use atlas_whatsapp::fake::{FakeGraph, Reply};
use atlas_whatsapp::{GraphClient, GraphErrorKind, OutboundMessage};
use serde_json::json;

const PHONE_NUMBER_ID: &str = "106540352242922";
const TOKEN: &str = "EAAGm0PX4ZCpsBAKZAZ";

fn text(to: &str, body: &str) -> OutboundMessage {
    OutboundMessage::Text { to: to.into(), body: body.into() }
}

// ---- the request ----

#[tokio::test]
async fn a_text_send_posts_metas_documented_body_with_a_bearer_token() {
    let graph = FakeGraph::start().await;
    let client = graph.client();

    let accepted = client.send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "Hello, Ada")).await.unwrap();

    let sends = graph.sends();
    assert_eq!(sends.len(), 1);
    let req = &sends[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v23.0/106540352242922/messages");
    assert_eq!(req.bearer_token(), Some(TOKEN));
    assert_eq!(req.header("Content-Type"), Some("application/json"));
    assert_eq!(
        req.body,
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"15551234567",
               "type":"text","text":{"preview_url":false,"body":"Hello, Ada"}})
    );
    assert!(accepted.wamid.starts_with("wamid."));
    assert_eq!(req.wamid.as_deref(), Some(accepted.wamid.as_str()));
    assert_eq!(accepted.wa_id.as_deref(), Some("15551234567"));
}

#[tokio::test]
async fn a_template_send_posts_the_template_with_its_body_parameters() {
    let graph = FakeGraph::start().await;
    let message = OutboundMessage::Template {
        to: "447700900123".into(),
        name: "order_update".into(),
        language: "en_GB".into(),
        parameters: vec!["Ada".into(), "A-1042".into()],
        header: None,
        buttons: vec![],
    };

    graph.client().send(PHONE_NUMBER_ID, TOKEN, &message).await.unwrap();

    assert_eq!(
        graph.sends()[0].body,
        json!({"messaging_product":"whatsapp","to":"447700900123","type":"template",
               "template":{"name":"order_update","language":{"code":"en_GB"},
               "components":[{"type":"body","parameters":[
                   {"type":"text","text":"Ada"},{"type":"text","text":"A-1042"}]}]}})
    );
}

#[tokio::test]
async fn a_template_without_parameters_is_sent_without_components() {
    let graph = FakeGraph::start().await;
    let message = OutboundMessage::Template {
        to: "15551234567".into(),
        name: "hello_world".into(),
        language: "en_US".into(),
        parameters: vec![],
        header: None,
        buttons: vec![],
    };

    graph.client().send(PHONE_NUMBER_ID, TOKEN, &message).await.unwrap();

    let body = &graph.sends()[0].body;
    assert_eq!(body["template"], json!({"name":"hello_world","language":{"code":"en_US"}}));
}

#[tokio::test]
async fn base_url_and_version_are_configurable() {
    let graph = FakeGraph::start().await;
    let client = GraphClient::new(&format!("{}/", graph.url), "v21.0", Duration::from_secs(5)).unwrap();

    client.send("42", TOKEN, &text("15551234567", "hi")).await.unwrap();

    let req = &graph.sends()[0];
    assert_eq!(req.path, "/v21.0/42/messages");
    assert_eq!(req.api_version(), Some("v21.0"));
    assert_eq!(req.phone_number_id(), Some("42"));
}

#[tokio::test]
async fn an_empty_phone_number_id_is_refused_without_a_call() {
    let graph = FakeGraph::start().await;

    let err = graph.client().send(" ", TOKEN, &text("15551234567", "hi")).await.unwrap_err();

    assert_eq!(err.kind, GraphErrorKind::InvalidRequest);
    assert!(!err.retryable);
    assert!(graph.received().is_empty());
}

// ---- retryable failures ----

#[tokio::test]
async fn throughput_and_rate_limit_codes_are_retryable() {
    for (status, code) in [(400, 130429), (400, 131056), (400, 4), (400, 80007)] {
        let graph = FakeGraph::start().await;
        graph.script([Reply::graph_error(status, code)]);

        let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

        assert!(err.retryable, "code {code}");
        assert_eq!(err.kind, GraphErrorKind::RateLimited, "code {code}");
        assert!(err.is_rate_limited());
        assert_eq!(err.http_status, Some(status));
        assert_eq!(err.code, Some(code));
        assert!(!err.message.is_empty());
    }
}

#[tokio::test]
async fn temporary_service_codes_are_retryable() {
    for (status, code) in [(500, 131000), (503, 131016), (500, 2), (500, 1), (400, 131000)] {
        let graph = FakeGraph::start().await;
        graph.script([Reply::graph_error(status, code)]);

        let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

        assert!(err.retryable, "code {code}");
        assert_eq!(err.kind, GraphErrorKind::Temporary, "code {code}");
    }
}

#[tokio::test]
async fn http_429_is_retryable_and_carries_retry_after() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::raw(429, "").with_retry_after(17)]);

    let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

    assert!(err.retryable);
    assert_eq!(err.kind, GraphErrorKind::RateLimited);
    assert_eq!(err.http_status, Some(429));
    assert_eq!(err.code, None);
    assert_eq!(err.retry_after, Some(Duration::from_secs(17)));
}

#[tokio::test]
async fn retry_after_is_read_from_graph_errors_too() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::throughput_limited().with_retry_after(3)]);

    let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

    assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn any_5xx_is_retryable_even_without_a_graph_envelope() {
    for status in [500, 502, 503, 504] {
        let graph = FakeGraph::start().await;
        graph.script([Reply::raw(status, "<html><body>Bad Gateway</body></html>")]);

        let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

        assert!(err.retryable, "HTTP {status}");
        assert_eq!(err.kind, GraphErrorKind::ServerError);
        assert_eq!(err.http_status, Some(status));
        assert!(err.message.contains("Bad Gateway"));
    }
}

#[tokio::test]
async fn a_timeout_is_retryable_and_has_no_http_status() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::accept().with_delay(Duration::from_millis(1500))]);
    let client = graph.client_with_timeout(Duration::from_millis(200));

    let err = client.send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

    assert!(err.retryable);
    assert_eq!(err.kind, GraphErrorKind::Transport);
    assert_eq!(err.http_status, None);
    assert!(err.message.contains("timed out"), "{}", err.message);
    // the request did reach Meta: a retry may deliver twice (documented at-least-once)
    assert_eq!(graph.received().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let url = {
        let graph = FakeGraph::start().await;
        graph.url.clone()
    };
    // the fake is dropped: nothing listens there any more
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = GraphClient::new(&url, "v23.0", Duration::from_secs(2)).unwrap();

    let err = client.send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

    assert!(err.retryable);
    assert_eq!(err.kind, GraphErrorKind::Transport);
    assert_eq!(err.http_status, None);
}

#[tokio::test]
async fn the_first_sends_can_be_rate_limited_then_succeed() {
    let graph = FakeGraph::start().await;
    graph.script_times(Reply::throughput_limited(), 2);
    let client = graph.client();
    let msg = text("15551234567", "hi");

    let first = client.send(PHONE_NUMBER_ID, TOKEN, &msg).await;
    let second = client.send(PHONE_NUMBER_ID, TOKEN, &msg).await;
    let third = client.send(PHONE_NUMBER_ID, TOKEN, &msg).await;

    assert_eq!(first.unwrap_err().code, Some(130429));
    assert_eq!(second.unwrap_err().code, Some(130429));
    let accepted = third.unwrap();
    let statuses: Vec<u16> = graph.sends().iter().map(|r| r.response_status).collect();
    assert_eq!(statuses, [400, 400, 200]);
    assert_eq!(graph.sends()[2].wamid.as_deref(), Some(accepted.wamid.as_str()));
}

// ---- permanent failures ----

#[tokio::test]
async fn re_engagement_131047_is_permanent() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::re_engagement_required()]);

    let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

    assert!(!err.retryable);
    assert_eq!(err.kind, GraphErrorKind::ReEngagementRequired);
    assert_eq!(err.code, Some(131047));
    assert_eq!(err.message, "(#131047) Re-engagement message");
    assert!(err.details.is_some());
    assert!(err.fbtrace_id.is_some());
}

#[tokio::test]
async fn template_errors_are_permanent() {
    for code in [132000, 132001, 132005, 132012, 132015, 132016, 132069] {
        let graph = FakeGraph::start().await;
        graph.script([Reply::graph_error(400, code)]);

        let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

        assert!(!err.retryable, "code {code}");
        assert_eq!(err.kind, GraphErrorKind::Template, "code {code}");
    }
}

#[tokio::test]
async fn recipient_and_parameter_errors_are_permanent() {
    let cases = [
        (400, 131026, GraphErrorKind::Undeliverable),
        (400, 131030, GraphErrorKind::RecipientNotAllowed),
        (400, 131051, GraphErrorKind::UnsupportedMessageType),
        (400, 131052, GraphErrorKind::Media),
        (400, 131053, GraphErrorKind::Media),
        (400, 100, GraphErrorKind::InvalidParameter),
        (400, 133010, GraphErrorKind::PhoneNumberNotRegistered),
        (400, 999_999, GraphErrorKind::Other),
    ];
    for (status, code, kind) in cases {
        let graph = FakeGraph::start().await;
        graph.script([Reply::graph_error(status, code)]);

        let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

        assert!(!err.retryable, "code {code}");
        assert_eq!(err.kind, kind, "code {code}");
        assert!(!err.is_access_token_error());
    }
}

#[tokio::test]
async fn an_expired_access_token_is_permanent_and_flagged() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::access_token_expired()]);

    let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

    assert!(!err.retryable);
    assert!(err.is_access_token_error());
    assert_eq!(err.http_status, Some(401));
    assert_eq!(err.code, Some(190));
    assert_eq!(err.subcode, Some(463));
}

#[tokio::test]
async fn a_success_without_a_message_id_is_not_retried() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::raw(200, r#"{"messaging_product":"whatsapp","messages":[]}"#)]);

    let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();

    assert_eq!(err.kind, GraphErrorKind::InvalidResponse);
    assert!(!err.retryable);
    assert_eq!(err.http_status, Some(200));
}

#[tokio::test]
async fn the_access_token_never_appears_in_an_error() {
    let graph = FakeGraph::start().await;
    graph.script([Reply::raw(500, "oops")]);
    let err = graph.client().send(PHONE_NUMBER_ID, TOKEN, &text("15551234567", "hi")).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(TOKEN));
}
