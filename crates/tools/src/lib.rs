//! The one tool registry: every tool an agent can call, with its name, description, the JSON
//! Schema of its arguments and the scope a caller needs ([`registry`]), filtered by a caller's
//! scopes ([`allowed`]) and written as OpenAI function definitions ([`openai_functions`]); and
//! the [`ToolHost`] port that runs one call. The tool manifest (`GET /agent/v1/tools/manifest`),
//! the hosted agents and the MCP server (`/mcp`) all read this one list, so a tool is described
//! once, in one shape. Pure: no runtime, database or HTTP.

mod schemas;

use async_trait::async_trait;
use atlas_scopes::{Principal, Scope, ScopeSet};
use serde_json::{json, Value};

/// One tool: what it is called, what it does, the JSON Schema (an object schema) of its
/// arguments, and the scope a caller needs to see and call it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// A JSON Schema object (`{"type": "object", "properties": {…}, "required": […]}`).
    pub parameters: Value,
    /// The scope a caller needs.
    pub scope: Scope,
}

/// Every tool, in a stable order (messaging first, then knowledge, operations and work).
pub fn registry() -> Vec<ToolSpec> {
    schemas::all()
}

/// The tool named `name`, if the registry has one.
pub fn find(name: &str) -> Option<ToolSpec> {
    registry().into_iter().find(|t| t.name == name)
}

/// The tools a caller holding `scopes` may see and call, in the registry's order.
pub fn allowed(scopes: &ScopeSet) -> Vec<ToolSpec> {
    registry().into_iter().filter(|t| scopes.contains(t.scope)).collect()
}

/// OpenAI function-tool definitions: `[{"type": "function", "function": {"name",
/// "description", "parameters"}}]`.
pub fn openai_functions(tools: &[ToolSpec]) -> Value {
    Value::Array(
        tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect(),
    )
}

/// Why a tool call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// No tool has this name (or the caller may not see it).
    #[error("unknown tool {0}")]
    Unknown(String),
    /// An argument is malformed (`VALIDATION_ERROR` naming `field`).
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// A business rule refused the call (`WINDOW_CLOSED`, `CONVERSATION_HANDED_OFF`,
    /// `NOT_FOUND`, `FORBIDDEN`…): the API error code, its message and details.
    #[error("{message}")]
    Refused { code: String, message: String, details: Value },
    /// The call could not run now (a store or provider failure); a retry may succeed.
    #[error("{0}")]
    Unavailable(String),
}

impl ToolError {
    /// The API error code this error answers with.
    pub fn code(&self) -> &str {
        match self {
            ToolError::Unknown(_) => "NOT_FOUND",
            ToolError::Invalid { .. } => "VALIDATION_ERROR",
            ToolError::Refused { code, .. } => code,
            ToolError::Unavailable(_) => "SERVICE_UNAVAILABLE",
        }
    }

    /// The error as a tool result shows it to a model: `{"error": {"code", "message",
    /// "details"}}`.
    pub fn to_json(&self) -> Value {
        let details = match self {
            ToolError::Invalid { field, .. } => json!({"field": field}),
            ToolError::Refused { details, .. } => details.clone(),
            _ => json!({}),
        };
        json!({"error": {"code": self.code(), "message": self.to_string(), "details": details}})
    }
}

/// Runs tool calls for a caller, through the same use cases (and the same runs and
/// idempotency rules) as the equivalent REST routes.
#[async_trait]
pub trait ToolHost: Send + Sync {
    /// Calls tool `name` with `arguments` (a JSON object) as `caller`.
    ///
    /// # Errors
    /// `Unknown` for a tool the registry lacks or the caller's scopes hide; `Invalid` for bad
    /// arguments; `Refused` for a business refusal; `Unavailable` for a failure a retry may
    /// cure.
    async fn call(&self, caller: &Principal, name: &str, arguments: Value) -> Result<Value, ToolError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_schema_is_an_object_schema() {
        let tools = registry();
        let mut names: Vec<&str> = tools.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), tools.len(), "duplicate tool names");
        for t in &tools {
            assert_eq!(t.parameters["type"], "object", "{}", t.name);
            assert!(t.parameters["properties"].is_object(), "{}", t.name);
            for required in t.parameters["required"].as_array().into_iter().flatten() {
                let field = required.as_str().unwrap();
                assert!(t.parameters["properties"].get(field).is_some(), "{} requires undeclared {field}", t.name);
            }
            assert!(!t.description.is_empty());
            assert!(t.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", t.name);
        }
    }

    #[test]
    fn the_issue_s_tools_are_all_there() {
        for name in [
            "search_knowledge",
            "get_conversation",
            "send_message",
            "send_message_to_phone",
            "draft_message",
            "handoff",
            "get_message_status",
        ] {
            assert!(find(name).is_some(), "{name} missing");
        }
    }

    #[test]
    fn allowed_keeps_exactly_the_tools_whose_scope_is_held() {
        let scopes = ScopeSet::parse(["atlas.knowledge.read"]).unwrap();
        let names: Vec<&str> = allowed(&scopes).iter().map(|t| t.name).collect();
        assert_eq!(names, vec!["search_knowledge"]);
        assert!(allowed(&ScopeSet::empty()).is_empty());
        let all = ScopeSet::organization_admin();
        assert_eq!(allowed(&all).len(), registry().iter().filter(|t| all.contains(t.scope)).count());
    }

    #[test]
    fn openai_functions_have_the_openai_shape() {
        let f = openai_functions(&registry());
        let list = f.as_array().unwrap();
        assert_eq!(list.len(), registry().len());
        for (item, spec) in list.iter().zip(registry()) {
            assert_eq!(item["type"], "function");
            assert_eq!(item["function"]["name"], spec.name);
            assert_eq!(item["function"]["parameters"], spec.parameters);
        }
    }
}
