//! The behavioural suite every `KnowledgeIndex` must pass: documents read back as written and
//! list newest first, search finds chunks (not whole documents) of the asking organization
//! only, ranks a fixed corpus's expected document first for each query with relevances ≥ 0
//! best first, forgets a deleted document, and a failed write leaves nothing behind.
//! [`CORPUS`] and [`QUERIES`] are public so that a test can compare two adapters' rankings.
//!
//! Each check works in organizations of its own, so the checks may share one store.

use crate::accounts::{journal, now};
use atlas_kernel::{OrgId, PageRequest};
use atlas_knowledge::{chunk, normalise, terms, Document, DocumentId, KnowledgeIndex};
use time::Duration;

/// The fixed corpus: (title, content).
pub const CORPUS: &[(&str, &str)] = &[
    (
        "Opening hours",
        "Our store is open Monday to Friday from 9am to 6pm. On Saturday we open at 10am. \
         We are closed on Sundays and public holidays.",
    ),
    (
        "Password reset",
        "To reset your password, open the app, tap Settings, then Account, then Reset password. \
         You will receive an email with a reset link that expires in one hour.",
    ),
    (
        "Refund policy",
        "Refunds are issued within 14 days of purchase. Return the item unused in its original \
         packaging. Refunds go back to the original payment method.",
    ),
    (
        "Shipping",
        "We ship to every country in Europe. Standard shipping takes three to five business days; \
         express shipping takes one to two days.",
    ),
];

/// Queries with the index in [`CORPUS`] of the document that must rank first.
pub const QUERIES: &[(&str, usize)] = &[
    ("how do I reset my password", 1),
    ("when are you open on saturday", 0),
    ("refund to my payment method", 2),
    ("express shipping to europe", 3),
];

/// Runs every check of the suite against `index`.
pub async fn suite(index: &dyn KnowledgeIndex) {
    documents_read_back_and_list_newest_first(index).await;
    search_ranks_the_expected_document_first(index).await;
    search_returns_chunks_of_the_asking_organization_only(index).await;
    a_deleted_document_is_gone_from_search(index).await;
    a_failed_write_leaves_nothing(index).await;
}

/// A document of `org` created `offset_s` seconds after now, with its chunks.
pub fn sample(org_id: OrgId, title: &str, content: &str, offset_s: i64) -> (Document, Vec<atlas_knowledge::Chunk>) {
    let chunks = chunk(content);
    let document = Document {
        id: DocumentId::generate(),
        org_id,
        title: title.into(),
        content: content.into(),
        source_url: Some(format!("https://help.example.com/{}", title.to_lowercase().replace(' ', "-"))),
        tags: vec!["faq".into()],
        chunk_count: chunks.len() as u32,
        created_at: now() + Duration::seconds(offset_s),
    };
    (document, chunks)
}

/// Stores the corpus in `org` (the first document oldest); the documents in corpus order.
pub async fn load_corpus(index: &dyn KnowledgeIndex, org_id: OrgId) -> Vec<Document> {
    let mut out = Vec::new();
    for (i, (title, content)) in CORPUS.iter().enumerate() {
        let (document, chunks) = sample(org_id, title, content, i as i64);
        index.insert_document(&document, &chunks, &journal(org_id, "knowledge.create")).await.expect("storing a corpus document");
        out.push(document);
    }
    out
}

/// The documents `index` ranks for `query` in `org`, best first (one entry per hit).
pub async fn ranking(index: &dyn KnowledgeIndex, org_id: OrgId, query: &str) -> Vec<DocumentId> {
    index.search(org_id, &terms(query), 10).await.expect("searching").into_iter().map(|h| h.document_id).collect()
}

async fn documents_read_back_and_list_newest_first(index: &dyn KnowledgeIndex) {
    let org = OrgId::generate();
    let docs = load_corpus(index, org).await;
    let back = index.document(org, docs[1].id).await.unwrap().expect("the document reads back");
    assert_eq!(back, docs[1]);
    assert!(index.document(OrgId::generate(), docs[1].id).await.unwrap().is_none(), "another organization sees nothing");
    let first = index.documents(org, &PageRequest { limit: 3, after: None }).await.unwrap();
    let ids: Vec<_> = first.items.iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![docs[3].id, docs[2].id, docs[1].id], "newest first");
    let cursor = first.next_cursor.expect("a second page");
    let rest = index.documents(org, &PageRequest::parse(Some(3), Some(cursor.as_str())).unwrap()).await.unwrap();
    assert_eq!(rest.items.iter().map(|d| d.id).collect::<Vec<_>>(), vec![docs[0].id]);
    assert!(rest.next_cursor.is_none());
}

async fn search_ranks_the_expected_document_first(index: &dyn KnowledgeIndex) {
    let org = OrgId::generate();
    let docs = load_corpus(index, org).await;
    for (query, expected) in QUERIES {
        let hits = index.search(org, &terms(query), 10).await.unwrap();
        assert!(!hits.is_empty(), "{query}: nothing found");
        assert_eq!(hits[0].document_id, docs[*expected].id, "{query}: expected {} first, got {:?}", CORPUS[*expected].0, hits);
        assert_eq!(hits[0].title, CORPUS[*expected].0);
        assert_eq!(hits[0].source_url, docs[*expected].source_url);
        for pair in hits.windows(2) {
            assert!(pair[0].relevance >= pair[1].relevance, "{query}: best first");
            assert!(normalise(pair[0].relevance) >= normalise(pair[1].relevance));
        }
        assert!(hits.iter().all(|h| h.relevance >= 0.0 && (0.0..=1.0).contains(&normalise(h.relevance))));
        assert!(hits[0].relevance > 0.0, "{query}: a match has a positive relevance");
    }
    assert!(index.search(org, &terms("xylophone"), 10).await.unwrap().is_empty(), "no match, no hits");
    let one = index.search(org, &terms("shipping refunds password open"), 1).await.unwrap();
    assert_eq!(one.len(), 1, "the limit holds");
}

async fn search_returns_chunks_of_the_asking_organization_only(index: &dyn KnowledgeIndex) {
    let (ours, theirs) = (OrgId::generate(), OrgId::generate());
    let filler = "Our warehouse team packs every order with care and checks each item twice. ";
    let long = format!("{}The secret word is pomegranate. {}", filler.repeat(20), filler.repeat(20));
    let (document, chunks) = sample(ours, "Warehouse", &long, 0);
    assert!(chunks.len() > 1, "a long document has several chunks");
    index.insert_document(&document, &chunks, &journal(ours, "knowledge.create")).await.unwrap();
    let (other, other_chunks) = sample(theirs, "Other warehouse", "The secret word is pomegranate too.", 0);
    index.insert_document(&other, &other_chunks, &journal(theirs, "knowledge.create")).await.unwrap();

    let hits = index.search(ours, &terms("pomegranate"), 10).await.unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.document_id == document.id), "only our document: {hits:?}");
    assert!(hits[0].content.contains("pomegranate"));
    assert!(hits[0].content.chars().count() <= atlas_knowledge::MAX_CHUNK_CHARS, "a hit is a chunk, not the document");
    assert!(hits[0].content.len() < long.len());
    let theirs_hits = index.search(theirs, &terms("pomegranate"), 10).await.unwrap();
    assert_eq!(theirs_hits.iter().map(|h| h.document_id).collect::<Vec<_>>(), vec![other.id]);
    assert!(index.search(OrgId::generate(), &terms("pomegranate"), 10).await.unwrap().is_empty());
}

async fn a_deleted_document_is_gone_from_search(index: &dyn KnowledgeIndex) {
    let org = OrgId::generate();
    let docs = load_corpus(index, org).await;
    assert!(!index.delete_document(OrgId::generate(), docs[1].id, &journal(org, "knowledge.delete")).await.unwrap(), "not another's");
    assert!(!ranking(index, org, "password").await.is_empty(), "still there after another organization's delete");
    assert!(index.delete_document(org, docs[1].id, &journal(org, "knowledge.delete")).await.unwrap());
    assert!(ranking(index, org, "password").await.is_empty(), "its chunks are gone from search");
    assert!(index.document(org, docs[1].id).await.unwrap().is_none());
    assert!(!index.delete_document(org, docs[1].id, &journal(org, "knowledge.delete")).await.unwrap(), "a second delete finds nothing");
    assert_eq!(ranking(index, org, "refund").await, vec![docs[2].id], "the others stay");
}

async fn a_failed_write_leaves_nothing(index: &dyn KnowledgeIndex) {
    let org = OrgId::generate();
    let (first, chunks) = sample(org, "First", "Alpha bravo charlie.", 0);
    let entry = journal(org, "knowledge.create");
    index.insert_document(&first, &chunks, &entry).await.unwrap();
    // The same run id again: the journal cannot be written, so nothing of the document is.
    let (second, chunks) = sample(org, "Second", "Zulu yankee xray.", 1);
    assert!(index.insert_document(&second, &chunks, &entry).await.is_err(), "a duplicate run id fails the write");
    assert!(index.document(org, second.id).await.unwrap().is_none(), "the document rolled back");
    assert!(ranking(index, org, "yankee").await.is_empty(), "its chunks rolled back too");
}
