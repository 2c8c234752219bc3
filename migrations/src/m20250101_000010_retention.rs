//! Retention (the janitors' scans): finished outbox rows by finish time, finished webhook
//! deliveries by finish time, fanned-out webhook events by fan-out time, and pending statuses
//! by arrival. Each index is partial where the rows the janitor looks for are a minority, so
//! the rows workers use cost nothing more.

use sea_orm_migration::prelude::*;

/// Creates the retention indexes.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    FinishedAtUs,
}

#[derive(DeriveIden)]
enum PendingStatuses {
    Table,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Status,
    FinishedAtUs,
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    FannedOutAtUs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_outbox_finished")
                    .table(Outbox::Table)
                    .col(Outbox::FinishedAtUs)
                    .and_where(Expr::col(Outbox::FinishedAtUs).is_not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_pending_statuses_created")
                    .table(PendingStatuses::Table)
                    .col(PendingStatuses::CreatedAtUs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_webhook_deliveries_finished")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::FinishedAtUs)
                    .and_where(Expr::col(WebhookDeliveries::Status).ne("pending"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_webhook_events_fanned_out")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::FannedOutAtUs)
                    .and_where(Expr::col(WebhookEvents::FannedOutAtUs).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("ix_webhook_events_fanned_out", WebhookEvents::Table.into_iden()),
            ("ix_webhook_deliveries_finished", WebhookDeliveries::Table.into_iden()),
            ("ix_pending_statuses_created", PendingStatuses::Table.into_iden()),
            ("ix_outbox_finished", Outbox::Table.into_iden()),
        ] {
            manager.drop_index(Index::drop().name(name).table(table).to_owned()).await?;
        }
        Ok(())
    }
}
