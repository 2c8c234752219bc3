//! Claims whose cost is bounded by the work they take, not by the backlog (issue 9).
//!
//! A fair claim (`store-sql`'s `fair`) needs, per target (a channel, an endpoint), the rows it
//! has leased now and its earliest due rows up to its cap. Without these indexes PostgreSQL
//! read every unfinished row for both on every claim: with 5,000 queued messages a claim took
//! about 20 ms and the outbox drain slowed as its backlog grew.
//!
//! - `ix_outbox_channel_due`, `ix_webhook_deliveries_endpoint_due`: the unfinished rows of one
//!   target in due order (partial). The claim walks the targets that have such rows (a skip
//!   scan: one index probe per target) and reads at most the cap's rows of each.
//! - `ix_outbox_leased`, `ix_webhook_deliveries_leased`: unfinished rows by lease end
//!   (partial), so counting the rows leased now reads only those.

use sea_orm_migration::prelude::*;

/// Creates the bounded claims' indexes.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    ChannelId,
    NextAttemptAtUs,
    Id,
    LeaseUntilUs,
    FinishedAtUs,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    EndpointId,
    NextAttemptAtUs,
    EventId,
    Id,
    LeaseUntilUs,
    Status,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let unfinished = || Expr::col(Outbox::FinishedAtUs).is_null();
        let pending = || Expr::col(WebhookDeliveries::Status).eq("pending");
        let indexes = [
            Index::create()
                .if_not_exists()
                .name("ix_outbox_channel_due")
                .table(Outbox::Table)
                .col(Outbox::ChannelId)
                .col(Outbox::NextAttemptAtUs)
                .col(Outbox::Id)
                .and_where(unfinished())
                .to_owned(),
            Index::create()
                .if_not_exists()
                .name("ix_outbox_leased")
                .table(Outbox::Table)
                .col(Outbox::LeaseUntilUs)
                .and_where(unfinished())
                .to_owned(),
            Index::create()
                .if_not_exists()
                .name("ix_webhook_deliveries_endpoint_due")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::EndpointId)
                .col(WebhookDeliveries::NextAttemptAtUs)
                .col(WebhookDeliveries::EventId)
                .col(WebhookDeliveries::Id)
                .and_where(pending())
                .to_owned(),
            Index::create()
                .if_not_exists()
                .name("ix_webhook_deliveries_leased")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::LeaseUntilUs)
                .and_where(pending())
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("ix_webhook_deliveries_leased", WebhookDeliveries::Table.into_iden()),
            ("ix_webhook_deliveries_endpoint_due", WebhookDeliveries::Table.into_iden()),
            ("ix_outbox_leased", Outbox::Table.into_iden()),
            ("ix_outbox_channel_due", Outbox::Table.into_iden()),
        ] {
            manager.drop_index(Index::drop().name(name).table(table).to_owned()).await?;
        }
        Ok(())
    }
}
