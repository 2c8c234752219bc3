//! `ItsmStore` for [`SqlStore`]: changes (with
//! their approvals, read in one extra query per page), compare-and-set saves that insert a
//! decision in the same transaction, blackouts, the catalog and service requests.

use crate::conversations::{begin, commit};
use crate::convert::{corrupt, from_json, from_us, from_us_opt, to_json, to_us, to_us_ceil};
use crate::entity::{blackouts, catalog_items, change_approvals, changes, service_requests};
use crate::error::{db, Failure, Unique};
use crate::journal::write_journal;
use crate::runs::before_cursor;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_cmdb::CiId;
use atlas_itsm::{
    Approval, ApprovalId, Blackout, BlackoutId, CatalogItem, CatalogItemId, ChangeFilter, ChangeId, ChangeRequest, ChangeStatus,
    ChangeType, Decision, ItsmStore, ItsmStoreError, RequestFilter, RequestStatus, RiskLevel, ServiceRequest, ServiceRequestId,
    StatusTimes,
};
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::JournalEntry;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

impl From<Failure> for ItsmStoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Conflict(Unique::ChangeApprover, _) => ItsmStoreError::AlreadyDecided,
            other => ItsmStoreError::Store(other.into()),
        }
    }
}

// ---- rows ---------------------------------------------------------------------------------

fn change_row(change: &ChangeRequest) -> Result<changes::ActiveModel, StoreError> {
    Ok(changes::ActiveModel {
        id: Set(change.id.as_uuid()),
        org_id: Set(change.org_id.as_uuid()),
        title: Set(change.title.clone()),
        description: Set(change.description.clone()),
        kind: Set(change.change_type.as_str().to_owned()),
        risk_level: Set(change.risk_level.as_str().to_owned()),
        status: Set(change.status.as_str().to_owned()),
        requested_start_us: Set(change.requested_start.map(to_us)),
        requested_end_us: Set(change.requested_end.map(to_us)),
        implementation_plan: Set(change.implementation_plan.clone()),
        rollback_plan: Set(change.rollback_plan.clone()),
        requested_by: Set(change.requested_by.clone()),
        ci_ids: Set(to_json("writing a change's items", &change.ci_ids)?),
        quorum: Set(i32::try_from(change.quorum).unwrap_or(i32::MAX)),
        version: Set(change.version),
        status_times: Set(to_json("writing a change's times", &change.times)?),
        implementing_at_us: Set(change.times.implementing_at.map(to_us)),
        created_at_us: Set(to_us(change.created_at)),
        updated_at_us: Set(to_us(change.updated_at)),
    })
}

fn change_from_row(row: changes::Model, approvals: Vec<Approval>) -> Result<ChangeRequest, StoreError> {
    const CONTEXT: &str = "reading a change";
    let bad = |what: &str, value: &str| corrupt(CONTEXT, format!("change {} has an unknown {what} `{value}`", row.id));
    Ok(ChangeRequest {
        id: ChangeId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        change_type: ChangeType::parse(&row.kind).ok_or_else(|| bad("type", &row.kind))?,
        risk_level: RiskLevel::parse(&row.risk_level).ok_or_else(|| bad("risk level", &row.risk_level))?,
        status: ChangeStatus::parse(&row.status).ok_or_else(|| bad("status", &row.status))?,
        requested_start: from_us_opt(row.requested_start_us)?,
        requested_end: from_us_opt(row.requested_end_us)?,
        ci_ids: from_json::<Vec<CiId>>(CONTEXT, &row.ci_ids)?,
        quorum: u32::try_from(row.quorum).unwrap_or(0),
        approvals,
        version: row.version,
        times: from_json::<StatusTimes>(CONTEXT, &row.status_times)?,
        created_at: from_us(row.created_at_us)?,
        updated_at: from_us(row.updated_at_us)?,
        title: row.title,
        description: row.description,
        implementation_plan: row.implementation_plan,
        rollback_plan: row.rollback_plan,
        requested_by: row.requested_by,
    })
}

fn approval_row(org_id: Uuid, approval: &Approval) -> change_approvals::ActiveModel {
    change_approvals::ActiveModel {
        id: Set(approval.id.as_uuid()),
        org_id: Set(org_id),
        change_id: Set(approval.change_id.as_uuid()),
        approver: Set(approval.approver.clone()),
        decision: Set(approval.decision.as_str().to_owned()),
        comment: Set(approval.comment.clone()),
        decided_at_us: Set(to_us(approval.decided_at)),
    }
}

fn approval_from_row(row: change_approvals::Model) -> Result<Approval, StoreError> {
    Ok(Approval {
        id: ApprovalId::from_uuid(row.id),
        change_id: ChangeId::from_uuid(row.change_id),
        decision: Decision::parse(&row.decision)
            .ok_or_else(|| corrupt("reading an approval", format!("approval {} has an unknown decision", row.id)))?,
        approver: row.approver,
        comment: row.comment,
        decided_at: from_us(row.decided_at_us)?,
    })
}

/// The changes of `rows`, each with its approvals in the order recorded (one query).
async fn with_approvals(conn: &impl ConnectionTrait, rows: Vec<changes::Model>) -> Result<Vec<ChangeRequest>, Failure> {
    let mut approvals: HashMap<Uuid, Vec<Approval>> = HashMap::new();
    if !rows.is_empty() {
        let found = change_approvals::Entity::find()
            .filter(change_approvals::Column::ChangeId.is_in(rows.iter().map(|r| r.id)))
            .order_by_asc(change_approvals::Column::DecidedAtUs)
            .order_by_asc(change_approvals::Column::Id)
            .all(conn)
            .await
            .map_err(db("reading approvals"))?;
        for row in found {
            approvals.entry(row.change_id).or_default().push(approval_from_row(row)?);
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let own = approvals.remove(&row.id).unwrap_or_default();
            change_from_row(row, own)
        })
        .collect::<Result<Vec<_>, _>>()?)
}

fn blackout_from_row(row: blackouts::Model) -> Result<Blackout, StoreError> {
    Ok(Blackout {
        id: BlackoutId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        ci_ids: from_json("reading a blackout's items", &row.ci_ids)?,
        start: from_us(row.start_us)?,
        end: from_us(row.end_us)?,
        reason: row.reason,
        created_at: from_us(row.created_at_us)?,
    })
}

fn catalog_from_row(row: catalog_items::Model) -> Result<CatalogItem, StoreError> {
    Ok(CatalogItem {
        id: CatalogItemId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        name: row.name,
        description: row.description,
        requires_approval: row.requires_approval,
        created_at: from_us(row.created_at_us)?,
    })
}

fn request_row(request: &ServiceRequest) -> service_requests::ActiveModel {
    service_requests::ActiveModel {
        id: Set(request.id.as_uuid()),
        org_id: Set(request.org_id.as_uuid()),
        catalog_item_id: Set(request.catalog_item_id.as_uuid()),
        requested_by: Set(request.requested_by.clone()),
        status: Set(request.status.as_str().to_owned()),
        decided_by: Set(request.decided_by.clone()),
        comment: Set(request.comment.clone()),
        version: Set(request.version),
        created_at_us: Set(to_us(request.created_at)),
        updated_at_us: Set(to_us(request.updated_at)),
        decided_at_us: Set(request.decided_at.map(to_us)),
        fulfilled_at_us: Set(request.fulfilled_at.map(to_us)),
    }
}

fn request_from_row(row: service_requests::Model) -> Result<ServiceRequest, StoreError> {
    Ok(ServiceRequest {
        id: ServiceRequestId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        catalog_item_id: CatalogItemId::from_uuid(row.catalog_item_id),
        status: RequestStatus::parse(&row.status)
            .ok_or_else(|| corrupt("reading a service request", format!("request {} has an unknown status", row.id)))?,
        requested_by: row.requested_by,
        decided_by: row.decided_by,
        comment: row.comment,
        version: row.version,
        created_at: from_us(row.created_at_us)?,
        updated_at: from_us(row.updated_at_us)?,
        decided_at: from_us_opt(row.decided_at_us)?,
        fulfilled_at: from_us_opt(row.fulfilled_at_us)?,
    })
}

// ---- the port -----------------------------------------------------------------------------

#[async_trait]
impl ItsmStore for SqlStore {
    async fn insert_change(&self, change: &ChangeRequest, journal: &JournalEntry) -> Result<(), ItsmStoreError> {
        let row = change_row(change)?;
        let txn = begin(&self.db).await?;
        changes::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the change"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the change").await?;
        Ok(())
    }

    async fn change(&self, org_id: OrgId, id: ChangeId) -> Result<Option<ChangeRequest>, ItsmStoreError> {
        let row = changes::Entity::find()
            .filter(changes::Column::OrgId.eq(org_id.as_uuid()))
            .filter(changes::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a change"))?;
        let Some(row) = row else { return Ok(None) };
        Ok(with_approvals(&self.db, vec![row]).await?.pop())
    }

    async fn changes(&self, org_id: OrgId, filter: &ChangeFilter, page: &PageRequest) -> Result<Page<ChangeRequest>, ItsmStoreError> {
        let mut query = changes::Entity::find().filter(changes::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(status) = filter.status {
            query = query.filter(changes::Column::Status.eq(status.as_str()));
        }
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(changes::Column::CreatedAtUs, changes::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(changes::Column::CreatedAtUs)
            .order_by_desc(changes::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing changes"))?;
        let found = with_approvals(&self.db, rows).await?;
        Ok(Page::from_rows(found, page, |c| (c.created_at, c.id.as_uuid())))
    }

    async fn save_change(
        &self,
        change: &ChangeRequest,
        expected_version: i64,
        approval: Option<&Approval>,
        journal: &JournalEntry,
    ) -> Result<(), ItsmStoreError> {
        let txn = begin(&self.db).await?;
        let updated = changes::Entity::update_many()
            .col_expr(changes::Column::Status, Expr::value(change.status.as_str()))
            .col_expr(changes::Column::StatusTimes, Expr::value(to_json("writing a change's times", &change.times)?))
            .col_expr(changes::Column::ImplementingAtUs, Expr::value(change.times.implementing_at.map(to_us)))
            .col_expr(changes::Column::Version, Expr::value(change.version))
            .col_expr(changes::Column::UpdatedAtUs, Expr::value(to_us(change.updated_at)))
            .filter(changes::Column::OrgId.eq(change.org_id.as_uuid()))
            .filter(changes::Column::Id.eq(change.id.as_uuid()))
            .filter(changes::Column::Version.eq(expected_version))
            .exec(&txn)
            .await
            .map_err(db("updating the change"))?;
        if updated.rows_affected == 0 {
            return Err(ItsmStoreError::Conflict);
        }
        if let Some(approval) = approval {
            change_approvals::Entity::insert(approval_row(change.org_id.as_uuid(), approval))
                .exec_without_returning(&txn)
                .await
                .map_err(db("recording the decision"))?;
        }
        write_journal(&txn, journal).await?;
        commit(txn, "committing the change").await?;
        Ok(())
    }

    async fn changes_started_between(
        &self,
        org_id: OrgId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<ChangeRequest>, ItsmStoreError> {
        let rows = changes::Entity::find()
            .filter(changes::Column::OrgId.eq(org_id.as_uuid()))
            .filter(changes::Column::ImplementingAtUs.gte(to_us(from)))
            .filter(changes::Column::ImplementingAtUs.lte(to_us_ceil(to)))
            .order_by_asc(changes::Column::ImplementingAtUs)
            .order_by_asc(changes::Column::Id)
            .all(&self.db)
            .await
            .map_err(db("reading changes by implementation time"))?;
        Ok(with_approvals(&self.db, rows).await?)
    }

    async fn insert_blackout(&self, blackout: &Blackout, journal: &JournalEntry) -> Result<(), ItsmStoreError> {
        let row = blackouts::ActiveModel {
            id: Set(blackout.id.as_uuid()),
            org_id: Set(blackout.org_id.as_uuid()),
            ci_ids: Set(to_json("writing a blackout's items", &blackout.ci_ids)?),
            start_us: Set(to_us(blackout.start)),
            end_us: Set(to_us(blackout.end)),
            reason: Set(blackout.reason.clone()),
            created_at_us: Set(to_us(blackout.created_at)),
        };
        let txn = begin(&self.db).await?;
        blackouts::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the blackout"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the blackout").await?;
        Ok(())
    }

    async fn blackouts(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Blackout>, ItsmStoreError> {
        let mut query = blackouts::Entity::find().filter(blackouts::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(blackouts::Column::CreatedAtUs, blackouts::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(blackouts::Column::CreatedAtUs)
            .order_by_desc(blackouts::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing blackouts"))?;
        let found = rows.into_iter().map(blackout_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(found, page, |b| (b.created_at, b.id.as_uuid())))
    }

    async fn blackouts_overlapping(
        &self,
        org_id: OrgId,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<Vec<Blackout>, ItsmStoreError> {
        let rows = blackouts::Entity::find()
            .filter(blackouts::Column::OrgId.eq(org_id.as_uuid()))
            .filter(blackouts::Column::StartUs.lt(to_us_ceil(end)))
            .filter(blackouts::Column::EndUs.gt(to_us(start)))
            .order_by_asc(blackouts::Column::StartUs)
            .order_by_asc(blackouts::Column::Id)
            .all(&self.db)
            .await
            .map_err(db("reading overlapping blackouts"))?;
        Ok(rows.into_iter().map(blackout_from_row).collect::<Result<Vec<_>, _>>()?)
    }

    async fn insert_catalog_item(&self, item: &CatalogItem, journal: &JournalEntry) -> Result<(), ItsmStoreError> {
        let row = catalog_items::ActiveModel {
            id: Set(item.id.as_uuid()),
            org_id: Set(item.org_id.as_uuid()),
            name: Set(item.name.clone()),
            description: Set(item.description.clone()),
            requires_approval: Set(item.requires_approval),
            created_at_us: Set(to_us(item.created_at)),
        };
        let txn = begin(&self.db).await?;
        catalog_items::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the catalog item"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the catalog item").await?;
        Ok(())
    }

    async fn catalog_item(&self, org_id: OrgId, id: CatalogItemId) -> Result<Option<CatalogItem>, ItsmStoreError> {
        let row = catalog_items::Entity::find()
            .filter(catalog_items::Column::OrgId.eq(org_id.as_uuid()))
            .filter(catalog_items::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a catalog item"))?;
        Ok(row.map(catalog_from_row).transpose()?)
    }

    async fn catalog(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<CatalogItem>, ItsmStoreError> {
        let mut query = catalog_items::Entity::find().filter(catalog_items::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(catalog_items::Column::CreatedAtUs, catalog_items::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(catalog_items::Column::CreatedAtUs)
            .order_by_desc(catalog_items::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing the catalog"))?;
        let found = rows.into_iter().map(catalog_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(found, page, |c| (c.created_at, c.id.as_uuid())))
    }

    async fn insert_request(&self, request: &ServiceRequest, journal: &JournalEntry) -> Result<(), ItsmStoreError> {
        let txn = begin(&self.db).await?;
        service_requests::Entity::insert(request_row(request))
            .exec_without_returning(&txn)
            .await
            .map_err(db("inserting the service request"))?;
        write_journal(&txn, journal).await?;
        commit(txn, "committing the service request").await?;
        Ok(())
    }

    async fn request(&self, org_id: OrgId, id: ServiceRequestId) -> Result<Option<ServiceRequest>, ItsmStoreError> {
        let row = service_requests::Entity::find()
            .filter(service_requests::Column::OrgId.eq(org_id.as_uuid()))
            .filter(service_requests::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a service request"))?;
        Ok(row.map(request_from_row).transpose()?)
    }

    async fn requests(&self, org_id: OrgId, filter: &RequestFilter, page: &PageRequest) -> Result<Page<ServiceRequest>, ItsmStoreError> {
        let mut query = service_requests::Entity::find().filter(service_requests::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(status) = filter.status {
            query = query.filter(service_requests::Column::Status.eq(status.as_str()));
        }
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(service_requests::Column::CreatedAtUs, service_requests::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(service_requests::Column::CreatedAtUs)
            .order_by_desc(service_requests::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing service requests"))?;
        let found = rows.into_iter().map(request_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(found, page, |r| (r.created_at, r.id.as_uuid())))
    }

    async fn save_request(&self, request: &ServiceRequest, expected_version: i64, journal: &JournalEntry) -> Result<(), ItsmStoreError> {
        let txn = begin(&self.db).await?;
        let updated = service_requests::Entity::update_many()
            .col_expr(service_requests::Column::Status, Expr::value(request.status.as_str()))
            .col_expr(service_requests::Column::DecidedBy, Expr::value(request.decided_by.clone()))
            .col_expr(service_requests::Column::Comment, Expr::value(request.comment.clone()))
            .col_expr(service_requests::Column::Version, Expr::value(request.version))
            .col_expr(service_requests::Column::UpdatedAtUs, Expr::value(to_us(request.updated_at)))
            .col_expr(service_requests::Column::DecidedAtUs, Expr::value(request.decided_at.map(to_us)))
            .col_expr(service_requests::Column::FulfilledAtUs, Expr::value(request.fulfilled_at.map(to_us)))
            .filter(service_requests::Column::OrgId.eq(request.org_id.as_uuid()))
            .filter(service_requests::Column::Id.eq(request.id.as_uuid()))
            .filter(service_requests::Column::Version.eq(expected_version))
            .exec(&txn)
            .await
            .map_err(db("updating the service request"))?;
        if updated.rows_affected == 0 {
            return Err(ItsmStoreError::Conflict);
        }
        write_journal(&txn, journal).await?;
        commit(txn, "committing the service request").await?;
        Ok(())
    }
}
