//! `CmdbStore` for [`SqlStore`]: configuration items and relationships, and the links of one
//! impact level in one query (`WHERE target_id IN (…)` downstream, `source_id IN (…)`
//! upstream, both indexed by organization).

use crate::conversations::{begin, commit};
use crate::convert::{corrupt, from_json, from_us, to_json, to_us};
use crate::entity::{cmdb_items, cmdb_relationships};
use crate::error::{db, Failure, Unique};
use crate::journal::write_journal;
use crate::runs::before_cursor;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_cmdb::{CiId, CmdbStore, CmdbStoreError, ConfigurationItem, Direction, ItemFilter, Link, Relationship, RelationshipType};
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::JournalEntry;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

impl From<Failure> for CmdbStoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Conflict(Unique::CmdbRelationship, _) => CmdbStoreError::Duplicate,
            other => CmdbStoreError::Store(other.into()),
        }
    }
}

fn item_from_row(row: cmdb_items::Model) -> Result<ConfigurationItem, StoreError> {
    Ok(ConfigurationItem {
        id: CiId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        name: row.name,
        class: row.class,
        environment: row.environment,
        attributes: from_json("reading an item's attributes", &row.attributes)?,
        created_at: from_us(row.created_at_us)?,
        updated_at: from_us(row.updated_at_us)?,
    })
}

fn kind_from_column(text: &str) -> Result<RelationshipType, StoreError> {
    RelationshipType::parse(text).ok_or_else(|| corrupt("reading a relationship", format!("unknown relationship type `{text}`")))
}

#[async_trait]
impl CmdbStore for SqlStore {
    async fn insert_item(&self, item: &ConfigurationItem, journal: &JournalEntry) -> Result<(), CmdbStoreError> {
        let row = cmdb_items::ActiveModel {
            id: Set(item.id.as_uuid()),
            org_id: Set(item.org_id.as_uuid()),
            name: Set(item.name.clone()),
            class: Set(item.class.clone()),
            environment: Set(item.environment.clone()),
            attributes: Set(to_json("writing an item's attributes", &item.attributes)?),
            created_at_us: Set(to_us(item.created_at)),
            updated_at_us: Set(to_us(item.updated_at)),
        };
        let txn = begin(&self.db).await?;
        cmdb_items::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the item"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the item").await?;
        Ok(())
    }

    async fn item(&self, org_id: OrgId, id: CiId) -> Result<Option<ConfigurationItem>, CmdbStoreError> {
        let row = cmdb_items::Entity::find()
            .filter(cmdb_items::Column::OrgId.eq(org_id.as_uuid()))
            .filter(cmdb_items::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading an item"))?;
        Ok(row.map(item_from_row).transpose()?)
    }

    async fn items_by_id(&self, org_id: OrgId, ids: &[CiId]) -> Result<Vec<ConfigurationItem>, CmdbStoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = cmdb_items::Entity::find()
            .filter(cmdb_items::Column::OrgId.eq(org_id.as_uuid()))
            .filter(cmdb_items::Column::Id.is_in(ids.iter().map(CiId::as_uuid)))
            .all(&self.db)
            .await
            .map_err(db("reading items"))?;
        Ok(rows.into_iter().map(item_from_row).collect::<Result<Vec<_>, _>>()?)
    }

    async fn items(&self, org_id: OrgId, filter: &ItemFilter, page: &PageRequest) -> Result<Page<ConfigurationItem>, CmdbStoreError> {
        let mut query = cmdb_items::Entity::find().filter(cmdb_items::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(class) = &filter.class {
            query = query.filter(cmdb_items::Column::Class.eq(class.as_str()));
        }
        if let Some(environment) = &filter.environment {
            query = query.filter(cmdb_items::Column::Environment.eq(environment.as_str()));
        }
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(cmdb_items::Column::CreatedAtUs, cmdb_items::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(cmdb_items::Column::CreatedAtUs)
            .order_by_desc(cmdb_items::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing items"))?;
        let items = rows.into_iter().map(item_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page, |i| (i.created_at, i.id.as_uuid())))
    }

    async fn insert_relationship(&self, relationship: &Relationship, journal: &JournalEntry) -> Result<(), CmdbStoreError> {
        let org = relationship.org_id.as_uuid();
        let (source, target) = (relationship.source_id.as_uuid(), relationship.target_id.as_uuid());
        let txn = begin(&self.db).await?;
        let found: Vec<Uuid> = cmdb_items::Entity::find()
            .select_only()
            .column(cmdb_items::Column::Id)
            .filter(cmdb_items::Column::OrgId.eq(org))
            .filter(cmdb_items::Column::Id.is_in([source, target]))
            .into_tuple()
            .all(&txn)
            .await
            .map_err(db("reading the related items"))?;
        for (id, field) in [(source, "source_id"), (target, "target_id")] {
            if !found.contains(&id) {
                return Err(CmdbStoreError::MissingItem(field));
            }
        }
        let row = cmdb_relationships::ActiveModel {
            id: Set(relationship.id.as_uuid()),
            org_id: Set(org),
            source_id: Set(source),
            target_id: Set(target),
            kind: Set(relationship.kind.as_str().to_owned()),
            created_at_us: Set(to_us(relationship.created_at)),
        };
        cmdb_relationships::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the relationship"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the relationship").await?;
        Ok(())
    }

    async fn links(&self, org_id: OrgId, from: &[CiId], direction: Direction) -> Result<Vec<Link>, CmdbStoreError> {
        if from.is_empty() {
            return Ok(Vec::new());
        }
        let ids = from.iter().map(CiId::as_uuid);
        let near = match direction {
            Direction::Downstream => cmdb_relationships::Column::TargetId,
            Direction::Upstream => cmdb_relationships::Column::SourceId,
        };
        let rows: Vec<(Uuid, Uuid, String)> = cmdb_relationships::Entity::find()
            .select_only()
            .column(cmdb_relationships::Column::SourceId)
            .column(cmdb_relationships::Column::TargetId)
            .column(cmdb_relationships::Column::Kind)
            .filter(cmdb_relationships::Column::OrgId.eq(org_id.as_uuid()))
            .filter(near.is_in(ids))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db("reading relationships"))?;
        rows.into_iter()
            .map(|(source, target, kind)| {
                let kind = kind_from_column(&kind)?;
                let (source, target) = (CiId::from_uuid(source), CiId::from_uuid(target));
                Ok(match direction {
                    Direction::Downstream => Link { from: target, to: source, kind },
                    Direction::Upstream => Link { from: source, to: target, kind },
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map_err(CmdbStoreError::Store)
    }
}
