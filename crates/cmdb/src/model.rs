//! Configuration items and the typed relationships between them ("the source depends on the
//! target"), with the rules a new one must satisfy.

use atlas_kernel::{typed_id, OrgId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

typed_id!(
    /// A configuration item (server, database, service, …).
    CiId,
    "ci"
);

typed_id!(
    /// A relationship between two configuration items.
    RelationshipId,
    "rel"
);

/// The longest item name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest class or environment, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// The largest `attributes` object, serialized, in bytes.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// A configuration item as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigurationItem {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: CiId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub name: String,
    /// `server`, `database`, `service`, … (lower-case, as given).
    pub class: String,
    pub environment: Option<String>,
    /// Free-form attributes (a JSON object).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// How the source of a relationship depends on its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RelationshipType {
    DependsOn,
    RunsOn,
    ConnectsTo,
}

impl RelationshipType {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RelationshipType::DependsOn => "depends_on",
            RelationshipType::RunsOn => "runs_on",
            RelationshipType::ConnectsTo => "connects_to",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "depends_on" => Some(RelationshipType::DependsOn),
            "runs_on" => Some(RelationshipType::RunsOn),
            "connects_to" => Some(RelationshipType::ConnectsTo),
            _ => None,
        }
    }
}

/// A relationship: `source_id` depends on `target_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Relationship {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: RelationshipId,
    #[serde(skip)]
    pub org_id: OrgId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub source_id: CiId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub target_id: CiId,
    #[serde(rename = "type")]
    pub kind: RelationshipType,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Which items a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFilter {
    pub class: Option<String>,
    pub environment: Option<String>,
}

/// A label (class, environment): trimmed, lower-cased, 1 to 64 characters.
pub(crate) fn label(text: &str) -> Option<String> {
    let text = text.trim().to_lowercase();
    (!text.is_empty() && text.chars().count() <= MAX_LABEL_CHARS).then_some(text)
}
