//! The knowledge routes: documents (`POST|GET /v1/atlas/knowledge`, `GET|DELETE
//! /v1/atlas/knowledge/{id}`, scopes `atlas.knowledge.write` / `atlas.knowledge.read`) and the
//! agents' search (`GET /agent/v1/knowledge/search?q=&limit=`, seed 000), over the `Knowledge`
//! use cases. [`search_hits`] is the one search the context endpoint and the tools share.

use crate::auth::Caller;
use crate::contract::Example;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, QueryParams};
use crate::mutation::{Mutation, Started};
use crate::routes::spec;
use crate::state::AppState;
use atlas_kernel::{OrgId, PageRequest};
use atlas_knowledge::{Document, DocumentId, DocumentSummary, KnowledgeError, NewDocument, SearchHit};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

/// The handler of a knowledge route, if `operation` is one.
pub fn endpoint(filter: MethodFilter, operation: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation {
        "knowledge.create" => on(filter, create),
        "knowledge.list" => on(filter, list),
        "knowledge.get" => on(filter, get),
        "knowledge.delete" => on(filter, delete),
        "knowledge.search" => on(filter, search),
        _ => return None,
    })
}

impl From<KnowledgeError> for ApiError {
    fn from(e: KnowledgeError) -> Self {
        match e {
            KnowledgeError::Invalid { field, message } => ApiError::field(field, message),
            KnowledgeError::NotFound => ApiError::not_found("document"),
            KnowledgeError::Store(s) => ApiError::internal(s),
        }
    }
}

/// `POST /v1/atlas/knowledge` (seed 000's body).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDocumentBody {
    /// 1 to 300 characters.
    pub title: String,
    /// The text; split into chunks of at most about 1,000 characters.
    pub content: String,
    /// Where the text comes from (an http or https URL).
    #[serde(default, alias = "sourceUrl")]
    pub source_url: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// The idempotency key, when not sent as the `Idempotency-Key` header.
    #[serde(default)]
    #[allow(dead_code)] // read from the raw body by `Mutation::begin`
    pub idempotency_key: Option<String>,
}

impl Example for CreateDocumentBody {
    fn example() -> Value {
        json!({"title": "Opening hours", "content": "We are open Monday to Friday, 9am to 6pm.\n\nClosed on public holidays.",
               "source_url": "https://help.example.com/hours", "tags": ["faq"]})
    }
}

/// The answer of an ingest (201).
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestedDocument {
    #[schema(value_type = String)]
    pub id: DocumentId,
    pub chunk_count: u32,
}

impl Example for IngestedDocument {
    fn example() -> Value {
        json!({"id": "kdoc_0190f3a8c1d27c3a9b1e4f5a6b7c8d9e", "chunk_count": 1})
    }
}

fn sample_document() -> Value {
    json!({"id": "kdoc_0190f3a8c1d27c3a9b1e4f5a6b7c8d9e", "title": "Opening hours",
           "content": "We are open Monday to Friday, 9am to 6pm.\n\nClosed on public holidays.",
           "source_url": "https://help.example.com/hours", "tags": ["faq"], "chunk_count": 1, "created_at": "2026-04-01T09:00:00Z"})
}

impl Example for Document {
    fn example() -> Value {
        sample_document()
    }
}

/// `GET /v1/atlas/knowledge`: documents newest first, without their content.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<DocumentSummary>,
    pub next_cursor: Option<String>,
}

impl Example for DocumentList {
    fn example() -> Value {
        let mut d = sample_document();
        if let Some(o) = d.as_object_mut() {
            o.remove("content");
        }
        json!({"documents": [d], "next_cursor": null})
    }
}

/// A deleted document.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedDocument {
    #[schema(value_type = String)]
    pub id: DocumentId,
    pub deleted: bool,
}

impl Example for DeletedDocument {
    fn example() -> Value {
        json!({"id": "kdoc_0190f3a8c1d27c3a9b1e4f5a6b7c8d9e", "deleted": true})
    }
}

/// `GET /agent/v1/knowledge/search`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// What to look for, in words (required, not blank).
    #[param(required = true)]
    pub q: Option<String>,
    /// 1 to 50 (default 5).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

/// The search's answer (seed 000): the best chunks, best first, scores in [0, 1].
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
}

impl Example for SearchResults {
    fn example() -> Value {
        json!({"results": [{"title": "Opening hours", "content": "We are open Monday to Friday, 9am to 6pm.", "score": 0.62,
                            "document_id": "kdoc_0190f3a8c1d27c3a9b1e4f5a6b7c8d9e", "source_url": "https://help.example.com/hours"}]})
    }
}

/// The best `limit` chunks for `query` in the organization.
pub(crate) async fn search_hits(state: &AppState, org_id: OrgId, query: &str, limit: Option<u32>) -> Result<Vec<SearchHit>, ApiError> {
    Ok(state.knowledge.search(org_id, query, limit).await?)
}

fn document_id(text: &str) -> Result<DocumentId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("document"))
}

async fn create(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, body: JsonBody<CreateDocumentBody>) -> Response {
    let mutation = match Mutation::begin(&state, spec("knowledge.create"), &caller, &headers, &body.raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let b = body.value;
    let new = NewDocument { title: b.title, content: b.content, source_url: b.source_url, tags: b.tags.unwrap_or_default() };
    let journal = |d: &Document| {
        let answer = IngestedDocument { id: d.id, chunk_count: d.chunk_count };
        let location = format!("/v1/atlas/knowledge/{}", d.id);
        mutation.entry(None, None, StatusCode::CREATED, &json!(answer), Some(d.id.to_string()), Some(location))
    };
    match state.knowledge.ingest(caller.org_id, new, &journal).await {
        Ok(_) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn list(State(state): State<AppState>, Caller(caller): Caller, QueryParams(q): QueryParams<PageQuery>) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = state.knowledge.documents(caller.org_id, &page).await?;
    let documents = found.items.iter().map(DocumentSummary::from).collect();
    Ok(Envelope::ok(DocumentList { documents, next_cursor: found.next_cursor }).into_response())
}

async fn get(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let document = state.knowledge.document(caller.org_id, document_id(&id)?).await?;
    Ok(Envelope::ok(document).into_response())
}

async fn delete(State(state): State<AppState>, Caller(caller): Caller, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id = match document_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let raw = json!({});
    let mutation = match Mutation::begin(&state, spec("knowledge.delete"), &caller, &headers, &raw).await {
        Ok(Started::Execute(m)) => m,
        Ok(Started::Answer(r)) => return r,
        Err(e) => return e.into_response(),
    };
    let journal = |id: &DocumentId| {
        mutation.entry(None, None, StatusCode::OK, &json!(DeletedDocument { id: *id, deleted: true }), Some(id.to_string()), None)
    };
    match state.knowledge.delete(caller.org_id, id, &journal).await {
        Ok(()) => mutation.respond().await,
        Err(e) => mutation.fail(e.into()).await,
    }
}

async fn search(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<SearchQuery>,
) -> Result<Response, ApiError> {
    let query = q.q.unwrap_or_default();
    let results = search_hits(&state, caller.org_id, &query, q.limit).await?;
    Ok(Envelope::ok(SearchResults { results }).into_response())
}
