//! Alerts in: a signal from a monitoring system (`trigger`, `acknowledge` or `resolve` by
//! `dedup_key`), and Prometheus Alertmanager's webhook payload (version 4), whose alerts become
//! signals keyed by their fingerprint (`firing` triggers, `resolved` resolves).

use crate::model::Severity;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What an alert asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    #[serde(alias = "Trigger", alias = "TRIGGER")]
    Trigger,
    #[serde(alias = "Acknowledge", alias = "ACKNOWLEDGE", alias = "ack")]
    Acknowledge,
    #[serde(alias = "Resolve", alias = "RESOLVE")]
    Resolve,
}

/// One signal, already checked at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub dedup_key: String,
    pub action: AlertAction,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub severity: Option<Severity>,
    pub source: Option<String>,
    pub ci_ids: Vec<String>,
}

/// Alertmanager's webhook body, version 4, as Alertmanager sends it (unknown members ignored,
/// so a newer Alertmanager's additions do not break it).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    pub version: String,
    #[serde(default)]
    pub group_key: Option<String>,
    #[serde(default)]
    pub truncated_alerts: Option<u64>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL", default)]
    pub external_url: Option<String>,
    pub alerts: Vec<AlertmanagerAlert>,
}

/// One alert of the payload.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// `firing` or `resolved`.
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: Option<String>,
    pub fingerprint: String,
}

/// A severity from a `severity` label: `P1`…`P5` as written, else `critical` → P1,
/// `high`/`error`/`major` → P2, `warning`/`medium` → P3, `low`/`minor` → P4, `info` → P5;
/// anything else (or no label) P3.
pub fn severity_from_label(label: Option<&str>) -> Severity {
    let Some(label) = label else { return Severity::P3 };
    if let Some(s) = Severity::parse(label) {
        return s;
    }
    match label.to_ascii_lowercase().as_str() {
        "critical" | "page" => Severity::P1,
        "high" | "error" | "major" => Severity::P2,
        "low" | "minor" => Severity::P4,
        "info" | "informational" | "none" => Severity::P5,
        _ => Severity::P3,
    }
}

impl AlertmanagerPayload {
    /// The signals this payload carries, one per alert, keyed by fingerprint.
    ///
    /// # Errors
    /// A message naming the field when the payload is not version 4, an alert's status is
    /// neither `firing` nor `resolved`, or a fingerprint is empty.
    pub fn signals(&self) -> Result<Vec<Alert>, (String, String)> {
        if self.version != "4" {
            return Err(("version".into(), format!("Alertmanager webhook payload version 4 is supported, not {:?}", self.version)));
        }
        self.alerts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let action = match a.status.as_str() {
                    "firing" => AlertAction::Trigger,
                    "resolved" => AlertAction::Resolve,
                    other => return Err((format!("alerts[{i}].status"), format!("must be firing or resolved, not {other:?}"))),
                };
                if a.fingerprint.trim().is_empty() || a.fingerprint.len() > 200 {
                    return Err((format!("alerts[{i}].fingerprint"), "must be 1 to 200 characters".into()));
                }
                let label = |k: &str| a.labels.get(k).or_else(|| self.common_labels.get(k)).cloned();
                let annotation = |k: &str| a.annotations.get(k).or_else(|| self.common_annotations.get(k)).cloned();
                let summary = annotation("summary").or_else(|| label("alertname")).or_else(|| Some(format!("Alert {}", a.fingerprint)));
                Ok(Alert {
                    dedup_key: a.fingerprint.clone(),
                    action,
                    summary,
                    description: annotation("description"),
                    severity: Some(severity_from_label(label("severity").as_deref())),
                    source: Some("alertmanager".into()),
                    ci_ids: label("ci_id").into_iter().collect(),
                })
            })
            .collect()
    }
}
