//! The CMDB: configuration items, typed relationships ("the source depends on the target"),
//! and impact analysis (the blast radius downstream, or the dependencies upstream), each item
//! once with its depth and one shortest path, bounded by `max_depth` and terminating on cycles
//! ([`impact`]); the [`CmdbStore`] port and the [`Cmdb`] use cases over it.
//! Pure: no runtime, database or HTTP.

pub mod impact;
mod model;

pub use impact::{traverse, Direction, Link, Reached, Traversal};
pub use model::{
    CiId, ConfigurationItem, ItemFilter, Relationship, RelationshipId, RelationshipType, MAX_ATTRIBUTES_BYTES, MAX_LABEL_CHARS,
    MAX_NAME_CHARS,
};

use async_trait::async_trait;
use atlas_kernel::{Clock, OrgId, Page, PageRequest, StoreError};
use atlas_runs::{Journal, JournalEntry};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;

/// Why a CMDB store call failed.
#[derive(Debug, Error)]
pub enum CmdbStoreError {
    /// A referenced item is absent or another organization's; names which (`source_id`, …).
    #[error("{0} not found")]
    MissingItem(&'static str),
    /// The same relationship (source, target, type) exists already.
    #[error("the relationship exists already")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where configuration items and relationships live.
#[async_trait]
pub trait CmdbStore: Send + Sync + std::fmt::Debug {
    /// Inserts `item` and commits `journal` with it.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn insert_item(&self, item: &ConfigurationItem, journal: &JournalEntry) -> Result<(), CmdbStoreError>;

    /// One item of the organization.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn item(&self, org_id: OrgId, id: CiId) -> Result<Option<ConfigurationItem>, CmdbStoreError>;

    /// The organization's items among `ids` (absent ones are left out).
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn items_by_id(&self, org_id: OrgId, ids: &[CiId]) -> Result<Vec<ConfigurationItem>, CmdbStoreError>;

    /// The organization's items matching `filter`, newest first.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn items(&self, org_id: OrgId, filter: &ItemFilter, page: &PageRequest) -> Result<Page<ConfigurationItem>, CmdbStoreError>;

    /// Inserts `relationship` (both ends must be the organization's items) with `journal`.
    ///
    /// # Errors
    /// `MissingItem("source_id" | "target_id")`, `Duplicate`, `Store`.
    async fn insert_relationship(&self, relationship: &Relationship, journal: &JournalEntry) -> Result<(), CmdbStoreError>;

    /// The links leaving `from` in `direction`: downstream, the relationships whose target is in
    /// `from` (`Link { from: target, to: source }`); upstream, those whose source is in `from`.
    ///
    /// # Errors
    /// `Store` when the backing store fails.
    async fn links(&self, org_id: OrgId, from: &[CiId], direction: Direction) -> Result<Vec<Link>, CmdbStoreError>;
}

/// Why a CMDB use case refused or failed.
#[derive(Debug, Error)]
pub enum CmdbError {
    /// A field is malformed (`VALIDATION_ERROR` naming `field`).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The item (or an item a field names) is absent (`NOT_FOUND`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The relationship exists already (`CONFLICT`).
    #[error("the relationship exists already")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CmdbStoreError> for CmdbError {
    fn from(e: CmdbStoreError) -> Self {
        match e {
            CmdbStoreError::MissingItem(what) => CmdbError::NotFound(what),
            CmdbStoreError::Duplicate => CmdbError::Duplicate,
            CmdbStoreError::Store(s) => CmdbError::Store(s),
        }
    }
}

/// The clock's instant at microsecond precision, as stored: an answer shows the same times a
/// later read does.
fn now(clock: &dyn Clock) -> time::OffsetDateTime {
    let at = clock.now();
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

fn invalid(field: &'static str, message: impl Into<String>) -> CmdbError {
    CmdbError::Invalid { field, message: message.into() }
}

/// `POST /v1/atlas/cmdb/items`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub name: String,
    pub class: String,
    pub environment: Option<String>,
    pub attributes: Option<serde_json::Value>,
}

/// `POST /v1/atlas/cmdb/relationships`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRelationship {
    pub source_id: CiId,
    pub target_id: CiId,
    pub kind: RelationshipType,
}

/// An item as an impact answer names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemSummary {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: CiId,
    pub name: String,
    pub class: String,
    pub environment: Option<String>,
}

impl From<&ConfigurationItem> for ItemSummary {
    fn from(item: &ConfigurationItem) -> Self {
        Self { id: item.id, name: item.name.clone(), class: item.class.clone(), environment: item.environment.clone() }
    }
}

/// One impacted item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImpactedItem {
    #[serde(flatten)]
    pub item: ItemSummary,
    pub depth: u32,
    /// One shortest path, from the item asked about to this one.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub path: Vec<CiId>,
}

/// `GET /v1/atlas/cmdb/impact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Impact {
    pub ci: ItemSummary,
    pub direction: Direction,
    pub max_depth: Option<u32>,
    pub items: Vec<ImpactedItem>,
}

/// The largest `max_depth` accepted.
pub const MAX_DEPTH: u32 = 100;

/// The CMDB use cases.
#[derive(Debug, Clone)]
pub struct Cmdb {
    store: Arc<dyn CmdbStore>,
    clock: Arc<dyn Clock>,
}

impl Cmdb {
    /// The use cases over `store`, telling time by `clock`.
    pub fn new(store: Arc<dyn CmdbStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Creates an item.
    ///
    /// # Errors
    /// `Invalid` for a bad name, class, environment or attributes; `Store`.
    pub async fn create_item(
        &self,
        org_id: OrgId,
        new: NewItem,
        journal: &dyn Journal<ConfigurationItem>,
    ) -> Result<ConfigurationItem, CmdbError> {
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid("name", format!("1 to {MAX_NAME_CHARS} characters")));
        }
        let class = model::label(&new.class).ok_or_else(|| invalid("class", format!("1 to {MAX_LABEL_CHARS} characters")))?;
        let environment = match new.environment {
            None => None,
            Some(e) => Some(model::label(&e).ok_or_else(|| invalid("environment", format!("1 to {MAX_LABEL_CHARS} characters")))?),
        };
        let attributes = new.attributes.unwrap_or_else(|| serde_json::json!({}));
        if !attributes.is_object() {
            return Err(invalid("attributes", "must be a JSON object"));
        }
        if serde_json::to_vec(&attributes).map_or(usize::MAX, |b| b.len()) > MAX_ATTRIBUTES_BYTES {
            return Err(invalid("attributes", format!("at most {MAX_ATTRIBUTES_BYTES} bytes")));
        }
        let now = now(self.clock.as_ref());
        let item =
            ConfigurationItem { id: CiId::generate(), org_id, name, class, environment, attributes, created_at: now, updated_at: now };
        self.store.insert_item(&item, &journal.entry(&item)).await?;
        Ok(item)
    }

    /// One item.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn item(&self, org_id: OrgId, id: CiId) -> Result<ConfigurationItem, CmdbError> {
        self.store.item(org_id, id).await?.ok_or(CmdbError::NotFound("configuration item"))
    }

    /// The items among `ids` that exist (in no particular order).
    ///
    /// # Errors
    /// `Store`.
    pub async fn items_by_id(&self, org_id: OrgId, ids: &[CiId]) -> Result<Vec<ConfigurationItem>, CmdbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.items_by_id(org_id, ids).await?)
    }

    /// Items, newest first, filtered by class and environment.
    ///
    /// # Errors
    /// `Store`.
    pub async fn items(&self, org_id: OrgId, filter: &ItemFilter, page: &PageRequest) -> Result<Page<ConfigurationItem>, CmdbError> {
        let filter = ItemFilter {
            class: filter.class.as_deref().map(|c| c.trim().to_lowercase()),
            environment: filter.environment.as_deref().map(|e| e.trim().to_lowercase()),
        };
        Ok(self.store.items(org_id, &filter, page).await?)
    }

    /// Relates two items.
    ///
    /// # Errors
    /// `Invalid` when an item would depend on itself; `NotFound` for an unknown end;
    /// `Duplicate`; `Store`.
    pub async fn relate(
        &self,
        org_id: OrgId,
        new: NewRelationship,
        journal: &dyn Journal<Relationship>,
    ) -> Result<Relationship, CmdbError> {
        if new.source_id == new.target_id {
            return Err(invalid("target_id", "an item cannot depend on itself"));
        }
        let relationship = Relationship {
            id: RelationshipId::generate(),
            org_id,
            source_id: new.source_id,
            target_id: new.target_id,
            kind: new.kind,
            created_at: now(self.clock.as_ref()),
        };
        self.store.insert_relationship(&relationship, &journal.entry(&relationship)).await?;
        Ok(relationship)
    }

    /// Every item reached from `start` in `direction` (the start excluded), without checking
    /// that `start` exists: one store round trip per level.
    ///
    /// # Errors
    /// `Store`.
    pub async fn reach(&self, org_id: OrgId, start: CiId, direction: Direction, max_depth: Option<u32>) -> Result<Vec<Reached>, CmdbError> {
        let mut traversal = Traversal::new(start, max_depth);
        while !traversal.frontier().is_empty() {
            let links = self.store.links(org_id, traversal.frontier(), direction).await?;
            traversal.absorb(&links);
        }
        Ok(traversal.finish())
    }

    /// The impact of `ci_id`.
    ///
    /// # Errors
    /// `Invalid` for a `max_depth` over [`MAX_DEPTH`]; `NotFound`; `Store`.
    pub async fn impact(&self, org_id: OrgId, ci_id: CiId, direction: Direction, max_depth: Option<u32>) -> Result<Impact, CmdbError> {
        if max_depth.is_some_and(|d| d == 0 || d > MAX_DEPTH) {
            return Err(invalid("max_depth", format!("1 to {MAX_DEPTH}")));
        }
        let start = self.item(org_id, ci_id).await?;
        let reached = self.reach(org_id, ci_id, direction, max_depth).await?;
        let ids: Vec<CiId> = reached.iter().map(|r| r.ci_id).collect();
        let found: BTreeMap<CiId, ItemSummary> =
            self.store.items_by_id(org_id, &ids).await?.iter().map(|i| (i.id, ItemSummary::from(i))).collect();
        let items = reached
            .into_iter()
            .filter_map(|r| found.get(&r.ci_id).map(|item| ImpactedItem { item: item.clone(), depth: r.depth, path: r.path }))
            .collect();
        Ok(Impact { ci: ItemSummary::from(&start), direction, max_depth, items })
    }
}
