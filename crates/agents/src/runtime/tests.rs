//! Specifications of the hosted loop and the `faq` engine over in-memory ports.

use super::*;
use atlas_scopes::{Actor, ScopeSet};
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Runs a future whose awaits are all on in-memory ports (ready at once).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A model that plays a script of replies and records each request.
#[derive(Debug, Default)]
struct Scripted {
    replies: Mutex<Vec<ChatReply>>,
    seen: Mutex<Vec<ChatRequest>>,
}

impl Scripted {
    fn new(mut replies: Vec<ChatReply>) -> Self {
        replies.reverse();
        Self { replies: Mutex::new(replies), seen: Mutex::default() }
    }
}

#[async_trait]
impl ChatModel for Scripted {
    async fn complete(&self, _: &ModelEndpoint, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        self.seen.lock().unwrap().push(request.clone());
        self.replies.lock().unwrap().pop().ok_or_else(|| ModelError::Upstream("script exhausted".into()))
    }
}

#[derive(Debug)]
struct Registry;

#[async_trait]
impl ToolRunner for Registry {
    fn tools(&self, _: &Principal) -> Vec<ToolDefinition> {
        vec![ToolDefinition { name: "search_knowledge".into(), description: "search".into(), parameters: json!({"type": "object"}) }]
    }
    async fn run(&self, _: &Principal, name: &str, arguments: Value) -> Result<Value, ToolFailure> {
        match name {
            "search_knowledge" => Ok(json!({"results": [{"content": format!("found {}", arguments["q"])}]})),
            other => Err(ToolFailure::new("UNKNOWN_TOOL", other)),
        }
    }
}

#[derive(Debug, Default)]
struct Recorder {
    sent: Mutex<Vec<String>>,
    drafts: Mutex<Vec<String>>,
    handoffs: Mutex<u32>,
}

#[async_trait]
impl Outbound for Recorder {
    async fn send(&self, text: &str) -> Result<Value, ToolFailure> {
        self.sent.lock().unwrap().push(text.into());
        Ok(json!({"queued": true}))
    }
    async fn draft(&self, text: &str) -> Result<Value, ToolFailure> {
        self.drafts.lock().unwrap().push(text.into());
        Ok(json!({"draft": true}))
    }
    async fn handoff(&self, _: Option<&str>) -> Result<Value, ToolFailure> {
        *self.handoffs.lock().unwrap() += 1;
        Ok(json!({"status": "handed_off"}))
    }
}

fn caller() -> Principal {
    Principal { org_id: OrgId::generate(), actor: Actor::System, scopes: ScopeSet::empty() }
}

fn endpoint() -> ModelEndpoint {
    ModelEndpoint { base_url: "http://model".into(), model: "m".into(), api_key: None }
}

fn call(id: &str, name: &str, arguments: Value) -> ChatReply {
    ChatReply { content: None, tool_calls: vec![ToolCall { id: id.into(), name: name.into(), arguments: arguments.to_string() }] }
}

fn say(text: &str) -> ChatReply {
    ChatReply { content: Some(text.into()), tool_calls: Vec::new() }
}

fn turn<'a>(caller: &'a Principal, maturity: Maturity, outbound: Option<&'a dyn Outbound>) -> Turn<'a> {
    Turn { caller, maturity, system_prompt: None, input: "opening hours?", conversation_id: None, outbound, reply_with_answer: false }
}

#[test]
fn each_tool_answer_carries_the_id_of_the_call_it_answers() {
    let model = Scripted::new(vec![
        call("call_a", "search_knowledge", json!({"q": "hours"})),
        call("call_b", "send_message", json!({"text": "We open at 9"})),
        say("done"),
    ]);
    let outbound = Recorder::default();
    let caller = caller();
    let done = block_on(run_hosted(&model, &endpoint(), &Registry, &turn(&caller, Maturity::Autonomous, Some(&outbound)))).unwrap();
    assert_eq!(done.outcome, Outcome::Answered);
    assert_eq!(done.answer.as_deref(), Some("done"));
    assert_eq!(done.tool_calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["call_a", "call_b"]);
    assert_eq!(*outbound.sent.lock().unwrap(), ["We open at 9"]);
    let seen = model.seen.lock().unwrap();
    let last = &seen.last().unwrap().messages;
    for (i, m) in last.iter().enumerate() {
        if m.role == ChatRole::Tool {
            let asked = &last[i - 1];
            assert_eq!(asked.role, ChatRole::Assistant);
            assert_eq!(asked.tool_calls[0].id, *m.tool_call_id.as_ref().unwrap());
        }
    }
    assert!(seen[0].tools.iter().any(|t| t.name == "send_message"), "the messaging tools are offered with a conversation");
}

#[test]
fn an_intern_send_becomes_a_draft() {
    let model = Scripted::new(vec![call("c1", "send_message", json!({"text": "Hi"})), say("ok")]);
    let outbound = Recorder::default();
    let caller = caller();
    let done = block_on(run_hosted(&model, &endpoint(), &Registry, &turn(&caller, Maturity::Intern, Some(&outbound)))).unwrap();
    assert_eq!(done.outcome, Outcome::Drafted);
    assert!(outbound.sent.lock().unwrap().is_empty());
    assert_eq!(*outbound.drafts.lock().unwrap(), ["Hi"]);
}

#[test]
fn the_loop_stops_after_six_model_calls() {
    let model = Scripted::new((0..10).map(|i| call(&format!("c{i}"), "search_knowledge", json!({"q": i}))).collect());
    let caller = caller();
    let done = block_on(run_hosted(&model, &endpoint(), &Registry, &turn(&caller, Maturity::Autonomous, None))).unwrap();
    assert_eq!(done.steps, MAX_STEPS);
    assert_eq!(model.seen.lock().unwrap().len(), MAX_STEPS);
    assert_eq!(done.outcome, Outcome::StepLimit);
}

#[test]
fn a_model_failure_is_returned() {
    let model = Scripted::new(Vec::new());
    let caller = caller();
    let failed = block_on(run_hosted(&model, &endpoint(), &Registry, &turn(&caller, Maturity::Autonomous, None)));
    assert!(matches!(failed, Err(ModelError::Upstream(_))));
}

#[derive(Debug)]
struct Corpus(Vec<KnowledgeHit>);

#[async_trait]
impl KnowledgeSearch for Corpus {
    async fn search(&self, _: OrgId, _: &str, limit: u32) -> Result<Vec<KnowledgeHit>, ToolFailure> {
        Ok(self.0.iter().take(limit as usize).cloned().collect())
    }
}

fn hit(score: f64) -> KnowledgeHit {
    KnowledgeHit { title: "Hours".into(), content: "We open at 9.".into(), score, document_id: "doc_1".into() }
}

#[test]
fn faq_answers_above_the_threshold_and_hands_off_below() {
    let caller = caller();
    let outbound = Recorder::default();
    let answered = block_on(run_faq(&Corpus(vec![hit(0.9)]), &turn(&caller, Maturity::Autonomous, Some(&outbound)), FAQ_THRESHOLD));
    assert_eq!(answered.outcome, Outcome::Answered);
    assert_eq!(*outbound.sent.lock().unwrap(), ["We open at 9."]);

    let outbound = Recorder::default();
    let low = block_on(run_faq(&Corpus(vec![hit(0.1)]), &turn(&caller, Maturity::Autonomous, Some(&outbound)), FAQ_THRESHOLD));
    assert_eq!(low.outcome, Outcome::HandedOff);
    assert!(outbound.sent.lock().unwrap().is_empty());
    assert_eq!(*outbound.handoffs.lock().unwrap(), 1);
}
