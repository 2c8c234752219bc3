//! The route table: every route of the API declared once, with its method, path, required
//! scope, rate-limit class and operation name. The router and the OpenAPI document are both
//! built from this table, so a route cannot exist undocumented or unguarded.

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::{api, auth, metrics, request_id};
use atlas_ratelimit::RouteClass;
use atlas_scopes::Scope;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::Router;

/// One route.
#[derive(Debug)]
pub struct RouteSpec {
    pub method: &'static str,
    /// axum path syntax (`/v1/atlas/keys/{id}`), which is also OpenAPI's.
    pub path: &'static str,
    /// The scope a caller needs; `None` for public routes.
    pub scope: Option<Scope>,
    /// The rate-limit class; `None` for operational endpoints (health, metrics, docs).
    pub class: Option<RouteClass>,
    /// The operation name, recorded on runs and used as the OpenAPI operationId.
    pub operation: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Whether the route accepts an idempotency key.
    pub idempotent: bool,
    /// The status of a success (201 for creations, 202 for queued work, 200 otherwise).
    pub success: u16,
}

impl RouteSpec {
    /// The same route answering `status` on success.
    const fn answers(mut self, status: u16) -> Self {
        self.success = status;
        self
    }
}

#[allow(clippy::too_many_arguments)] // one row of the table, in the table's column order
const fn route(
    method: &'static str,
    path: &'static str,
    scope: Option<Scope>,
    class: Option<RouteClass>,
    operation: &'static str,
    summary: &'static str,
    tag: &'static str,
    idempotent: bool,
) -> RouteSpec {
    let success = if idempotent && matches!(method.as_bytes(), b"POST") { 201 } else { 200 };
    RouteSpec { method, path, scope, class, operation, summary, tag, idempotent, success }
}

use RouteClass::{Actions, AgentTools, Auth as AuthClass, Messages, Reads, Writes};

/// Every route of the server.
pub static ROUTES: &[RouteSpec] = &[
    route(
        "POST",
        "/v1/atlas/keys",
        Some(Scope::KeysWrite),
        Some(Writes),
        "keys.create",
        "Mint an API key (never with a scope the caller lacks)",
        "keys",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/keys",
        Some(Scope::KeysRead),
        Some(Reads),
        "keys.list",
        "List the organization's API keys, without secrets",
        "keys",
        false,
    ),
    route("DELETE", "/v1/atlas/keys/{id}", Some(Scope::KeysWrite), Some(Writes), "keys.revoke", "Revoke an API key at once", "keys", true),
    route(
        "POST",
        "/v1/atlas/orgs",
        Some(Scope::PlatformAdmin),
        Some(Writes),
        "orgs.create",
        "Create an organization and print its admin key once (operator only)",
        "orgs",
        true,
    ),
    route(
        "POST",
        "/v1/atlas/auth/bootstrap",
        None,
        Some(AuthClass),
        "auth.bootstrap",
        "Create the first organization, admin user and admin key (only while no user exists)",
        "auth",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/auth/token",
        None,
        Some(AuthClass),
        "auth.token",
        "Sign in with email and password: an access JWT and a refresh token",
        "auth",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/auth/refresh",
        None,
        Some(AuthClass),
        "auth.refresh",
        "Rotate a refresh token; a reused one revokes its whole family",
        "auth",
        false,
    ),
    route(
        "GET",
        "/v1/atlas/runs",
        Some(Scope::RunsRead),
        Some(Reads),
        "runs.list",
        "The audit log, newest first, with filters and a cursor",
        "runs",
        false,
    ),
    route("GET", "/v1/atlas/runs/{id}", Some(Scope::RunsRead), Some(Reads), "runs.get", "One run", "runs", false),
    route(
        "POST",
        "/v1/atlas/messages",
        Some(Scope::MessagesSend),
        Some(Messages),
        "messages.send",
        "Send a WhatsApp message to a phone number under the 24-hour window rules; queued for delivery",
        "messaging",
        true,
    )
    .answers(202),
    route(
        "GET",
        "/v1/atlas/conversations",
        Some(Scope::ConversationsRead),
        Some(Reads),
        "conversations.list",
        "The organization's conversations, newest first",
        "messaging",
        false,
    ),
    route(
        "GET",
        "/v1/atlas/conversations/{id}/messages",
        Some(Scope::ConversationsRead),
        Some(Reads),
        "conversations.messages",
        "A conversation's messages, newest first",
        "messaging",
        false,
    ),
    route(
        "GET",
        "/v1/atlas/context/{id}",
        Some(Scope::ConversationsRead),
        Some(Reads),
        "context.get",
        "A conversation, its customer, recent messages and knowledge grounding",
        "messaging",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/events",
        Some(Scope::EventsWrite),
        Some(Writes),
        "events.ingest",
        "Feed an external event (message.received opens or extends the window)",
        "messaging",
        true,
    )
    .answers(200),
    route(
        "POST",
        "/v1/atlas/actions",
        Some(Scope::ActionsExecute),
        Some(Actions),
        "actions.execute",
        "Reply (under the window rules), draft, or hand off a conversation",
        "messaging",
        true,
    )
    .answers(202),
    route(
        "POST",
        "/v1/atlas/channels",
        Some(Scope::ChannelsWrite),
        Some(Writes),
        "channels.create",
        "Connect a WhatsApp Cloud API number (or a sandbox channel); secrets are never returned",
        "channels",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/channels",
        Some(Scope::ChannelsRead),
        Some(Reads),
        "channels.list",
        "The organization's channels",
        "channels",
        false,
    ),
    route(
        "GET",
        "/v1/atlas/channels/{id}/webhook",
        None,
        None,
        "channels.webhook_verify",
        "Meta's webhook verification handshake (hub.challenge)",
        "channels",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/channels/{id}/webhook",
        None,
        None,
        "channels.webhook",
        "Meta's webhook: messages and statuses, signed with X-Hub-Signature-256",
        "channels",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/templates",
        Some(Scope::TemplatesWrite),
        Some(Writes),
        "templates.create",
        "Register a message template",
        "templates",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/templates",
        Some(Scope::TemplatesRead),
        Some(Reads),
        "templates.list",
        "The organization's templates",
        "templates",
        false,
    ),
    route(
        "GET",
        "/agent/v1/tools/manifest",
        Some(Scope::ActionsExecute),
        Some(Reads),
        "tools.manifest",
        "OpenAI function-tool definitions, filtered by the caller's scopes",
        "agent",
        false,
    ),
    route(
        "POST",
        "/agent/v1/tools/send_message",
        Some(Scope::ActionsExecute),
        Some(AgentTools),
        "tools.send_message",
        "Send within an existing conversation (window rules apply)",
        "agent",
        true,
    )
    .answers(202),
    route(
        "POST",
        "/agent/v1/tools/send_message_to_phone",
        Some(Scope::ActionsExecute),
        Some(AgentTools),
        "tools.send_message_to_phone",
        "Send to any phone number; creates or reuses the customer and conversation",
        "agent",
        true,
    )
    .answers(202),
    route(
        "GET",
        "/agent/v1/tools/messages/{provider_message_id}/status",
        Some(Scope::ActionsExecute),
        Some(Reads),
        "tools.message_status",
        "The delivery state of a sent message",
        "agent",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/webhooks",
        Some(Scope::EventsWrite),
        Some(Writes),
        "webhooks.create",
        "Subscribe a URL to events; the signing secret is shown once",
        "webhooks",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/webhooks",
        Some(Scope::EventsRead),
        Some(Reads),
        "webhooks.list",
        "The organization's webhook endpoints",
        "webhooks",
        false,
    ),
    route(
        "GET",
        "/v1/atlas/webhooks/{id}",
        Some(Scope::EventsRead),
        Some(Reads),
        "webhooks.get",
        "One webhook endpoint",
        "webhooks",
        false,
    ),
    route(
        "PATCH",
        "/v1/atlas/webhooks/{id}",
        Some(Scope::EventsWrite),
        Some(Writes),
        "webhooks.update",
        "Change an endpoint's URL, events, description, or enable or disable it",
        "webhooks",
        true,
    ),
    route(
        "DELETE",
        "/v1/atlas/webhooks/{id}",
        Some(Scope::EventsWrite),
        Some(Writes),
        "webhooks.delete",
        "Delete an endpoint",
        "webhooks",
        true,
    ),
    route(
        "POST",
        "/v1/atlas/webhooks/{id}/rotate-secret",
        Some(Scope::EventsWrite),
        Some(Writes),
        "webhooks.rotate_secret",
        "A new signing secret (shown once); the old one signs too for 24 hours",
        "webhooks",
        true,
    )
    .answers(200),
    route(
        "POST",
        "/v1/atlas/webhooks/{id}/test",
        Some(Scope::EventsWrite),
        Some(Writes),
        "webhooks.test",
        "Queue an atlas.webhook.test delivery to the endpoint",
        "webhooks",
        true,
    )
    .answers(202),
    route(
        "GET",
        "/v1/atlas/webhooks/{id}/deliveries",
        Some(Scope::EventsRead),
        Some(Reads),
        "webhooks.deliveries",
        "Deliveries with their attempts, filtered by status and event type",
        "webhooks",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/webhooks/{id}/deliveries/{delivery_id}/replay",
        Some(Scope::EventsWrite),
        Some(Writes),
        "webhooks.replay",
        "Send a finished delivery again, as a new attempt",
        "webhooks",
        true,
    )
    .answers(202),
    route("GET", "/v1/atlas/openapi.json", None, None, "system.openapi", "This document", "system", false),
    route("GET", "/v1/atlas/docs", None, None, "system.docs", "A reference page rendering this document", "system", false),
    route("GET", "/healthz", None, None, "system.health", "The process is up", "system", false),
    route("GET", "/readyz", None, None, "system.ready", "The database (and Redis, when configured) answer", "system", false),
    route("GET", "/metrics", None, None, "system.metrics", "Prometheus metrics", "system", false),
    route(
        "POST",
        "/v1/atlas/projects",
        Some(Scope::ProjectsWrite),
        Some(Writes),
        "projects.create",
        "Create a project (key unique per organization)",
        "projects",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/projects",
        Some(Scope::ProjectsRead),
        Some(Reads),
        "projects.list",
        "The organization's projects, newest first",
        "projects",
        false,
    ),
    route(
        "GET",
        "/v1/atlas/projects/{id}",
        Some(Scope::ProjectsRead),
        Some(Reads),
        "projects.get",
        "One project, by id or key (ETag: its version)",
        "projects",
        false,
    ),
    route(
        "PATCH",
        "/v1/atlas/projects/{id}",
        Some(Scope::ProjectsWrite),
        Some(Writes),
        "projects.update",
        "Change a project's key, name or description (If-Match)",
        "projects",
        true,
    ),
    route(
        "DELETE",
        "/v1/atlas/projects/{id}",
        Some(Scope::ProjectsWrite),
        Some(Writes),
        "projects.delete",
        "Delete a project and its tasks (soft)",
        "projects",
        true,
    ),
    route(
        "POST",
        "/v1/atlas/projects/{id}/tasks",
        Some(Scope::TasksWrite),
        Some(Writes),
        "projects.tasks.create",
        "Create a task in the project",
        "projects",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/projects/{id}/tasks",
        Some(Scope::TasksRead),
        Some(Reads),
        "projects.tasks.list",
        "The project's tasks, filtered by status, priority, assignee and parent",
        "projects",
        false,
    ),
    route(
        "GET",
        "/v1/atlas/projects/{id}/graph",
        Some(Scope::TasksRead),
        Some(Reads),
        "projects.graph",
        "The project's order (dependencies first), ready tasks and critical paths",
        "projects",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/tasks",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.create",
        "Create a task in the project `project_id` names",
        "tasks",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/tasks",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.list",
        "The organization's tasks, filtered by project, status, priority, assignee and parent",
        "tasks",
        false,
    ),
    route(
        "GET",
        "/v1/atlas/tasks/{id}",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.get",
        "One task with blocked_by (ETag: its version)",
        "tasks",
        false,
    ),
    route(
        "PATCH",
        "/v1/atlas/tasks/{id}",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.update",
        "Change a task (If-Match); done only when nothing blocks it",
        "tasks",
        true,
    ),
    route(
        "DELETE",
        "/v1/atlas/tasks/{id}",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.delete",
        "Delete a task (soft): it blocks nobody from then on",
        "tasks",
        true,
    ),
    route(
        "PUT",
        "/v1/atlas/tasks/{id}/status",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.set_status",
        "Move a task to a status (If-Match); done only when nothing blocks it",
        "tasks",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/tasks/{id}/dependencies",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.dependencies.list",
        "The tasks this task depends on",
        "tasks",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/tasks/{id}/dependencies",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.dependencies.add",
        "Make the task depend on another; refused with the path if it would close a cycle",
        "tasks",
        true,
    ),
    route(
        "DELETE",
        "/v1/atlas/tasks/{id}/dependencies/{depends_on_id}",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.dependencies.remove",
        "Remove a dependency",
        "tasks",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/tasks/{id}/notes",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.notes.list",
        "The task's notes, newest first",
        "tasks",
        false,
    ),
    route(
        "POST",
        "/v1/atlas/tasks/{id}/notes",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.notes.add",
        "Add a note to the task",
        "tasks",
        true,
    ),
    route(
        "GET",
        "/v1/atlas/tasks/{id}/subtasks",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.subtasks",
        "The task's subtasks, newest first",
        "tasks",
        false,
    ),
];

/// The spec of an operation (the table is static, so a typo fails every test that routes).
pub fn spec(operation: &str) -> &'static RouteSpec {
    ROUTES.iter().find(|r| r.operation == operation).unwrap_or_else(|| panic!("no route named {operation}"))
}

/// The whole application: every route of [`ROUTES`] behind its guard, the fallbacks, request
/// ids and metrics.
pub fn router(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    for spec in ROUTES {
        let endpoint = api::endpoint(spec).route_layer(from_fn_with_state((state.clone(), spec), auth::guard));
        router = router.route(spec.path, endpoint);
    }
    router
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route").hint("see /v1/atlas/openapi.json").into_response() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "this route does not take that method").into_response()
        })
        .layer(from_fn_with_state(state.metrics.clone(), metrics::layer))
        .layer(from_fn(request_id::layer))
        .with_state(state)
}
