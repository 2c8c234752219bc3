//! Agents: `agents` (hosted or external, maturity, what they serve, the sealed model API key,
//! the credential `key_id`, a `version` for compare-and-set), `agent_episodes` (each execution:
//! input, steps, outcome, whether a person intervened), `draft_reviews` (a person's decision on
//! a draft: the primary key makes a draft's approval happen once), `agent_sessions` and their
//! `agent_session_events` (numbered per session; `(session_id, seq)` is the key, so two writers
//! cannot take one number).
//!
//! `agent_jobs` are the inbound messages agents answer: copied from the webhook outbox's
//! `atlas.event.received` rows (the job id is the event id, so a message is queued once)
//! after the position kept in `agent_cursors`, then claimed under a lease (`attempts` fences a
//! stale worker), retried with backoff when the model fails.
//!
//! Lists (`serves`, `steps`) and settings (`hosted`) are JSON in text columns.

use sea_orm_migration::prelude::*;

/// Creates the agent tables.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    OrgId,
    Name,
    Role,
    Kind,
    MaturityLevel,
    Status,
    Serves,
    Hosted,
    Url,
    KeyId,
    SealedApiKey,
    Version,
    CreatedAtUs,
    UpdatedAtUs,
}

#[derive(DeriveIden)]
enum AgentEpisodes {
    Table,
    Id,
    OrgId,
    AgentId,
    ConversationId,
    SessionId,
    Input,
    Steps,
    Answer,
    Outcome,
    Intervened,
    CreatedAtUs,
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
enum AgentSessions {
    Table,
    Id,
    OrgId,
    AgentId,
    HandedOff,
    LastSeq,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum AgentSessionEvents {
    Table,
    SessionId,
    Seq,
    OrgId,
    Kind,
    Data,
    AtUs,
}

#[derive(DeriveIden)]
enum AgentJobs {
    Table,
    Id,
    OrgId,
    Payload,
    State,
    Attempts,
    NextAtUs,
    LeaseUntilUs,
    Error,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum AgentCursors {
    Table,
    Name,
    LastEventId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(ColumnDef::new(Agents::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Agents::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Agents::Name).text().not_null())
                    .col(ColumnDef::new(Agents::Role).text().not_null())
                    .col(ColumnDef::new(Agents::Kind).text().not_null())
                    .col(ColumnDef::new(Agents::MaturityLevel).text().not_null())
                    .col(ColumnDef::new(Agents::Status).text().not_null())
                    .col(ColumnDef::new(Agents::Serves).text().not_null())
                    .col(ColumnDef::new(Agents::Hosted).text().null())
                    .col(ColumnDef::new(Agents::Url).text().null())
                    .col(ColumnDef::new(Agents::KeyId).uuid().null())
                    .col(ColumnDef::new(Agents::SealedApiKey).blob().null())
                    .col(ColumnDef::new(Agents::Version).big_integer().not_null())
                    .col(ColumnDef::new(Agents::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Agents::UpdatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_agents_org_created")
                    .table(Agents::Table)
                    .col(Agents::OrgId)
                    .col(Agents::CreatedAtUs)
                    .col(Agents::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentEpisodes::Table)
                    .col(ColumnDef::new(AgentEpisodes::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(AgentEpisodes::OrgId).uuid().not_null())
                    .col(ColumnDef::new(AgentEpisodes::AgentId).uuid().not_null())
                    .col(ColumnDef::new(AgentEpisodes::ConversationId).uuid().null())
                    .col(ColumnDef::new(AgentEpisodes::SessionId).uuid().null())
                    .col(ColumnDef::new(AgentEpisodes::Input).text().not_null())
                    .col(ColumnDef::new(AgentEpisodes::Steps).text().not_null())
                    .col(ColumnDef::new(AgentEpisodes::Answer).text().null())
                    .col(ColumnDef::new(AgentEpisodes::Outcome).text().not_null())
                    .col(ColumnDef::new(AgentEpisodes::Intervened).boolean().not_null())
                    .col(ColumnDef::new(AgentEpisodes::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_agent_episodes_agent_created")
                    .table(AgentEpisodes::Table)
                    .col(AgentEpisodes::OrgId)
                    .col(AgentEpisodes::AgentId)
                    .col(AgentEpisodes::CreatedAtUs)
                    .col(AgentEpisodes::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DraftReviews::Table)
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
        manager
            .create_table(
                Table::create()
                    .table(AgentSessions::Table)
                    .col(ColumnDef::new(AgentSessions::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(AgentSessions::OrgId).uuid().not_null())
                    .col(ColumnDef::new(AgentSessions::AgentId).uuid().not_null())
                    .col(ColumnDef::new(AgentSessions::HandedOff).boolean().not_null())
                    .col(ColumnDef::new(AgentSessions::LastSeq).big_integer().not_null())
                    .col(ColumnDef::new(AgentSessions::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_agent_sessions_org_created")
                    .table(AgentSessions::Table)
                    .col(AgentSessions::OrgId)
                    .col(AgentSessions::CreatedAtUs)
                    .col(AgentSessions::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentSessionEvents::Table)
                    .col(ColumnDef::new(AgentSessionEvents::SessionId).uuid().not_null())
                    .col(ColumnDef::new(AgentSessionEvents::Seq).big_integer().not_null())
                    .col(ColumnDef::new(AgentSessionEvents::OrgId).uuid().not_null())
                    .col(ColumnDef::new(AgentSessionEvents::Kind).text().not_null())
                    .col(ColumnDef::new(AgentSessionEvents::Data).text().not_null())
                    .col(ColumnDef::new(AgentSessionEvents::AtUs).big_integer().not_null())
                    .primary_key(Index::create().col(AgentSessionEvents::SessionId).col(AgentSessionEvents::Seq))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentJobs::Table)
                    .col(ColumnDef::new(AgentJobs::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(AgentJobs::OrgId).uuid().not_null())
                    .col(ColumnDef::new(AgentJobs::Payload).text().not_null())
                    .col(ColumnDef::new(AgentJobs::State).text().not_null())
                    .col(ColumnDef::new(AgentJobs::Attempts).integer().not_null())
                    .col(ColumnDef::new(AgentJobs::NextAtUs).big_integer().not_null())
                    .col(ColumnDef::new(AgentJobs::LeaseUntilUs).big_integer().null())
                    .col(ColumnDef::new(AgentJobs::Error).text().null())
                    .col(ColumnDef::new(AgentJobs::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_agent_jobs_due").table(AgentJobs::Table).col(AgentJobs::State).col(AgentJobs::NextAtUs).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentCursors::Table)
                    .col(ColumnDef::new(AgentCursors::Name).string().not_null().primary_key())
                    .col(ColumnDef::new(AgentCursors::LastEventId).uuid().not_null())
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AgentCursors::Table.into_iden(),
            AgentJobs::Table.into_iden(),
            AgentSessionEvents::Table.into_iden(),
            AgentSessions::Table.into_iden(),
            DraftReviews::Table.into_iden(),
            AgentEpisodes::Table.into_iden(),
            Agents::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
