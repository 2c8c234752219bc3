//! Messaging end to end against a local fake of Meta's Graph API: inbound webhooks open the
//! window, replies go out as Meta documents them, the window closes after 24 hours, signatures
//! are checked, duplicates are stored once, provider errors are retried or fail the message,
//! statuses merge out of order, handoff marks the conversation, and the tool manifest follows
//! the caller's scopes.

use atlas_e2e::{Backend, Options, TestServer};
use atlas_kernel::{Clock, ManualClock};
use atlas_whatsapp::fake::{FakeGraph, Reply, WebhookPayload};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const APP_SECRET: &str = "app-secret-for-tests";
const PHONE_NUMBER_ID: &str = "106540352242922";
const ACCESS_TOKEN: &str = "EAAG-test-token";

struct Setup {
    server: TestServer,
    fake: FakeGraph,
    channel: String,
}

async fn setup(backend: Backend, clock: Option<ManualClock>) -> Option<Setup> {
    setup_with(backend, clock, &[]).await
}

/// `setup` with more settings.
async fn setup_with(backend: Backend, clock: Option<ManualClock>, settings: &[(&str, &str)]) -> Option<Setup> {
    let fake = FakeGraph::start().await;
    let mut options = Options { clock, ..Options::default() };
    options.env.insert("ATLAS_WHATSAPP_GRAPH_URL".into(), fake.url().to_owned());
    options.env.insert("ATLAS_OUTBOX_RETRY_BASE_MS".into(), "20".into());
    for (name, value) in settings {
        options.env.insert((*name).into(), (*value).into());
    }
    let server = TestServer::start(backend, options).await?;
    let channel = server
        .call(
            Method::POST,
            "/v1/atlas/channels",
            Some(&server.admin_key),
            Some(
                json!({"provider": "whatsapp", "name": "main", "phone_number_id": PHONE_NUMBER_ID, "display_phone_number": "+15550001111",
                        "access_token": ACCESS_TOKEN, "app_secret": APP_SECRET, "verify_token": "verify-me"}),
            ),
        )
        .await;
    assert_eq!(channel.status, StatusCode::CREATED, "{:?}", channel.body);
    assert!(channel.data().get("access_token").is_none() && channel.data().get("app_secret").is_none(), "secrets are never returned");
    let channel = channel.data()["id"].as_str().unwrap().to_owned();
    Some(Setup { server, fake, channel })
}

impl Setup {
    async fn webhook(&self, payload: &WebhookPayload) -> atlas_e2e::Answer {
        let (body, signature) = payload.signed(APP_SECRET.as_bytes());
        self.webhook_raw(body, Some(&signature)).await
    }

    async fn webhook_raw(&self, body: Vec<u8>, signature: Option<&str>) -> atlas_e2e::Answer {
        let mut request = self
            .server
            .http
            .post(format!("{}/v1/atlas/channels/{}/webhook", self.server.base, self.channel))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        atlas_e2e::Answer { status, headers, body }
    }

    async fn conversations(&self) -> Vec<Value> {
        let answer = self.server.call(Method::GET, "/v1/atlas/conversations", Some(&self.server.admin_key), None).await;
        answer.data()["conversations"].as_array().unwrap().iter().filter(|c| c["channel_id"] == self.channel.as_str()).cloned().collect()
    }

    async fn messages(&self, conversation: &str) -> Vec<Value> {
        let answer = self
            .server
            .call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/messages"), Some(&self.server.admin_key), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.data()["messages"].as_array().unwrap().clone()
    }

    async fn message(&self, conversation: &str, id: &str) -> Value {
        self.messages(conversation).await.into_iter().find(|m| m["id"] == id).expect("the message is listed")
    }

    /// Polls until the message's delivery state is `state` (or fails after 10 s).
    async fn wait_for_state(&self, conversation: &str, id: &str, state: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let message = self.message(conversation, id).await;
            if message["delivery_state"] == state {
                return message;
            }
            assert!(std::time::Instant::now() < deadline, "message {id} never reached {state}: {message}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A send by phone number without `channel_id`: it goes out where the customer last wrote
    /// (the real channel, next to the sandbox), and the answer says so.
    async fn send(&self, body: Value) -> atlas_e2e::Answer {
        let answer = self.server.call(Method::POST, "/v1/atlas/messages", Some(&self.server.admin_key), Some(body)).await;
        if answer.status == StatusCode::ACCEPTED {
            assert_eq!(answer.data()["channel_id"], self.channel.as_str(), "the send goes out on the real channel");
        }
        answer
    }

    async fn inbound(&self, from: &str, wamid: &str, at: i64) -> Value {
        let answer = self.webhook(&WebhookPayload::new(PHONE_NUMBER_ID).text_message(from, Some("Ada"), wamid, at, "Hello there")).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        self.conversations()
            .await
            .into_iter()
            .find(|c| c["customer"]["phone_number"] == format!("+{from}"))
            .expect("a conversation for the sender")
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

macro_rules! on_both_backends {
    ($name:ident, |$s:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($s: Setup) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario(setup(Backend::Sqlite, None).await.unwrap()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(s) = setup(Backend::Postgres, None).await else { return };
                scenario(s).await;
            }
        }
    };
}

on_both_backends!(an_inbound_message_opens_the_window_and_a_reply_goes_out_as_text, |s| {
    let conversation = s.inbound("14155550001", "wamid.IN1", unix_now()).await;
    assert_eq!(conversation["window_open"], true);
    assert_eq!(conversation["customer"]["name"], "Ada");
    let id = conversation["id"].as_str().unwrap();

    let reply = s
        .server
        .call(Method::POST, "/v1/atlas/actions", Some(&s.server.admin_key), Some(json!({"idempotency_key": "reply-001", "conversation_id": id, "action_type": "reply", "payload": {"text": "Thanks for reaching out!"}})))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert_eq!(reply.data()["delivery_state"], "queued");
    assert_eq!(reply.data()["run"]["status"], "pending", "a send's run is pending until the provider answers");
    assert_eq!(reply.data()["channel_id"], s.channel.as_str(), "a reply names the channel it goes out on");

    let sent = s.fake.wait_for_requests(1, Duration::from_secs(10)).await;
    assert_eq!(sent[0].path, format!("/v23.0/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(sent[0].bearer_token(), Some(ACCESS_TOKEN));
    assert_eq!(
        sent[0].body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "14155550001", "type": "text", "text": {"preview_url": false, "body": "Thanks for reaching out!"}})
    );
    let message = s.wait_for_state(id, reply.data()["message_id"].as_str().unwrap(), "sent").await;
    assert_eq!(message["provider_message_id"], sent[0].wamid.clone().unwrap());

    let run_id = reply.data()["run"]["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let run = s.server.call(Method::GET, &format!("/v1/atlas/runs/{run_id}"), Some(&s.server.admin_key), None).await;
        if run.data()["status"] == "succeeded" {
            assert_eq!(run.data()["operation"], "actions.reply");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run never succeeded: {:?}", run.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let status = s
        .server
        .call(Method::GET, &format!("/agent/v1/tools/messages/{}/status", sent[0].wamid.clone().unwrap()), Some(&s.server.admin_key), None)
        .await;
    assert_eq!(status.data()["status"], "sent");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_twenty_four_hours_text_is_window_closed_and_a_template_goes_out() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let clock = ManualClock::new(time::OffsetDateTime::now_utc());
        let Some(s) = setup(backend, Some(clock.clone())).await else { continue };
        window_expiry(s, clock).await;
    }
}

/// The 24-hour window on a manual clock, then a template send.
async fn window_expiry(s: Setup, clock: ManualClock) {
    let conversation = s.inbound("14155550002", "wamid.IN2", clock.now().unix_timestamp()).await;
    assert_eq!(conversation["window_open"], true);

    clock.advance(time::Duration::hours(24));
    let closed = s.send(json!({"phone_number": "+14155550002", "text": "Are you still there?"})).await;
    assert_eq!(closed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(closed.code(), "WINDOW_CLOSED", "exactly 24 hours later the window is closed");
    assert!(closed.body["error"]["hint"].as_str().unwrap().contains("template_id"));

    let unknown = s.send(json!({"phone_number": "+14155550002", "template_id": "appointment_reminder", "category": "utility"})).await;
    assert_eq!(unknown.code(), "TEMPLATE_NOT_FOUND");
    let template = s
        .server
        .call(
            Method::POST,
            "/v1/atlas/templates",
            Some(&s.server.admin_key),
            Some(
                json!({"name": "appointment_reminder", "language": "en_US", "category": "utility", "body": "Hi {{1}}, see you tomorrow."}),
            ),
        )
        .await;
    assert_eq!(template.status, StatusCode::CREATED, "{:?}", template.body);
    let mismatch = s
        .send(
            json!({"phone_number": "+14155550002", "template_id": "appointment_reminder", "category": "marketing", "parameters": ["Ada"]}),
        )
        .await;
    assert_eq!(mismatch.code(), "TEMPLATE_NOT_FOUND", "the category must match the registered one");
    let legacy = s.send(json!({"phone_number": "+14155550002", "template_id": "appointment_reminder", "category": "transactional", "parameters": ["Ada"]})).await;
    assert_eq!(legacy.status, StatusCode::ACCEPTED, "transactional is the legacy name of utility: {:?}", legacy.body);
    assert_eq!(legacy.data()["kind"], "template");
    assert_eq!(legacy.data()["window_open"], false);

    let sent = s.fake.wait_for_requests(1, Duration::from_secs(10)).await;
    assert_eq!(sent[0].body["type"], "template");
    assert_eq!(sent[0].body["template"]["name"], "appointment_reminder");
    assert_eq!(sent[0].body["template"]["language"]["code"], "en_US");
    assert_eq!(sent[0].body["template"]["components"][0]["parameters"][0]["text"], "Ada");
}

on_both_backends!(a_bad_signature_is_401_and_stores_nothing, |s| {
    let payload = WebhookPayload::new(PHONE_NUMBER_ID).text_message("14155550003", Some("Eve"), "wamid.FORGED", unix_now(), "hi");
    let (body, _) = payload.signed(b"not-the-app-secret");
    let forged = s.webhook_raw(body.clone(), Some(&format!("sha256={}", "0".repeat(64)))).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let unsigned = s.webhook_raw(body, None).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert!(s.conversations().await.is_empty(), "nothing was stored");

    let handshake = s
        .server
        .http
        .get(format!(
            "{}/v1/atlas/channels/{}/webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
            s.server.base, s.channel
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.status(), StatusCode::OK);
    assert_eq!(handshake.text().await.unwrap(), "1158201444");
    let wrong = s
        .server
        .http
        .get(format!("{}/v1/atlas/channels/{}/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1", s.server.base, s.channel))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
});

on_both_backends!(the_same_inbound_message_is_stored_once_even_concurrently, |s| {
    let payload = WebhookPayload::new(PHONE_NUMBER_ID).text_message("14155550004", Some("Bo"), "wamid.DUP", unix_now(), "hello");
    let (body, signature) = payload.signed(APP_SECRET.as_bytes());
    for _ in 0..2 {
        assert_eq!(s.webhook_raw(body.clone(), Some(&signature)).await.status, StatusCode::OK, "a duplicate still answers 200");
    }
    let url = format!("{}/v1/atlas/channels/{}/webhook", s.server.base, s.channel);
    let mut concurrent = Vec::new();
    for _ in 0..6 {
        let (http, url, body, signature) = (s.server.http.clone(), url.clone(), body.clone(), signature.clone());
        concurrent.push(tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("X-Hub-Signature-256", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for task in concurrent {
        assert_eq!(task.await.unwrap(), StatusCode::OK, "concurrent duplicates answer 200 too");
    }
    let conversations = s.conversations().await;
    assert_eq!(conversations.len(), 1);
    let messages = s.messages(conversations[0]["id"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 1, "stored once: {messages:?}");
});

on_both_backends!(a_batch_from_several_customers_is_processed_whole, |s| {
    let now = unix_now();
    let payload = WebhookPayload::new(PHONE_NUMBER_ID)
        .text_message("14155550005", Some("Cy"), "wamid.B1", now - 30, "first")
        .text_message("14155550006", Some("Di"), "wamid.B2", now - 20, "second")
        .text_message("14155550005", Some("Cy"), "wamid.B3", now - 10, "third");
    assert_eq!(s.webhook(&payload).await.status, StatusCode::OK);
    let conversations = s.conversations().await;
    assert_eq!(conversations.len(), 2);
    let cy = conversations.iter().find(|c| c["customer"]["phone_number"] == "+14155550005").unwrap();
    assert_eq!(cy["customer"]["name"], "Cy", "matched to its contact by wa_id");
    assert_eq!(s.messages(cy["id"].as_str().unwrap()).await.len(), 2);
    let di = conversations.iter().find(|c| c["customer"]["phone_number"] == "+14155550006").unwrap();
    assert_eq!(di["customer"]["name"], "Di");
    let expected = time::OffsetDateTime::from_unix_timestamp(now - 10).unwrap();
    let last =
        time::OffsetDateTime::parse(cy["last_inbound_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(last, expected, "the window opens from the message's own timestamp");
});

on_both_backends!(a_throttled_send_is_retried_and_ends_sent_with_one_provider_id, |s| {
    s.fake.script([Reply::throughput_limited(), Reply::throughput_limited()]);
    let conversation = s.inbound("14155550007", "wamid.IN7", unix_now()).await;
    let sent = s.send(json!({"phone_number": "+14155550007", "text": "retry me"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let message = s.wait_for_state(conversation["id"].as_str().unwrap(), sent.data()["message_id"].as_str().unwrap(), "sent").await;
    let requests = s.fake.sends();
    assert_eq!(requests.len(), 3, "two 130429 answers, then the accepted attempt");
    let accepted: Vec<_> = requests.iter().filter_map(|r| r.wamid.clone()).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(message["provider_message_id"], accepted[0]);
});

on_both_backends!(a_131047_fails_the_message_with_its_code_and_is_not_resent, |s| {
    let conversation = s.inbound("14155550008", "wamid.IN8", unix_now()).await;
    let id = conversation["id"].as_str().unwrap().to_owned();

    s.fake.script([Reply::re_engagement_required()]);
    let synchronous = s.send(json!({"phone_number": "+14155550008", "text": "too late"})).await;
    let failed = s.wait_for_state(&id, synchronous.data()["message_id"].as_str().unwrap(), "failed").await;
    assert_eq!(failed["error"]["code"], "131047");

    let later = s.send(json!({"phone_number": "+14155550008", "text": "accepted, then failed"})).await;
    let sent = s.wait_for_state(&id, later.data()["message_id"].as_str().unwrap(), "sent").await;
    let wamid = sent["provider_message_id"].as_str().unwrap().to_owned();
    let status = WebhookPayload::new(PHONE_NUMBER_ID).failed_status(&wamid, unix_now(), "14155550008", 131047, "Re-engagement message");
    assert_eq!(s.webhook(&status).await.status, StatusCode::OK);
    let failed = s.wait_for_state(&id, later.data()["message_id"].as_str().unwrap(), "failed").await;
    assert_eq!(failed["error"]["code"], "131047");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.fake.sends().len(), 2, "neither failed message was sent again");
});

on_both_backends!(statuses_out_of_order_end_at_the_highest_state, |s| {
    let conversation = s.inbound("14155550009", "wamid.IN9", unix_now()).await;
    let id = conversation["id"].as_str().unwrap().to_owned();
    let send = s.send(json!({"phone_number": "+14155550009", "text": "track me"})).await;
    let message_id = send.data()["message_id"].as_str().unwrap().to_owned();
    let sent = s.wait_for_state(&id, &message_id, "sent").await;
    let wamid = sent["provider_message_id"].as_str().unwrap().to_owned();
    let t = unix_now();
    let read_first = WebhookPayload::new(PHONE_NUMBER_ID).status(&wamid, "read", t + 3, "14155550009");
    assert_eq!(s.webhook(&read_first).await.status, StatusCode::OK);
    let late =
        WebhookPayload::new(PHONE_NUMBER_ID).status(&wamid, "delivered", t + 2, "14155550009").status(&wamid, "sent", t + 1, "14155550009");
    assert_eq!(s.webhook(&late).await.status, StatusCode::OK);
    let message = s.message(&id, &message_id).await;
    assert_eq!(message["delivery_state"], "read", "a late delivered never moves a read message back");
    assert!(message["delivered_at"].is_string(), "read implies delivered");
    assert!(message["read_at"].is_string());
});

on_both_backends!(handoff_marks_the_conversation_and_stops_nothing_already_queued, |s| {
    s.fake.set_default(Reply::accept().with_delay(Duration::from_millis(300)));
    let conversation = s.inbound("14155550010", "wamid.IN10", unix_now()).await;
    let id = conversation["id"].as_str().unwrap().to_owned();
    let queued = s.send(json!({"phone_number": "+14155550010", "text": "on its way"})).await;
    let handoff = s
        .server
        .call(Method::POST, "/v1/atlas/actions", Some(&s.server.admin_key), Some(json!({"conversation_id": id, "action_type": "handoff"})))
        .await;
    assert_eq!(handoff.status, StatusCode::OK, "a handoff is done at once: {:?}", handoff.body);
    let listed = s.conversations().await;
    assert_eq!(listed.iter().find(|c| c["id"] == id.as_str()).unwrap()["status"], "handed_off");
    s.wait_for_state(&id, queued.data()["message_id"].as_str().unwrap(), "sent").await;

    let draft = s
        .server
        .call(
            Method::POST,
            "/v1/atlas/actions",
            Some(&s.server.admin_key),
            Some(json!({"conversation_id": id, "action_type": "draft", "payload": {"text": "for a human to approve"}})),
        )
        .await;
    assert_eq!(draft.data()["draft"]["text"], "for a human to approve");
    assert_eq!(s.fake.sends().len(), 1, "a draft is never sent");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_manifest_follows_the_callers_scopes() {
    let server = TestServer::sqlite().await;
    let names = |answer: &atlas_e2e::Answer| -> Vec<String> {
        answer.data()["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap().to_owned()).collect()
    };
    let (_, agent) = server.mint(&["atlas.actions.execute"]).await;
    let narrow = server.call(Method::GET, "/agent/v1/tools/manifest", Some(&agent), None).await;
    assert_eq!(names(&narrow), ["send_message", "send_message_to_phone", "draft_message", "handoff", "get_message_status"]);
    assert_eq!(narrow.data()["tools"][0]["type"], "function");
    assert_eq!(narrow.data()["tools"][0]["function"]["parameters"]["required"], json!(["conversation_id"]));
    let (_, reader) = server.mint(&["atlas.actions.execute", "atlas.conversations.read"]).await;
    let wide = server.call(Method::GET, "/agent/v1/tools/manifest", Some(&reader), None).await;
    assert_eq!(names(&wide).len(), 6);
    assert!(names(&wide).contains(&"get_conversation".to_owned()));
    let (_, none) = server.mint(&["atlas.conversations.read"]).await;
    let refused = server.call(Method::GET, "/agent/v1/tools/manifest", Some(&none), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let by_phone = server
        .call(
            Method::POST,
            "/agent/v1/tools/send_message_to_phone",
            Some(&agent),
            Some(json!({"phone_number": "+14155550011", "text": "hi"})),
        )
        .await;
    assert_eq!(by_phone.code(), "WINDOW_CLOSED", "{:?}", by_phone.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_default_delivers_and_reports_read() {
    let server = TestServer::sqlite().await;
    let event = server
        .call(Method::POST, "/v1/atlas/events", Some(&server.admin_key), Some(json!({"idempotency_key": "evt-001", "channel": "whatsapp", "customer": {"phone_number": "+14155552671"}, "event_type": "message.received", "message": {"text": "Hi"}})))
        .await;
    assert_eq!(event.status, StatusCode::OK, "{:?}", event.body);
    let conversation = event.data()["conversation_id"].as_str().unwrap().to_owned();
    let again = server
        .call(Method::POST, "/v1/atlas/events", Some(&server.admin_key), Some(json!({"idempotency_key": "evt-001", "channel": "whatsapp", "customer": {"phone_number": "+14155552671"}, "event_type": "message.received", "message": {"text": "Hi"}})))
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let send = server
        .call(
            Method::POST,
            "/agent/v1/tools/send_message",
            Some(&server.admin_key),
            Some(json!({"conversation_id": conversation, "text": "Thanks for your message!"})),
        )
        .await;
    assert_eq!(send.status, StatusCode::ACCEPTED, "{:?}", send.body);
    assert_eq!(send.data()["queued"], true);
    assert_eq!(send.data()["window_open"], true);
    let message_id = send.data()["message_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let messages =
            server.call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/messages"), Some(&server.admin_key), None).await;
        let message = messages.data()["messages"].as_array().unwrap().iter().find(|m| m["id"] == message_id.as_str()).unwrap().clone();
        if message["delivery_state"] == "read" {
            assert!(message["delivered_at"].is_string());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the sandbox never reported read: {message}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let context = server.call(Method::GET, &format!("/v1/atlas/context/{conversation}"), Some(&server.admin_key), None).await;
    assert_eq!(context.data()["recent_messages"].as_array().unwrap().len(), 2);
    assert_eq!(context.data()["knowledge"], json!([]));
    assert_eq!(context.data()["customer"]["phone_number"], "+14155552671");
    server.stop().await;
}

/// `ATLAS_OUTBOX_PER_CHANNEL` caps what one channel has in flight: with 2, and Graph answering
/// each send after 3 s, six queued replies reach Graph two at a time, and all of them go out.
async fn a_channel_has_at_most_its_cap_of_sends_in_flight(backend: Backend) {
    let Some(s) = setup_with(backend, None, &[("ATLAS_OUTBOX_PER_CHANNEL", "2")]).await else { return };
    s.fake.set_default(Reply::accept().with_delay(Duration::from_secs(3)));
    for i in 0..6 {
        let conversation = s.inbound(&format!("1415555{:04}", 700 + i), &format!("wamid.CAP{i}"), unix_now()).await;
        let body = json!({"idempotency_key": format!("cap-{i}"), "conversation_id": conversation["id"], "action_type": "reply",
                          "payload": {"text": "On its way"}});
        let reply = s.server.call(Method::POST, "/v1/atlas/actions", Some(&s.server.admin_key), Some(body)).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    }
    s.fake.wait_for_requests(2, Duration::from_secs(10)).await;
    // Graph holds both sends for 3 s: no third may start before one of them is answered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.fake.sends().len(), 2, "two sends in flight, the channel's cap, not six");
    let sent = s.fake.wait_for_requests(6, Duration::from_secs(30)).await;
    assert_eq!(sent.iter().filter(|r| r.is_send()).count(), 6, "every reply goes out in the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_has_at_most_its_cap_of_sends_in_flight_sqlite() {
    a_channel_has_at_most_its_cap_of_sends_in_flight(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_has_at_most_its_cap_of_sends_in_flight_postgres() {
    a_channel_has_at_most_its_cap_of_sends_in_flight(Backend::Postgres).await;
}
