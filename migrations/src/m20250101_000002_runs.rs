//! Runs, the audit log. No foreign key to `organizations`: a run is written for every call,
//! including calls whose organization row lives elsewhere (the operator's, or none yet).

use sea_orm_migration::prelude::*;

/// Creates the `runs` table.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    Id,
    OrgId,
    /// `api_key`, `user` or `system`.
    ActorType,
    /// The key's or user's id; null for `system`.
    ActorId,
    Operation,
    Status,
    RequestId,
    IdempotencyKey,
    ResourceId,
    ErrorCode,
    ErrorMessage,
    CreatedAtUs,
    UpdatedAtUs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Runs::Table)
                    .col(ColumnDef::new(Runs::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Runs::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Runs::ActorType).string_len(16).not_null())
                    .col(ColumnDef::new(Runs::ActorId).uuid().null())
                    .col(ColumnDef::new(Runs::Operation).text().not_null())
                    .col(ColumnDef::new(Runs::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Runs::RequestId).text().not_null())
                    .col(ColumnDef::new(Runs::IdempotencyKey).text().null())
                    .col(ColumnDef::new(Runs::ResourceId).text().null())
                    .col(ColumnDef::new(Runs::ErrorCode).text().null())
                    .col(ColumnDef::new(Runs::ErrorMessage).text().null())
                    .col(ColumnDef::new(Runs::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Runs::UpdatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_runs_org_created", None),
            ("ix_runs_org_operation_created", Some(Runs::Operation)),
            ("ix_runs_org_resource_created", Some(Runs::ResourceId)),
        ] {
            let mut index = Index::create();
            index.name(name).table(Runs::Table).col(Runs::OrgId);
            if let Some(column) = column {
                index.col(column);
            }
            index.col((Runs::CreatedAtUs, IndexOrder::Desc)).col((Runs::Id, IndexOrder::Desc));
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Runs::Table).to_owned()).await
    }
}
