//! `KnowledgeIndex` for [`SqlStore`]: documents and their chunks, written with the journal in
//! one transaction, and searched with each backend's full text: PostgreSQL's generated
//! `tsvector` (`websearch_to_tsquery` over the words joined by `or`, ranked by `ts_rank_cd`),
//! SQLite's FTS5 table (quoted words joined by `OR`, ranked by `bm25`). Both adapters report a
//! relevance that is higher for better matches and ≥ 0 (`ts_rank_cd` scaled by
//! [`PG_RANK_SCALE`], `-bm25`), which the domain normalises.

use crate::conversations::{begin, commit};
use crate::convert::{from_json, from_us, to_json, to_us};
use crate::entity::{knowledge_chunks, knowledge_documents};
use crate::error::db;
use crate::journal::write_journal;
use crate::runs::before_cursor;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_knowledge::{Chunk, Document, DocumentId, KnowledgeIndex, RankedChunk};
use atlas_runs::JournalEntry;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use std::collections::HashMap;
use uuid::Uuid;

/// `ts_rank_cd` is about a tenth of FTS5's `bm25` for the same match (one cover of one term in
/// a short chunk scores 0.1); scaled by this, the two relevances, and so the normalised scores,
/// are of the same magnitude on both backends.
pub const PG_RANK_SCALE: f64 = 10.0;

fn document_from_row(row: knowledge_documents::Model) -> Result<Document, StoreError> {
    Ok(Document {
        id: DocumentId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        title: row.title,
        content: row.content,
        source_url: row.source_url,
        tags: from_json("reading a document's tags", &row.tags)?,
        chunk_count: u32::try_from(row.chunk_count).unwrap_or(0),
        created_at: from_us(row.created_at_us)?,
    })
}

/// The words as an FTS5 query: each quoted (a word is letters and digits only, so it holds no
/// quote), joined by `OR`.
fn fts5_query(terms: &[String]) -> String {
    terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" OR ")
}

/// The words as `websearch_to_tsquery` input: joined by `or` (a word that is itself `or` is
/// left out, since it would read as the operator).
fn websearch_query(terms: &[String]) -> String {
    terms.iter().filter(|t| t.as_str() != "or").cloned().collect::<Vec<_>>().join(" or ")
}

#[async_trait]
impl KnowledgeIndex for SqlStore {
    async fn insert_document(&self, document: &Document, chunks: &[Chunk], journal: &JournalEntry) -> Result<(), StoreError> {
        let org = document.org_id.as_uuid();
        let row = knowledge_documents::ActiveModel {
            id: Set(document.id.as_uuid()),
            org_id: Set(org),
            title: Set(document.title.clone()),
            content: Set(document.content.clone()),
            source_url: Set(document.source_url.clone()),
            tags: Set(to_json("writing a document's tags", &document.tags)?),
            chunk_count: Set(i32::try_from(document.chunk_count).unwrap_or(i32::MAX)),
            created_at_us: Set(to_us(document.created_at)),
        };
        let rows: Vec<(Uuid, knowledge_chunks::ActiveModel)> = chunks
            .iter()
            .map(|c| {
                let id = Uuid::now_v7();
                let row = knowledge_chunks::ActiveModel {
                    id: Set(id),
                    org_id: Set(org),
                    document_id: Set(document.id.as_uuid()),
                    ordinal: Set(i32::try_from(c.index).unwrap_or(i32::MAX)),
                    title: Set(document.title.clone()),
                    content: Set(c.content.clone()),
                };
                (id, row)
            })
            .collect();
        let txn = begin(&self.db).await?;
        knowledge_documents::Entity::insert(row).exec_without_returning(&txn).await.map_err(db("inserting the document"))?;
        let sqlite = txn.get_database_backend() == DatabaseBackend::Sqlite;
        // 6 parameters a row: 500 rows a statement stays well within both backends' limits.
        for batch in rows.chunks(500) {
            knowledge_chunks::Entity::insert_many(batch.iter().map(|(_, r)| r.clone()))
                .exec_without_returning(&txn)
                .await
                .map_err(db("inserting the chunks"))?;
            if sqlite {
                let mut sql = String::from("INSERT INTO knowledge_chunks_fts (title, content, chunk_id, document_id, org_id) VALUES ");
                let mut values: Vec<sea_orm::Value> = Vec::with_capacity(batch.len() * 5);
                for (i, (id, r)) in batch.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str("(?, ?, ?, ?, ?)");
                    let content = match &r.content {
                        Set(c) => c.clone(),
                        _ => String::new(),
                    };
                    values.push(document.title.clone().into());
                    values.push(content.into());
                    values.push(id.simple().to_string().into());
                    values.push(document.id.as_uuid().simple().to_string().into());
                    values.push(org.simple().to_string().into());
                }
                txn.execute(Statement::from_sql_and_values(DatabaseBackend::Sqlite, sql, values))
                    .await
                    .map_err(db("indexing the chunks"))?;
            }
        }
        write_journal(&txn, journal).await?;
        commit(txn, "committing the document").await?;
        Ok(())
    }

    async fn documents(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Document>, StoreError> {
        let mut query = knowledge_documents::Entity::find().filter(knowledge_documents::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(knowledge_documents::Column::CreatedAtUs, knowledge_documents::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(knowledge_documents::Column::CreatedAtUs)
            .order_by_desc(knowledge_documents::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing documents"))?;
        let documents = rows.into_iter().map(document_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(documents, page, |d| (d.created_at, d.id.as_uuid())))
    }

    async fn document(&self, org_id: OrgId, id: DocumentId) -> Result<Option<Document>, StoreError> {
        let row = knowledge_documents::Entity::find()
            .filter(knowledge_documents::Column::OrgId.eq(org_id.as_uuid()))
            .filter(knowledge_documents::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a document"))?;
        row.map(document_from_row).transpose()
    }

    async fn delete_document(&self, org_id: OrgId, id: DocumentId, journal: &JournalEntry) -> Result<bool, StoreError> {
        let txn = begin(&self.db).await?;
        // Chunks first (the foreign key cascades too; this keeps PostgreSQL and SQLite alike).
        knowledge_chunks::Entity::delete_many()
            .filter(knowledge_chunks::Column::OrgId.eq(org_id.as_uuid()))
            .filter(knowledge_chunks::Column::DocumentId.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(db("deleting the chunks"))?;
        let deleted = knowledge_documents::Entity::delete_many()
            .filter(knowledge_documents::Column::OrgId.eq(org_id.as_uuid()))
            .filter(knowledge_documents::Column::Id.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(db("deleting the document"))?;
        if deleted.rows_affected == 0 {
            crate::conversations::rollback(txn).await?;
            return Ok(false);
        }
        if txn.get_database_backend() == DatabaseBackend::Sqlite {
            txn.execute(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "DELETE FROM knowledge_chunks_fts WHERE document_id = ? AND org_id = ?",
                [id.as_uuid().simple().to_string().into(), org_id.as_uuid().simple().to_string().into()],
            ))
            .await
            .map_err(db("unindexing the chunks"))?;
        }
        write_journal(&txn, journal).await?;
        commit(txn, "committing the deletion").await?;
        Ok(true)
    }

    async fn search(&self, org_id: OrgId, terms: &[String], limit: u32) -> Result<Vec<RankedChunk>, StoreError> {
        let backend = self.db.get_database_backend();
        // (document, title, content, relevance), best first.
        let mut found: Vec<(Uuid, String, String, f64)> = Vec::new();
        if backend == DatabaseBackend::Postgres {
            let query = websearch_query(terms);
            if query.is_empty() {
                return Ok(Vec::new());
            }
            let rows = self
                .db
                .query_all(Statement::from_sql_and_values(
                    backend,
                    "SELECT c.document_id, c.title, c.content, ts_rank_cd(c.search, q)::float8 AS rank \
                     FROM knowledge_chunks c, websearch_to_tsquery('english', $2) q \
                     WHERE c.org_id = $1 AND c.search @@ q \
                     ORDER BY rank DESC, c.document_id, c.ordinal LIMIT $3",
                    [org_id.as_uuid().into(), query.into(), i64::from(limit).into()],
                ))
                .await
                .map_err(db("searching knowledge"))?;
            for row in rows {
                let document: Uuid = row.try_get("", "document_id").map_err(db("reading a search hit"))?;
                let title: String = row.try_get("", "title").map_err(db("reading a search hit"))?;
                let content: String = row.try_get("", "content").map_err(db("reading a search hit"))?;
                let rank: f64 = row.try_get("", "rank").map_err(db("reading a search hit"))?;
                found.push((document, title, content, rank * PG_RANK_SCALE));
            }
        } else {
            // FTS5's bm25 floors a term's idf to 1e-6 once the term is in more than half of the
            // table's chunks (every term of a one-document knowledge base), so its value is no
            // score. The candidates come in bm25's order; each is scored by its matched terms
            // (FTS5's own `highlight`, stemmed as the match was), like `ts_rank_cd`'s covers.
            let candidates = i64::from(limit.saturating_mul(4).clamp(limit, 200));
            let rows = self
                .db
                .query_all(Statement::from_sql_and_values(
                    backend,
                    "SELECT document_id, title, content, rowid, \
                     highlight(knowledge_chunks_fts, 0, char(1), char(2)) || ' ' || highlight(knowledge_chunks_fts, 1, char(1), char(2)) AS marked \
                     FROM knowledge_chunks_fts WHERE knowledge_chunks_fts MATCH ? AND org_id = ? \
                     ORDER BY bm25(knowledge_chunks_fts), document_id, rowid LIMIT ?",
                    [fts5_query(terms).into(), org_id.as_uuid().simple().to_string().into(), candidates.into()],
                ))
                .await
                .map_err(db("searching knowledge"))?;
            for row in rows {
                let document: String = row.try_get("", "document_id").map_err(db("reading a search hit"))?;
                let document = Uuid::parse_str(&document).map_err(|e| StoreError::new("reading a search hit's document", e))?;
                let title: String = row.try_get("", "title").map_err(db("reading a search hit"))?;
                let content: String = row.try_get("", "content").map_err(db("reading a search hit"))?;
                let marked: String = row.try_get("", "marked").map_err(db("reading a search hit"))?;
                found.push((document, title, content, matched_relevance(&marked)));
            }
            // Best first; bm25's order among equals.
            found.sort_by(|a, b| b.3.total_cmp(&a.3));
            found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        // The hits' source URLs, in one query.
        let mut ids: Vec<Uuid> = found.iter().map(|f| f.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let urls: HashMap<Uuid, Option<String>> = if ids.is_empty() {
            HashMap::new()
        } else {
            knowledge_documents::Entity::find()
                .select_only()
                .column(knowledge_documents::Column::Id)
                .column(knowledge_documents::Column::SourceUrl)
                .filter(knowledge_documents::Column::OrgId.eq(org_id.as_uuid()))
                .filter(knowledge_documents::Column::Id.is_in(ids))
                .into_tuple::<(Uuid, Option<String>)>()
                .all(&self.db)
                .await
                .map_err(db("reading the hits' documents"))?
                .into_iter()
                .collect()
        };
        Ok(found
            .into_iter()
            .filter_map(|(document, title, content, relevance)| {
                // A document deleted between the two reads is left out.
                let source_url = urls.get(&document)?.clone();
                Some(RankedChunk { document_id: DocumentId::from_uuid(document), title, content, source_url, relevance })
            })
            .collect())
    }
}

/// The relevance of an FTS5 hit from its highlighted text (matches between `\u{1}` and
/// `\u{2}`): one per distinct matched word and a tenth per repeat, the scale of
/// `ts_rank_cd × PG_RANK_SCALE` for covers in a short chunk.
fn matched_relevance(marked: &str) -> f64 {
    let mut distinct: Vec<String> = Vec::new();
    let mut total = 0_u32;
    for piece in marked.split('\u{1}').skip(1) {
        let word = piece.split('\u{2}').next().unwrap_or_default().trim().to_lowercase();
        if word.is_empty() {
            continue;
        }
        total += 1;
        if !distinct.contains(&word) {
            distinct.push(word);
        }
    }
    let distinct_count = f64::from(u32::try_from(distinct.len()).unwrap_or(u32::MAX));
    distinct_count + 0.1 * (f64::from(total) - distinct_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_words_and_join_them_with_or() {
        let terms = vec!["reset".to_owned(), "or".to_owned(), "password".to_owned()];
        assert_eq!(fts5_query(&terms), r#""reset" OR "or" OR "password""#);
        assert_eq!(websearch_query(&terms), "reset or password");
    }

    #[test]
    fn a_hit_is_scored_by_its_distinct_matches_and_a_tenth_per_repeat() {
        assert_eq!(matched_relevance("no match here"), 0.0);
        assert_eq!(matched_relevance("our \u{1}hours\u{2} are"), 1.0);
        let repeated = matched_relevance("\u{1}Reset\u{2} the \u{1}password\u{2}, then \u{1}reset\u{2} it");
        assert!((repeated - 2.1).abs() < 1e-9, "{repeated}");
    }
}
