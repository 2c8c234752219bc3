//! Hardening of issue 8: idempotency claims carry the token of the request that made them
//! (`claim_token`, so a request whose lease lapsed cannot settle a later claim), a stored answer
//! that shows a secret is kept sealed (`response_sealed`), and the `platform_state` row
//! `default_organization` names the organization the first start created (`org_id`), so two
//! replicas starting on one empty database create one.

use sea_orm_migration::prelude::*;

/// Adds `idempotency_records.claim_token`, `idempotency_records.response_sealed` and
/// `platform_state.org_id`.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyRecords {
    Table,
    ClaimToken,
    ResponseSealed,
}

#[derive(DeriveIden)]
enum PlatformState {
    Table,
    OrgId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyRecords::Table)
                    .add_column(ColumnDef::new(IdempotencyRecords::ClaimToken).string_len(32).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyRecords::Table)
                    .add_column(ColumnDef::new(IdempotencyRecords::ResponseSealed).boolean().not_null().default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(PlatformState::Table).add_column(ColumnDef::new(PlatformState::OrgId).uuid().null()).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(PlatformState::Table).drop_column(PlatformState::OrgId).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(IdempotencyRecords::Table).drop_column(IdempotencyRecords::ResponseSealed).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(IdempotencyRecords::Table).drop_column(IdempotencyRecords::ClaimToken).to_owned()).await
    }
}
