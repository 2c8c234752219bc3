//! The route table: every route of the API declared once, with its method, path, required
//! scope, rate-limit class and operation name. The router and the OpenAPI document are both
//! built from this table, so a route cannot exist undocumented or unguarded.

use crate::contract::{query_parameters, Answer, Example, Payload, QueryParameters};
use crate::error::{ApiError, ErrorCode};
use crate::extract::PageQuery;
use crate::messaging::{actions, agent_tools, channels, conversations, events, examples, messages, meta_webhook, templates};
use crate::state::AppState;
use crate::{agents, api, auth, knowledge, metrics, projects, reference, request_id, sessions, tasks, webhooks};
use atlas_ratelimit::RouteClass;
use atlas_scopes::Scope;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::Router;
use serde::de::DeserializeOwned;
use utoipa::{IntoParams, ToSchema};

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
    /// Another success status the same answer can come with (`actions`: 202 for a queued
    /// reply, 200 for a draft or a handoff).
    pub also_success: Option<u16>,
    /// The body, parsed into the type given to [`accepts`](Self::accepts).
    pub request: Option<Payload>,
    /// Set by [`takes_no_body`](Self::takes_no_body) on a mutating route whose path says
    /// everything (`DELETE`, `rotate-secret`), so the completeness test can tell it from a
    /// forgotten body.
    pub bodyless: bool,
    /// The success answer, from [`returns`](Self::returns).
    pub answer: Option<Answer>,
    /// The query parameters, from [`query`](Self::query).
    pub query: Option<QueryParameters>,
}

impl RouteSpec {
    /// The same route answering `status` on success.
    const fn answers(mut self, status: u16) -> Self {
        self.success = status;
        self
    }

    /// The same route answering `status` too (with the same body).
    pub const fn or_answers(mut self, status: u16) -> Self {
        self.also_success = Some(status);
        self
    }

    /// The body is JSON parsed into `T` (its schema and example go in the document).
    pub const fn accepts<T: ToSchema + Example + DeserializeOwned>(mut self) -> Self {
        self.request = Some(Payload::request::<T>());
        self
    }

    /// A mutating route that reads no body.
    pub const fn takes_no_body(mut self) -> Self {
        self.bodyless = true;
        self
    }

    /// A success answers `{"ok": true, "data": T, "request_id": …}`.
    pub const fn returns<T: ToSchema + Example>(mut self) -> Self {
        self.answer = Some(Answer { media: "application/json", enveloped: true, payload: Payload::response::<T>() });
        self
    }

    /// A success answers `payload` as the whole body, with this media type (documents, pages,
    /// Meta's handshake).
    pub const fn returns_raw(mut self, media: &'static str, payload: Payload) -> Self {
        self.answer = Some(Answer { media, enveloped: false, payload });
        self
    }

    /// A success answers `{"ok": true, "data": …}` with a payload described by hand (routes
    /// whose handlers do not yet answer with a typed struct).
    pub const fn returns_raw_enveloped(mut self, payload: Payload) -> Self {
        self.answer = Some(Answer { media: "application/json", enveloped: true, payload });
        self
    }

    /// The body is a foreign JSON format described by hand (Meta's webhook payload).
    pub const fn accepts_foreign(mut self, payload: Payload) -> Self {
        self.request = Some(payload);
        self
    }

    /// The query string is parsed into `Q`.
    pub const fn query<Q: IntoParams>(mut self) -> Self {
        self.query = Some(query_parameters::<Q>);
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
    RouteSpec {
        method,
        path,
        scope,
        class,
        operation,
        summary,
        tag,
        idempotent,
        success,
        also_success: None,
        request: None,
        bodyless: false,
        answer: None,
        query: None,
    }
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
    )
    .accepts::<api::CreateKeyBody>()
    .returns::<api::KeyView>(),
    route(
        "GET",
        "/v1/atlas/keys",
        Some(Scope::KeysRead),
        Some(Reads),
        "keys.list",
        "List the organization's API keys, without secrets",
        "keys",
        false,
    )
    .query::<PageQuery>()
    .returns::<api::KeyList>(),
    route("DELETE", "/v1/atlas/keys/{id}", Some(Scope::KeysWrite), Some(Writes), "keys.revoke", "Revoke an API key at once", "keys", true)
        .takes_no_body()
        .returns::<api::RevokedKey>(),
    route(
        "POST",
        "/v1/atlas/orgs",
        Some(Scope::PlatformAdmin),
        Some(Writes),
        "orgs.create",
        "Create an organization and print its admin key once (operator only)",
        "orgs",
        true,
    )
    .accepts::<api::CreateOrgBody>()
    .returns::<api::NewOrganizationView>(),
    route(
        "POST",
        "/v1/atlas/auth/bootstrap",
        Some(Scope::KeysWrite),
        Some(AuthClass),
        "auth.bootstrap",
        "Create the first admin user in the default organization, with the key printed at first start (only while no user exists)",
        "auth",
        false,
    )
    .answers(201)
    .accepts::<api::BootstrapBody>()
    .returns::<api::BootstrappedView>(),
    route(
        "POST",
        "/v1/atlas/auth/token",
        None,
        Some(AuthClass),
        "auth.token",
        "Sign in with email and password: an access JWT and a refresh token",
        "auth",
        false,
    )
    .accepts::<api::TokenBody>()
    .returns::<api::SessionView>(),
    route(
        "POST",
        "/v1/atlas/auth/refresh",
        None,
        Some(AuthClass),
        "auth.refresh",
        "Rotate a refresh token; a reused one revokes its whole family",
        "auth",
        false,
    )
    .accepts::<api::RefreshBody>()
    .returns::<api::SessionView>(),
    route(
        "GET",
        "/v1/atlas/runs",
        Some(Scope::RunsRead),
        Some(Reads),
        "runs.list",
        "The audit log, newest first, with filters and a cursor",
        "runs",
        false,
    )
    .query::<api::RunsQuery>()
    .returns::<api::RunList>(),
    route("GET", "/v1/atlas/runs/{id}", Some(Scope::RunsRead), Some(Reads), "runs.get", "One run", "runs", false).returns::<api::RunView>(),
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
    .answers(202)
    .accepts::<crate::messaging::PhoneSendBody>()
    .returns::<messages::SendAnswer>(),
    route(
        "GET",
        "/v1/atlas/conversations",
        Some(Scope::ConversationsRead),
        Some(Reads),
        "conversations.list",
        "The organization's conversations, newest first",
        "messaging",
        false,
    )
    .query::<PageQuery>()
    .returns::<conversations::ConversationList>(),
    route(
        "GET",
        "/v1/atlas/conversations/{id}/messages",
        Some(Scope::ConversationsRead),
        Some(Reads),
        "conversations.messages",
        "A conversation's messages, newest first",
        "messaging",
        false,
    )
    .query::<PageQuery>()
    .returns::<conversations::MessageList>(),
    route(
        "GET",
        "/v1/atlas/context/{id}",
        Some(Scope::ConversationsRead),
        Some(Reads),
        "context.get",
        "A conversation, its customer, recent messages and knowledge grounding",
        "messaging",
        false,
    )
    .returns::<conversations::Context>(),
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
    .answers(200)
    .accepts::<events::EventBody>()
    .returns::<events::EventAnswer>(),
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
    .answers(202)
    .accepts::<actions::ActionBody>()
    .returns::<actions::ActionAnswer>()
    .or_answers(200),
    route(
        "POST",
        "/v1/atlas/channels",
        Some(Scope::ChannelsWrite),
        Some(Writes),
        "channels.create",
        "Connect a WhatsApp Cloud API number (or a sandbox channel); secrets are never returned",
        "channels",
        true,
    )
    .accepts::<channels::ChannelBody>()
    .returns::<channels::ChannelView>(),
    route(
        "GET",
        "/v1/atlas/channels",
        Some(Scope::ChannelsRead),
        Some(Reads),
        "channels.list",
        "The organization's channels",
        "channels",
        false,
    )
    .query::<PageQuery>()
    .returns::<channels::ChannelList>(),
    route(
        "GET",
        "/v1/atlas/channels/{id}/webhook",
        None,
        None,
        "channels.webhook_verify",
        "Meta's webhook verification handshake (hub.challenge)",
        "channels",
        false,
    )
    .query::<meta_webhook::Handshake>()
    .returns_raw("text/plain", examples::CHALLENGE),
    route(
        "POST",
        "/v1/atlas/channels/{id}/webhook",
        None,
        None,
        "channels.webhook",
        "Meta's webhook: messages and statuses, signed with X-Hub-Signature-256",
        "channels",
        false,
    )
    .accepts_foreign(examples::META_WEBHOOK)
    .returns::<meta_webhook::WebhookAnswer>(),
    route(
        "POST",
        "/v1/atlas/templates",
        Some(Scope::TemplatesWrite),
        Some(Writes),
        "templates.create",
        "Register a message template",
        "templates",
        true,
    )
    .accepts::<templates::TemplateBody>()
    .returns::<templates::TemplateView>(),
    route(
        "GET",
        "/v1/atlas/templates",
        Some(Scope::TemplatesRead),
        Some(Reads),
        "templates.list",
        "The organization's templates",
        "templates",
        false,
    )
    .query::<PageQuery>()
    .returns::<templates::TemplateList>(),
    route(
        "GET",
        "/agent/v1/tools/manifest",
        Some(Scope::ActionsExecute),
        Some(Reads),
        "tools.manifest",
        "OpenAI function-tool definitions, filtered by the caller's scopes",
        "agent",
        false,
    )
    .returns::<agent_tools::Manifest>(),
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
    .answers(202)
    .accepts::<crate::messaging::ConversationSendBody>()
    .returns::<agent_tools::ToolSendAnswer>(),
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
    .answers(202)
    .accepts::<crate::messaging::PhoneSendBody>()
    .returns::<agent_tools::ToolSendAnswer>(),
    route(
        "GET",
        "/agent/v1/tools/messages/{provider_message_id}/status",
        Some(Scope::ActionsExecute),
        Some(Reads),
        "tools.message_status",
        "The delivery state of a sent message",
        "agent",
        false,
    )
    .returns::<agent_tools::MessageStatus>(),
    // ---- knowledge (issue 13a) ----------------------------------------------------------------
    route(
        "POST",
        "/v1/atlas/knowledge",
        Some(Scope::KnowledgeWrite),
        Some(Writes),
        "knowledge.create",
        "Add a document to the knowledge base; it is split into chunks and searchable at once",
        "knowledge",
        true,
    )
    .accepts::<knowledge::CreateDocumentBody>()
    .returns::<knowledge::IngestedDocument>(),
    route(
        "GET",
        "/v1/atlas/knowledge",
        Some(Scope::KnowledgeRead),
        Some(Reads),
        "knowledge.list",
        "The organization's documents, newest first (without their content)",
        "knowledge",
        false,
    )
    .query::<PageQuery>()
    .returns::<knowledge::DocumentList>(),
    route("GET", "/v1/atlas/knowledge/{id}", Some(Scope::KnowledgeRead), Some(Reads), "knowledge.get", "One document", "knowledge", false)
        .returns::<atlas_knowledge::Document>(),
    route(
        "DELETE",
        "/v1/atlas/knowledge/{id}",
        Some(Scope::KnowledgeWrite),
        Some(Writes),
        "knowledge.delete",
        "Delete a document and its chunks",
        "knowledge",
        true,
    )
    .takes_no_body()
    .returns::<knowledge::DeletedDocument>(),
    route(
        "GET",
        "/agent/v1/knowledge/search",
        Some(Scope::KnowledgeRead),
        Some(Reads),
        "knowledge.search",
        "The knowledge chunks that best match a query, scored in [0, 1]",
        "agent",
        false,
    )
    .query::<knowledge::SearchQuery>()
    .returns::<knowledge::SearchResults>(),
    route(
        "POST",
        "/v1/atlas/webhooks",
        Some(Scope::EventsWrite),
        Some(Writes),
        "webhooks.create",
        "Subscribe a URL to events; the signing secret is shown once",
        "webhooks",
        true,
    )
    .accepts::<webhooks::CreateWebhookBody>()
    .returns::<webhooks::WebhookWithSecret>(),
    route(
        "GET",
        "/v1/atlas/webhooks",
        Some(Scope::EventsRead),
        Some(Reads),
        "webhooks.list",
        "The organization's webhook endpoints",
        "webhooks",
        false,
    )
    .query::<PageQuery>()
    .returns::<webhooks::WebhookList>(),
    route(
        "GET",
        "/v1/atlas/webhooks/{id}",
        Some(Scope::EventsRead),
        Some(Reads),
        "webhooks.get",
        "One webhook endpoint",
        "webhooks",
        false,
    )
    .returns::<webhooks::WebhookView>(),
    route(
        "PATCH",
        "/v1/atlas/webhooks/{id}",
        Some(Scope::EventsWrite),
        Some(Writes),
        "webhooks.update",
        "Change an endpoint's URL, events, description, or enable or disable it",
        "webhooks",
        true,
    )
    .accepts::<webhooks::UpdateWebhookBody>()
    .returns::<webhooks::WebhookView>(),
    route(
        "DELETE",
        "/v1/atlas/webhooks/{id}",
        Some(Scope::EventsWrite),
        Some(Writes),
        "webhooks.delete",
        "Delete an endpoint",
        "webhooks",
        true,
    )
    .takes_no_body()
    .returns::<webhooks::DeletedWebhook>(),
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
    .answers(200)
    .takes_no_body()
    .returns::<webhooks::WebhookWithSecret>(),
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
    .answers(202)
    .takes_no_body()
    .returns::<webhooks::TestQueuedView>(),
    route(
        "GET",
        "/v1/atlas/webhooks/{id}/deliveries",
        Some(Scope::EventsRead),
        Some(Reads),
        "webhooks.deliveries",
        "Deliveries with their attempts, filtered by status and event type",
        "webhooks",
        false,
    )
    .query::<webhooks::DeliveriesQuery>()
    .returns::<webhooks::DeliveryList>(),
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
    .answers(202)
    .takes_no_body()
    .returns::<webhooks::DeliveryView>(),
    route("GET", "/v1/atlas/openapi.json", None, None, "system.openapi", "This document", "system", false)
        .returns_raw("application/json", reference::OPENAPI),
    route("GET", "/v1/atlas/docs", None, None, "system.docs", "A reference page rendering this document", "system", false)
        .returns_raw("text/html", reference::PAGE),
    route("GET", "/healthz", None, None, "system.health", "The process is up", "system", false).returns::<api::Health>(),
    route("GET", "/readyz", None, None, "system.ready", "The database (and Redis, when configured) answer", "system", false)
        .returns::<api::Readiness>(),
    route("GET", "/metrics", None, None, "system.metrics", "Prometheus metrics", "system", false)
        .returns_raw("text/plain", reference::METRICS),
    route(
        "GET",
        "/v1/atlas/docs/redoc.standalone.js",
        None,
        None,
        "system.docs_asset",
        "The reference page's viewer (Redoc), served locally",
        "system",
        false,
    )
    .returns_raw("application/javascript", reference::SCRIPT),
    route(
        "GET",
        "/v1/atlas/postman/collection.json",
        None,
        None,
        "system.postman_collection",
        "A Postman v2.1 collection of this document, grouped by tag",
        "system",
        false,
    )
    .returns_raw("application/json", reference::COLLECTION),
    route(
        "GET",
        "/v1/atlas/postman/environment.json",
        None,
        None,
        "system.postman_environment",
        "The Postman environment to go with the collection (baseUrl, apiKey, idempotencyKey)",
        "system",
        false,
    )
    .returns_raw("application/json", reference::ENVIRONMENT),
    route(
        "GET",
        "/v1/atlas/channels/{id}",
        Some(Scope::ChannelsRead),
        Some(Reads),
        "channels.get",
        "One channel (never its secrets)",
        "channels",
        false,
    )
    .returns::<channels::ChannelView>(),
    route(
        "PATCH",
        "/v1/atlas/channels/{id}",
        Some(Scope::ChannelsWrite),
        Some(Writes),
        "channels.update",
        "Make the channel the organization's default ({\"is_default\": true})",
        "channels",
        true,
    )
    .answers(200)
    .accepts::<channels::ChannelPatch>()
    .returns::<channels::ChannelView>(),
    route(
        "DELETE",
        "/v1/atlas/channels/{id}",
        Some(Scope::ChannelsWrite),
        Some(Writes),
        "channels.delete",
        "Disconnect the channel: its conversations stay readable, sends on it are refused",
        "channels",
        true,
    )
    .answers(200)
    .takes_no_body()
    .returns::<channels::ChannelView>(),
    route(
        "POST",
        "/v1/atlas/channels/{id}/templates/sync",
        Some(Scope::TemplatesWrite),
        Some(Writes),
        "channels.templates_sync",
        "Import the channel's WhatsApp Business Account templates from the Graph API",
        "templates",
        true,
    )
    .answers(200)
    .takes_no_body()
    .returns::<templates::SyncAnswer>(),
    route(
        "POST",
        "/v1/atlas/conversations/{id}/read",
        Some(Scope::MessagesSend),
        Some(Writes),
        "conversations.read",
        "Mark the customer's latest message read at WhatsApp (through the outbox)",
        "messaging",
        true,
    )
    .answers(202)
    .takes_no_body()
    .returns::<conversations::ReadAnswer>(),
    route(
        "POST",
        "/v1/atlas/cmdb/items",
        Some(Scope::CmdbWrite),
        Some(Writes),
        "cmdb.items.create",
        "Create a configuration item (seed 002's body)",
        "cmdb",
        true,
    )
    .accepts::<crate::cmdb::CreateItemBody>()
    .returns::<atlas_cmdb::ConfigurationItem>(),
    route(
        "GET",
        "/v1/atlas/cmdb/items",
        Some(Scope::CmdbRead),
        Some(Reads),
        "cmdb.items.list",
        "Configuration items, newest first, by class and environment",
        "cmdb",
        false,
    )
    .query::<crate::cmdb::ItemsQuery>()
    .returns::<crate::cmdb::ItemsPage>(),
    route(
        "GET",
        "/v1/atlas/cmdb/items/{id}",
        Some(Scope::CmdbRead),
        Some(Reads),
        "cmdb.items.get",
        "One configuration item",
        "cmdb",
        false,
    )
    .returns::<atlas_cmdb::ConfigurationItem>(),
    route(
        "POST",
        "/v1/atlas/cmdb/relationships",
        Some(Scope::CmdbWrite),
        Some(Writes),
        "cmdb.relationships.create",
        "Relate two items: the source depends on the target (depends_on, runs_on, connects_to)",
        "cmdb",
        true,
    )
    .accepts::<crate::cmdb::RelateBody>()
    .returns::<atlas_cmdb::Relationship>(),
    route(
        "GET",
        "/v1/atlas/cmdb/impact",
        Some(Scope::CmdbRead),
        Some(Reads),
        "cmdb.impact",
        "The blast radius (downstream) or dependencies (upstream) of an item, each once with depth and a shortest path",
        "cmdb",
        false,
    )
    .query::<crate::cmdb::ImpactQuery>()
    .returns::<atlas_cmdb::Impact>(),
    route(
        "POST",
        "/v1/atlas/itsm/changes",
        Some(Scope::ChangesWrite),
        Some(Writes),
        "changes.create",
        "Create a change request (standard, normal or emergency) in draft",
        "changes",
        true,
    )
    .accepts::<crate::changes::CreateChangeBody>()
    .returns::<atlas_itsm::ChangeRequest>(),
    route(
        "GET",
        "/v1/atlas/itsm/changes",
        Some(Scope::ChangesRead),
        Some(Reads),
        "changes.list",
        "Change requests, newest first, by status",
        "changes",
        false,
    )
    .query::<crate::changes::ChangesQuery>()
    .returns::<crate::changes::ChangesPage>(),
    route(
        "GET",
        "/v1/atlas/itsm/changes/{id}",
        Some(Scope::ChangesRead),
        Some(Reads),
        "changes.get",
        "One change request with its approvals",
        "changes",
        false,
    )
    .returns::<atlas_itsm::ChangeRequest>(),
    route(
        "PATCH",
        "/v1/atlas/itsm/changes/{id}",
        Some(Scope::ChangesWrite),
        Some(Writes),
        "changes.update",
        "Move a change through its state machine; scheduling is checked against blackouts across the blast radius",
        "changes",
        true,
    )
    .accepts::<crate::changes::UpdateChangeBody>()
    .returns::<atlas_itsm::ChangeRequest>(),
    route(
        "POST",
        "/v1/atlas/itsm/changes/{id}/approvals",
        Some(Scope::ChangesWrite),
        Some(Writes),
        "changes.approve",
        "Record an approval or rejection (once per approver, only while submitted)",
        "changes",
        true,
    )
    .accepts::<crate::changes::ApprovalBody>()
    .returns::<crate::operations_contract::DecisionView>(),
    route(
        "POST",
        "/v1/atlas/itsm/blackouts",
        Some(Scope::ChangesWrite),
        Some(Writes),
        "blackouts.create",
        "Create a blackout window on configuration items",
        "changes",
        true,
    )
    .accepts::<crate::changes::CreateBlackoutBody>()
    .returns::<atlas_itsm::Blackout>(),
    route(
        "GET",
        "/v1/atlas/itsm/blackouts",
        Some(Scope::ChangesRead),
        Some(Reads),
        "blackouts.list",
        "Blackout windows, newest first",
        "changes",
        false,
    )
    .query::<crate::changes::BlackoutsQuery>()
    .returns::<crate::changes::BlackoutsPage>(),
    route(
        "POST",
        "/v1/atlas/itsm/catalog",
        Some(Scope::RequestsWrite),
        Some(Writes),
        "catalog.create",
        "Add an item to the service catalog",
        "requests",
        true,
    )
    .accepts::<crate::service_requests::CreateCatalogItemBody>()
    .returns::<atlas_itsm::CatalogItem>(),
    route(
        "GET",
        "/v1/atlas/itsm/catalog",
        Some(Scope::RequestsRead),
        Some(Reads),
        "catalog.list",
        "The service catalog",
        "requests",
        false,
    )
    .query::<crate::service_requests::CatalogQuery>()
    .returns::<crate::service_requests::CatalogPage>(),
    route(
        "POST",
        "/v1/atlas/itsm/requests",
        Some(Scope::RequestsWrite),
        Some(Writes),
        "requests.create",
        "Request a catalog item (approved at once when it needs no approval)",
        "requests",
        true,
    )
    .accepts::<crate::service_requests::CreateRequestBody>()
    .returns::<atlas_itsm::ServiceRequest>(),
    route(
        "GET",
        "/v1/atlas/itsm/requests",
        Some(Scope::RequestsRead),
        Some(Reads),
        "requests.list",
        "Service requests, newest first, by status",
        "requests",
        false,
    )
    .query::<crate::service_requests::RequestsQuery>()
    .returns::<crate::service_requests::RequestsPage>(),
    route(
        "GET",
        "/v1/atlas/itsm/requests/{id}",
        Some(Scope::RequestsRead),
        Some(Reads),
        "requests.get",
        "One service request",
        "requests",
        false,
    )
    .returns::<atlas_itsm::ServiceRequest>(),
    route(
        "PATCH",
        "/v1/atlas/itsm/requests/{id}",
        Some(Scope::RequestsWrite),
        Some(Writes),
        "requests.update",
        "Approve, reject or fulfil a service request",
        "requests",
        true,
    )
    .accepts::<crate::service_requests::UpdateRequestBody>()
    .returns::<atlas_itsm::ServiceRequest>(),
    route(
        "POST",
        "/v1/atlas/rca",
        Some(Scope::IncidentsRead),
        Some(Reads),
        "rca.analyse",
        "Deterministic root-cause analysis of an incident: ranked candidate causes with score components",
        "rca",
        false,
    )
    .answers(200)
    .accepts::<crate::rca::RcaBody>()
    .returns::<atlas_itsm::Analysis>(),
    route(
        "POST",
        "/v1/atlas/incidents",
        Some(Scope::IncidentsWrite),
        Some(Writes),
        "incidents.create",
        "Create an incident, or fold it into the one its dedup_key points to (outcome created, appended or reopened)",
        "incidents",
        true,
    )
    .or_answers(200)
    .accepts::<crate::incidents::CreateIncidentBody>()
    .returns::<crate::incidents::IncidentAnswer>(),
    route(
        "GET",
        "/v1/atlas/incidents",
        Some(Scope::IncidentsRead),
        Some(Reads),
        "incidents.list",
        "Incidents, newest first, filtered by status, severity, source, ci and time, with a cursor",
        "incidents",
        false,
    )
    .query::<crate::incidents::ListQuery>()
    .returns::<crate::incidents::IncidentList>(),
    route(
        "GET",
        "/v1/atlas/incidents/metrics",
        Some(Scope::IncidentsRead),
        Some(Reads),
        "incidents.metrics",
        "MTTA and MTTR per incident and aggregated, for incidents triggered in [from, to)",
        "incidents",
        false,
    )
    .query::<crate::incidents::MetricsQuery>()
    .returns::<crate::incidents::MetricsAnswer>(),
    route(
        "GET",
        "/v1/atlas/incidents/{id}",
        Some(Scope::IncidentsRead),
        Some(Reads),
        "incidents.get",
        "One incident, by id or reference (INC-00000001), with its ETag",
        "incidents",
        false,
    )
    .returns::<atlas_incidents::Incident>(),
    route(
        "PATCH",
        "/v1/atlas/incidents/{id}",
        Some(Scope::IncidentsWrite),
        Some(Writes),
        "incidents.update",
        "Move an incident along its state machine and edit its fields (If-Match)",
        "incidents",
        true,
    )
    .accepts::<crate::incidents::UpdateIncidentBody>()
    .returns::<crate::incidents::IncidentAnswer>(),
    route(
        "GET",
        "/v1/atlas/incidents/{id}/timeline",
        Some(Scope::IncidentsRead),
        Some(Reads),
        "incidents.timeline",
        "Every change of an incident, with its sequence number",
        "incidents",
        false,
    )
    .returns::<crate::incidents::TimelineAnswer>(),
    route(
        "POST",
        "/v1/atlas/alerts",
        Some(Scope::IncidentsWrite),
        Some(Writes),
        "alerts.create",
        "One alert: trigger, acknowledge or resolve the incident of a dedup_key",
        "incidents",
        true,
    )
    .answers(200)
    .accepts::<crate::alerts::AlertBody>()
    .returns::<crate::alerts::AlertAnswer>(),
    route(
        "POST",
        "/v1/atlas/alerts/alertmanager",
        Some(Scope::IncidentsWrite),
        Some(Writes),
        "alerts.alertmanager",
        "Prometheus Alertmanager's webhook payload (version 4): alerts fold into incidents by fingerprint",
        "incidents",
        true,
    )
    .answers(200)
    .accepts::<atlas_incidents::AlertmanagerPayload>()
    .returns::<crate::alerts::AlertmanagerAnswer>(),
    route(
        "POST",
        "/v1/atlas/runbooks",
        Some(Scope::RunbooksWrite),
        Some(Writes),
        "runbooks.create",
        "Create a runbook of manual and http steps",
        "runbooks",
        true,
    )
    .accepts::<crate::runbooks::RunbookBody>()
    .returns::<atlas_runbooks::Runbook>(),
    route(
        "GET",
        "/v1/atlas/runbooks",
        Some(Scope::RunbooksRead),
        Some(Reads),
        "runbooks.list",
        "Runbooks, newest first",
        "runbooks",
        false,
    )
    .query::<crate::runbooks::PageQuery>()
    .returns::<crate::runbooks::RunbookList>(),
    route("GET", "/v1/atlas/runbooks/{id}", Some(Scope::RunbooksRead), Some(Reads), "runbooks.get", "One runbook", "runbooks", false)
        .returns::<atlas_runbooks::Runbook>(),
    route(
        "PUT",
        "/v1/atlas/runbooks/{id}",
        Some(Scope::RunbooksWrite),
        Some(Writes),
        "runbooks.replace",
        "Replace a runbook's content (its version grows; earlier plans go stale)",
        "runbooks",
        true,
    )
    .accepts::<crate::runbooks::RunbookBody>()
    .returns::<atlas_runbooks::Runbook>(),
    route(
        "POST",
        "/v1/atlas/runbooks/{id}/execute",
        Some(Scope::RunbooksExecute),
        Some(Actions),
        "runbooks.execute",
        "Dry run (the plan and its plan_hash, nothing performed) or queue a real run (409 PLAN_STALE when plan_hash no longer matches)",
        "runbooks",
        true,
    )
    .answers(202)
    .or_answers(200)
    .accepts::<crate::runbooks::ExecuteBody>()
    .returns::<crate::operations_contract::ExecuteAnswer>(),
    route(
        "GET",
        "/v1/atlas/runbooks/{id}/executions",
        Some(Scope::RunbooksRead),
        Some(Reads),
        "runbooks.executions",
        "A runbook's executions, newest first, with their steps as run",
        "runbooks",
        false,
    )
    .query::<crate::runbooks::PageQuery>()
    .returns::<crate::runbooks::ExecutionList>(),
    route(
        "GET",
        "/v1/atlas/runbooks/{id}/executions/{execution_id}",
        Some(Scope::RunbooksRead),
        Some(Reads),
        "runbooks.execution",
        "One execution with its steps as run",
        "runbooks",
        false,
    )
    .returns::<atlas_runbooks::Execution>(),
    route(
        "POST",
        "/v1/atlas/projects",
        Some(Scope::ProjectsWrite),
        Some(Writes),
        "projects.create",
        "Create a project (key unique per organization)",
        "projects",
        true,
    )
    .accepts::<projects::CreateProjectBody>()
    .returns::<projects::ProjectResponse>(),
    route(
        "GET",
        "/v1/atlas/projects",
        Some(Scope::ProjectsRead),
        Some(Reads),
        "projects.list",
        "The organization's projects, newest first",
        "projects",
        false,
    )
    .query::<PageQuery>()
    .returns::<projects::ProjectList>(),
    route(
        "GET",
        "/v1/atlas/projects/{id}",
        Some(Scope::ProjectsRead),
        Some(Reads),
        "projects.get",
        "One project, by id or key (ETag: its version)",
        "projects",
        false,
    )
    .returns::<projects::ProjectResponse>(),
    route(
        "PATCH",
        "/v1/atlas/projects/{id}",
        Some(Scope::ProjectsWrite),
        Some(Writes),
        "projects.update",
        "Change a project's key, name or description (If-Match)",
        "projects",
        true,
    )
    .accepts::<projects::UpdateProjectBody>()
    .returns::<projects::ProjectResponse>(),
    route(
        "DELETE",
        "/v1/atlas/projects/{id}",
        Some(Scope::ProjectsWrite),
        Some(Writes),
        "projects.delete",
        "Delete a project and its tasks (soft)",
        "projects",
        true,
    )
    .takes_no_body()
    .returns::<projects::DeletedProject>(),
    route(
        "POST",
        "/v1/atlas/projects/{id}/tasks",
        Some(Scope::TasksWrite),
        Some(Writes),
        "projects.tasks.create",
        "Create a task in the project",
        "projects",
        true,
    )
    .accepts::<tasks::CreateTaskBody>()
    .returns::<tasks::TaskResponse>(),
    route(
        "GET",
        "/v1/atlas/projects/{id}/tasks",
        Some(Scope::TasksRead),
        Some(Reads),
        "projects.tasks.list",
        "The project's tasks, filtered by status, priority, assignee and parent",
        "projects",
        false,
    )
    .query::<tasks::TaskQuery>()
    .returns::<tasks::TaskList>(),
    route(
        "GET",
        "/v1/atlas/projects/{id}/graph",
        Some(Scope::TasksRead),
        Some(Reads),
        "projects.graph",
        "The project's order (dependencies first), ready tasks and critical paths",
        "projects",
        false,
    )
    .returns::<projects::GraphResponse>(),
    route(
        "POST",
        "/v1/atlas/tasks",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.create",
        "Create a task in the project `project_id` names",
        "tasks",
        true,
    )
    .accepts::<tasks::CreateTaskBody>()
    .returns::<tasks::TaskResponse>(),
    route(
        "GET",
        "/v1/atlas/tasks",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.list",
        "The organization's tasks, filtered by project, status, priority, assignee and parent",
        "tasks",
        false,
    )
    .query::<tasks::TaskQuery>()
    .returns::<tasks::TaskList>(),
    route(
        "GET",
        "/v1/atlas/tasks/{id}",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.get",
        "One task with blocked_by (ETag: its version)",
        "tasks",
        false,
    )
    .returns::<tasks::TaskResponse>(),
    route(
        "PATCH",
        "/v1/atlas/tasks/{id}",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.update",
        "Change a task (If-Match); done only when nothing blocks it",
        "tasks",
        true,
    )
    .accepts::<tasks::UpdateTaskBody>()
    .returns::<tasks::TaskResponse>(),
    route(
        "DELETE",
        "/v1/atlas/tasks/{id}",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.delete",
        "Delete a task (soft): it blocks nobody from then on",
        "tasks",
        true,
    )
    .takes_no_body()
    .returns::<tasks::DeletedTask>(),
    route(
        "PUT",
        "/v1/atlas/tasks/{id}/status",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.set_status",
        "Move a task to a status (If-Match); done only when nothing blocks it",
        "tasks",
        true,
    )
    .accepts::<tasks::StatusBody>()
    .returns::<tasks::TaskResponse>(),
    route(
        "GET",
        "/v1/atlas/tasks/{id}/dependencies",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.dependencies.list",
        "The tasks this task depends on",
        "tasks",
        false,
    )
    .returns::<tasks::DependencyList>(),
    route(
        "POST",
        "/v1/atlas/tasks/{id}/dependencies",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.dependencies.add",
        "Make the task depend on another; refused with the path if it would close a cycle",
        "tasks",
        true,
    )
    .accepts::<tasks::DependencyBody>()
    .returns::<tasks::DependencyChange>()
    .or_answers(200),
    route(
        "DELETE",
        "/v1/atlas/tasks/{id}/dependencies/{depends_on_id}",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.dependencies.remove",
        "Remove a dependency",
        "tasks",
        true,
    )
    .takes_no_body()
    .returns::<tasks::DependencyChange>(),
    route(
        "GET",
        "/v1/atlas/tasks/{id}/notes",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.notes.list",
        "The task's notes, newest first",
        "tasks",
        false,
    )
    .query::<PageQuery>()
    .returns::<tasks::NoteList>(),
    route(
        "POST",
        "/v1/atlas/tasks/{id}/notes",
        Some(Scope::TasksWrite),
        Some(Writes),
        "tasks.notes.add",
        "Add a note to the task",
        "tasks",
        true,
    )
    .accepts::<tasks::NoteBody>()
    .returns::<tasks::NoteResponse>(),
    route(
        "GET",
        "/v1/atlas/tasks/{id}/subtasks",
        Some(Scope::TasksRead),
        Some(Reads),
        "tasks.subtasks",
        "The task's subtasks, newest first",
        "tasks",
        false,
    )
    .query::<PageQuery>()
    .returns::<tasks::TaskList>(),
    // ---------------------------------------------------------------- agents, drafts, sessions (issue 13)
    route(
        "POST",
        "/v1/atlas/agents",
        Some(Scope::AgentsWrite),
        Some(Writes),
        "agents.create",
        "Create an agent (hosted, external or the built-in faq) with its own credential, shown once",
        "agents",
        true,
    )
    .accepts::<agents::AgentBody>()
    .returns::<agents::AgentView>(),
    route(
        "GET",
        "/v1/atlas/agents",
        Some(Scope::AgentsRead),
        Some(Reads),
        "agents.list",
        "Agents, newest first, by status, maturity level and text (seed 001)",
        "agents",
        false,
    )
    .query::<agents::AgentsQuery>()
    .returns::<agents::AgentList>(),
    route("GET", "/v1/atlas/agents/{id}", Some(Scope::AgentsRead), Some(Reads), "agents.get", "One agent", "agents", false)
        .returns::<atlas_agents::Agent>(),
    route(
        "PUT",
        "/v1/atlas/agents/{id}",
        Some(Scope::AgentsWrite),
        Some(Writes),
        "agents.replace",
        "Replace an agent (its kind and credential stay)",
        "agents",
        true,
    )
    .answers(200)
    .accepts::<agents::AgentBody>()
    .returns::<atlas_agents::Agent>(),
    route(
        "PATCH",
        "/v1/atlas/agents/{id}",
        Some(Scope::AgentsWrite),
        Some(Writes),
        "agents.patch",
        "Change some of an agent's fields (maturity level, status, what it serves, model settings)",
        "agents",
        true,
    )
    .answers(200)
    .accepts::<agents::AgentPatchBody>()
    .returns::<atlas_agents::Agent>(),
    route(
        "DELETE",
        "/v1/atlas/agents/{id}",
        Some(Scope::AgentsWrite),
        Some(Writes),
        "agents.delete",
        "Delete an agent and revoke its credential",
        "agents",
        true,
    )
    .answers(200)
    .takes_no_body()
    .returns::<agents::DeletedAgent>(),
    route(
        "POST",
        "/v1/atlas/agents/{id}/execute",
        Some(Scope::AgentsWrite),
        Some(Writes),
        "agents.execute",
        "Run a hosted agent once: its answer, the tool calls it made (at most 6 model calls) and the run (seed 001)",
        "agents",
        true,
    )
    .answers(200)
    .accepts::<agents::AgentExecuteBody>()
    .returns::<agents::ExecutionAnswer>(),
    route(
        "GET",
        "/v1/atlas/conversations/{id}/drafts",
        Some(Scope::ConversationsRead),
        Some(Reads),
        "drafts.list",
        "A conversation's drafts, newest first; `state=pending` is the review queue",
        "agents",
        false,
    )
    .query::<agents::DraftsQuery>()
    .returns::<agents::DraftList>(),
    route(
        "POST",
        "/v1/atlas/conversations/{id}/drafts/{draft_id}/approve",
        Some(Scope::MessagesSend),
        Some(Writes),
        "drafts.approve",
        "Approve an agent's draft: it is sent (once), with the person's edit if given",
        "agents",
        true,
    )
    .answers(200)
    .accepts::<agents::ApproveBody>()
    .returns::<agents::DraftDecision>(),
    route(
        "POST",
        "/v1/atlas/conversations/{id}/drafts/{draft_id}/reject",
        Some(Scope::MessagesSend),
        Some(Writes),
        "drafts.reject",
        "Reject an agent's draft: it is never sent",
        "agents",
        true,
    )
    .answers(200)
    .accepts::<agents::RejectBody>()
    .returns::<agents::DraftDecision>(),
    route(
        "POST",
        "/v1/atlas/conversations/{id}/release",
        Some(Scope::MessagesSend),
        Some(Writes),
        "conversations.release",
        "Hand a handed-off conversation back: agents answer in it again",
        "agents",
        true,
    )
    .answers(200)
    .takes_no_body()
    .returns::<agents::Released>(),
    route(
        "POST",
        "/v1/atlas/sessions",
        Some(Scope::SessionsWrite),
        Some(Writes),
        "sessions.create",
        "Open a test session with an agent (a conversation with no WhatsApp)",
        "sessions",
        true,
    )
    .accepts::<sessions::SessionBody>()
    .returns::<atlas_agents::Session>(),
    route(
        "GET",
        "/v1/atlas/sessions",
        Some(Scope::SessionsRead),
        Some(Reads),
        "sessions.list",
        "Test sessions, newest first",
        "sessions",
        false,
    )
    .query::<PageQuery>()
    .returns::<sessions::SessionList>(),
    route("GET", "/v1/atlas/sessions/{id}", Some(Scope::SessionsRead), Some(Reads), "sessions.get", "One test session", "sessions", false)
        .returns::<atlas_agents::Session>(),
    route(
        "DELETE",
        "/v1/atlas/sessions/{id}",
        Some(Scope::SessionsWrite),
        Some(Writes),
        "sessions.delete",
        "Delete a test session and its events",
        "sessions",
        true,
    )
    .answers(200)
    .takes_no_body()
    .returns::<sessions::DeletedSession>(),
    route(
        "POST",
        "/v1/atlas/sessions/{id}/messages",
        Some(Scope::SessionsWrite),
        Some(Writes),
        "sessions.messages.create",
        "Write as the customer: the agent runs and its messages, tool calls, drafts and handoff come back",
        "sessions",
        true,
    )
    .answers(200)
    .accepts::<sessions::SessionMessageBody>()
    .returns::<sessions::SessionReply>(),
    route(
        "GET",
        "/v1/atlas/sessions/{id}/messages",
        Some(Scope::SessionsRead),
        Some(Reads),
        "sessions.messages.list",
        "The session's events, oldest first",
        "sessions",
        false,
    )
    .query::<sessions::EventsQuery>()
    .returns::<sessions::EventList>(),
    route(
        "GET",
        "/v1/atlas/sessions/{id}/stream",
        Some(Scope::SessionsRead),
        Some(Reads),
        "sessions.stream",
        "The session's events as server-sent events, with a keep-alive (resumes after Last-Event-ID)",
        "sessions",
        false,
    )
    .returns_raw("text/event-stream", sessions::STREAM),
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
        .merge(crate::mcp::router(&state))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route").hint("see /v1/atlas/openapi.json").into_response() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "this route does not take that method").into_response()
        })
        .layer(from_fn_with_state(state.metrics.clone(), metrics::layer))
        .layer(from_fn(request_id::layer))
        .with_state(state)
}
