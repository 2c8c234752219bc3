//! Operations: incidents and runbooks.
//!
//! - `incidents`: one row per incident; `number` is its per-organization reference
//!   (`INC-00000001`), unique per organization (`ux_incidents_org_number`) and handed out by
//!   `incident_sequences` (one counter row per organization, only ever incremented, so a number
//!   is never reused); `ci_ids` is a JSON array, mirrored in `incident_cis` for the `ci` filter.
//! - `incident_timeline`: every change of an incident, numbered 1, 2, 3, … per incident
//!   (primary key `(incident_id, sequence)`, so two writers can never record the same number).
//! - `runbooks`: definitions (parameters and steps as JSON), versioned.
//! - `runbook_executions`: one per real run, with the runbook version, the steps as run (JSON,
//!   secrets redacted), and, until the worker finishes it, the resolved requests sealed by the
//!   store's cipher (`sealed_requests`); `ix_runbook_executions_queued` is the worker's scan.

use sea_orm_migration::prelude::*;

/// Creates the incident and runbook tables.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Incidents {
    Table,
    Id,
    OrgId,
    /// The reference's number.
    Number,
    Title,
    Description,
    /// `P1`…`P5`.
    Severity,
    /// `triggered`, `open`, `acknowledged`, `investigating`, `resolved`, `closed`, `reopened`.
    Status,
    Source,
    /// JSON array of configuration item ids.
    CiIds,
    Assignee,
    DedupKey,
    ResolutionNotes,
    ResolvedBy,
    Version,
    Occurrences,
    ReopenCount,
    /// The newest timeline entry's sequence number.
    LastSequence,
    TriggeredAtUs,
    OpenedAtUs,
    AcknowledgedAtUs,
    InvestigatingAtUs,
    ResolvedAtUs,
    ClosedAtUs,
    ReopenedAtUs,
    LastOccurrenceAtUs,
    CreatedAtUs,
    UpdatedAtUs,
}

#[derive(DeriveIden)]
enum IncidentCis {
    Table,
    IncidentId,
    OrgId,
    CiId,
}

#[derive(DeriveIden)]
enum IncidentTimeline {
    Table,
    IncidentId,
    Sequence,
    OrgId,
    /// `created`, `transition`, `occurrence`, `updated`.
    Kind,
    Who,
    FromStatus,
    ToStatus,
    Note,
    AtUs,
}

#[derive(DeriveIden)]
enum IncidentSequences {
    Table,
    OrgId,
    LastNumber,
}

#[derive(DeriveIden)]
enum Runbooks {
    Table,
    Id,
    OrgId,
    Name,
    Description,
    /// JSON array of parameter declarations.
    Parameters,
    /// JSON array of steps.
    Steps,
    Version,
    CreatedAtUs,
    UpdatedAtUs,
}

#[derive(DeriveIden)]
enum RunbookExecutions {
    Table,
    Id,
    OrgId,
    RunbookId,
    RunbookVersion,
    IncidentId,
    /// `queued`, `running`, `succeeded`, `failed`.
    Status,
    PlanHash,
    /// JSON object of resolved parameters, secrets redacted.
    Parameters,
    /// JSON array of the steps as run, secrets redacted.
    Steps,
    /// The resolved requests (secrets included), sealed; cleared when the run finishes.
    SealedRequests,
    Attempts,
    LeaseUntilUs,
    CreatedAtUs,
    StartedAtUs,
    FinishedAtUs,
    UpdatedAtUs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Incidents::Table)
                    .col(ColumnDef::new(Incidents::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Incidents::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Incidents::Number).big_integer().not_null())
                    .col(ColumnDef::new(Incidents::Title).text().not_null())
                    .col(ColumnDef::new(Incidents::Description).text().null())
                    .col(ColumnDef::new(Incidents::Severity).string_len(2).not_null())
                    .col(ColumnDef::new(Incidents::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Incidents::Source).text().null())
                    .col(ColumnDef::new(Incidents::CiIds).text().not_null())
                    .col(ColumnDef::new(Incidents::Assignee).text().null())
                    .col(ColumnDef::new(Incidents::DedupKey).text().null())
                    .col(ColumnDef::new(Incidents::ResolutionNotes).text().null())
                    .col(ColumnDef::new(Incidents::ResolvedBy).text().null())
                    .col(ColumnDef::new(Incidents::Version).big_integer().not_null())
                    .col(ColumnDef::new(Incidents::Occurrences).big_integer().not_null())
                    .col(ColumnDef::new(Incidents::ReopenCount).big_integer().not_null())
                    .col(ColumnDef::new(Incidents::LastSequence).big_integer().not_null())
                    .col(ColumnDef::new(Incidents::TriggeredAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Incidents::OpenedAtUs).big_integer().null())
                    .col(ColumnDef::new(Incidents::AcknowledgedAtUs).big_integer().null())
                    .col(ColumnDef::new(Incidents::InvestigatingAtUs).big_integer().null())
                    .col(ColumnDef::new(Incidents::ResolvedAtUs).big_integer().null())
                    .col(ColumnDef::new(Incidents::ClosedAtUs).big_integer().null())
                    .col(ColumnDef::new(Incidents::ReopenedAtUs).big_integer().null())
                    .col(ColumnDef::new(Incidents::LastOccurrenceAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Incidents::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Incidents::UpdatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_incidents_org_number")
                    .table(Incidents::Table)
                    .col(Incidents::OrgId)
                    .col(Incidents::Number)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_incidents_org_created")
                    .table(Incidents::Table)
                    .col(Incidents::OrgId)
                    .col((Incidents::CreatedAtUs, IndexOrder::Desc))
                    .col((Incidents::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_incidents_org_dedup")
                    .table(Incidents::Table)
                    .col(Incidents::OrgId)
                    .col(Incidents::DedupKey)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IncidentCis::Table)
                    .col(ColumnDef::new(IncidentCis::IncidentId).uuid().not_null())
                    .col(ColumnDef::new(IncidentCis::OrgId).uuid().not_null())
                    .col(ColumnDef::new(IncidentCis::CiId).string_len(200).not_null())
                    .primary_key(Index::create().col(IncidentCis::IncidentId).col(IncidentCis::CiId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_incident_cis_incident")
                            .from(IncidentCis::Table, IncidentCis::IncidentId)
                            .to(Incidents::Table, Incidents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_incident_cis_org_ci")
                    .table(IncidentCis::Table)
                    .col(IncidentCis::OrgId)
                    .col(IncidentCis::CiId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IncidentTimeline::Table)
                    .col(ColumnDef::new(IncidentTimeline::IncidentId).uuid().not_null())
                    .col(ColumnDef::new(IncidentTimeline::Sequence).big_integer().not_null())
                    .col(ColumnDef::new(IncidentTimeline::OrgId).uuid().not_null())
                    .col(ColumnDef::new(IncidentTimeline::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(IncidentTimeline::Who).text().not_null())
                    .col(ColumnDef::new(IncidentTimeline::FromStatus).string_len(16).null())
                    .col(ColumnDef::new(IncidentTimeline::ToStatus).string_len(16).null())
                    .col(ColumnDef::new(IncidentTimeline::Note).text().null())
                    .col(ColumnDef::new(IncidentTimeline::AtUs).big_integer().not_null())
                    .primary_key(Index::create().col(IncidentTimeline::IncidentId).col(IncidentTimeline::Sequence))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_incident_timeline_incident")
                            .from(IncidentTimeline::Table, IncidentTimeline::IncidentId)
                            .to(Incidents::Table, Incidents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IncidentSequences::Table)
                    .col(ColumnDef::new(IncidentSequences::OrgId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(IncidentSequences::LastNumber).big_integer().not_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Runbooks::Table)
                    .col(ColumnDef::new(Runbooks::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Runbooks::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Runbooks::Name).text().not_null())
                    .col(ColumnDef::new(Runbooks::Description).text().null())
                    .col(ColumnDef::new(Runbooks::Parameters).text().not_null())
                    .col(ColumnDef::new(Runbooks::Steps).text().not_null())
                    .col(ColumnDef::new(Runbooks::Version).big_integer().not_null())
                    .col(ColumnDef::new(Runbooks::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Runbooks::UpdatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_runbooks_org_created")
                    .table(Runbooks::Table)
                    .col(Runbooks::OrgId)
                    .col((Runbooks::CreatedAtUs, IndexOrder::Desc))
                    .col((Runbooks::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RunbookExecutions::Table)
                    .col(ColumnDef::new(RunbookExecutions::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(RunbookExecutions::OrgId).uuid().not_null())
                    .col(ColumnDef::new(RunbookExecutions::RunbookId).uuid().not_null())
                    .col(ColumnDef::new(RunbookExecutions::RunbookVersion).big_integer().not_null())
                    .col(ColumnDef::new(RunbookExecutions::IncidentId).uuid().null())
                    .col(ColumnDef::new(RunbookExecutions::Status).string_len(16).not_null())
                    .col(ColumnDef::new(RunbookExecutions::PlanHash).string_len(64).not_null())
                    .col(ColumnDef::new(RunbookExecutions::Parameters).text().not_null())
                    .col(ColumnDef::new(RunbookExecutions::Steps).text().not_null())
                    .col(ColumnDef::new(RunbookExecutions::SealedRequests).blob().null())
                    .col(ColumnDef::new(RunbookExecutions::Attempts).integer().not_null())
                    .col(ColumnDef::new(RunbookExecutions::LeaseUntilUs).big_integer().null())
                    .col(ColumnDef::new(RunbookExecutions::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(RunbookExecutions::StartedAtUs).big_integer().null())
                    .col(ColumnDef::new(RunbookExecutions::FinishedAtUs).big_integer().null())
                    .col(ColumnDef::new(RunbookExecutions::UpdatedAtUs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_runbook_executions_runbook")
                            .from(RunbookExecutions::Table, RunbookExecutions::RunbookId)
                            .to(Runbooks::Table, Runbooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_runbook_executions_runbook_created")
                    .table(RunbookExecutions::Table)
                    .col(RunbookExecutions::OrgId)
                    .col(RunbookExecutions::RunbookId)
                    .col((RunbookExecutions::CreatedAtUs, IndexOrder::Desc))
                    .col((RunbookExecutions::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_runbook_executions_unfinished")
                    .table(RunbookExecutions::Table)
                    .col(RunbookExecutions::CreatedAtUs)
                    .and_where(Expr::col(RunbookExecutions::FinishedAtUs).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RunbookExecutions::Table.into_iden(),
            Runbooks::Table.into_iden(),
            IncidentSequences::Table.into_iden(),
            IncidentTimeline::Table.into_iden(),
            IncidentCis::Table.into_iden(),
            Incidents::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
