//! The MCP server at `/mcp` (Model Context Protocol, streamable HTTP through the `rmcp` crate):
//! stateless, JSON responses, `initialize`, `tools/list` and `tools/call` over the one tool
//! registry, run by the same [`ToolHost`] as the hosted agents. A bearer credential (API key or
//! access token) is required: without a valid one the answer is 401 with `WWW-Authenticate:
//! Bearer`. `tools/list` shows the tools the credential's scopes allow; a business refusal is a
//! tool result with `isError: true` and the API error (`{"error": {"code", "message",
//! "details"}}`); an unknown tool is a JSON-RPC invalid-params error. The `Host` header must be
//! one of the configured allowed hosts (`ATLAS_MCP_ALLOWED_HOSTS`; DNS-rebinding protection).
//! Not an envelope route and not in the route table: it speaks JSON-RPC.

use crate::auth;
use crate::request_id;
use crate::state::AppState;
use atlas_scopes::Principal;
use atlas_tools::{ToolError, ToolHost};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use std::sync::Arc;

/// Where the MCP server answers.
pub const MCP_PATH: &str = "/mcp";

/// The `Host` values `/mcp` accepts by default: loopback only.
pub const DEFAULT_ALLOWED_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// What the guard of `/mcp` found: the caller and the request's id, carried to the tool calls
/// (which the transport runs on tasks of their own).
#[derive(Debug, Clone)]
struct McpCaller {
    principal: Principal,
    request_id: String,
}

/// The MCP handler: the registry's tools, run by the host.
#[derive(Clone)]
struct AtlasMcp {
    host: Arc<dyn ToolHost>,
}

fn caller(context: &RequestContext<RoleServer>) -> Result<McpCaller, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<McpCaller>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the request carries no authenticated caller", None))
}

/// A registry tool as MCP lists it.
fn mcp_tool(spec: &atlas_tools::ToolSpec) -> Tool {
    let schema = spec.parameters.as_object().cloned().unwrap_or_default();
    Tool::new(spec.name, spec.description, Arc::new(schema))
}

impl ServerHandler for AtlasMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("atlas", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Atlas: WhatsApp messaging under the 24-hour window rules, knowledge search, operations and work. \
                 The tools listed are those your credential's scopes allow.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&context)?;
        let tools = atlas_tools::allowed(&caller.principal.scopes).iter().map(mcp_tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&context)?;
        let arguments = request.arguments.map(Value::Object).unwrap_or_else(|| json!({}));
        let name = request.name.to_string();
        let called =
            request_id::within(caller.request_id.clone(), MCP_PATH.to_owned(), self.host.call(&caller.principal, &name, arguments));
        let result = match called.await {
            Ok(value) if value.is_object() => CallToolResult::structured(value),
            Ok(value) => CallToolResult::structured(json!({"result": value})),
            Err(ToolError::Unknown(name)) => return Err(ErrorData::invalid_params(format!("unknown tool {name}"), None)),
            Err(e) => CallToolResult::structured_error(e.to_json()),
        };
        Ok(result.into())
    }
}

/// The guard of `/mcp`: a valid credential, or 401 with `WWW-Authenticate: Bearer`.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match auth::authenticate(&state, &mut parts).await {
        Ok(principal) => {
            parts.extensions.insert(McpCaller { principal, request_id: request_id::current() });
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => {
            let mut response = e.into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"atlas\", error=\"invalid_token\""));
            }
            response
        }
    }
}

/// The `/mcp` router: the streamable HTTP service (stateless, JSON responses, the configured
/// allowed hosts) behind the guard.
pub fn router(state: &AppState) -> Router<AppState> {
    let host = crate::tools::tool_host(state);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(state.config.mcp_allowed_hosts.iter().cloned())
        .with_max_request_body_bytes(state.config.max_body_bytes);
    let service: StreamableHttpService<AtlasMcp, NeverSessionManager> =
        StreamableHttpService::new(move || Ok(AtlasMcp { host: host.clone() }), Arc::new(NeverSessionManager::default()), config);
    Router::new().nest_service(MCP_PATH, service).layer(from_fn_with_state(state.clone(), guard))
}
