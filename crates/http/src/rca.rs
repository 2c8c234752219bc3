//! `POST /v1/atlas/rca {"incident_id"}` (an id or a reference such as `INC-00000001`): the
//! deterministic root-cause analysis of an incident, its candidate causes ranked with the
//! components of each score. It reads and changes nothing, so it records no run; the same
//! input answers the same bytes. Scope `atlas.incidents.read`.

use crate::auth::Caller;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::Deserialize;
use utoipa::ToSchema;

/// The handler of the RCA route, if `operation` is it.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "rca.analyse" => on(filter, analyse),
        _ => return None,
    })
}

/// `POST /v1/atlas/rca`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RcaBody {
    /// The incident's id or reference (`INC-00000001`).
    #[serde(alias = "incidentId")]
    pub incident_id: String,
}

async fn analyse(State(state): State<AppState>, Caller(caller): Caller, body: JsonBody<RcaBody>) -> Result<Response, ApiError> {
    let analysis = state.root_causes.analyse(caller.org_id, body.value.incident_id.trim()).await?;
    Ok(Envelope::ok(analysis).into_response())
}
