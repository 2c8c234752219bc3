//! Decisions that commit with their effects, and events addressed to one receiver.
//!
//! - `drafts` keep their own decision (`state`: `pending`, `approved` or `rejected`; the
//!   `message_id` an approval queued, a rejection's `reason`, `decided_at_us`), so approving a
//!   draft is one transaction with the send it makes. The decisions recorded in
//!   `draft_reviews` move over (an `approving` row, a claim a crash left behind, becomes
//!   `pending` again), and that table goes.
//! - `webhook_events.endpoint_id`: an event addressed to one endpoint (an external agent's
//!   `agent.message_received`) is fanned out to that endpoint alone; `NULL` is the broadcast
//!   to every endpoint whose filters match, as before.
//! - `agents.endpoint_id`: the webhook endpoint an external agent receives its events through,
//!   created, and deleted, with the agent.

use sea_orm_migration::prelude::*;

/// Adds draft decisions and addressed events; retires `draft_reviews`.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Drafts {
    Table,
    State,
    MessageId,
    Reason,
    DecidedAtUs,
}

#[derive(DeriveIden)]
enum DraftReviews {
    Table,
    DraftId,
    OrgId,
    ConversationId,
    State,
    Text,
    Reason,
    MessageId,
    DecidedAtUs,
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    EndpointId,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    EndpointId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        let columns = [
            ColumnDef::new(Drafts::State).text().not_null().default("pending").to_owned(),
            ColumnDef::new(Drafts::MessageId).uuid().null().to_owned(),
            ColumnDef::new(Drafts::Reason).text().null().to_owned(),
            ColumnDef::new(Drafts::DecidedAtUs).big_integer().null().to_owned(),
        ];
        for mut column in columns {
            manager.alter_table(Table::alter().table(Drafts::Table).add_column(&mut column).to_owned()).await?;
        }
        // Decisions made before this migration (their message ids were kept as text; the
        // message itself keeps the text sent).
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE drafts SET \
                   state = (SELECT r.state FROM draft_reviews r WHERE r.draft_id = drafts.id), \
                   reason = (SELECT r.reason FROM draft_reviews r WHERE r.draft_id = drafts.id), \
                   decided_at_us = (SELECT r.decided_at_us FROM draft_reviews r WHERE r.draft_id = drafts.id) \
                 WHERE EXISTS (SELECT 1 FROM draft_reviews r WHERE r.draft_id = drafts.id AND r.state IN ('approved', 'rejected'))",
            )
            .await?;
        manager.drop_table(Table::drop().table(DraftReviews::Table).to_owned()).await?;
        manager
            .alter_table(
                Table::alter().table(WebhookEvents::Table).add_column(ColumnDef::new(WebhookEvents::EndpointId).uuid().null()).to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Agents::Table).add_column(ColumnDef::new(Agents::EndpointId).uuid().null()).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Agents::Table).drop_column(Agents::EndpointId).to_owned()).await?;
        manager.alter_table(Table::alter().table(WebhookEvents::Table).drop_column(WebhookEvents::EndpointId).to_owned()).await?;
        manager
            .create_table(
                Table::create()
                    .table(DraftReviews::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(DraftReviews::DraftId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(DraftReviews::OrgId).uuid().not_null())
                    .col(ColumnDef::new(DraftReviews::ConversationId).uuid().not_null())
                    .col(ColumnDef::new(DraftReviews::State).text().not_null())
                    .col(ColumnDef::new(DraftReviews::Text).text().null())
                    .col(ColumnDef::new(DraftReviews::Reason).text().null())
                    .col(ColumnDef::new(DraftReviews::MessageId).text().null())
                    .col(ColumnDef::new(DraftReviews::DecidedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        for column in [Drafts::DecidedAtUs, Drafts::Reason, Drafts::MessageId, Drafts::State] {
            manager.alter_table(Table::alter().table(Drafts::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
