//! Knowledge: `knowledge_documents` (title, content, source URL, tags as a JSON array, chunk
//! count) and `knowledge_chunks` (each document's chunks in order, deleted with it), with the
//! full-text index each backend searches:
//!
//! - PostgreSQL: a generated `search` column (`tsvector`, English configuration, over the
//!   document's title and the chunk's text) with a GIN index (`ix_knowledge_chunks_search`);
//! - SQLite: an FTS5 table `knowledge_chunks_fts` (porter stemming over unicode61) holding each
//!   chunk's title and text, with its chunk, document and organization as unindexed columns
//!   (hex UUIDs), written and deleted in the transactions that write the chunks.
//!
//! Indexes: newest-first documents per organization; chunks by document.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

/// Creates the knowledge tables and their full-text index.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum KnowledgeDocuments {
    Table,
    Id,
    OrgId,
    Title,
    Content,
    SourceUrl,
    /// JSON array of strings.
    Tags,
    ChunkCount,
    CreatedAtUs,
}

#[derive(DeriveIden)]
enum KnowledgeChunks {
    Table,
    Id,
    OrgId,
    DocumentId,
    /// The chunk's position in its document, from 0.
    Ordinal,
    /// The document's title, repeated so the full-text index weighs it with each chunk.
    Title,
    Content,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(KnowledgeDocuments::Table)
                    .col(ColumnDef::new(KnowledgeDocuments::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(KnowledgeDocuments::OrgId).uuid().not_null())
                    .col(ColumnDef::new(KnowledgeDocuments::Title).text().not_null())
                    .col(ColumnDef::new(KnowledgeDocuments::Content).text().not_null())
                    .col(ColumnDef::new(KnowledgeDocuments::SourceUrl).text().null())
                    .col(ColumnDef::new(KnowledgeDocuments::Tags).text().not_null())
                    .col(ColumnDef::new(KnowledgeDocuments::ChunkCount).integer().not_null())
                    .col(ColumnDef::new(KnowledgeDocuments::CreatedAtUs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_knowledge_documents_org_created")
                    .table(KnowledgeDocuments::Table)
                    .col(KnowledgeDocuments::OrgId)
                    .col((KnowledgeDocuments::CreatedAtUs, IndexOrder::Desc))
                    .col((KnowledgeDocuments::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(KnowledgeChunks::Table)
                    .col(ColumnDef::new(KnowledgeChunks::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(KnowledgeChunks::OrgId).uuid().not_null())
                    .col(ColumnDef::new(KnowledgeChunks::DocumentId).uuid().not_null())
                    .col(ColumnDef::new(KnowledgeChunks::Ordinal).integer().not_null())
                    .col(ColumnDef::new(KnowledgeChunks::Title).text().not_null())
                    .col(ColumnDef::new(KnowledgeChunks::Content).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_knowledge_chunks_document")
                            .from(KnowledgeChunks::Table, KnowledgeChunks::DocumentId)
                            .to(KnowledgeDocuments::Table, KnowledgeDocuments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_knowledge_chunks_document")
                    .table(KnowledgeChunks::Table)
                    .col(KnowledgeChunks::DocumentId)
                    .col(KnowledgeChunks::Ordinal)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE knowledge_chunks ADD COLUMN search tsvector GENERATED ALWAYS AS \
                     (setweight(to_tsvector('english', title), 'A') || to_tsvector('english', content)) STORED",
                )
                .await?;
                db.execute_unprepared("CREATE INDEX ix_knowledge_chunks_search ON knowledge_chunks USING GIN (search)").await?;
                db.execute_unprepared("CREATE INDEX ix_knowledge_chunks_org ON knowledge_chunks (org_id)").await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5(title, content, chunk_id UNINDEXED, \
                     document_id UNINDEXED, org_id UNINDEXED, tokenize = 'porter unicode61')",
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DatabaseBackend::Postgres {
            db.execute_unprepared("DROP TABLE IF EXISTS knowledge_chunks_fts").await?;
        }
        manager.drop_table(Table::drop().table(KnowledgeChunks::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(KnowledgeDocuments::Table).to_owned()).await
    }
}
