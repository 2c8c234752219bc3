//! Operations: the CMDB (`cmdb_items`, `cmdb_relationships`: the source depends on the target)
//! and ITSM (`changes` with their `change_approvals`, `blackouts`, `catalog_items`,
//! `service_requests`).
//!
//! Races are settled here, never by a read before a write:
//! - `ux_cmdb_relationships_edge`: one relationship per (source, target, type);
//! - `ux_change_approvals_approver`: one decision per approver and change, never replaced;
//! - changes and service requests carry a `version`, updated by compare-and-set.
//!
//! Indexes: newest-first lists per organization for every table, the impact traversal's two
//! directions (`ix_cmdb_relationships_target`, `ix_cmdb_relationships_source`), changes by the
//! start of their implementation (root-cause analysis) and blackouts by start.
//!
//! Lists of configuration items (`changes.ci_ids`, `blackouts.ci_ids`) are JSON arrays in text
//! columns; a change's transition times are one JSON object (`status_times`), with the start
//! of its implementation also in `implementing_at_us` for the analysis's range scan.

use sea_orm_migration::prelude::*;

/// Creates the CMDB and ITSM tables.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CmdbItems {
    Table,
    Id,
    OrgId,
    Name,
    Class,
    Environment,
    /// A JSON object.
    Attributes,
    CreatedAtUs,
    UpdatedAtUs,
}

#[derive(DeriveIden)]
enum CmdbRelationships {
    Table,
    Id,
    OrgId,
    /// The item that depends.
    SourceId,
    /// The item depended on.
    TargetId,
    /// `depends_on`, `runs_on` or `connects_to`.
    Type,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum Changes {
    Table,
    Id,
    OrgId,
    Title,
    Description,
    /// `standard`, `normal` or `emergency`.
    Type,
    RiskLevel,
    Status,
    RequestedStartUs,
    RequestedEndUs,
    ImplementationPlan,
    RollbackPlan,
    RequestedBy,
    /// JSON array of `ci_…` ids.
    CiIds,
    Quorum,
    Version,
    /// JSON object of the transition times.
    StatusTimes,
    ImplementingAtUs,
    CreatedAtUs,
    UpdatedAtUs,
}

#[derive(DeriveIden)]
enum ChangeApprovals {
    Table,
    Id,
    OrgId,
    ChangeId,
    Approver,
    /// `approve` or `reject`.
    Decision,
    Comment,
    DecidedAtUs,
}

#[derive(DeriveIden)]
enum Blackouts {
    Table,
    Id,
    OrgId,
    /// JSON array of `ci_…` ids.
    CiIds,
    StartUs,
    EndUs,
    Reason,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum CatalogItems {
    Table,
    Id,
    OrgId,
    Name,
    Description,
    RequiresApproval,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum ServiceRequests {
    Table,
    Id,
    OrgId,
    CatalogItemId,
    RequestedBy,
    /// `pending_approval`, `approved`, `rejected` or `fulfilled`.
    Status,
    DecidedBy,
    Comment,
    Version,
    CreatedAtUs,
    UpdatedAtUs,
    DecidedAtUs,
    FulfilledAtUs,
}

/// The `(org_id, created_at_us DESC, id DESC)` index of a list.
fn list_index<T: IntoIden + 'static>(name: &str, table: T, org: T, created: T, id: T) -> IndexCreateStatement {
    Index::create().name(name).table(table).col(org).col((created, IndexOrder::Desc)).col((id, IndexOrder::Desc)).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CmdbItems::Table)
                    .col(ColumnDef::new(CmdbItems::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(CmdbItems::OrgId).uuid().not_null())
                    .col(ColumnDef::new(CmdbItems::Name).text().not_null())
                    .col(ColumnDef::new(CmdbItems::Class).string_len(64).not_null())
                    .col(ColumnDef::new(CmdbItems::Environment).string_len(64).null())
                    .col(ColumnDef::new(CmdbItems::Attributes).text().not_null())
                    .col(ColumnDef::new(CmdbItems::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(CmdbItems::UpdatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(list_index(
                "ix_cmdb_items_org_created",
                CmdbItems::Table,
                CmdbItems::OrgId,
                CmdbItems::CreatedAtUs,
                CmdbItems::Id,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CmdbRelationships::Table)
                    .col(ColumnDef::new(CmdbRelationships::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(CmdbRelationships::OrgId).uuid().not_null())
                    .col(ColumnDef::new(CmdbRelationships::SourceId).uuid().not_null())
                    .col(ColumnDef::new(CmdbRelationships::TargetId).uuid().not_null())
                    .col(ColumnDef::new(CmdbRelationships::Type).string_len(16).not_null())
                    .col(ColumnDef::new(CmdbRelationships::CreatedAtUs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_cmdb_relationships_source")
                            .from(CmdbRelationships::Table, CmdbRelationships::SourceId)
                            .to(CmdbItems::Table, CmdbItems::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_cmdb_relationships_target")
                            .from(CmdbRelationships::Table, CmdbRelationships::TargetId)
                            .to(CmdbItems::Table, CmdbItems::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_cmdb_relationships_edge")
                    .table(CmdbRelationships::Table)
                    .col(CmdbRelationships::SourceId)
                    .col(CmdbRelationships::TargetId)
                    .col(CmdbRelationships::Type)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cmdb_relationships_target")
                    .table(CmdbRelationships::Table)
                    .col(CmdbRelationships::OrgId)
                    .col(CmdbRelationships::TargetId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cmdb_relationships_source")
                    .table(CmdbRelationships::Table)
                    .col(CmdbRelationships::OrgId)
                    .col(CmdbRelationships::SourceId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Changes::Table)
                    .col(ColumnDef::new(Changes::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Changes::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Changes::Title).text().not_null())
                    .col(ColumnDef::new(Changes::Description).text().null())
                    .col(ColumnDef::new(Changes::Type).string_len(16).not_null())
                    .col(ColumnDef::new(Changes::RiskLevel).string_len(16).not_null())
                    .col(ColumnDef::new(Changes::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Changes::RequestedStartUs).big_integer().null())
                    .col(ColumnDef::new(Changes::RequestedEndUs).big_integer().null())
                    .col(ColumnDef::new(Changes::ImplementationPlan).text().null())
                    .col(ColumnDef::new(Changes::RollbackPlan).text().null())
                    .col(ColumnDef::new(Changes::RequestedBy).text().null())
                    .col(ColumnDef::new(Changes::CiIds).text().not_null())
                    .col(ColumnDef::new(Changes::Quorum).integer().not_null())
                    .col(ColumnDef::new(Changes::Version).big_integer().not_null())
                    .col(ColumnDef::new(Changes::StatusTimes).text().not_null())
                    .col(ColumnDef::new(Changes::ImplementingAtUs).big_integer().null())
                    .col(ColumnDef::new(Changes::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Changes::UpdatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(list_index("ix_changes_org_created", Changes::Table, Changes::OrgId, Changes::CreatedAtUs, Changes::Id))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_changes_org_implementing")
                    .table(Changes::Table)
                    .col(Changes::OrgId)
                    .col(Changes::ImplementingAtUs)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChangeApprovals::Table)
                    .col(ColumnDef::new(ChangeApprovals::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ChangeApprovals::OrgId).uuid().not_null())
                    .col(ColumnDef::new(ChangeApprovals::ChangeId).uuid().not_null())
                    .col(ColumnDef::new(ChangeApprovals::Approver).string_len(64).not_null())
                    .col(ColumnDef::new(ChangeApprovals::Decision).string_len(16).not_null())
                    .col(ColumnDef::new(ChangeApprovals::Comment).text().null())
                    .col(ColumnDef::new(ChangeApprovals::DecidedAtUs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_change_approvals_change")
                            .from(ChangeApprovals::Table, ChangeApprovals::ChangeId)
                            .to(Changes::Table, Changes::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_change_approvals_approver")
                    .table(ChangeApprovals::Table)
                    .col(ChangeApprovals::ChangeId)
                    .col(ChangeApprovals::Approver)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Blackouts::Table)
                    .col(ColumnDef::new(Blackouts::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Blackouts::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Blackouts::CiIds).text().not_null())
                    .col(ColumnDef::new(Blackouts::StartUs).big_integer().not_null())
                    .col(ColumnDef::new(Blackouts::EndUs).big_integer().not_null())
                    .col(ColumnDef::new(Blackouts::Reason).text().not_null())
                    .col(ColumnDef::new(Blackouts::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(list_index("ix_blackouts_org_created", Blackouts::Table, Blackouts::OrgId, Blackouts::CreatedAtUs, Blackouts::Id))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_blackouts_org_start")
                    .table(Blackouts::Table)
                    .col(Blackouts::OrgId)
                    .col(Blackouts::StartUs)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CatalogItems::Table)
                    .col(ColumnDef::new(CatalogItems::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(CatalogItems::OrgId).uuid().not_null())
                    .col(ColumnDef::new(CatalogItems::Name).text().not_null())
                    .col(ColumnDef::new(CatalogItems::Description).text().null())
                    .col(ColumnDef::new(CatalogItems::RequiresApproval).boolean().not_null())
                    .col(ColumnDef::new(CatalogItems::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(list_index(
                "ix_catalog_items_org_created",
                CatalogItems::Table,
                CatalogItems::OrgId,
                CatalogItems::CreatedAtUs,
                CatalogItems::Id,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ServiceRequests::Table)
                    .col(ColumnDef::new(ServiceRequests::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ServiceRequests::OrgId).uuid().not_null())
                    .col(ColumnDef::new(ServiceRequests::CatalogItemId).uuid().not_null())
                    .col(ColumnDef::new(ServiceRequests::RequestedBy).text().not_null())
                    .col(ColumnDef::new(ServiceRequests::Status).string_len(32).not_null())
                    .col(ColumnDef::new(ServiceRequests::DecidedBy).text().null())
                    .col(ColumnDef::new(ServiceRequests::Comment).text().null())
                    .col(ColumnDef::new(ServiceRequests::Version).big_integer().not_null())
                    .col(ColumnDef::new(ServiceRequests::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(ServiceRequests::UpdatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(ServiceRequests::DecidedAtUs).big_integer().null())
                    .col(ColumnDef::new(ServiceRequests::FulfilledAtUs).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_service_requests_catalog_item")
                            .from(ServiceRequests::Table, ServiceRequests::CatalogItemId)
                            .to(CatalogItems::Table, CatalogItems::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(list_index(
                "ix_service_requests_org_created",
                ServiceRequests::Table,
                ServiceRequests::OrgId,
                ServiceRequests::CreatedAtUs,
                ServiceRequests::Id,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ServiceRequests::Table.into_iden(),
            CatalogItems::Table.into_iden(),
            Blackouts::Table.into_iden(),
            ChangeApprovals::Table.into_iden(),
            Changes::Table.into_iden(),
            CmdbRelationships::Table.into_iden(),
            CmdbItems::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
