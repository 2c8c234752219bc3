//! The OpenAPI 3.1 document, generated from the route table (paths, methods, scopes as
//! `x-required-scopes`, rate-limit classes as `x-ratelimit-class`, idempotency headers) and
//! from the request and response types themselves (their `ToSchema` derivations).

use crate::api::{BootstrapBody, CreateKeyBody, CreateOrgBody, KeyView, RefreshBody, SessionView, TokenBody, UserView};
use crate::routes::{RouteSpec, ROUTES};
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

fn schema_of<T: ToSchema>(components: &mut Map<String, Value>) -> String {
    let name = T::name().into_owned();
    let mut nested: Vec<(String, RefOr<Schema>)> = Vec::new();
    T::schemas(&mut nested);
    for (n, s) in nested {
        components.insert(n, serde_json::to_value(s).unwrap_or(Value::Null));
    }
    components.insert(name.clone(), serde_json::to_value(<T as PartialSchema>::schema()).unwrap_or(Value::Null));
    name
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn envelope_of(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["ok", "data", "request_id"],
        "properties": { "ok": { "const": true }, "data": data, "request_id": { "type": "string" } }
    })
}

fn list_of(plural: &str, item: Value) -> Value {
    json!({
        "type": "object",
        "properties": { plural: { "type": "array", "items": item }, "next_cursor": { "type": ["string", "null"] } }
    })
}

/// Request and success-response schemas of each operation.
fn bodies(op: &str, c: &mut Map<String, Value>) -> (Option<Value>, Value) {
    let any = json!({ "type": "object" });
    match op {
        "keys.create" => (Some(reference(&schema_of::<CreateKeyBody>(c))), reference(&schema_of::<KeyView>(c))),
        "keys.list" => (None, list_of("keys", reference(&schema_of::<KeyView>(c)))),
        "keys.revoke" => (None, json!({"type": "object", "properties": {"id": {"type": "string"}, "revoked": {"type": "boolean"}}})),
        "orgs.create" => (
            Some(reference(&schema_of::<CreateOrgBody>(c))),
            json!({"type": "object", "properties": {"organization": any, "key": reference(&schema_of::<KeyView>(c))}}),
        ),
        "auth.bootstrap" => (
            Some(reference(&schema_of::<BootstrapBody>(c))),
            json!({"type": "object", "properties": {"user": reference(&schema_of::<UserView>(c)), "organization": any, "key": reference(&schema_of::<KeyView>(c))}}),
        ),
        "auth.token" => (Some(reference(&schema_of::<TokenBody>(c))), reference(&schema_of::<SessionView>(c))),
        "auth.refresh" => (Some(reference(&schema_of::<RefreshBody>(c))), reference(&schema_of::<SessionView>(c))),
        "runs.list" => (None, list_of("runs", reference("Run"))),
        "runs.get" => (None, reference("Run")),
        "cmdb.items.create" => {
            (Some(reference(&schema_of::<crate::cmdb::CreateItemBody>(c))), reference(&schema_of::<atlas_cmdb::ConfigurationItem>(c)))
        }
        "cmdb.items.list" => (None, list_of("items", reference(&schema_of::<atlas_cmdb::ConfigurationItem>(c)))),
        "cmdb.items.get" => (None, reference(&schema_of::<atlas_cmdb::ConfigurationItem>(c))),
        "cmdb.relationships.create" => {
            (Some(reference(&schema_of::<crate::cmdb::RelateBody>(c))), reference(&schema_of::<atlas_cmdb::Relationship>(c)))
        }
        "cmdb.impact" => (None, reference(&schema_of::<atlas_cmdb::Impact>(c))),
        "changes.create" => {
            (Some(reference(&schema_of::<crate::changes::CreateChangeBody>(c))), reference(&schema_of::<atlas_itsm::ChangeRequest>(c)))
        }
        "changes.list" => (None, list_of("changes", reference(&schema_of::<atlas_itsm::ChangeRequest>(c)))),
        "changes.get" => (None, reference(&schema_of::<atlas_itsm::ChangeRequest>(c))),
        "changes.update" => {
            (Some(reference(&schema_of::<crate::changes::UpdateChangeBody>(c))), reference(&schema_of::<atlas_itsm::ChangeRequest>(c)))
        }
        "changes.approve" => (
            Some(reference(&schema_of::<crate::changes::ApprovalBody>(c))),
            json!({"type": "object", "properties": {"approval": reference(&schema_of::<atlas_itsm::Approval>(c)), "change": reference(&schema_of::<atlas_itsm::ChangeRequest>(c))}}),
        ),
        "blackouts.create" => {
            (Some(reference(&schema_of::<crate::changes::CreateBlackoutBody>(c))), reference(&schema_of::<atlas_itsm::Blackout>(c)))
        }
        "blackouts.list" => (None, list_of("blackouts", reference(&schema_of::<atlas_itsm::Blackout>(c)))),
        "catalog.create" => (
            Some(reference(&schema_of::<crate::service_requests::CreateCatalogItemBody>(c))),
            reference(&schema_of::<atlas_itsm::CatalogItem>(c)),
        ),
        "catalog.list" => (None, list_of("items", reference(&schema_of::<atlas_itsm::CatalogItem>(c)))),
        "requests.create" => (
            Some(reference(&schema_of::<crate::service_requests::CreateRequestBody>(c))),
            reference(&schema_of::<atlas_itsm::ServiceRequest>(c)),
        ),
        "requests.list" => (None, list_of("requests", reference(&schema_of::<atlas_itsm::ServiceRequest>(c)))),
        "requests.get" => (None, reference(&schema_of::<atlas_itsm::ServiceRequest>(c))),
        "requests.update" => (
            Some(reference(&schema_of::<crate::service_requests::UpdateRequestBody>(c))),
            reference(&schema_of::<atlas_itsm::ServiceRequest>(c)),
        ),
        "rca.analyse" => (Some(reference(&schema_of::<crate::rca::RcaBody>(c))), reference(&schema_of::<atlas_itsm::Analysis>(c))),
        "incidents.create" => (
            Some(reference(&schema_of::<crate::incidents::CreateIncidentBody>(c))),
            reference(&schema_of::<crate::incidents::IncidentAnswer>(c)),
        ),
        "incidents.update" => (
            Some(reference(&schema_of::<crate::incidents::UpdateIncidentBody>(c))),
            reference(&schema_of::<crate::incidents::IncidentAnswer>(c)),
        ),
        "incidents.list" => (None, reference(&schema_of::<crate::incidents::IncidentList>(c))),
        "incidents.get" => (None, reference(&schema_of::<atlas_incidents::Incident>(c))),
        "incidents.timeline" => (None, reference(&schema_of::<crate::incidents::TimelineAnswer>(c))),
        "incidents.metrics" => (None, reference(&schema_of::<crate::incidents::MetricsAnswer>(c))),
        "alerts.create" => {
            (Some(reference(&schema_of::<crate::alerts::AlertBody>(c))), reference(&schema_of::<crate::alerts::AlertAnswer>(c)))
        }
        "alerts.alertmanager" => (
            Some(reference(&schema_of::<atlas_incidents::AlertmanagerPayload>(c))),
            reference(&schema_of::<crate::alerts::AlertmanagerAnswer>(c)),
        ),
        "runbooks.create" | "runbooks.replace" => {
            (Some(reference(&schema_of::<crate::runbooks::RunbookBody>(c))), reference(&schema_of::<atlas_runbooks::Runbook>(c)))
        }
        "runbooks.list" => (None, reference(&schema_of::<crate::runbooks::RunbookList>(c))),
        "runbooks.get" => (None, reference(&schema_of::<atlas_runbooks::Runbook>(c))),
        "runbooks.execute" => (
            Some(reference(&schema_of::<crate::runbooks::ExecuteBody>(c))),
            json!({"oneOf": [reference(&schema_of::<crate::runbooks::DryRunAnswer>(c)), reference(&schema_of::<atlas_runbooks::Execution>(c))]}),
        ),
        "runbooks.executions" => (None, reference(&schema_of::<crate::runbooks::ExecutionList>(c))),
        "runbooks.execution" => (None, reference(&schema_of::<atlas_runbooks::Execution>(c))),
        _ => (None, any),
    }
}

fn run_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "actor": {"type": "object"}, "operation": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
            "request_id": {"type": "string"}, "idempotency_key": {"type": ["string", "null"]},
            "resource_id": {"type": ["string", "null"]}, "error": {"type": ["object", "null"]},
            "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}
        }
    })
}

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
                    "code": {"type": "string"}, "message": {"type": "string"}, "retryable": {"type": "boolean"},
                    "hint": {"type": "string"}, "details": {"type": "object"}
                }
            },
            "request_id": {"type": "string"}
        }
    })
}

fn parameters(spec: &RouteSpec) -> Vec<Value> {
    let mut params: Vec<Value> = spec
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if spec.idempotent {
        params.push(json!({"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Replays the stored outcome of the same request for 24 hours"}));
    }
    if spec.method == "GET" && spec.path.ends_with('s') && spec.scope.is_some() {
        params.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}));
        params.push(json!({"name": "cursor", "in": "query", "schema": {"type": "string"}}));
    }
    params
}

fn operation(spec: &RouteSpec, components: &mut Map<String, Value>) -> Value {
    let (request, response) = bodies(spec.operation, components);
    let success = spec.success.to_string();
    let mut responses = Map::new();
    let answer = json!({"description": "success", "content": {"application/json": {"schema": envelope_of(response)}}});
    if spec.operation == "actions.execute" {
        // a reply is queued (202); a draft or a handoff is done at once (200)
        responses.insert("200".into(), answer.clone());
    }
    responses.insert(success, answer);
    for (code, why) in [
        ("400", "VALIDATION_ERROR"),
        ("401", "UNAUTHORIZED"),
        ("403", "FORBIDDEN or IP_NOT_ALLOWED"),
        ("404", "NOT_FOUND"),
        ("409", "IDEMPOTENCY_IN_PROGRESS"),
        ("413", "PAYLOAD_TOO_LARGE"),
        ("422", "IDEMPOTENCY_KEY_REUSED or a business rule"),
        ("429", "RATE_LIMITED"),
        ("500", "INTERNAL_ERROR"),
    ] {
        responses.insert(code.into(), json!({"description": why, "content": {"application/json": {"schema": reference("Error")}}}));
    }
    let mut op = json!({
        "operationId": spec.operation,
        "summary": spec.summary,
        "tags": [spec.tag],
        "parameters": parameters(spec),
        "responses": responses,
        "x-required-scopes": spec.scope.map(|s| vec![s.as_str()]).unwrap_or_default(),
    });
    if let Some(class) = spec.class {
        op["x-ratelimit-class"] = json!(class.as_str());
    }
    op["security"] = if spec.scope.is_some() { json!([{"bearer": []}, {"apiKey": []}]) } else { json!([]) };
    if let Some(request) = request {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": request}}});
    }
    op
}

/// The whole document.
pub fn openapi_document() -> Value {
    let mut components = Map::new();
    components.insert("Error".into(), error_schema());
    components.insert("Run".into(), run_schema());
    let mut paths = Map::new();
    for spec in ROUTES {
        let op = operation(spec, &mut components);
        let item = paths.entry(spec.path.to_owned()).or_insert_with(|| json!({}));
        item[spec.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Atlas API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hostable API platform for business messaging and operations. Every response uses one envelope; see docs/api.md."
        },
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
