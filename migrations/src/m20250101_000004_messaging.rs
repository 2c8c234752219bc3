//! Messaging (seed 000): channels (connected WhatsApp or sandbox numbers, their secrets sealed),
//! templates, customers, conversations (one per organization, channel and customer), messages
//! with their delivery state, provider statuses that arrived before their message's provider id
//! (`pending_statuses`), drafts, and the `outbox` of queued sends that workers claim under a
//! lease.
//!
//! Races are settled by the unique indexes here, never by a read before a write:
//! - `ux_channels_org_default` (partial: `WHERE is_default`) lets an organization have one
//!   default channel, so of two concurrent first channels exactly one becomes the default;
//! - `ux_customers_org_phone_number` and `ux_conversations_org_channel_customer` make the
//!   upserts of inbound and outbound messages converge on one customer and one conversation;
//! - `ux_messages_org_provider_message_id` stores a provider message id once per organization
//!   (NULLs are distinct on both backends, so messages without one never collide);
//! - `ux_pending_statuses_event` keeps one copy of a status Meta retries.
//!
//! Like `runs`, these tables have no foreign key to `organizations`: they are addressed by
//! `org_id` alone. Within messaging, rows reference their channel, customer, conversation and
//! message.

use sea_orm_migration::prelude::*;

/// Creates the messaging tables.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Channels {
    Table,
    Id,
    OrgId,
    /// `whatsapp` or `sandbox`.
    Provider,
    Name,
    PhoneNumberId,
    DisplayPhoneNumber,
    VerifyToken,
    /// The access token and app secret, encrypted by the caller; opaque here.
    SealedSecrets,
    IsDefault,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum Templates {
    Table,
    Id,
    OrgId,
    Name,
    Language,
    /// `utility`, `marketing` or `authentication`.
    Category,
    /// `approved`, `pending` or `rejected`.
    Status,
    Body,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    OrgId,
    /// E.164, normalised (`+14155552671`).
    PhoneNumber,
    Name,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    OrgId,
    ChannelId,
    CustomerId,
    /// `open`, `handed_off` or `closed`.
    Status,
    /// The latest inbound message's own timestamp.
    LastInboundAtUs,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    OrgId,
    ConversationId,
    /// `inbound` or `outbound`.
    Direction,
    /// `text`, `template` or `media`.
    Kind,
    Text,
    /// The template sent (name, language, category, parameters) as a JSON object.
    Template,
    ProviderMessageId,
    /// Outbound only: `queued`, `sending`, `sent`, `delivered`, `read` or `failed`.
    DeliveryState,
    SentAtUs,
    DeliveredAtUs,
    ReadAtUs,
    FailedAtUs,
    ErrorCode,
    ErrorMessage,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum PendingStatuses {
    Table,
    Id,
    OrgId,
    ProviderMessageId,
    /// The status reported.
    State,
    /// The status's own time.
    AtUs,
    ErrorCode,
    ErrorMessage,
    /// When it arrived.
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum Drafts {
    Table,
    Id,
    OrgId,
    ConversationId,
    Text,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    OrgId,
    ChannelId,
    ConversationId,
    MessageId,
    /// The recipient, E.164.
    Recipient,
    /// What to send (`OutboundContent`) as a JSON object.
    Content,
    /// Attempts claimed so far.
    Attempt,
    QueuedAtUs,
    NextAttemptAtUs,
    /// While set and in the future, a worker holds the row.
    LeaseUntilUs,
    DeadlineAtUs,
    /// Set when the message was accepted by the provider or failed for good.
    FinishedAtUs,
    LastErrorCode,
    LastErrorMessage,
    /// The send's run, finished with the row.
    RunId,
}

/// An `(org_id, [scope,] created_at_us DESC, id DESC)` index for newest-first lists.
fn newest_first(
    name: &str,
    table: impl IntoIden + 'static,
    org_id: impl IntoIden + 'static,
    scope: Option<DynIden>,
) -> IndexCreateStatement {
    #[derive(DeriveIden)]
    enum Common {
        CreatedAtUs,
        Id,
    }
    let mut index = Index::create();
    index.name(name).table(table).col(org_id);
    if let Some(scope) = scope {
        index.col(scope);
    }
    index.col((Common::CreatedAtUs, IndexOrder::Desc)).col((Common::Id, IndexOrder::Desc));
    index
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Channels::Table)
                    .col(ColumnDef::new(Channels::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Channels::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Channels::Provider).string_len(16).not_null())
                    .col(ColumnDef::new(Channels::Name).text().not_null())
                    .col(ColumnDef::new(Channels::PhoneNumberId).text().not_null())
                    .col(ColumnDef::new(Channels::DisplayPhoneNumber).text().not_null())
                    .col(ColumnDef::new(Channels::VerifyToken).text().not_null())
                    .col(ColumnDef::new(Channels::SealedSecrets).blob().not_null())
                    .col(ColumnDef::new(Channels::IsDefault).boolean().not_null())
                    .col(ColumnDef::new(Channels::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_channels_org_phone_number_id")
                    .table(Channels::Table)
                    .col(Channels::OrgId)
                    .col(Channels::PhoneNumberId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_channels_org_default")
                    .table(Channels::Table)
                    .col(Channels::OrgId)
                    .unique()
                    .and_where(Expr::col(Channels::IsDefault).into())
                    .to_owned(),
            )
            .await?;
        manager.create_index(newest_first("ix_channels_org_created", Channels::Table, Channels::OrgId, None)).await?;

        manager
            .create_table(
                Table::create()
                    .table(Templates::Table)
                    .col(ColumnDef::new(Templates::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Templates::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Templates::Name).text().not_null())
                    .col(ColumnDef::new(Templates::Language).text().not_null())
                    .col(ColumnDef::new(Templates::Category).string_len(16).not_null())
                    .col(ColumnDef::new(Templates::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Templates::Body).text().not_null())
                    .col(ColumnDef::new(Templates::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_templates_org_name_language")
                    .table(Templates::Table)
                    .col(Templates::OrgId)
                    .col(Templates::Name)
                    .col(Templates::Language)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager.create_index(newest_first("ix_templates_org_created", Templates::Table, Templates::OrgId, None)).await?;

        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .col(ColumnDef::new(Customers::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Customers::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Customers::PhoneNumber).string_len(16).not_null())
                    .col(ColumnDef::new(Customers::Name).text().null())
                    .col(ColumnDef::new(Customers::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_customers_org_phone_number")
                    .table(Customers::Table)
                    .col(Customers::OrgId)
                    .col(Customers::PhoneNumber)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager.create_index(newest_first("ix_customers_org_created", Customers::Table, Customers::OrgId, None)).await?;

        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .col(ColumnDef::new(Conversations::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Conversations::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Conversations::ChannelId).uuid().not_null())
                    .col(ColumnDef::new(Conversations::CustomerId).uuid().not_null())
                    .col(ColumnDef::new(Conversations::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Conversations::LastInboundAtUs).big_integer().null())
                    .col(ColumnDef::new(Conversations::CreatedAtUs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_conversations_channel")
                            .from(Conversations::Table, Conversations::ChannelId)
                            .to(Channels::Table, Channels::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_conversations_customer")
                            .from(Conversations::Table, Conversations::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_conversations_org_channel_customer")
                    .table(Conversations::Table)
                    .col(Conversations::OrgId)
                    .col(Conversations::ChannelId)
                    .col(Conversations::CustomerId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager.create_index(newest_first("ix_conversations_org_created", Conversations::Table, Conversations::OrgId, None)).await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(ColumnDef::new(Messages::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Messages::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Messages::ConversationId).uuid().not_null())
                    .col(ColumnDef::new(Messages::Direction).string_len(16).not_null())
                    .col(ColumnDef::new(Messages::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Messages::Text).text().null())
                    .col(ColumnDef::new(Messages::Template).text().null())
                    .col(ColumnDef::new(Messages::ProviderMessageId).text().null())
                    .col(ColumnDef::new(Messages::DeliveryState).string_len(16).null())
                    .col(ColumnDef::new(Messages::SentAtUs).big_integer().null())
                    .col(ColumnDef::new(Messages::DeliveredAtUs).big_integer().null())
                    .col(ColumnDef::new(Messages::ReadAtUs).big_integer().null())
                    .col(ColumnDef::new(Messages::FailedAtUs).big_integer().null())
                    .col(ColumnDef::new(Messages::ErrorCode).text().null())
                    .col(ColumnDef::new(Messages::ErrorMessage).text().null())
                    .col(ColumnDef::new(Messages::CreatedAtUs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_conversation")
                            .from(Messages::Table, Messages::ConversationId)
                            .to(Conversations::Table, Conversations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_org_provider_message_id")
                    .table(Messages::Table)
                    .col(Messages::OrgId)
                    .col(Messages::ProviderMessageId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(newest_first(
                "ix_messages_org_conversation_created",
                Messages::Table,
                Messages::OrgId,
                Some(Messages::ConversationId.into_iden()),
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PendingStatuses::Table)
                    .col(ColumnDef::new(PendingStatuses::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(PendingStatuses::OrgId).uuid().not_null())
                    .col(ColumnDef::new(PendingStatuses::ProviderMessageId).text().not_null())
                    .col(ColumnDef::new(PendingStatuses::State).string_len(16).not_null())
                    .col(ColumnDef::new(PendingStatuses::AtUs).big_integer().not_null())
                    .col(ColumnDef::new(PendingStatuses::ErrorCode).text().null())
                    .col(ColumnDef::new(PendingStatuses::ErrorMessage).text().null())
                    .col(ColumnDef::new(PendingStatuses::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_pending_statuses_event")
                    .table(PendingStatuses::Table)
                    .col(PendingStatuses::OrgId)
                    .col(PendingStatuses::ProviderMessageId)
                    .col(PendingStatuses::State)
                    .col(PendingStatuses::AtUs)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Drafts::Table)
                    .col(ColumnDef::new(Drafts::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Drafts::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Drafts::ConversationId).uuid().not_null())
                    .col(ColumnDef::new(Drafts::Text).text().not_null())
                    .col(ColumnDef::new(Drafts::CreatedAtUs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_drafts_conversation")
                            .from(Drafts::Table, Drafts::ConversationId)
                            .to(Conversations::Table, Conversations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(newest_first(
                "ix_drafts_org_conversation_created",
                Drafts::Table,
                Drafts::OrgId,
                Some(Drafts::ConversationId.into_iden()),
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(ColumnDef::new(Outbox::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Outbox::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Outbox::ChannelId).uuid().not_null())
                    .col(ColumnDef::new(Outbox::ConversationId).uuid().not_null())
                    .col(ColumnDef::new(Outbox::MessageId).uuid().not_null())
                    .col(ColumnDef::new(Outbox::Recipient).string_len(16).not_null())
                    .col(ColumnDef::new(Outbox::Content).text().not_null())
                    .col(ColumnDef::new(Outbox::Attempt).integer().not_null())
                    .col(ColumnDef::new(Outbox::QueuedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Outbox::NextAttemptAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Outbox::LeaseUntilUs).big_integer().null())
                    .col(ColumnDef::new(Outbox::DeadlineAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Outbox::FinishedAtUs).big_integer().null())
                    .col(ColumnDef::new(Outbox::LastErrorCode).text().null())
                    .col(ColumnDef::new(Outbox::LastErrorMessage).text().null())
                    .col(ColumnDef::new(Outbox::RunId).uuid().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_outbox_message")
                            .from(Outbox::Table, Outbox::MessageId)
                            .to(Messages::Table, Messages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("ux_outbox_message").table(Outbox::Table).col(Outbox::MessageId).unique().to_owned())
            .await?;
        // The claim's scan: unfinished rows by due time (partial, so finished rows cost nothing).
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_due")
                    .table(Outbox::Table)
                    .col(Outbox::NextAttemptAtUs)
                    .and_where(Expr::col(Outbox::FinishedAtUs).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Outbox::Table.into_iden(),
            Drafts::Table.into_iden(),
            PendingStatuses::Table.into_iden(),
            Messages::Table.into_iden(),
            Conversations::Table.into_iden(),
            Customers::Table.into_iden(),
            Templates::Table.into_iden(),
            Channels::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
