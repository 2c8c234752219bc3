//! Messaging that follows the customer: channels gain their WhatsApp Business Account id
//! (`waba_id`, for the template sync) and a `disconnected_at` (a `DELETE`d channel keeps its
//! conversations); templates gain Meta's `components` and the `channel_id` of the account they
//! were synced from; messages gain their `content` (media, location, contacts, replies,
//! reactions… as a JSON object).
//!
//! The one-default-per-organization rule stays where it is: the partial unique index
//! `ux_channels_org_default` of the messaging migration. A routing index finds a customer's
//! conversations by customer.

use sea_orm_migration::prelude::*;

/// Adds the routing, template and rich-content columns.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Channels {
    Table,
    /// Meta's WhatsApp Business Account id.
    WabaId,
    /// Set when the channel was disconnected.
    DisconnectedAtUs,
}

#[derive(DeriveIden)]
enum Templates {
    Table,
    /// Meta's `components` array as JSON text.
    Components,
    /// The channel whose account the template was synced from (or came with).
    ChannelId,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    /// `MessageContent` as a JSON object (`{"type": "image", "media_id": …}`).
    Content,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    OrgId,
    CustomerId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(Table::alter().table(Channels::Table).add_column(ColumnDef::new(Channels::WabaId).text().null()).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Channels::Table)
                    .add_column(ColumnDef::new(Channels::DisconnectedAtUs).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Templates::Table).add_column(ColumnDef::new(Templates::Components).text().null()).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Templates::Table).add_column(ColumnDef::new(Templates::ChannelId).uuid().null()).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Messages::Table).add_column(ColumnDef::new(Messages::Content).text().null()).to_owned())
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversations_org_customer")
                    .table(Conversations::Table)
                    .col(Conversations::OrgId)
                    .col(Conversations::CustomerId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_conversations_org_customer").table(Conversations::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Messages::Table).drop_column(Messages::Content).to_owned()).await?;
        manager.alter_table(Table::alter().table(Templates::Table).drop_column(Templates::ChannelId).to_owned()).await?;
        manager.alter_table(Table::alter().table(Templates::Table).drop_column(Templates::Components).to_owned()).await?;
        manager.alter_table(Table::alter().table(Channels::Table).drop_column(Channels::DisconnectedAtUs).to_owned()).await?;
        manager.alter_table(Table::alter().table(Channels::Table).drop_column(Channels::WabaId).to_owned()).await
    }
}
