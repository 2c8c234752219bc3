//! Work: `projects` (a key unique among an organization's live projects:
//! `ux_projects_org_key`, partial on `deleted_at_us IS NULL`), `tasks` (soft-deleted, each with
//! its `rank` in the organization's topological order), `task_dependencies` (the edges "`task_id`
//! depends on `depends_on_id`", one per pair by primary key) and `task_notes`.
//!
//! Indexes: newest-first lists (`ix_projects_org_created`, `ix_tasks_org_created`,
//! `ix_tasks_project_created`, `ix_task_notes_task_created`), `ix_tasks_org_rank` (the region
//! between two ranks, the next rank, a project's order), `ix_tasks_parent` (subtasks) and
//! `ix_task_dependencies_depends_on` (the dependents of a task).
//!
//! Like `runs`, no foreign key to `organizations`; tasks reference their project, edges and
//! notes their tasks.

use sea_orm_migration::prelude::*;

/// Creates the work tables.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    OrgId,
    Key,
    Name,
    Description,
    Version,
    CreatedAtUs,
    UpdatedAtUs,
    DeletedAtUs,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    OrgId,
    ProjectId,
    ParentId,
    Title,
    Description,
    /// `todo`, `in_progress`, `done` or `cancelled`.
    Status,
    /// `low`, `normal`, `high` or `urgent`.
    Priority,
    DueAtUs,
    Assignee,
    /// The place in the organization's topological order (dependencies rank lower).
    Rank,
    Version,
    CreatedAtUs,
    UpdatedAtUs,
    CompletedAtUs,
    DeletedAtUs,
}

#[derive(DeriveIden)]
enum TaskDependencies {
    Table,
    OrgId,
    /// The dependent.
    TaskId,
    /// The task it depends on.
    DependsOnId,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum TaskNotes {
    Table,
    Id,
    OrgId,
    TaskId,
    Content,
    CreatedAtUs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(ColumnDef::new(Projects::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Projects::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Projects::Key).string_len(64).not_null())
                    .col(ColumnDef::new(Projects::Name).text().not_null())
                    .col(ColumnDef::new(Projects::Description).text().null())
                    .col(ColumnDef::new(Projects::Version).big_integer().not_null())
                    .col(ColumnDef::new(Projects::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Projects::UpdatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Projects::DeletedAtUs).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_projects_org_key")
                    .table(Projects::Table)
                    .col(Projects::OrgId)
                    .col(Projects::Key)
                    .unique()
                    .and_where(Expr::col(Projects::DeletedAtUs).is_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_projects_org_created")
                    .table(Projects::Table)
                    .col(Projects::OrgId)
                    .col((Projects::CreatedAtUs, IndexOrder::Desc))
                    .col((Projects::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(ColumnDef::new(Tasks::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Tasks::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Tasks::ProjectId).uuid().not_null())
                    .col(ColumnDef::new(Tasks::ParentId).uuid().null())
                    .col(ColumnDef::new(Tasks::Title).text().not_null())
                    .col(ColumnDef::new(Tasks::Description).text().null())
                    .col(ColumnDef::new(Tasks::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Tasks::Priority).string_len(16).not_null())
                    .col(ColumnDef::new(Tasks::DueAtUs).big_integer().null())
                    .col(ColumnDef::new(Tasks::Assignee).text().null())
                    .col(ColumnDef::new(Tasks::Rank).big_integer().not_null())
                    .col(ColumnDef::new(Tasks::Version).big_integer().not_null())
                    .col(ColumnDef::new(Tasks::CreatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Tasks::UpdatedAtUs).big_integer().not_null())
                    .col(ColumnDef::new(Tasks::CompletedAtUs).big_integer().null())
                    .col(ColumnDef::new(Tasks::DeletedAtUs).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tasks_project")
                            .from(Tasks::Table, Tasks::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [("ix_tasks_org_rank", vec![Tasks::OrgId, Tasks::Rank]), ("ix_tasks_parent", vec![Tasks::ParentId])] {
            let mut index = Index::create();
            index.name(name).table(Tasks::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_tasks_org_created")
                    .table(Tasks::Table)
                    .col(Tasks::OrgId)
                    .col((Tasks::CreatedAtUs, IndexOrder::Desc))
                    .col((Tasks::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_tasks_project_created")
                    .table(Tasks::Table)
                    .col(Tasks::ProjectId)
                    .col((Tasks::CreatedAtUs, IndexOrder::Desc))
                    .col((Tasks::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TaskDependencies::Table)
                    .col(ColumnDef::new(TaskDependencies::OrgId).uuid().not_null())
                    .col(ColumnDef::new(TaskDependencies::TaskId).uuid().not_null())
                    .col(ColumnDef::new(TaskDependencies::DependsOnId).uuid().not_null())
                    .col(ColumnDef::new(TaskDependencies::CreatedAtUs).big_integer().not_null())
                    .primary_key(Index::create().col(TaskDependencies::TaskId).col(TaskDependencies::DependsOnId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_task_dependencies_task")
                            .from(TaskDependencies::Table, TaskDependencies::TaskId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_task_dependencies_depends_on")
                            .from(TaskDependencies::Table, TaskDependencies::DependsOnId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_task_dependencies_depends_on")
                    .table(TaskDependencies::Table)
                    .col(TaskDependencies::DependsOnId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TaskNotes::Table)
                    .col(ColumnDef::new(TaskNotes::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(TaskNotes::OrgId).uuid().not_null())
                    .col(ColumnDef::new(TaskNotes::TaskId).uuid().not_null())
                    .col(ColumnDef::new(TaskNotes::Content).text().not_null())
                    .col(ColumnDef::new(TaskNotes::CreatedAtUs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_task_notes_task")
                            .from(TaskNotes::Table, TaskNotes::TaskId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_task_notes_task_created")
                    .table(TaskNotes::Table)
                    .col(TaskNotes::TaskId)
                    .col((TaskNotes::CreatedAtUs, IndexOrder::Desc))
                    .col((TaskNotes::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in
            [TaskNotes::Table.into_iden(), TaskDependencies::Table.into_iden(), Tasks::Table.into_iden(), Projects::Table.into_iden()]
        {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
