//! The contracts of the operations routes (incidents, alerts, runbooks, CMDB, ITSM, RCA):
//! the examples the document, Postman and schemathesis start from (request examples are seed
//! 002's bodies where the seed has one, and parse with the handlers' own types), and the
//! typed answers that only exist for the document (an approval's answer).

use crate::alerts::{AlertAnswer, AlertBody, AlertmanagerAnswer};
use crate::changes::{ApprovalBody, BlackoutsPage, ChangesPage, CreateBlackoutBody, CreateChangeBody, UpdateChangeBody};
use crate::cmdb::{CreateItemBody, ItemsPage, RelateBody};
use crate::contract::Example;
use crate::incidents::{CreateIncidentBody, IncidentAnswer, IncidentList, MetricsAnswer, TimelineAnswer, UpdateIncidentBody};
use crate::rca::RcaBody;
use crate::runbooks::{DryRunAnswer, ExecuteBody, ExecutionList, RunbookBody, RunbookList};
use crate::service_requests::{CatalogPage, CreateCatalogItemBody, CreateRequestBody, RequestsPage, UpdateRequestBody};
use atlas_cmdb::{ConfigurationItem, Impact, Relationship};
use atlas_incidents::{AlertmanagerPayload, Incident};
use atlas_itsm::{Analysis, Approval, Blackout, CatalogItem, ChangeRequest, ServiceRequest};
use atlas_runbooks::{Execution, Runbook};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

const INCIDENT: &str = "inc_0190f0c2a5c47b8e9d6f5a4b3c2d1e0f";
const CI_API: &str = "ci_0190f0c2a5c47b8e9d6f5a4b3c2d1e01";
const CI_DB: &str = "ci_0190f0c2a5c47b8e9d6f5a4b3c2d1e02";
const CHANGE: &str = "chg_0190f0c2a5c47b8e9d6f5a4b3c2d1e03";
const CATALOG_ITEM: &str = "cat_0190f0c2a5c47b8e9d6f5a4b3c2d1e04";
const RUNBOOK: &str = "rbk_0190f0c2a5c47b8e9d6f5a4b3c2d1e05";
const EXECUTION: &str = "rbx_0190f0c2a5c47b8e9d6f5a4b3c2d1e06";
const PLAN_HASH: &str = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

fn incident() -> Value {
    json!({
        "id": INCIDENT, "reference": "INC-00000001", "title": "Database connection pool exhausted",
        "description": "api-gw answers 503: no free connection in the pool", "severity": "P1", "status": "triggered",
        "source": "prometheus", "ci_ids": [CI_DB], "assignee": null, "dedup_key": "db-pool-exhausted",
        "resolution_notes": null, "resolved_by": null, "version": 1, "occurrences": 1, "reopen_count": 0, "last_sequence": 1,
        "triggered_at": "2026-04-01T21:04:12.250000Z", "opened_at": null, "acknowledged_at": null, "resolved_at": null,
        "closed_at": null, "updated_at": "2026-04-01T21:04:12.250000Z"
    })
}

fn runbook() -> Value {
    json!({
        "id": RUNBOOK, "name": "Scale the connection pool", "description": "When the pool is exhausted",
        "parameters": [{"name": "size", "description": "New pool size", "default": "200", "required": false, "secret": false}],
        "steps": [
            {"kind": "manual", "title": "Check {{incident.reference}} on the dashboard"},
            {"kind": "http", "title": "Resize the pool", "method": "POST", "url": "https://ops.example.com/pools/main/resize", "body": {"size": "{{size}}"}}
        ],
        "version": 1, "created_at": "2026-04-01T09:00:00Z", "updated_at": "2026-04-01T09:00:00Z"
    })
}

fn execution() -> Value {
    json!({
        "id": EXECUTION, "runbook_id": RUNBOOK, "runbook_version": 1, "incident_id": "INC-00000001", "status": "queued",
        "plan_hash": PLAN_HASH, "parameters": {"size": "200"},
        "steps": [
            {"index": 0, "kind": "manual", "title": "Check INC-00000001 on the dashboard", "request": null, "status": "pending",
             "response_status": null, "response_excerpt": null, "error": null},
            {"index": 1, "kind": "http", "title": "Resize the pool",
             "request": {"method": "POST", "url": "https://ops.example.com/pools/main/resize", "body": {"size": "200"}},
             "status": "pending", "response_status": null, "response_excerpt": null, "error": null}
        ],
        "created_at": "2026-04-01T21:10:00Z", "started_at": null, "finished_at": null
    })
}

fn item(id: &str, name: &str, class: &str) -> Value {
    json!({
        "id": id, "name": name, "class": class, "environment": "production", "attributes": {"region": "eu-west-1"},
        "created_at": "2026-03-01T10:00:00Z", "updated_at": "2026-03-01T10:00:00Z"
    })
}

fn change() -> Value {
    json!({
        "id": CHANGE, "title": "Deploy v2.4.1", "description": null, "type": "normal", "risk_level": "medium", "status": "draft",
        "requested_start": "2026-04-01T18:00:00Z", "requested_end": "2026-04-01T22:00:00Z",
        "implementation_plan": "Rolling deploy, 25% at a time", "rollback_plan": "Redeploy v2.4.0",
        "requested_by": "ops@example.com", "ci_ids": [CI_API], "quorum": 1, "approvals": [], "version": 1,
        "submitted_at": null, "approved_at": null, "rejected_at": null, "scheduled_at": null, "implementing_at": null,
        "implemented_at": null, "created_at": "2026-03-30T08:00:00Z", "updated_at": "2026-03-30T08:00:00Z"
    })
}

fn approval() -> Value {
    json!({
        "id": "apr_0190f0c2a5c47b8e9d6f5a4b3c2d1e07", "change_id": CHANGE, "approver": "key_0190f0c2a5c47b8e9d6f5a4b3c2d1e08",
        "decision": "approve", "comment": "Rollback plan reviewed", "decided_at": "2026-03-31T09:00:00Z"
    })
}

fn catalog_item() -> Value {
    json!({
        "id": CATALOG_ITEM, "name": "New laptop", "description": "A standard developer laptop", "requires_approval": true,
        "created_at": "2026-03-01T10:00:00Z"
    })
}

fn service_request() -> Value {
    json!({
        "id": "srq_0190f0c2a5c47b8e9d6f5a4b3c2d1e09", "catalog_item_id": CATALOG_ITEM, "requested_by": "user@example.com",
        "status": "pending_approval", "decided_by": null, "comment": null, "version": 1,
        "created_at": "2026-04-01T08:00:00Z", "updated_at": "2026-04-01T08:00:00Z", "decided_at": null, "fulfilled_at": null
    })
}

fn blackout() -> Value {
    json!({
        "id": "blk_0190f0c2a5c47b8e9d6f5a4b3c2d1e0a", "ci_ids": [CI_API], "start": "2026-04-24T00:00:00Z",
        "end": "2026-04-27T00:00:00Z", "reason": "Quarter-end close", "created_at": "2026-04-01T08:00:00Z"
    })
}

macro_rules! example {
    ($($t:ty => $e:expr;)*) => {
        $(impl Example for $t {
            fn example() -> Value {
                $e
            }
        })*
    };
}

/// The answer to an approval: the decision and the change as it now stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    pub approval: Approval,
    pub change: ChangeRequest,
}

example! {
    CreateIncidentBody => json!({
        "title": "Database connection pool exhausted", "severity": "P1", "description": "...", "source": "prometheus",
        "ci_ids": ["ci-001"]
    });
    UpdateIncidentBody => json!({
        "status": "resolved", "resolution_notes": "Scaled connection pool to 200", "resolved_by": "ops@example.com"
    });
    Incident => incident();
    IncidentAnswer => {
        let mut v = incident();
        v["outcome"] = json!("created");
        v
    };
    IncidentList => json!({"incidents": [incident()], "next_cursor": null});
    TimelineAnswer => json!({
        "incident_id": INCIDENT, "reference": "INC-00000001",
        "entries": [
            {"incident_id": INCIDENT, "sequence": 1, "kind": "created", "who": "key_0190f0c2a5c47b8e9d6f5a4b3c2d1e08",
             "from": null, "to": "triggered", "note": null, "at": "2026-04-01T21:04:12.250000Z"},
            {"incident_id": INCIDENT, "sequence": 2, "kind": "transition", "who": "key_0190f0c2a5c47b8e9d6f5a4b3c2d1e08",
             "from": "triggered", "to": "acknowledged", "note": "Looking", "at": "2026-04-01T21:06:00Z"}
        ]
    });
    MetricsAnswer => json!({
        "mtta_seconds": 108.0, "mttr_seconds": 2388.0,
        "summary": {"incidents": 1, "acknowledged": 1, "resolved": 1, "mtta_seconds": 108.0, "mttr_seconds": 2388.0},
        "incidents": [{"id": INCIDENT, "reference": "INC-00000001", "severity": "P1", "status": "resolved",
                       "triggered_at": "2026-04-01T21:04:12Z", "mtta_seconds": 108, "mttr_seconds": 2388}],
        "truncated": false
    });
    AlertBody => json!({
        "dedup_key": "db-pool-exhausted", "action": "trigger", "summary": "Database connection pool exhausted",
        "severity": "P1", "source": "prometheus", "ci_ids": ["ci-001"]
    });
    AlertAnswer => json!({"dedup_key": "db-pool-exhausted", "outcome": "created", "incident": incident()});
    AlertmanagerPayload => json!({
        "version": "4", "groupKey": "{}:{alertname=\"DbPoolExhausted\"}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "atlas", "groupLabels": {"alertname": "DbPoolExhausted"},
        "commonLabels": {"alertname": "DbPoolExhausted", "severity": "critical"},
        "commonAnnotations": {"summary": "Database connection pool exhausted"},
        "externalURL": "https://alertmanager.example.com",
        "alerts": [{
            "status": "firing", "labels": {"alertname": "DbPoolExhausted", "severity": "critical", "instance": "db-1"},
            "annotations": {"summary": "Database connection pool exhausted"}, "startsAt": "2026-04-01T21:04:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "https://prometheus.example.com/graph", "fingerprint": "c3a1f2b4d5e6a7b8"
        }]
    });
    AlertmanagerAnswer => json!({"results": [{"dedup_key": "c3a1f2b4d5e6a7b8", "outcome": "created", "incident": incident()}]});
    RunbookBody => {
        let mut v = runbook();
        let o = v.as_object_mut().expect("an object");
        for field in ["id", "version", "created_at", "updated_at"] {
            o.remove(field);
        }
        v
    };
    Runbook => runbook();
    RunbookList => json!({"runbooks": [runbook()], "next_cursor": null});
    ExecuteBody => json!({"incident_id": "INC-00000001", "dry_run": false});
    DryRunAnswer => json!({
        "dry_run": true, "runbook_id": RUNBOOK, "runbook_version": 1, "incident_id": "INC-00000001",
        "parameters": {"size": "200"}, "plan_hash": PLAN_HASH,
        "steps": [
            {"index": 0, "kind": "manual", "title": "Check INC-00000001 on the dashboard", "request": null},
            {"index": 1, "kind": "http", "title": "Resize the pool",
             "request": {"method": "POST", "url": "https://ops.example.com/pools/main/resize", "body": {"size": "200"}}}
        ]
    });
    Execution => execution();
    ExecutionList => json!({"executions": [execution()], "next_cursor": null});
    CreateItemBody => json!({"name": "api-gw", "class": "server", "environment": "production", "attributes": {"region": "eu-west-1"}});
    ConfigurationItem => item(CI_API, "api-gw", "server");
    ItemsPage => json!({"items": [item(CI_API, "api-gw", "server")], "next_cursor": null});
    RelateBody => json!({"source_id": CI_API, "target_id": CI_DB, "type": "depends_on"});
    Relationship => json!({
        "id": "rel_0190f0c2a5c47b8e9d6f5a4b3c2d1e0b", "source_id": CI_API, "target_id": CI_DB, "type": "depends_on",
        "created_at": "2026-03-01T10:05:00Z"
    });
    Impact => json!({
        "ci": {"id": CI_DB, "name": "orders-db", "class": "database", "environment": "production"},
        "direction": "downstream", "max_depth": null,
        "items": [{"id": CI_API, "name": "api-gw", "class": "server", "environment": "production", "depth": 1, "path": [CI_DB, CI_API]}]
    });
    CreateChangeBody => json!({
        "title": "Deploy v2.4.1", "type": "normal", "risk_level": "medium", "requested_start": "2026-04-01T18:00:00Z",
        "requested_end": "2026-04-01T22:00:00Z", "implementation_plan": "...", "rollback_plan": "...",
        "requested_by": "ops@example.com"
    });
    UpdateChangeBody => json!({"status": "submitted"});
    ApprovalBody => json!({"decision": "approve", "comment": "Rollback plan reviewed"});
    ChangeRequest => change();
    ChangesPage => json!({"changes": [change()], "next_cursor": null});
    DecisionView => {
        let mut c = change();
        c["status"] = json!("approved");
        c["approvals"] = json!([approval()]);
        json!({"approval": approval(), "change": c})
    };
    CreateBlackoutBody => json!({
        "ci_ids": [CI_API], "start": "2026-04-24T00:00:00Z", "end": "2026-04-27T00:00:00Z", "reason": "Quarter-end close"
    });
    Blackout => blackout();
    BlackoutsPage => json!({"blackouts": [blackout()], "next_cursor": null});
    CreateCatalogItemBody => json!({"name": "New laptop", "description": "A standard developer laptop", "requires_approval": true});
    CatalogItem => catalog_item();
    CatalogPage => json!({"items": [catalog_item()], "next_cursor": null});
    CreateRequestBody => json!({"catalog_item_id": CATALOG_ITEM, "requested_by": "user@example.com"});
    UpdateRequestBody => json!({"status": "approved", "comment": "Budget approved"});
    ServiceRequest => service_request();
    RequestsPage => json!({"requests": [service_request()], "next_cursor": null});
    RcaBody => json!({"incident_id": "INC-00000001"});
    Analysis => json!({
        "incident": {"id": INCIDENT, "reference": "INC-00000001", "title": "Database connection pool exhausted",
                     "severity": "P1", "ci_ids": [CI_API], "triggered_at": "2026-04-01T21:04:12Z"},
        "window": {"from": "2026-03-31T21:04:12Z", "to": "2026-04-01T21:04:12Z"},
        "half_life_seconds": 3600,
        "weights": {"time_proximity": 0.5, "graph_distance": 0.3, "risk": 0.2},
        "candidates": [{
            "rank": 1, "kind": "change", "id": CHANGE, "title": "Deploy v2.4.1", "at": "2026-04-01T20:30:00Z",
            "seconds_before_trigger": 2052, "ci_id": CI_DB, "distance": 1, "path": [CI_API, CI_DB], "risk": "medium",
            "components": {"time_proximity": 0.67, "graph_distance": 0.5, "risk": 0.5}, "score": 0.585
        }]
    });
}

/// What `POST /v1/atlas/runbooks/{id}/execute` answers: the plan of a dry run (200), or the
/// queued execution (202).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ExecuteAnswer {
    DryRun(DryRunAnswer),
    Queued(Execution),
}

impl Example for ExecuteAnswer {
    fn example() -> Value {
        execution()
    }
}
