//! Knowledge: the documents an organization grounds its agents in, split into chunks by the
//! deterministic [`chunk`]er, and searched through the [`KnowledgeIndex`] port (PostgreSQL
//! full text, SQLite FTS5) with scores normalised into [0, 1] ([`normalise`]); the
//! [`Knowledge`] use cases (ingest, list, get, delete, search). Pure: no runtime, database or
//! HTTP.

pub mod chunk;
pub mod score;

pub use chunk::{chunk, chunk_with, Chunk, MAX_CHUNK_CHARS, OVERLAP_CHARS};
pub use score::{normalise, terms, MAX_TERMS};

use async_trait::async_trait;
use atlas_kernel::{typed_id, Clock, OrgId, Page, PageRequest, StoreError};
use atlas_runs::{Journal, JournalEntry};
use serde::Serialize;
use std::sync::Arc;
use thiserror::Error;
use time::OffsetDateTime;

typed_id!(
    /// A knowledge document.
    DocumentId,
    "kdoc"
);

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 300;
/// The longest content, in characters.
pub const MAX_CONTENT_CHARS: usize = 500_000;
/// The longest `source_url`, in characters.
pub const MAX_URL_CHARS: usize = 2_048;
/// The most tags a document carries, and the longest tag.
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_CHARS: usize = 64;
/// Search results by default, and at most.
pub const DEFAULT_SEARCH_LIMIT: u32 = 5;
pub const MAX_SEARCH_LIMIT: u32 = 50;

/// A document as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Document {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: DocumentId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub title: String,
    pub content: String,
    pub source_url: Option<String>,
    pub tags: Vec<String>,
    pub chunk_count: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// A document in a list: everything but its content.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentSummary {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: DocumentId,
    pub title: String,
    pub source_url: Option<String>,
    pub tags: Vec<String>,
    pub chunk_count: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

impl From<&Document> for DocumentSummary {
    fn from(d: &Document) -> Self {
        Self {
            id: d.id,
            title: d.title.clone(),
            source_url: d.source_url.clone(),
            tags: d.tags.clone(),
            chunk_count: d.chunk_count,
            created_at: d.created_at,
        }
    }
}

/// A chunk an index found, with the index's raw relevance (≥ 0, higher is better).
#[derive(Debug, Clone, PartialEq)]
pub struct RankedChunk {
    pub document_id: DocumentId,
    pub title: String,
    pub content: String,
    pub source_url: Option<String>,
    pub relevance: f64,
}

/// A search result: the chunk's text, its document, and a score in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub title: String,
    /// The matching chunk.
    pub content: String,
    /// In [0, 1]; higher is better.
    pub score: f64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub document_id: DocumentId,
    pub source_url: Option<String>,
}

/// Where documents and their chunks live, and how they are searched.
#[async_trait]
pub trait KnowledgeIndex: Send + Sync + std::fmt::Debug {
    /// Stores `document` with its `chunks` and commits `journal` with them.
    ///
    /// # Errors
    /// `StoreError` when the backing store fails.
    async fn insert_document(&self, document: &Document, chunks: &[Chunk], journal: &JournalEntry) -> Result<(), StoreError>;

    /// The organization's documents, newest first.
    ///
    /// # Errors
    /// `StoreError` when the backing store fails.
    async fn documents(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Document>, StoreError>;

    /// One document of the organization.
    ///
    /// # Errors
    /// `StoreError` when the backing store fails.
    async fn document(&self, org_id: OrgId, id: DocumentId) -> Result<Option<Document>, StoreError>;

    /// Deletes the document and its chunks with `journal`; `false` (and nothing committed)
    /// when the organization has no such document.
    ///
    /// # Errors
    /// `StoreError` when the backing store fails.
    async fn delete_document(&self, org_id: OrgId, id: DocumentId, journal: &JournalEntry) -> Result<bool, StoreError>;

    /// The organization's chunks matching any of `terms` (plain lower-case words), best first,
    /// at most `limit`; ties in relevance go to the older document, then the earlier chunk.
    ///
    /// # Errors
    /// `StoreError` when the backing store fails.
    async fn search(&self, org_id: OrgId, terms: &[String], limit: u32) -> Result<Vec<RankedChunk>, StoreError>;
}

/// Why a knowledge use case refused or failed.
#[derive(Debug, Error)]
pub enum KnowledgeError {
    /// A field is malformed (`VALIDATION_ERROR` naming `field`).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// No such document (`NOT_FOUND`).
    #[error("document not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> KnowledgeError {
    KnowledgeError::Invalid { field, message: message.into() }
}

/// `POST /v1/atlas/knowledge`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewDocument {
    pub title: String,
    pub content: String,
    pub source_url: Option<String>,
    pub tags: Vec<String>,
}

/// The knowledge use cases.
#[derive(Debug, Clone)]
pub struct Knowledge {
    index: Arc<dyn KnowledgeIndex>,
    clock: Arc<dyn Clock>,
}

impl Knowledge {
    /// The use cases over `index`, telling time by `clock`.
    pub fn new(index: Arc<dyn KnowledgeIndex>, clock: Arc<dyn Clock>) -> Self {
        Self { index, clock }
    }

    /// Checks and chunks a new document, and stores it with `journal`.
    ///
    /// # Errors
    /// `Invalid` for a blank or too long title or content, a `source_url` that is not an
    /// http(s) URL, or bad tags; `Store`.
    pub async fn ingest(&self, org_id: OrgId, new: NewDocument, journal: &dyn Journal<Document>) -> Result<Document, KnowledgeError> {
        let title = new.title.trim().to_owned();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(invalid("title", format!("1 to {MAX_TITLE_CHARS} characters")));
        }
        if new.content.trim().is_empty() {
            return Err(invalid("content", "must not be blank"));
        }
        if new.content.chars().count() > MAX_CONTENT_CHARS {
            return Err(invalid("content", format!("at most {MAX_CONTENT_CHARS} characters")));
        }
        let source_url = match new.source_url.map(|u| u.trim().to_owned()) {
            None => None,
            Some(u) if u.is_empty() => None,
            Some(u) => {
                let lower = u.to_ascii_lowercase();
                let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
                if !scheme_ok || u.len() <= "http://".len() || u.chars().count() > MAX_URL_CHARS || u.chars().any(char::is_whitespace) {
                    return Err(invalid("source_url", format!("an http or https URL of at most {MAX_URL_CHARS} characters")));
                }
                Some(u)
            }
        };
        if new.tags.len() > MAX_TAGS {
            return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
        }
        let mut tags: Vec<String> = Vec::new();
        for tag in &new.tags {
            let tag = tag.trim();
            if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
                return Err(invalid("tags", format!("each tag has 1 to {MAX_TAG_CHARS} characters")));
            }
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_owned());
            }
        }
        let chunks = chunk(&new.content);
        let now = self.clock.now();
        let now = now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now);
        let document = Document {
            id: DocumentId::generate(),
            org_id,
            title,
            content: new.content,
            source_url,
            tags,
            chunk_count: chunks.len() as u32,
            created_at: now,
        };
        self.index.insert_document(&document, &chunks, &journal.entry(&document)).await?;
        Ok(document)
    }

    /// The organization's documents, newest first.
    ///
    /// # Errors
    /// `Store`.
    pub async fn documents(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<Document>, KnowledgeError> {
        Ok(self.index.documents(org_id, page).await?)
    }

    /// One document.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn document(&self, org_id: OrgId, id: DocumentId) -> Result<Document, KnowledgeError> {
        self.index.document(org_id, id).await?.ok_or(KnowledgeError::NotFound)
    }

    /// Deletes a document and its chunks.
    ///
    /// # Errors
    /// `NotFound`, `Store`.
    pub async fn delete(&self, org_id: OrgId, id: DocumentId, journal: &dyn Journal<DocumentId>) -> Result<(), KnowledgeError> {
        if self.index.delete_document(org_id, id, &journal.entry(&id)).await? {
            Ok(())
        } else {
            Err(KnowledgeError::NotFound)
        }
    }

    /// The best chunks for `query`, scored in [0, 1], best first. A query without any word
    /// (punctuation only) finds nothing.
    ///
    /// # Errors
    /// `Invalid("q")` for a blank query, `Invalid("limit")` outside 1 to
    /// [`MAX_SEARCH_LIMIT`]; `Store`.
    pub async fn search(&self, org_id: OrgId, query: &str, limit: Option<u32>) -> Result<Vec<SearchHit>, KnowledgeError> {
        if query.trim().is_empty() {
            return Err(invalid("q", "must not be blank"));
        }
        let limit = limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
        if !(1..=MAX_SEARCH_LIMIT).contains(&limit) {
            return Err(invalid("limit", format!("1 to {MAX_SEARCH_LIMIT}")));
        }
        let terms = terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.index.search(org_id, &terms, limit).await?;
        Ok(found
            .into_iter()
            .map(|c| SearchHit {
                title: c.title,
                content: c.content,
                score: normalise(c.relevance),
                document_id: c.document_id,
                source_url: c.source_url,
            })
            .collect())
    }
}
