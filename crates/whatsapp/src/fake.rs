//! A local fake of the Graph API's send endpoint, for tests (cargo feature `fake`).
//!
//! This module owns [`FakeGraph`] (an axum server on `127.0.0.1:0`, spawned on the current
//! tokio runtime), its scripted [`Reply`]s, the [`ReceivedRequest`]s it records, and
//! [`WebhookPayload`], a builder of Meta-shaped (and signed) inbound webhook bodies.
//!
//! Behaviour, deterministic by construction:
//! - every request, whatever its path, is recorded (in arrival order, numbered from 0) *before*
//!   it is answered, so a request that is delayed or times out is still visible;
//! - `POST /{version}/{phone_number_id}/messages` takes the next scripted reply from a FIFO
//!   queue; when the queue is empty it gets the default reply ([`Reply::accept`] unless changed
//!   with [`FakeGraph::set_default`]);
//! - a read receipt (`POST …/messages` with `"status": "read"`) is scripted like a send and,
//!   accepted, answers Meta's `{"success": true}`;
//! - `GET /{version}/{waba_id}/message_templates` lists the templates set with
//!   [`FakeGraph::set_templates`] in Meta's documented shape (`data`, `paging.cursors.before` /
//!   `after`, and `paging.next` only while more follow), `limit` per page (default 25), the
//!   page after the `after` cursor; an unknown account answers 400 with Graph code 100;
//! - any other method or path is answered 400 with Graph code 100 ("Unsupported request") and
//!   consumes nothing from the script, so a client calling the wrong URL fails loudly;
//! - an accepted send answers Meta's shape, `{"messaging_product":"whatsapp","contacts":[{"input":
//!   to,"wa_id":to}],"messages":[{"id":"wamid.…"}]}`, with a fresh random `wamid.` id unless the
//!   reply names one ([`Reply::accept_with_wamid`]); the id is recorded in
//!   [`ReceivedRequest::wamid`].
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use atlas_whatsapp::fake::{FakeGraph, Reply};
//! use atlas_whatsapp::OutboundMessage;
//!
//! let graph = FakeGraph::start().await;
//! // the first two sends hit the throughput limit, the third is accepted
//! graph.script_times(Reply::graph_error(400, 130429), 2);
//! let client = graph.client();
//! let msg = OutboundMessage::Text { to: "15551234567".into(), body: "hi".into() };
//! assert!(client.send("1065", "token", &msg).await.unwrap_err().retryable);
//! assert!(client.send("1065", "token", &msg).await.is_err());
//! let accepted = client.send("1065", "token", &msg).await.unwrap();
//! let requests = graph.wait_for_requests(3, Duration::from_secs(1)).await;
//! assert_eq!(requests[2].wamid.as_deref(), Some(accepted.wamid.as_str()));
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};

use crate::client::{GraphClient, DEFAULT_API_VERSION};
use crate::webhook::signature_header_value;

/// What the fake answers to one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    outcome: Outcome,
    delay: Option<Duration>,
    retry_after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Accept { wamid: Option<String> },
    GraphError { http_status: u16, code: i64, subcode: Option<i64>, message: Option<String> },
    Raw { http_status: u16, body: String },
}

impl Reply {
    /// 200 with a fresh `wamid.…` id.
    pub fn accept() -> Self {
        Self::from(Outcome::Accept { wamid: None })
    }

    /// 200 with this id (for tests that want to predict it).
    pub fn accept_with_wamid(wamid: impl Into<String>) -> Self {
        Self::from(Outcome::Accept { wamid: Some(wamid.into()) })
    }

    /// Meta's error envelope with this HTTP status and Graph `code`, with Meta's title for
    /// the code as the message (`"(#130429) Rate limit hit"`).
    pub fn graph_error(http_status: u16, code: i64) -> Self {
        Self::from(Outcome::GraphError { http_status, code, subcode: None, message: None })
    }

    /// Any status and body, e.g. a proxy's HTML `502`.
    pub fn raw(http_status: u16, body: impl Into<String>) -> Self {
        Self::from(Outcome::Raw { http_status, body: body.into() })
    }

    /// 400, code 130429: Cloud API throughput reached.
    pub fn throughput_limited() -> Self {
        Self::graph_error(400, 130429)
    }

    /// 400, code 131047: more than 24 hours since the customer replied.
    pub fn re_engagement_required() -> Self {
        Self::graph_error(400, 131047)
    }

    /// 404, code 132001: the template does not exist in this language.
    pub fn template_does_not_exist() -> Self {
        Self::graph_error(404, 132001)
    }

    /// 401, code 190: the access token expired.
    pub fn access_token_expired() -> Self {
        Self::graph_error(401, 190).with_subcode(463)
    }

    /// 503, code 131016: service unavailable.
    pub fn service_unavailable() -> Self {
        Self::graph_error(503, 131016)
    }

    /// Sets `error.error_subcode` (Graph errors only).
    pub fn with_subcode(mut self, subcode: i64) -> Self {
        if let Outcome::GraphError { subcode: s, .. } = &mut self.outcome {
            *s = Some(subcode);
        }
        self
    }

    /// Replaces the error message (Graph errors only).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        if let Outcome::GraphError { message: m, .. } = &mut self.outcome {
            *m = Some(message.into());
        }
        self
    }

    /// Waits this long before answering (longer than the client's timeout to simulate one).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Adds a `Retry-After: <seconds>` header.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.to_string());
        self
    }

    /// The HTTP status this reply answers with.
    pub fn http_status(&self) -> u16 {
        match &self.outcome {
            Outcome::Accept { .. } => 200,
            Outcome::GraphError { http_status, .. } | Outcome::Raw { http_status, .. } => *http_status,
        }
    }
}

impl From<Outcome> for Reply {
    fn from(outcome: Outcome) -> Self {
        Reply { outcome, delay: None, retry_after: None }
    }
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    /// Arrival order, from 0.
    pub seq: usize,
    pub method: String,
    /// The path, e.g. `/v23.0/106540352242922/messages`.
    pub path: String,
    pub query: Option<String>,
    /// Header names lower-cased; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
    /// The body as text (lossy UTF-8).
    pub raw_body: String,
    /// The HTTP status the fake answered (or will answer, after a delay).
    pub response_status: u16,
    /// The `wamid` the fake returned, for accepted sends.
    pub wamid: Option<String>,
}

impl ReceivedRequest {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The token of `Authorization: Bearer <token>`.
    pub fn bearer_token(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }

    /// The `{phone_number_id}` of a `/{version}/{phone_number_id}/messages` path.
    pub fn phone_number_id(&self) -> Option<&str> {
        messages_path(&self.path).map(|(_, id)| id)
    }

    /// The `{version}` of a `/{version}/{phone_number_id}/messages` path.
    pub fn api_version(&self) -> Option<&str> {
        messages_path(&self.path).map(|(v, _)| v)
    }

    /// The body's `to`.
    pub fn to(&self) -> Option<&str> {
        self.body.get("to")?.as_str()
    }

    /// The body's `type` (`text` or `template`).
    pub fn message_type(&self) -> Option<&str> {
        self.body.get("type")?.as_str()
    }

    /// The body's `text.body`.
    pub fn text_body(&self) -> Option<&str> {
        self.body.get("text")?.get("body")?.as_str()
    }

    /// The body's `template.name`.
    pub fn template_name(&self) -> Option<&str> {
        self.body.get("template")?.get("name")?.as_str()
    }

    /// True for a send (`POST /{version}/{id}/messages`).
    pub fn is_send(&self) -> bool {
        self.method == "POST" && messages_path(&self.path).is_some()
    }
}

fn templates_path(path: &str) -> Option<&str> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let (_version, waba, last) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && last == "message_templates" && !waba.is_empty()).then_some(waba)
}

fn messages_path(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let (version, id, last) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && last == "messages" && !version.is_empty() && !id.is_empty()).then_some((version, id))
}

#[derive(Debug)]
struct Shared {
    state: Mutex<FakeState>,
    count: watch::Sender<usize>,
}

#[derive(Debug)]
struct FakeState {
    script: VecDeque<Reply>,
    default: Reply,
    received: Vec<ReceivedRequest>,
    next_seq: usize,
    /// Template listings by WhatsApp Business Account id.
    templates: BTreeMap<String, Vec<Value>>,
}

/// A running fake Graph API. Stops when dropped.
#[derive(Debug)]
pub struct FakeGraph {
    /// The base URL to configure a [`GraphClient`] with, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl FakeGraph {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime. Panics if it cannot bind
    /// (a test helper).
    pub async fn start() -> FakeGraph {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("fake Graph API: cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake Graph API: no local address");
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeState {
                script: VecDeque::new(),
                default: Reply::accept(),
                received: Vec::new(),
                next_seq: 0,
                templates: BTreeMap::new(),
            }),
            count: watch::channel(0).0,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        FakeGraph { url: format!("http://{addr}"), addr, shared, shutdown: Some(tx) }
    }

    /// The base URL (same as the `url` field).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client pointed at this fake, API version [`DEFAULT_API_VERSION`], 5 s timeout.
    pub fn client(&self) -> GraphClient {
        self.client_with_timeout(Duration::from_secs(5))
    }

    /// A client pointed at this fake with the given timeout.
    pub fn client_with_timeout(&self, timeout: Duration) -> GraphClient {
        GraphClient::new(&self.url, DEFAULT_API_VERSION, timeout).expect("fake Graph API: client configuration")
    }

    /// Appends replies to the script: the next sends get them in order, then the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// Appends `reply` `n` times (e.g. "the first 3 sends hit 130429, then success").
    pub fn script_times(&self, reply: Reply, n: usize) {
        self.script(std::iter::repeat_n(reply, n));
    }

    /// The reply once the script is exhausted (initially [`Reply::accept`]).
    pub fn set_default(&self, reply: Reply) {
        self.lock().default = reply;
    }

    /// The templates `GET /{version}/{waba_id}/message_templates` lists for `waba_id`: each a
    /// Meta template object (`{"name", "language", "status": "APPROVED", "category":
    /// "UTILITY", "components": [...], "id"}`). Replaces the account's earlier list.
    pub fn set_templates(&self, waba_id: &str, templates: Vec<Value>) {
        self.lock().templates.insert(waba_id.to_owned(), templates);
    }

    /// The template listings received (`GET …/message_templates`), in arrival order.
    pub fn template_listings(&self) -> Vec<ReceivedRequest> {
        self.lock().received.iter().filter(|r| r.method == "GET" && templates_path(&r.path).is_some()).cloned().collect()
    }

    /// Scripted replies not yet used.
    pub fn pending_script(&self) -> usize {
        self.lock().script.len()
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.lock().received.clone()
    }

    /// The sends (`POST /{version}/{id}/messages`) received so far, in arrival order.
    pub fn sends(&self) -> Vec<ReceivedRequest> {
        self.lock().received.iter().filter(|r| r.is_send()).cloned().collect()
    }

    /// Forgets the recorded requests and the remaining script, and restores the default reply.
    /// Sequence numbers keep counting.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.received.clear();
        state.script.clear();
        state.default = Reply::accept();
        drop(state);
        self.shared.count.send_replace(0);
    }

    /// Waits until at least `n` requests have been recorded and returns them all. Panics after
    /// `timeout`, listing what did arrive (for end-to-end tests where a worker sends in the
    /// background).
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        let mut rx = self.shared.count.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|count| *count >= n)).await;
        if !matches!(reached, Ok(Ok(_))) {
            let got = self.received();
            panic!("fake Graph API: expected at least {n} request(s) within {timeout:?}, got {}: {:#?}", got.len(), got);
        }
        self.received()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let is_send = method == Method::POST && messages_path(&path).is_some();
    let listing = if method == Method::GET { templates_path(&path).map(str::to_owned) } else { None };
    let reply = {
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let listed = listing.as_ref().map(|waba| template_page(&state, waba, uri.query()));
        let reply = if let Some(Some(page)) = &listed {
            Reply::raw(200, page.to_string())
        } else if is_send {
            let next = state.script.pop_front();
            next.unwrap_or_else(|| state.default.clone())
        } else {
            Reply::graph_error(400, 100).with_message(format!(
                "Unsupported {method} request to {path}: the fake Graph API only serves POST /{{version}}/{{phone_number_id}}/messages"
            ))
        };
        let reply = match reply.outcome {
            Outcome::Accept { wamid: None } => {
                Reply { outcome: Outcome::Accept { wamid: Some(format!("wamid.FAKE{}", uuid::Uuid::new_v4().simple())) }, ..reply }
            }
            _ => reply,
        };

        let mut recorded_headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            recorded_headers
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.received.push(ReceivedRequest {
            seq,
            method: method.to_string(),
            path: path.clone(),
            query: uri.query().map(str::to_owned),
            headers: recorded_headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw_body: String::from_utf8_lossy(&body).into_owned(),
            response_status: reply.http_status(),
            wamid: match &reply.outcome {
                Outcome::Accept { wamid } => wamid.clone(),
                _ => None,
            },
        });
        let len = state.received.len();
        drop(state);
        shared.count.send_replace(len);
        reply
    };

    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    render(&reply, &body)
}

fn render(reply: &Reply, request_body: &[u8]) -> Response {
    let status = StatusCode::from_u16(reply.http_status()).unwrap_or(StatusCode::OK);
    let mut response = match &reply.outcome {
        Outcome::Accept { .. }
            if serde_json::from_slice::<Value>(request_body).ok().and_then(|r| r.get("status").cloned()) == Some(json!("read")) =>
        {
            (status, axum::Json(json!({ "success": true }))).into_response()
        }
        Outcome::Accept { wamid } => {
            let request = serde_json::from_slice::<Value>(request_body).unwrap_or(Value::Null);
            let to = request.get("to").and_then(Value::as_str).unwrap_or_default();
            let mut message = json!({ "id": wamid });
            if request.get("type").and_then(Value::as_str) == Some("template") {
                message["message_status"] = json!("accepted");
            }
            (
                status,
                axum::Json(json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{ "input": to, "wa_id": to }],
                    "messages": [message],
                })),
            )
                .into_response()
        }
        Outcome::GraphError { code, subcode, message, .. } => {
            let message = message.clone().unwrap_or_else(|| format!("(#{code}) {}", title_of(*code)));
            let mut error = json!({
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {
                    "messaging_product": "whatsapp",
                    "details": format!("{} (fake Graph API)", title_of(*code)),
                },
                "fbtrace_id": "AFakeTraceId000000000000",
            });
            if let Some(subcode) = subcode {
                error["error_subcode"] = json!(subcode);
            }
            (status, axum::Json(json!({ "error": error }))).into_response()
        }
        Outcome::Raw { body, .. } => {
            let mut response = (status, body.clone()).into_response();
            if serde_json::from_str::<Value>(body).is_ok() {
                response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            }
            response
        }
    };
    if let Some(retry_after) = &reply.retry_after {
        if let Ok(v) = HeaderValue::from_str(retry_after) {
            response.headers_mut().insert("retry-after", v);
        }
    }
    response
}

/// One page of an account's template listing, in Meta's shape; `None` for an unknown account.
fn template_page(state: &FakeState, waba_id: &str, query: Option<&str>) -> Option<Value> {
    let templates = state.templates.get(waba_id)?;
    let mut limit = 25usize;
    let mut start = 0usize;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => limit = value.parse().unwrap_or(25).clamp(1, 1000),
            "after" => start = value.strip_prefix("cursor").and_then(|n| n.parse().ok()).unwrap_or(0),
            _ => {}
        }
    }
    let end = (start + limit).min(templates.len());
    let data: Vec<Value> = templates.get(start.min(end)..end).unwrap_or_default().to_vec();
    let mut paging = json!({ "cursors": { "before": format!("cursor{start}"), "after": format!("cursor{end}") } });
    if end < templates.len() {
        paging["next"] =
            json!(format!("https://graph.facebook.com/{DEFAULT_API_VERSION}/{waba_id}/message_templates?limit={limit}&after=cursor{end}"));
    }
    Some(json!({ "data": data, "paging": paging }))
}

/// Meta's title for the error codes tests commonly script.
fn title_of(code: i64) -> &'static str {
    match code {
        1 => "API Unknown",
        2 => "API Service",
        4 => "API Too Many Calls",
        100 => "Invalid parameter",
        190 => "Access token has expired",
        80007 => "Rate limit issues",
        130429 => "Rate limit hit",
        131000 => "Something went wrong",
        131016 => "Service unavailable",
        131026 => "Message Undeliverable",
        131030 => "Recipient phone number not in allowed list",
        131047 => "Re-engagement message",
        131051 => "Unsupported message type",
        131052 => "Media download error",
        131053 => "Media upload error",
        131056 => "(Business Account, Consumer Account) pair rate limit hit",
        132000 => "Number of parameters does not match the expected number of params",
        132001 => "Template name does not exist in the translation",
        132015 => "Template is Paused",
        132016 => "Template is Disabled",
        133010 => "Phone number Not Registered",
        _ => "Error",
    }
}

/// Builds a Meta-shaped webhook body (one entry, one `messages` change) for inbound tests,
/// and signs it like Meta does.
///
/// ```
/// use atlas_whatsapp::fake::WebhookPayload;
/// use atlas_whatsapp::{parse_webhook, verify_signature};
///
/// let (body, signature) = WebhookPayload::new("106540352242922")
///     .text_message("15551234567", Some("Ada"), "wamid.IN1", 1_700_000_000, "hello")
///     .status("wamid.OUT1", "read", 1_700_000_005, "15551234567")
///     .signed(b"app-secret");
/// assert!(verify_signature(b"app-secret", &body, Some(&signature)));
/// let batch = parse_webhook(&body).unwrap();
/// assert_eq!(batch.messages[0].text.as_deref(), Some("hello"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookPayload {
    phone_number_id: String,
    display_phone_number: String,
    waba_id: String,
    contacts: Vec<Value>,
    messages: Vec<Value>,
    statuses: Vec<Value>,
}

impl WebhookPayload {
    /// An empty payload for our number `phone_number_id`.
    pub fn new(phone_number_id: impl Into<String>) -> Self {
        WebhookPayload {
            phone_number_id: phone_number_id.into(),
            display_phone_number: "15550000000".into(),
            waba_id: "102290129340398".into(),
            contacts: Vec::new(),
            messages: Vec::new(),
            statuses: Vec::new(),
        }
    }

    /// Adds a text message from `from` (and its contact, once per sender, when a name is given).
    pub fn text_message(self, from: &str, profile_name: Option<&str>, wamid: &str, unix_seconds: i64, body: &str) -> Self {
        self.message(
            from,
            profile_name,
            json!({
                "from": from,
                "id": wamid,
                "timestamp": unix_seconds.to_string(),
                "type": "text",
                "text": { "body": body },
            }),
        )
    }

    /// Adds any message object as Meta would send it (its `from` must be set for the contact).
    pub fn message(mut self, from: &str, profile_name: Option<&str>, message: Value) -> Self {
        if let Some(name) = profile_name {
            let known = self.contacts.iter().any(|c| c.get("wa_id").and_then(Value::as_str) == Some(from));
            if !known {
                self.contacts.push(json!({ "profile": { "name": name }, "wa_id": from }));
            }
        }
        self.messages.push(message);
        self
    }

    /// Adds a status (`sent`, `delivered`, `read`, `failed`…) for one of our messages.
    pub fn status(mut self, wamid: &str, status: &str, unix_seconds: i64, recipient_id: &str) -> Self {
        self.statuses.push(json!({
            "id": wamid,
            "status": status,
            "timestamp": unix_seconds.to_string(),
            "recipient_id": recipient_id,
        }));
        self
    }

    /// Adds a `failed` status carrying `errors[]` with this code and title (e.g. 131047,
    /// "Re-engagement message").
    pub fn failed_status(mut self, wamid: &str, unix_seconds: i64, recipient_id: &str, code: i64, title: &str) -> Self {
        self.statuses.push(json!({
            "id": wamid,
            "status": "failed",
            "timestamp": unix_seconds.to_string(),
            "recipient_id": recipient_id,
            "errors": [{
                "code": code,
                "title": title,
                "message": title,
                "error_data": { "details": format!("{title} (fake)") },
            }],
        }));
        self
    }

    /// The payload as JSON.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": self.display_phone_number,
                "phone_number_id": self.phone_number_id,
            },
        });
        if !self.contacts.is_empty() {
            value["contacts"] = json!(self.contacts);
        }
        if !self.messages.is_empty() {
            value["messages"] = json!(self.messages);
        }
        if !self.statuses.is_empty() {
            value["statuses"] = json!(self.statuses);
        }
        json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": self.waba_id,
                "changes": [{ "value": value, "field": "messages" }],
            }],
        })
    }

    /// The payload as bytes (the raw body to POST).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("JSON values serialize")
    }

    /// The body and its `X-Hub-Signature-256` value under `app_secret`.
    pub fn signed(&self, app_secret: &[u8]) -> (Vec<u8>, String) {
        let body = self.to_bytes();
        let signature = signature_header_value(app_secret, &body);
        (body, signature)
    }
}
