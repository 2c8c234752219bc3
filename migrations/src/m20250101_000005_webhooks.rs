//! Webhooks (all areas): the outbox of events (`webhook_events`, written in the transaction of
//! the change each one is news of), the subscriptions (`webhook_endpoints`, their signing
//! secrets sealed), one delivery per (event, endpoint) (`webhook_deliveries`, claimed by
//! workers under a lease) and every attempt at one (`webhook_attempts`).
//!
//! Races are settled here, never by a read before a write:
//! - `ux_webhook_deliveries_event_endpoint` makes fan-out idempotent: an event is expanded into
//!   at most one delivery per endpoint, however often (or however concurrently) fan-out runs;
//! - `ux_webhook_attempts_delivery_number` records an attempt number once per delivery, so a
//!   stale worker can never record a second attempt under a number already used.
//!
//! Indexes: `ix_webhook_events_undispatched` (partial: events not yet fanned out, in creation
//! order: event ids are UUIDv7, so id order is creation order), `ix_webhook_deliveries_due`
//! (partial: pending deliveries by due time, the claim's scan), newest-first lists of endpoints
//! and of an endpoint's deliveries, and `ix_webhook_deliveries_endpoint_status` (an endpoint's
//! pending deliveries, failed when it is disabled).
//!
//! Like `runs`, these tables have no foreign key to `organizations`. Deliveries reference their
//! endpoint and event, attempts their delivery; deleting an endpoint cascades to its deliveries
//! and their attempts, never to events (other endpoints may share them).

use sea_orm_migration::prelude::*;

/// Creates the webhook tables.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    /// UUIDv7: id order is creation order.
    Id,
    OrgId,
    /// The event type (`incident.created`, `agent.message_delivery`, …).
    Type,
    /// The resource the event is about, when it names one.
    ResourceId,
    /// The resource's version after the change.
    Version,
    OccurredAtUs,
    /// The exact body of every delivery: `{"type", "timestamp", "data"}` as JSON bytes.
    Payload,
    /// Set when fan-out expanded the event into deliveries (test events are born set).
    FannedOutAtUs,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    OrgId,
    Url,
    Description,
    /// The subscription's filters as a JSON array of strings.
    Filters,
    /// `enabled` or `disabled`.
    State,
    /// `by_user`, `gone` or `failing_for_24h` while disabled.
    DisabledReason,
    DisabledAtUs,
    /// Since when every attempt has failed (kept by the delivery queue).
    FailingSinceUs,
    /// The secret rotation as JSON, sealed by the store's cipher.
    SealedSecrets,
    /// 1 at creation, plus one per change (compare-and-swap).
    Version,
    CreatedAtUs,
    UpdatedAtUs,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    OrgId,
    EndpointId,
    EventId,
    EventType,
    /// `pending`, `succeeded` or `failed`.
    Status,
    /// Attempts claimed in all, replays included.
    AttemptCount,
    /// `attempt_count` when the current schedule began (0, or at the last replay).
    ScheduleBase,
    FirstAttemptAtUs,
    /// Pending deliveries only.
    NextAttemptAtUs,
    /// While set and in the future, a worker holds the delivery.
    LeaseUntilUs,
    CreatedAtUs,
    FinishedAtUs,
    LastErrorCode,
    LastErrorMessage,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    /// Unique per delivery, counting on across replays.
    Number,
    AtUs,
    LatencyMs,
    /// `succeeded` or `failed`.
    Outcome,
    StatusCode,
    /// At most `MAX_EXCERPT_BYTES` of the receiver's body, and whether more was sent.
    ResponseExcerpt,
    ResponseTruncated,
    ErrorCode,
    ErrorMessage,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .col(ColumnDef::new(WebhookEvents::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(WebhookEvents::OrgId).uuid().not_null())
                    .col(ColumnDef::new(WebhookEvents::Type).string_len(128).not_null())
                    .col(ColumnDef::new(WebhookEvents::ResourceId).text().null())
                    .col(ColumnDef::new(WebhookEvents::Version).big_integer().not_null())
                    .col(ColumnDef::new(WebhookEvents::OccurredAtUs).big_integer().not_null())
                    .col(ColumnDef::new(WebhookEvents::Payload).blob().not_null())
                    .col(ColumnDef::new(WebhookEvents::FannedOutAtUs).big_integer().null())
                    .to_owned(),
            )
            .await?;
        // Fan-out's scan: undispatched events in creation order (partial, so the dispatched
        // history costs nothing).
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_events_undispatched")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::Id)
                    .and_where(Expr::col(WebhookEvents::FannedOutAtUs).is_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(ColumnDef::new(WebhookEndpoints::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(WebhookEndpoints::OrgId).uuid().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Description).text().null())
                    .col(ColumnDef::new(WebhookEndpoints::Filters).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::State).string_len(16).not_null())
                    .col(ColumnDef::new(WebhookEndpoints::DisabledReason).string_len(32).null())
                    .col(ColumnDef::new(WebhookEndpoints::DisabledAtUs).big_integer().null())
                    .col(ColumnDef::new(WebhookEndpoints::FailingSinceUs).big_integer().null())
                    .col(ColumnDef::new(WebhookEndpoints::SealedSecrets).blob().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Version).big_integer().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::UpdatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_endpoints_org_created")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::OrgId)
                    .col((WebhookEndpoints::CreatedAtUs, IndexOrder::Desc))
                    .col((WebhookEndpoints::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(ColumnDef::new(WebhookDeliveries::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(WebhookDeliveries::OrgId).uuid().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::EndpointId).uuid().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::EventId).uuid().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::EventType).string_len(128).not_null())
                    .col(ColumnDef::new(WebhookDeliveries::Status).string_len(16).not_null())
                    .col(ColumnDef::new(WebhookDeliveries::AttemptCount).integer().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::ScheduleBase).integer().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::FirstAttemptAtUs).big_integer().null())
                    .col(ColumnDef::new(WebhookDeliveries::NextAttemptAtUs).big_integer().null())
                    .col(ColumnDef::new(WebhookDeliveries::LeaseUntilUs).big_integer().null())
                    .col(ColumnDef::new(WebhookDeliveries::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::FinishedAtUs).big_integer().null())
                    .col(ColumnDef::new(WebhookDeliveries::LastErrorCode).text().null())
                    .col(ColumnDef::new(WebhookDeliveries::LastErrorMessage).text().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_deliveries_endpoint")
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                            .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_deliveries_event")
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EventId)
                            .to(WebhookEvents::Table, WebhookEvents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_deliveries_event_endpoint")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EventId)
                    .col(WebhookDeliveries::EndpointId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The claim's scan: pending deliveries by due time, then event (partial, so finished
        // deliveries cost nothing).
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::NextAttemptAtUs)
                    .col(WebhookDeliveries::EventId)
                    .and_where(Expr::col(WebhookDeliveries::Status).eq("pending"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_endpoint_created")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::OrgId)
                    .col(WebhookDeliveries::EndpointId)
                    .col((WebhookDeliveries::CreatedAtUs, IndexOrder::Desc))
                    .col((WebhookDeliveries::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_endpoint_status")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(ColumnDef::new(WebhookAttempts::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(WebhookAttempts::DeliveryId).uuid().not_null())
                    .col(ColumnDef::new(WebhookAttempts::Number).integer().not_null())
                    .col(ColumnDef::new(WebhookAttempts::AtUs).big_integer().not_null())
                    .col(ColumnDef::new(WebhookAttempts::LatencyMs).big_integer().not_null())
                    .col(ColumnDef::new(WebhookAttempts::Outcome).string_len(16).not_null())
                    .col(ColumnDef::new(WebhookAttempts::StatusCode).integer().null())
                    .col(ColumnDef::new(WebhookAttempts::ResponseExcerpt).text().null())
                    .col(ColumnDef::new(WebhookAttempts::ResponseTruncated).boolean().null())
                    .col(ColumnDef::new(WebhookAttempts::ErrorCode).text().null())
                    .col(ColumnDef::new(WebhookAttempts::ErrorMessage).text().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_attempts_delivery")
                            .from(WebhookAttempts::Table, WebhookAttempts::DeliveryId)
                            .to(WebhookDeliveries::Table, WebhookDeliveries::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_attempts_delivery_number")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .col(WebhookAttempts::Number)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            WebhookEvents::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
