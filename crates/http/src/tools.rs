//! The HTTP side's [`ToolHost`]: runs each tool of the one registry (`atlas-tools`) through the
//! same flows as its REST route: the same use cases, validation, idempotency (a tool's key is
//! scoped to the path `/tools/<name>`; `idempotency_key` in the arguments) and runs (named
//! `tools.<name>`, one per call, reads included). An answer's envelope becomes the tool's
//! result: its `data` on success; a business refusal (`WINDOW_CLOSED`,
//! `CONVERSATION_HANDED_OFF`, `NOT_FOUND`, a missing scope…) becomes
//! [`ToolError::Refused`] with the API error code, a field error [`ToolError::Invalid`], and a
//! 5xx [`ToolError::Unavailable`]. The tool manifest, hosted agents and the MCP server all call
//! tools here.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::typed;
use crate::messaging::{actions, agent_tools, conversations};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use crate::{incidents, knowledge, request_id, tasks};
use async_trait::async_trait;
use atlas_conversations::ConversationId;
use atlas_scopes::Principal;
use atlas_tasks::{TaskPatch, TaskStatus};
use atlas_tools::{ToolError, ToolHost};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The largest answer a tool call reads back (a context with 20 messages is far below).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Runs tool calls against the application's use cases.
#[derive(Debug, Clone)]
pub struct HttpToolHost {
    state: AppState,
}

impl HttpToolHost {
    /// The host over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// The tool host the agent runtime and the MCP server use.
pub fn tool_host(state: &AppState) -> Arc<dyn ToolHost> {
    Arc::new(HttpToolHost::new(state.clone()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationArgs {
    conversation_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `idempotency_key` is read from the raw arguments by `Mutation::begin`
struct DraftArgs {
    conversation_id: String,
    text: String,
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `reason` is kept in the run's request; `idempotency_key` as above
struct HandoffArgs {
    conversation_id: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageStatusArgs {
    provider_message_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentArgs {
    incident_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `idempotency_key` is read from the raw arguments by `Mutation::begin`
struct TaskStatusArgs {
    task_id: String,
    status: TaskStatus,
    #[serde(default)]
    idempotency_key: Option<String>,
}

fn conversation(text: &str) -> Result<ConversationId, ApiError> {
    text.parse().map_err(|_| ApiError::field("conversation_id", "is not a conversation id (conv_…)"))
}

/// An envelope answer as a tool result.
async fn outcome(response: Response) -> Result<Value, ToolError> {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .map_err(|e| ToolError::Unavailable(format!("reading the answer: {e}")))?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| ToolError::Unavailable(format!("reading the answer: {e}")))?;
    if status.is_success() {
        return Ok(body.get("data").cloned().unwrap_or(Value::Null));
    }
    let error = body.get("error").cloned().unwrap_or_default();
    let code = error.get("code").and_then(Value::as_str).unwrap_or("INTERNAL_ERROR").to_owned();
    let message = error.get("message").and_then(Value::as_str).unwrap_or("the call failed").to_owned();
    let details = error.get("details").cloned().unwrap_or_else(|| json!({}));
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || code == "IDEMPOTENCY_IN_PROGRESS" {
        return Err(ToolError::Unavailable(message));
    }
    if code == "VALIDATION_ERROR" {
        if let Some(field) = details.pointer("/fields/0/field").and_then(Value::as_str) {
            return Err(ToolError::Invalid { field: field.to_owned(), message });
        }
    }
    Err(ToolError::Refused { code, message, details })
}

impl HttpToolHost {
    /// Starts a mutating tool call under the idempotency of route `route_operation`, its run
    /// named `tools.<name>`.
    async fn begin(&self, caller: &Principal, route_operation: &str, name: &str, raw: &Value) -> Result<Box<Mutation>, Response> {
        match Mutation::begin(&self.state, spec(route_operation), caller, &HeaderMap::new(), raw).await {
            Ok(Started::Execute(mut m)) => {
                m.set_operation(format!("tools.{name}"));
                Ok(m)
            }
            Ok(Started::Answer(r)) => Err(r),
            Err(e) => Err(e.into_response()),
        }
    }

    /// Records the run `tools.<name>` of a read (succeeded, or failed with the refusal) and
    /// answers with it.
    async fn read(&self, caller: &Principal, route_operation: &str, name: &str, result: Result<Value, ApiError>) -> Response {
        let mut run = Mutation::unkeyed(&self.state, spec(route_operation), Some(caller.org_id), caller.actor);
        run.set_operation(format!("tools.{name}"));
        match result {
            Ok(data) => {
                let entry = run.entry(None, None, StatusCode::OK, &data, None, None);
                if let Err(e) = self.state.runs.record(&entry).await {
                    tracing::warn!(error = ?e, tool = name, "the tool call's run was not recorded");
                }
                Envelope::ok(data).into_response()
            }
            Err(e) => run.fail(e).await,
        }
    }

    async fn dispatch(&self, caller: &Principal, name: &str, args: Value) -> Response {
        let state = &self.state;
        match name {
            "search_knowledge" => {
                let result = async {
                    let a: SearchArgs = typed(&args)?;
                    if a.query.trim().is_empty() {
                        return Err(ApiError::field("query", "must not be blank"));
                    }
                    let results = knowledge::search_hits(state, caller.org_id, &a.query, a.limit).await?;
                    Ok::<Value, ApiError>(json!({"results": results}))
                }
                .await;
                self.read(caller, "knowledge.search", name, result).await
            }
            "get_conversation" => {
                let result = async {
                    let a: ConversationArgs = typed(&args)?;
                    let id = a.conversation_id.parse().map_err(|_| ApiError::not_found("conversation"))?;
                    Ok::<Value, ApiError>(json!(conversations::load_context(state, caller, id).await?))
                }
                .await;
                self.read(caller, "context.get", name, result).await
            }
            "get_message_status" => {
                let result = async {
                    let a: MessageStatusArgs = typed(&args)?;
                    let answer =
                        agent_tools::message_status(State(state.clone()), Caller(caller.clone()), Path(a.provider_message_id)).await?;
                    Ok::<Value, ApiError>(outcome(answer).await.unwrap_or_default())
                }
                .await;
                self.read(caller, "tools.message_status", name, result).await
            }
            "get_incident" => {
                let result = async {
                    let a: IncidentArgs = typed(&args)?;
                    let answer = incidents::get(State(state.clone()), Caller(caller.clone()), Path(a.incident_id)).await?;
                    Ok::<Value, ApiError>(outcome(answer).await.unwrap_or_default())
                }
                .await;
                self.read(caller, "incidents.get", name, result).await
            }
            "send_message" => match typed::<crate::messaging::ConversationSendBody>(&args) {
                Ok(_) => agent_tools::send_in_conversation(state, caller, &HeaderMap::new(), &args, "tools.send_message").await,
                Err(e) => e.into_response(),
            },
            "send_message_to_phone" => match typed::<crate::messaging::PhoneSendBody>(&args) {
                Ok(_) => agent_tools::send_to_phone(state, caller, &HeaderMap::new(), &args, "tools.send_message_to_phone").await,
                Err(e) => e.into_response(),
            },
            "draft_message" => {
                let prepared = typed::<DraftArgs>(&args).and_then(|a| Ok((conversation(&a.conversation_id)?, a.text)));
                match prepared {
                    Ok((id, text)) => {
                        actions::draft(state, caller, &HeaderMap::new(), &args, id, &text, ("actions.execute", "tools.draft_message")).await
                    }
                    Err(e) => e.into_response(),
                }
            }
            "handoff" => match typed::<HandoffArgs>(&args).and_then(|a| conversation(&a.conversation_id)) {
                Ok(id) => actions::handoff(state, caller, &HeaderMap::new(), &args, id, ("actions.execute", "tools.handoff")).await,
                Err(e) => e.into_response(),
            },
            "create_incident" => match typed::<incidents::CreateIncidentBody>(&args) {
                Ok(body) => match self.begin(caller, "incidents.create", name, &args).await {
                    Ok(m) => incidents::create_incident(state, caller, m, body).await,
                    Err(r) => r,
                },
                Err(e) => e.into_response(),
            },
            "create_task" => {
                let body = match typed::<tasks::CreateTaskBody>(&args) {
                    Ok(b) => b,
                    Err(e) => return e.into_response(),
                };
                let Some(project) = body.project_id.clone() else {
                    return ApiError::field("project_id", "is required (the project's id or key)").into_response();
                };
                let mutation = match self.begin(caller, "tasks.create", name, &args).await {
                    Ok(m) => m,
                    Err(r) => return r,
                };
                match tasks::new_task(atlas_tasks::ProjectRef::parse(&project), body) {
                    Ok(new) => tasks::create_task(state, caller, mutation, new).await,
                    Err(e) => mutation.fail(e).await,
                }
            }
            "update_task_status" => {
                let prepared = typed::<TaskStatusArgs>(&args).and_then(|a| Ok((tasks::task_id(&a.task_id)?, a.status)));
                let (id, status) = match prepared {
                    Ok(p) => p,
                    Err(e) => return e.into_response(),
                };
                match self.begin(caller, "tasks.set_status", name, &args).await {
                    Ok(m) => tasks::apply(state, caller, m, id, TaskPatch { status: Some(status), ..TaskPatch::default() }, None).await,
                    Err(r) => r,
                }
            }
            other => ApiError::internal(format!("tool {other} is in the registry but has no handler")).into_response(),
        }
    }
}

#[async_trait]
impl ToolHost for HttpToolHost {
    async fn call(&self, caller: &Principal, name: &str, arguments: Value) -> Result<Value, ToolError> {
        let Some(tool) = atlas_tools::find(name) else {
            return Err(ToolError::Unknown(name.to_owned()));
        };
        if !caller.has(tool.scope) {
            return Err(ToolError::Refused {
                code: "FORBIDDEN".into(),
                message: format!("this credential lacks the scope `{}`", tool.scope),
                details: json!({"missing_scope": tool.scope.as_str()}),
            });
        }
        let arguments = if arguments.is_null() { json!({}) } else { arguments };
        if !arguments.is_object() {
            return Err(ToolError::Invalid { field: "arguments".into(), message: "must be a JSON object".into() });
        }
        let path = format!("/tools/{name}");
        let response = request_id::within(String::new(), path, self.dispatch(caller, name, arguments)).await;
        outcome(response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn of(status: StatusCode, body: Value) -> Result<Value, ToolError> {
        outcome((status, axum::Json(body)).into_response()).await
    }

    #[tokio::test]
    async fn answers_become_results_and_refusals_keep_their_code() {
        assert_eq!(of(StatusCode::ACCEPTED, json!({"ok": true, "data": {"queued": true}})).await.unwrap(), json!({"queued": true}));
        let refused =
            of(StatusCode::UNPROCESSABLE_ENTITY, json!({"ok": false, "error": {"code": "WINDOW_CLOSED", "message": "closed"}})).await;
        assert!(matches!(refused, Err(ToolError::Refused { ref code, .. }) if code == "WINDOW_CLOSED"), "{refused:?}");
        let invalid = of(
            StatusCode::BAD_REQUEST,
            json!({"ok": false, "error": {"code": "VALIDATION_ERROR", "message": "bad", "details": {"fields": [{"field": "text", "message": "bad"}]}}}),
        )
        .await;
        assert!(matches!(invalid, Err(ToolError::Invalid { ref field, .. }) if field == "text"), "{invalid:?}");
        let down =
            of(StatusCode::SERVICE_UNAVAILABLE, json!({"ok": false, "error": {"code": "SERVICE_UNAVAILABLE", "message": "down"}})).await;
        assert!(matches!(down, Err(ToolError::Unavailable(_))));
    }

    #[test]
    fn every_registered_tool_names_a_route_its_run_and_idempotency_use() {
        // The routes the dispatch borrows their contract from exist (spec panics otherwise).
        for op in [
            "knowledge.search",
            "context.get",
            "tools.message_status",
            "incidents.get",
            "tools.send_message",
            "tools.send_message_to_phone",
            "actions.execute",
            "incidents.create",
            "tasks.create",
            "tasks.set_status",
        ] {
            assert_eq!(spec(op).operation, op);
        }
    }
}
