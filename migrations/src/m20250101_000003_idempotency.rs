//! Idempotency records: one row per (organization, scope, route, key), addressed by the
//! scope's fixed-length storage key. A row is `in_progress` (claimed, leased until
//! `lease_until_us`) or `completed` with the response to replay.

use sea_orm_migration::prelude::*;

/// Creates the `idempotency_records` table.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyRecords {
    Table,
    StorageKey,
    OrgId,
    Fingerprint,
    /// `in_progress` or `completed`.
    State,
    LeaseUntilUs,
    ResponseStatus,
    ResponseBody,
    ResponseLocation,
    ResponseEtag,
    CreatedAtUs,
    UpdatedAtUs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyRecords::Table)
                    .col(ColumnDef::new(IdempotencyRecords::StorageKey).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(IdempotencyRecords::OrgId).uuid().not_null())
                    .col(ColumnDef::new(IdempotencyRecords::Fingerprint).string_len(64).not_null())
                    .col(ColumnDef::new(IdempotencyRecords::State).string_len(16).not_null())
                    .col(ColumnDef::new(IdempotencyRecords::LeaseUntilUs).big_integer().null())
                    .col(ColumnDef::new(IdempotencyRecords::ResponseStatus).integer().null())
                    .col(ColumnDef::new(IdempotencyRecords::ResponseBody).blob().null())
                    .col(ColumnDef::new(IdempotencyRecords::ResponseLocation).text().null())
                    .col(ColumnDef::new(IdempotencyRecords::ResponseEtag).text().null())
                    .col(ColumnDef::new(IdempotencyRecords::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(IdempotencyRecords::UpdatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_idempotency_records_created")
                    .table(IdempotencyRecords::Table)
                    .col(IdempotencyRecords::CreatedAtUs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_idempotency_records_org_created")
                    .table(IdempotencyRecords::Table)
                    .col(IdempotencyRecords::OrgId)
                    .col((IdempotencyRecords::CreatedAtUs, IndexOrder::Desc))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(IdempotencyRecords::Table).to_owned()).await
    }
}
