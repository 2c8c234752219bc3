//! The OpenAPI 3.1 document, built from the route table alone: each route's path and method,
//! its scope (`x-required-scopes`), rate-limit class and the class's default ceiling
//! (`x-ratelimit-class`, `x-rate-limits`), its idempotency header, and from its contract
//! (`crates/http/src/contract.rs`): query parameters, request body schema and example, the
//! success answer wrapped in the envelope, and the one error envelope for every error status.
//! Links between a creation and the operations on what it created drive stateful clients
//! (schemathesis' stateful phase).

use crate::contract::Components;
use crate::routes::{RouteSpec, ROUTES};
use atlas_ratelimit::RouteClass;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// The error statuses every operation may answer, with the codes behind them.
const ERROR_STATUSES: &[(&str, &str)] = &[
    ("400", "VALIDATION_ERROR (`details.fields[]` names each bad field) or INVALID_TRANSITION"),
    ("401", "UNAUTHORIZED: missing, malformed, expired or revoked credential"),
    ("403", "FORBIDDEN (`details.missing_scope`) or IP_NOT_ALLOWED"),
    ("404", "NOT_FOUND: absent, or another organization's"),
    ("409", "IDEMPOTENCY_IN_PROGRESS, VERSION_CONFLICT, CONFLICT or CONVERSATION_HANDED_OFF"),
    ("413", "PAYLOAD_TOO_LARGE"),
    ("422", "IDEMPOTENCY_KEY_REUSED or a business rule (WINDOW_CLOSED, TEMPLATE_NOT_FOUND, …)"),
    ("429", "RATE_LIMITED: `Retry-After` says when to try again"),
    ("500", "INTERNAL_ERROR: quote the request id"),
    ("502", "PROVIDER_UNAVAILABLE: the upstream answered with an error"),
    ("503", "PROVIDER_UNAVAILABLE: a dependency is failing"),
];

/// The success envelope around `data`.
fn envelope_of(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["ok", "data", "request_id"],
        "properties": { "ok": { "const": true }, "data": data, "request_id": { "type": "string" } }
    })
}

/// The one error envelope.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["ok", "error", "request_id"],
        "properties": {
            "ok": {"const": false},
            "error": {
                "type": "object",
                "required": ["code", "message", "retryable"],
                "properties": {
                    "code": {"type": "string", "examples": ["VALIDATION_ERROR"]},
                    "message": {"type": "string"},
                    "retryable": {"type": "boolean"},
                    "hint": {"type": "string"},
                    "details": {"type": "object"}
                }
            },
            "request_id": {"type": "string"}
        },
        "examples": [{
            "ok": false,
            "error": {"code": "VALIDATION_ERROR", "message": "name: missing field `name`", "retryable": false,
                      "details": {"fields": [{"field": "name", "message": "missing field `name`"}]}},
            "request_id": "req_01936a3c8f2e7b4d"
        }]
    })
}

/// The names of the `{placeholders}` of a path.
pub fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn parameters(spec: &RouteSpec) -> Vec<Value> {
    let mut params: Vec<Value> = path_parameters(spec.path)
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}}))
        .collect();
    if spec.idempotent {
        params.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]([ -~]*[!-~])?$"},
            "description": "1 to 255 printable ASCII characters. The same key and the same request within 24 hours replays the stored answer (`Idempotent-Replayed: true`); the same key with another request is 422 IDEMPOTENCY_KEY_REUSED.",
            "example": "3f1c2a8e-4b7d-4e0a-9c55-1d2e3f4a5b6c"
        }));
    }
    if let Some(query) = spec.query {
        params.extend(query());
    }
    params
}

/// `x-rate-limits`: the class's default ceiling (an organization may have its own).
fn rate_limits(class: Option<RouteClass>) -> Value {
    match class {
        Some(class) => {
            let policy = class.default_policy();
            json!({
                "class": class.as_str(),
                "limit": policy.limit(),
                "period_seconds": policy.period_us() / 1_000_000,
                "policy": policy.to_string(),
                "per": if class == RouteClass::Auth { "client IP" } else { "organization" },
                "headers": ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Policy", "RateLimit"]
            })
        }
        None => json!({"class": "none", "limited": false, "why": "operational endpoint: never rate limited"}),
    }
}

/// Links from a creation's answer to the operations on what it created (and a few more).
fn links(spec: &RouteSpec) -> Map<String, Value> {
    let mut links = Map::new();
    if spec.method == "POST" && (200..=202).contains(&spec.success) {
        let item = format!("{}/{{id}}", spec.path);
        for target in ROUTES.iter().filter(|r| r.path == item || r.path.starts_with(&format!("{item}/"))) {
            if path_parameters(target.path).all(|p| p == "id") {
                links.insert(
                    target.operation.replace('.', "_"),
                    json!({"operationId": target.operation, "parameters": {"id": "$response.body#/data/id"}}),
                );
            }
        }
    }
    for (from, to, parameters) in EXTRA_LINKS {
        if spec.operation == *from {
            let params: Map<String, Value> = parameters.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
            links.insert(to.replace('.', "_"), json!({"operationId": to, "parameters": params}));
        }
    }
    links
}

/// A link: (from operation, to operation, its parameters as (name, runtime expression)).
type Link = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

/// Links the creation rule above does not find.
const EXTRA_LINKS: &[Link] = &[
    ("runs.list", "runs.get", &[("id", "$response.body#/data/runs/0/id")]),
    ("webhooks.list", "webhooks.get", &[("id", "$response.body#/data/webhooks/0/id")]),
    ("webhooks.test", "webhooks.replay", &[("id", "$request.path.id"), ("delivery_id", "$response.body#/data/delivery_id")]),
    ("conversations.list", "conversations.messages", &[("id", "$response.body#/data/conversations/0/id")]),
    ("conversations.list", "context.get", &[("id", "$response.body#/data/conversations/0/id")]),
    ("messages.send", "conversations.messages", &[("id", "$response.body#/data/conversation_id")]),
    ("messages.send", "context.get", &[("id", "$response.body#/data/conversation_id")]),
];

fn operation(spec: &RouteSpec, components: &mut Components) -> Value {
    let mut responses = Map::new();
    if let Some(answer) = spec.answer {
        let data = (answer.payload.schema)(components);
        let example = (answer.payload.example)();
        let (schema, example) = if answer.enveloped {
            (envelope_of(data), json!({"ok": true, "data": example, "request_id": "req_01936a3c8f2e7b4d"}))
        } else {
            (data, example)
        };
        let links = links(spec);
        let mut success = json!({
            "description": spec.summary,
            "content": {answer.media: {"schema": schema, "example": example}}
        });
        if !links.is_empty() {
            success["links"] = Value::Object(links);
        }
        for status in std::iter::once(spec.success).chain(spec.also_success) {
            responses.insert(status.to_string(), success.clone());
        }
    }
    for (code, why) in ERROR_STATUSES {
        responses.insert(
            (*code).into(),
            json!({"description": why, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    let mut op = json!({
        "operationId": spec.operation,
        "summary": spec.summary,
        "tags": [spec.tag],
        "parameters": parameters(spec),
        "responses": responses,
        "x-required-scopes": spec.scope.map(|s| vec![s.as_str()]).unwrap_or_default(),
        "x-ratelimit-class": spec.class.map_or("none", |c| c.as_str()),
        "x-rate-limits": rate_limits(spec.class),
        "x-idempotent": spec.idempotent,
    });
    op["security"] = if spec.scope.is_some() { json!([{"bearer": []}, {"apiKey": []}]) } else { json!([]) };
    if let Some(request) = spec.request {
        let schema = (request.schema)(components);
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema, "example": (request.example)()}}});
    }
    op
}

fn build() -> Value {
    let mut components = Components::new();
    components.insert("Error".into(), error_schema());
    let mut paths = Map::new();
    let mut tags: Vec<&str> = Vec::new();
    for spec in ROUTES {
        let op = operation(spec, &mut components);
        let item = paths.entry(spec.path.to_owned()).or_insert_with(|| json!({}));
        item[spec.method.to_ascii_lowercase()] = op;
        if !tags.contains(&spec.tag) {
            tags.push(spec.tag);
        }
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Atlas API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hostable API platform for business messaging and operations. Every JSON answer is an envelope: `{\"ok\": true, \"data\": …, \"request_id\": …}` or `{\"ok\": false, \"error\": {\"code\", \"message\", \"retryable\", \"hint\"?, \"details\"?}, \"request_id\": …}`. Mutating routes take an `Idempotency-Key`. Each operation names its scope (`x-required-scopes`), its rate-limit class (`x-ratelimit-class`) and that class's default ceiling (`x-rate-limits`).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "servers": [{"url": "/", "description": "this server"}],
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (atlas_sk_…) or an access JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            }
        }
    })
}

/// The whole document (built once per process: the table is static).
pub fn openapi_document() -> Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build).clone()
}
