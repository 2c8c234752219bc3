//! Organizations (the tenants), their API keys, users, refresh-token families and the
//! single-row bootstrap guard.

use sea_orm_migration::prelude::*;

/// Creates the account tables.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    OrgId,
    Name,
    Prefix,
    Hash,
    Scopes,
    ExpiresAtUs,
    AllowedIps,
    CreatedAtUs,
    LastUsedAtUs,
    RevokedAtUs,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    OrgId,
    Email,
    Username,
    PasswordHash,
    Role,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    OrgId,
    UserId,
    FamilyId,
    Hash,
    CreatedAtUs,
    ExpiresAtUs,
    UsedAtUs,
    RevokedAtUs,
}

/// Platform-wide facts, one row each. The row named `bootstrapped` is inserted by the bootstrap
/// transaction: its primary key is what makes two concurrent bootstraps unable to both commit.
#[derive(DeriveIden)]
enum PlatformState {
    Table,
    Name,
    CreatedAtUs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(ColumnDef::new(Organizations::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Organizations::Name).text().not_null())
                    .col(ColumnDef::new(Organizations::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_organizations_created")
                    .table(Organizations::Table)
                    .col((Organizations::CreatedAtUs, IndexOrder::Desc))
                    .col((Organizations::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ApiKeys::OrgId).uuid().not_null())
                    .col(ColumnDef::new(ApiKeys::Name).text().not_null())
                    .col(ColumnDef::new(ApiKeys::Prefix).text().not_null())
                    .col(ColumnDef::new(ApiKeys::Hash).text().not_null())
                    .col(ColumnDef::new(ApiKeys::Scopes).text().not_null())
                    .col(ColumnDef::new(ApiKeys::ExpiresAtUs).big_integer().null())
                    .col(ColumnDef::new(ApiKeys::AllowedIps).text().not_null())
                    .col(ColumnDef::new(ApiKeys::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(ApiKeys::LastUsedAtUs).big_integer().null())
                    .col(ColumnDef::new(ApiKeys::RevokedAtUs).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_org")
                            .from(ApiKeys::Table, ApiKeys::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("ux_api_keys_hash").table(ApiKeys::Table).col(ApiKeys::Hash).unique().to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_keys_org_created")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::OrgId)
                    .col((ApiKeys::CreatedAtUs, IndexOrder::Desc))
                    .col((ApiKeys::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Users::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Users::Email).text().not_null())
                    .col(ColumnDef::new(Users::Username).text().null())
                    .col(ColumnDef::new(Users::PasswordHash).text().not_null())
                    .col(ColumnDef::new(Users::Role).text().not_null())
                    .col(ColumnDef::new(Users::CreatedAtUs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_users_org")
                            .from(Users::Table, Users::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("ux_users_email").table(Users::Table).col(Users::Email).unique().to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_users_org_created")
                    .table(Users::Table)
                    .col(Users::OrgId)
                    .col((Users::CreatedAtUs, IndexOrder::Desc))
                    .col((Users::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(ColumnDef::new(RefreshTokens::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(RefreshTokens::OrgId).uuid().not_null())
                    .col(ColumnDef::new(RefreshTokens::UserId).uuid().not_null())
                    .col(ColumnDef::new(RefreshTokens::FamilyId).uuid().not_null())
                    .col(ColumnDef::new(RefreshTokens::Hash).text().not_null())
                    .col(ColumnDef::new(RefreshTokens::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(RefreshTokens::ExpiresAtUs).big_integer().not_null())
                    .col(ColumnDef::new(RefreshTokens::UsedAtUs).big_integer().null())
                    .col(ColumnDef::new(RefreshTokens::RevokedAtUs).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_org")
                            .from(RefreshTokens::Table, RefreshTokens::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_user")
                            .from(RefreshTokens::Table, RefreshTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ux_refresh_tokens_hash").table(RefreshTokens::Table).col(RefreshTokens::Hash).unique().to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_refresh_tokens_family").table(RefreshTokens::Table).col(RefreshTokens::FamilyId).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_refresh_tokens_org_created")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::OrgId)
                    .col((RefreshTokens::CreatedAtUs, IndexOrder::Desc))
                    .col((RefreshTokens::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PlatformState::Table)
                    .col(ColumnDef::new(PlatformState::Name).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(PlatformState::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PlatformState::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RefreshTokens::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Users::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ApiKeys::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Organizations::Table).to_owned()).await
    }
}
