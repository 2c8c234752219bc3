//! [`IncidentRecords`]: the analysis's `IncidentHistory` read through the incidents' own port
//! (`atlas_incidents::IncidentStore`), so root-cause analysis never depends on how incidents
//! are stored.

use crate::rca::{IncidentFacts, IncidentHistory};
use async_trait::async_trait;
use atlas_incidents::{Incident, IncidentError, IncidentFilter, IncidentKey, IncidentStore};
use atlas_kernel::{OrgId, StoreError};
use std::sync::Arc;
use time::OffsetDateTime;

/// The most earlier incidents one analysis reads.
pub const MAX_EARLIER_INCIDENTS: u64 = 1_000;

/// `IncidentHistory` over an `IncidentStore`.
#[derive(Debug, Clone)]
pub struct IncidentRecords {
    store: Arc<dyn IncidentStore>,
}

impl IncidentRecords {
    /// The history `store` holds.
    pub fn new(store: Arc<dyn IncidentStore>) -> Self {
        Self { store }
    }
}

fn facts(incident: &Incident) -> IncidentFacts {
    IncidentFacts {
        id: incident.id.to_string(),
        reference: incident.reference.to_string(),
        title: incident.title.clone(),
        severity: incident.severity.as_str().to_owned(),
        ci_ids: incident.ci_ids.clone(),
        triggered_at: incident.triggered_at,
    }
}

fn store_error(e: IncidentError) -> StoreError {
    match e {
        IncidentError::Store(s) => s,
        other => StoreError::new("reading incidents", other.to_string()),
    }
}

#[async_trait]
impl IncidentHistory for IncidentRecords {
    async fn incident(&self, org_id: OrgId, id_or_reference: &str) -> Result<Option<IncidentFacts>, StoreError> {
        let Ok(key) = id_or_reference.parse::<IncidentKey>() else {
            return Ok(None);
        };
        match self.store.get(org_id, key).await {
            Ok(incident) => Ok(Some(facts(&incident))),
            Err(IncidentError::NotFound) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn triggered_between(&self, org_id: OrgId, from: OffsetDateTime, to: OffsetDateTime) -> Result<Vec<IncidentFacts>, StoreError> {
        let filter = IncidentFilter { from: Some(from), to: Some(to), ..IncidentFilter::default() };
        let found = self.store.matching(org_id, &filter, MAX_EARLIER_INCIDENTS).await.map_err(store_error)?;
        Ok(found.iter().map(facts).collect())
    }
}
