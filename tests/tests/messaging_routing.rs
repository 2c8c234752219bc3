//! Messaging that follows the customer, end to end against the fake Graph API, on SQLite and
//! PostgreSQL, the way a business deploys it: the sandbox channel of the first start and real
//! numbers next to it.
//!
//! - a customer writing in on a real number is answered on that number (not the sandbox);
//! - one Meta app posting every number's events to one callback URL: each change lands on its
//!   own channel, an unknown number is skipped and counted;
//! - a batch with poisoned items keeps the others;
//! - every inbound type Meta documents is stored with its content;
//! - media and interactive sends reach Graph in Meta's request shape; read receipts too;
//! - templates sync from the account (paged), header and button parameters are checked before
//!   Meta is called, and reach Graph as components;
//! - the default channel moves with PATCH; a DELETEd channel refuses sends with a 4xx and its
//!   conversations stay readable.

use atlas_e2e::{Answer, Backend, Options, TestServer};
use atlas_whatsapp::fake::{FakeGraph, ReceivedRequest, WebhookPayload};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const APP_SECRET: &str = "one-app-secret-for-every-number";

struct World {
    server: TestServer,
    fake: FakeGraph,
    sandbox: String,
}

async fn world(backend: Backend) -> Option<World> {
    let fake = FakeGraph::start().await;
    let mut options = Options::default();
    options.env.insert("ATLAS_WHATSAPP_GRAPH_URL".into(), fake.url().to_owned());
    options.env.insert("ATLAS_OUTBOX_RETRY_BASE_MS".into(), "20".into());
    let server = TestServer::start(backend, options).await?;
    let channels = server.call(Method::GET, "/v1/atlas/channels", Some(&server.admin_key), None).await;
    let sandbox = channels.data()["channels"][0]["id"].as_str().expect("the first start's sandbox channel").to_owned();
    Some(World { server, fake, sandbox })
}

impl World {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.server.call(method, path, Some(&self.server.admin_key), body).await
    }

    /// Connects a WhatsApp number (its token is `token-<phone_number_id>`).
    async fn connect(&self, phone_number_id: &str, extra: Value) -> Value {
        let mut body = json!({"provider": "whatsapp", "name": format!("number {phone_number_id}"), "phone_number_id": phone_number_id,
            "display_phone_number": "+15550001111", "access_token": format!("token-{phone_number_id}"), "app_secret": APP_SECRET,
            "verify_token": "verify"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let answer = self.call(Method::POST, "/v1/atlas/channels", Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.data().clone()
    }

    async fn webhook(&self, channel: &str, payload: &Value) -> Answer {
        let body = serde_json::to_vec(payload).unwrap();
        let signature = atlas_whatsapp::signature_header_value(APP_SECRET.as_bytes(), &body);
        let response = self
            .server
            .http
            .post(format!("{}/v1/atlas/channels/{channel}/webhook", self.server.base))
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        Answer { status, headers, body: response.json().await.unwrap_or(Value::Null) }
    }

    async fn conversations(&self) -> Vec<Value> {
        self.call(Method::GET, "/v1/atlas/conversations?limit=200", None).await.data()["conversations"].as_array().unwrap().clone()
    }

    async fn conversation_of(&self, channel: &str, phone: &str) -> Option<Value> {
        self.conversations().await.into_iter().find(|c| c["channel_id"] == channel && c["customer"]["phone_number"] == phone)
    }

    async fn messages(&self, conversation: &str) -> Vec<Value> {
        let answer = self.call(Method::GET, &format!("/v1/atlas/conversations/{conversation}/messages"), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.data()["messages"].as_array().unwrap().clone()
    }

    /// Waits until the fake has seen `n` sends, and returns them.
    async fn sends(&self, n: usize) -> Vec<ReceivedRequest> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let sends = self.fake.sends();
            if sends.len() >= n {
                return sends;
            }
            assert!(std::time::Instant::now() < deadline, "expected {n} send(s), got {sends:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// One entry per number, all in one POST (as one Meta app sends them).
fn batch(changes: &[WebhookPayload]) -> Value {
    let entries: Vec<Value> = changes.iter().map(|p| p.to_json()["entry"][0].clone()).collect();
    json!({"object": "whatsapp_business_account", "entry": entries})
}

macro_rules! on_both_backends {
    ($name:ident, |$w:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($w: World) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario(world(Backend::Sqlite).await.unwrap()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(w) = world(Backend::Postgres).await else { return };
                scenario(w).await;
            }
        }
    };
}

on_both_backends!(a_customer_writing_in_on_a_real_number_is_answered_on_that_number, |w| {
    // The sandbox stays the default: only where the customer wrote can route the answer.
    let real = w.connect("106540352242922", json!({"is_default": false})).await;
    assert_eq!(real["is_default"], false);
    let real_id = real["id"].as_str().unwrap();
    let inbound = WebhookPayload::new("106540352242922").text_message("14155550101", Some("Ada"), "wamid.R1", now(), "Hi there");
    assert_eq!(w.webhook(real_id, &inbound.to_json()).await.status, StatusCode::OK);

    let answer = w.call(Method::POST, "/v1/atlas/messages", Some(json!({"phone_number": "+14155550101", "text": "Hello Ada"}))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    assert_eq!(answer.data()["channel_id"], real_id, "answered where the customer wrote, not on the sandbox ({})", w.sandbox);
    assert_eq!(answer.data()["window_open"], true);
    let sends = w.sends(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.fake.sends().len(), 1, "the text reaches Graph once");
    assert_eq!(sends[0].phone_number_id(), Some("106540352242922"));
    assert_eq!(sends[0].bearer_token(), Some("token-106540352242922"));
    assert_eq!(sends[0].text_body(), Some("Hello Ada"));

    // The agent tool routes the same way and names the channel.
    let tool = w
        .call(
            Method::POST,
            "/agent/v1/tools/send_message_to_phone",
            Some(json!({"phone_number": "+14155550101", "text": "Anything else?"})),
        )
        .await;
    assert_eq!(tool.status, StatusCode::ACCEPTED, "{:?}", tool.body);
    assert_eq!(tool.data()["channel_id"], real_id);
    // A customer who never wrote gets the default channel (the sandbox here).
    let stranger = w
        .call(
            Method::POST,
            "/v1/atlas/messages",
            Some(json!({"phone_number": "+14155550199", "template_id": "hello_world", "category": "utility"})),
        )
        .await;
    assert_eq!(stranger.status, StatusCode::ACCEPTED, "the sandbox comes with hello_world: {:?}", stranger.body);
    assert_eq!(stranger.data()["channel_id"], w.sandbox.as_str());
});

on_both_backends!(two_numbers_of_one_app_behind_one_callback_url_land_on_their_own_channels, |w| {
    let first = w.connect("1001", json!({})).await;
    let second = w.connect("1002", json!({})).await;
    assert_eq!(first["is_default"], true, "the first real number replaces the sandbox as default");
    assert_eq!(second["is_default"], false);
    let (first, second) = (first["id"].as_str().unwrap().to_owned(), second["id"].as_str().unwrap().to_owned());
    let payload = batch(&[
        WebhookPayload::new("1001").text_message("14155550201", Some("Bo"), "wamid.N1", now(), "to the first"),
        WebhookPayload::new("1002").text_message("14155550202", Some("Cy"), "wamid.N2", now(), "to the second"),
        WebhookPayload::new("9999").text_message("14155550203", Some("Di"), "wamid.N3", now(), "to a number we do not have"),
    ]);
    // Every change arrives at the first number's URL.
    let answer = w.webhook(&first, &payload).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.data()["messages"], 2);
    assert_eq!(answer.data()["skipped"], 1);
    assert!(w.conversation_of(&first, "+14155550201").await.is_some(), "the first number's message is on the first channel");
    assert!(w.conversation_of(&second, "+14155550202").await.is_some(), "the second number's message is on the second channel");
    assert!(w.conversation_of(&first, "+14155550202").await.is_none(), "never on the wrong channel");
    assert!(
        w.conversations().await.iter().all(|c| c["customer"]["phone_number"] != "+14155550203"),
        "an unknown number's message is not stored anywhere"
    );
    let metrics = w.server.http.get(format!("{}/metrics", w.server.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("atlas_webhook_unrouted_changes_total 1"), "{metrics}");

    // The reply to the second customer goes out through the second number.
    let reply = w.call(Method::POST, "/v1/atlas/messages", Some(json!({"phone_number": "+14155550202", "text": "Hi Cy"}))).await;
    assert_eq!(reply.data()["channel_id"], second.as_str());
    let sends = w.sends(1).await;
    assert_eq!((sends[0].phone_number_id(), sends[0].bearer_token()), (Some("1002"), Some("token-1002")));
});

on_both_backends!(a_batch_with_poisoned_items_keeps_the_others, |w| {
    let channel = w.connect("2001", json!({})).await["id"].as_str().unwrap().to_owned();
    let payload = WebhookPayload::new("2001")
        .text_message("14155550301", Some("Ed"), "wamid.P1", now(), "first")
        .message("14155550301", None, json!({"from": "14155550301", "timestamp": now().to_string(), "type": "text", "text": {"body": "no id"}}))
        .message("not-a-number", None, json!({"from": "not-a-number", "id": "wamid.P3", "timestamp": now().to_string(), "type": "text", "text": {"body": "bad sender"}}))
        .message("14155550301", None, json!({"from": "14155550301", "id": "wamid.P4", "timestamp": "yesterday", "type": "text", "text": {"body": "bad time"}}))
        .text_message("14155550301", Some("Ed"), "wamid.P5", now(), "last")
        .status("wamid.UNKNOWN", "delivered", now(), "14155550301");
    let answer = w.webhook(&channel, &payload.to_json()).await;
    assert_eq!(answer.status, StatusCode::OK, "one bad item never fails the batch: {:?}", answer.body);
    assert_eq!(answer.data()["messages"], 2);
    assert_eq!(answer.data()["skipped"], 3);
    assert_eq!(answer.data()["statuses"], 1, "the status is kept (pending its message)");
    let conversation = w.conversation_of(&channel, "+14155550301").await.unwrap();
    let texts: Vec<Value> = w.messages(conversation["id"].as_str().unwrap()).await.iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts, [json!("last"), json!("first")]);
});

on_both_backends!(every_inbound_type_is_stored_with_its_content, |w| {
    let channel = w.connect("3001", json!({})).await["id"].as_str().unwrap().to_owned();
    let from = "14155550401";
    let t = now();
    let m = |id: &str, kind: &str, body: Value| {
        let mut message = json!({"from": from, "id": id, "timestamp": t.to_string(), "type": kind});
        for (k, v) in body.as_object().unwrap() {
            message[k] = v.clone();
        }
        message
    };
    let payload = WebhookPayload::new("3001")
        .message(from, Some("Flo"), m("w.1", "image", json!({"image": {"id": "IMG1", "mime_type": "image/jpeg", "sha256": "abc", "caption": "a photo"}})))
        .message(from, None, m("w.2", "audio", json!({"audio": {"id": "AUD1", "mime_type": "audio/ogg", "voice": true}})))
        .message(from, None, m("w.3", "video", json!({"video": {"id": "VID1", "mime_type": "video/mp4", "caption": "a clip"}})))
        .message(from, None, m("w.4", "document", json!({"document": {"id": "DOC1", "mime_type": "application/pdf", "filename": "invoice.pdf", "caption": "invoice"}})))
        .message(from, None, m("w.5", "sticker", json!({"sticker": {"id": "STK1", "mime_type": "image/webp", "animated": false}})))
        .message(from, None, m("w.6", "location", json!({"location": {"latitude": 38.7, "longitude": -9.1, "name": "Lisbon office", "address": "Rua 1"}})))
        .message(from, None, m("w.7", "contacts", json!({"contacts": [{"name": {"formatted_name": "Ana"}, "phones": [{"phone": "+351 1", "type": "CELL"}]}]})))
        .message(from, None, m("w.8", "interactive", json!({"interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}})))
        .message(from, None, m("w.9", "interactive", json!({"interactive": {"type": "list_reply", "list_reply": {"id": "r2", "title": "Tuesday", "description": "afternoon"}}})))
        .message(from, None, m("w.10", "button", json!({"button": {"payload": "STOP", "text": "Stop promotions"}})))
        .message(from, None, m("w.11", "reaction", json!({"reaction": {"message_id": "wamid.OUT1", "emoji": "👍"}})))
        .message(from, None, m("w.12", "unsupported", json!({"errors": [{"code": 131051, "title": "Message type unknown", "error_data": {"details": "Message type is currently not supported."}}]})));
    let answer = w.webhook(&channel, &payload.to_json()).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.data()["messages"], 12);
    let conversation = w.conversation_of(&channel, "+14155550401").await.unwrap();
    let messages = w.messages(conversation["id"].as_str().unwrap()).await;
    let by = |pid: &str| messages.iter().find(|m| m["provider_message_id"] == pid).cloned().expect(pid);
    let image = by("w.1");
    assert_eq!((image["kind"].clone(), image["text"].clone()), (json!("image"), json!("a photo")));
    assert_eq!(image["content"]["media_id"], "IMG1");
    assert_eq!(image["content"]["mime_type"], "image/jpeg");
    assert_eq!(by("w.2")["content"]["voice"], true);
    assert_eq!(by("w.3")["content"]["caption"], "a clip");
    assert_eq!(by("w.4")["content"]["filename"], "invoice.pdf");
    assert_eq!(by("w.5")["kind"], "sticker");
    let location = by("w.6");
    assert_eq!((location["content"]["latitude"].clone(), location["content"]["name"].clone()), (json!(38.7), json!("Lisbon office")));
    assert_eq!(by("w.7")["content"]["contacts"][0]["name"]["formatted_name"], "Ana");
    let button_reply = by("w.8");
    assert_eq!(
        (button_reply["kind"].clone(), button_reply["content"]["reply_type"].clone(), button_reply["content"]["id"].clone()),
        (json!("interactive"), json!("button_reply"), json!("yes"))
    );
    assert_eq!(by("w.9")["content"]["description"], "afternoon");
    assert_eq!((by("w.10")["content"]["payload"].clone(), by("w.10")["kind"].clone()), (json!("STOP"), json!("button")));
    assert_eq!((by("w.11")["content"]["emoji"].clone(), by("w.11")["content"]["message_id"].clone()), (json!("👍"), json!("wamid.OUT1")));
    assert_eq!(by("w.12")["content"]["code"], 131051);
});

on_both_backends!(media_interactive_and_read_receipts_reach_graph_in_metas_shape, |w| {
    let channel = w.connect("4001", json!({})).await["id"].as_str().unwrap().to_owned();
    let inbound = WebhookPayload::new("4001").text_message("14155550501", Some("Gus"), "wamid.IN-G", now(), "menu please");
    assert_eq!(w.webhook(&channel, &inbound.to_json()).await.status, StatusCode::OK);

    let media = w
        .call(
            Method::POST,
            "/v1/atlas/messages",
            Some(json!({"phone_number": "+14155550501",
            "media": {"type": "document", "link": "https://files.example/menu.pdf", "caption": "Our menu", "filename": "menu.pdf"}})),
        )
        .await;
    assert_eq!(media.status, StatusCode::ACCEPTED, "{:?}", media.body);
    assert_eq!(media.data()["kind"], "document");
    let sends = w.sends(1).await;
    assert_eq!(
        sends[0].body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "14155550501", "type": "document",
               "document": {"link": "https://files.example/menu.pdf", "caption": "Our menu", "filename": "menu.pdf"}})
    );

    let conversation = w.conversation_of(&channel, "+14155550501").await.unwrap()["id"].as_str().unwrap().to_owned();
    let interactive = w
        .call(
            Method::POST,
            "/agent/v1/tools/send_message",
            Some(json!({"conversation_id": conversation,
            "interactive": {"type": "button", "body": "Table for how many?", "footer": "Reply below",
                "buttons": [{"id": "two", "title": "Two"}, {"id": "four", "title": "Four"}]}})),
        )
        .await;
    assert_eq!(interactive.status, StatusCode::ACCEPTED, "{:?}", interactive.body);
    assert_eq!(interactive.data()["channel_id"], channel.as_str());
    let sends = w.sends(2).await;
    assert_eq!(
        sends[1].body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "14155550501", "type": "interactive",
               "interactive": {"type": "button", "body": {"text": "Table for how many?"}, "footer": {"text": "Reply below"},
                   "action": {"buttons": [{"type": "reply", "reply": {"id": "two", "title": "Two"}}, {"type": "reply", "reply": {"id": "four", "title": "Four"}}]}}})
    );
    let list = w
        .call(
            Method::POST,
            "/v1/atlas/messages",
            Some(json!({"phone_number": "+14155550501",
            "interactive": {"type": "list", "body": "Pick a day", "button": "Days",
                "sections": [{"title": "This week", "rows": [{"id": "tue", "title": "Tuesday", "description": "afternoon"}]}]}})),
        )
        .await;
    assert_eq!(list.status, StatusCode::ACCEPTED, "{:?}", list.body);
    let sends = w.sends(3).await;
    assert_eq!(
        sends[2].body["interactive"],
        json!({"type": "list", "body": {"text": "Pick a day"}, "action": {"button": "Days",
            "sections": [{"title": "This week", "rows": [{"id": "tue", "title": "Tuesday", "description": "afternoon"}]}]}})
    );

    // Bad rich content is a 400 naming the field, before anything is queued.
    let bad = w
        .call(
            Method::POST,
            "/v1/atlas/messages",
            Some(json!({"phone_number": "+14155550501", "media": {"type": "audio", "id": "A1", "caption": "no"}})),
        )
        .await;
    assert_eq!((bad.status, bad.body["error"]["details"]["fields"][0]["field"].clone()), (StatusCode::BAD_REQUEST, json!("media.caption")));
    // Outside the window (a customer who never wrote) media is WINDOW_CLOSED.
    let closed = w
        .call(Method::POST, "/v1/atlas/messages", Some(json!({"phone_number": "+14155550599", "media": {"type": "image", "id": "IMG"}})))
        .await;
    assert_eq!(closed.code(), "WINDOW_CLOSED");

    // The read receipt for the customer's message, through the outbox.
    let read = w.call(Method::POST, &format!("/v1/atlas/conversations/{conversation}/read"), Some(json!({}))).await;
    assert_eq!(read.status, StatusCode::ACCEPTED, "{:?}", read.body);
    assert_eq!(read.data()["provider_message_id"], "wamid.IN-G");
    let sends = w.sends(4).await;
    assert_eq!(sends[3].body, json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN-G"}));
    assert_eq!(sends[3].phone_number_id(), Some("4001"));
    let again = w.call(Method::POST, &format!("/v1/atlas/conversations/{conversation}/read"), Some(json!({}))).await;
    assert_eq!(again.data()["queued"], false, "the same message is marked read once");
});

fn meta_template(name: &str, status: &str) -> Value {
    json!({"name": name, "language": "en_US", "status": status, "category": "UTILITY", "id": format!("id-{name}"),
           "components": [{"type": "BODY", "text": "Hello {{1}}"}]})
}

on_both_backends!(templates_sync_from_the_account_and_components_are_checked_before_graph, |w| {
    let channel = w.connect("5001", json!({"waba_id": "102290129340398"})).await["id"].as_str().unwrap().to_owned();
    // 130 templates: two pages of Meta's listing (100 a page).
    let mut listed: Vec<Value> = (0..128).map(|i| meta_template(&format!("bulk_{i:03}"), "APPROVED")).collect();
    listed.push(meta_template("paused_one", "PAUSED"));
    listed.push(json!({"name": "order_shipped", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "id-os",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://x"]}},
            {"type": "BODY", "text": "Hi {{1}}, order {{2}} shipped"},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop"}, {"type": "URL", "text": "Track", "url": "https://shop.example/t/{{1}}"}]}
        ]}));
    w.fake.set_templates("102290129340398", listed.clone());
    let sync = w.call(Method::POST, &format!("/v1/atlas/channels/{channel}/templates/sync"), Some(json!({}))).await;
    assert_eq!(sync.status, StatusCode::OK, "{:?}", sync.body);
    assert_eq!((sync.data()["synced"].clone(), sync.data()["deleted"].clone()), (json!(130), json!(0)));
    let listings = w.fake.template_listings();
    assert_eq!(listings.len(), 2, "two pages");
    assert_eq!(listings[0].path, "/v23.0/102290129340398/message_templates");
    assert_eq!(listings[0].bearer_token(), Some("token-5001"));
    assert!(listings[1].query.as_deref().unwrap().contains("after=cursor100"), "{:?}", listings[1].query);
    let templates = w.call(Method::GET, "/v1/atlas/templates?limit=200", None).await.data()["templates"].as_array().unwrap().clone();
    let find = |name: &str| templates.iter().find(|t| t["name"] == name).cloned().unwrap();
    assert_eq!(find("paused_one")["status"], "paused");
    assert_eq!(find("order_shipped")["components"][0]["format"], "IMAGE");
    assert_eq!(find("hello_world")["status"], "approved", "the sandbox's hello_world is untouched");

    // Meta removed two: a second sync marks them deleted.
    listed.retain(|t| t["name"] != "bulk_000" && t["name"] != "bulk_001");
    w.fake.set_templates("102290129340398", listed);
    let resync = w.call(Method::POST, &format!("/v1/atlas/channels/{channel}/templates/sync"), Some(json!({}))).await;
    assert_eq!((resync.data()["synced"].clone(), resync.data()["deleted"].clone()), (json!(128), json!(2)));
    let templates = w.call(Method::GET, "/v1/atlas/templates?limit=200", None).await.data()["templates"].as_array().unwrap().clone();
    assert_eq!(templates.iter().find(|t| t["name"] == "bulk_000").unwrap()["status"], "deleted");

    // A send missing the image header is refused before Graph is called, naming the field.
    let base = json!({"phone_number": "+14155550601", "template_id": "order_shipped", "category": "utility", "parameters": ["Ana", "A-1"]});
    let mut missing = base.clone();
    missing["buttons"] = json!([{"index": 1, "type": "url", "text": "A-1"}]);
    let refused = w.call(Method::POST, "/v1/atlas/messages", Some(missing)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["details"]["fields"][0]["field"], "header");
    let mut wrong_button = base.clone();
    wrong_button["header"] = json!({"type": "image", "link": "https://shop.example/box.png"});
    wrong_button["buttons"] = json!([{"index": 0, "type": "url", "text": "A-1"}]);
    let refused = w.call(Method::POST, "/v1/atlas/messages", Some(wrong_button)).await;
    assert_eq!(refused.body["error"]["details"]["fields"][0]["field"], "buttons[0].type");
    assert!(w.fake.sends().is_empty(), "nothing reached Graph");

    let mut good = base;
    good["header"] = json!({"type": "image", "link": "https://shop.example/box.png"});
    good["buttons"] = json!([{"index": 0, "type": "quick_reply", "payload": "STOP-A-1"}, {"index": 1, "type": "url", "text": "A-1"}]);
    let sent = w.call(Method::POST, "/v1/atlas/messages", Some(good)).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{:?}", sent.body);
    let sends = w.sends(1).await;
    assert_eq!(
        sends[0].body["template"],
        json!({"name": "order_shipped", "language": {"code": "en_US"}, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://shop.example/box.png"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "A-1"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "STOP-A-1"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "A-1"}]}
        ]})
    );
});

on_both_backends!(the_default_channel_moves_and_a_disconnected_channel_refuses_sends, |w| {
    let first = w.connect("6001", json!({})).await["id"].as_str().unwrap().to_owned();
    let second = w.connect("6002", json!({})).await["id"].as_str().unwrap().to_owned();
    let template = json!({"template_id": "hello_world", "category": "utility"});
    let send_to = |phone: &str, extra: Value| {
        let mut body = template.clone();
        body["phone_number"] = json!(phone);
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        w.call(Method::POST, "/v1/atlas/messages", Some(body))
    };
    assert_eq!(send_to("+14155550701", json!({})).await.data()["channel_id"], first.as_str());

    let moved = w.call(Method::PATCH, &format!("/v1/atlas/channels/{second}"), Some(json!({"is_default": true}))).await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.data()["is_default"], true);
    let listed = w.call(Method::GET, "/v1/atlas/channels", None).await.data()["channels"].as_array().unwrap().clone();
    assert_eq!(listed.iter().filter(|c| c["is_default"] == true).count(), 1, "one default per organization");
    assert_eq!(
        send_to("+14155550702", json!({})).await.data()["channel_id"],
        second.as_str(),
        "a new customer goes out on the new default"
    );

    let inbound = WebhookPayload::new("6002").text_message("14155550703", Some("Hal"), "wamid.D1", now(), "hi");
    assert_eq!(w.webhook(&second, &inbound.to_json()).await.status, StatusCode::OK);
    let deleted = w.call(Method::DELETE, &format!("/v1/atlas/channels/{second}"), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.data()["status"], "disconnected");
    let got = w.call(Method::GET, &format!("/v1/atlas/channels/{second}"), None).await;
    assert_eq!((got.data()["status"].clone(), got.data()["is_default"].clone()), (json!("disconnected"), json!(false)));
    let default = w.call(Method::GET, &format!("/v1/atlas/channels/{first}"), None).await;
    assert_eq!(default.data()["is_default"], true, "the default moved to the newest remaining channel");

    let refused = send_to("+14155550703", json!({"channel_id": second})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("disconnected"));
    let conversation = w.conversation_of(&second, "+14155550703").await.expect("its conversations stay readable");
    let conversation = conversation["id"].as_str().unwrap();
    assert_eq!(w.messages(conversation).await.len(), 1);
    let reply = w
        .call(
            Method::POST,
            "/v1/atlas/actions",
            Some(json!({"conversation_id": conversation, "action_type": "reply", "payload": {"text": "hello?"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "a reply on a disconnected channel is refused: {:?}", reply.body);
    let rerouted = send_to("+14155550703", json!({})).await;
    assert_eq!(rerouted.data()["channel_id"], first.as_str(), "by phone, the customer falls back to the default channel");
    let webhook = w.webhook(&second, &inbound.to_json()).await;
    assert_eq!(webhook.status, StatusCode::NOT_FOUND, "Meta's webhook for a disconnected channel is refused");
});

on_both_backends!(an_external_event_carries_rich_content_too, |w| {
    let event = w
        .call(
            Method::POST,
            "/v1/atlas/events",
            Some(json!({"customer": {"phone_number": "+14155550801"}, "event_type": "message.received",
            "message": {"id": "ext-1", "content": {"type": "location", "latitude": 52.5, "longitude": 13.4, "name": "Berlin"}}})),
        )
        .await;
    assert_eq!(event.status, StatusCode::OK, "{:?}", event.body);
    assert_eq!(event.data()["channel_id"], w.sandbox.as_str(), "no channel_id: the default channel");
    let messages = w.messages(event.data()["conversation_id"].as_str().unwrap()).await;
    assert_eq!((messages[0]["kind"].clone(), messages[0]["text"].clone()), (json!("location"), json!("Berlin")));
    assert_eq!(messages[0]["content"]["latitude"], 52.5);
    let outbound = w
        .call(
            Method::POST,
            "/v1/atlas/events",
            Some(json!({"customer": {"phone_number": "+14155550801"}, "event_type": "message.received",
            "message": {"content": {"type": "outbound_media", "type_": "image"}}})),
        )
        .await;
    assert_eq!(outbound.status, StatusCode::BAD_REQUEST, "{:?}", outbound.body);
});
