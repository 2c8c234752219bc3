//! The statement budget of the read pages clients make most (docs/architecture.md, "Statement
//! budgets"): the conversation page and a message page are one statement each, first and later
//! pages alike, and still walk every row once, newest first. Counted with sea-orm's metric
//! callback on SQLite (a fresh file per test) and PostgreSQL (a fresh database per test; skipped
//! loudly when the server is unreachable, failed when `ATLAS_REQUIRE_SERVICES=1`).

use atlas_conversations::{
    ChannelId, ChannelProvider, ConversationError, ConversationId, ConversationStore, InboundRecorded, MessageId, MessageKind, NewChannel,
    NewInbound,
};
use atlas_kernel::{Cursor, OrgId, PageRequest, PhoneNumber};
use atlas_runs::RunStatus;
use atlas_store_sql::SqlStore;
use atlas_testkit::conversations::journal;
use atlas_testkit::services::{fresh_postgres_database, fresh_sqlite_url};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

async fn sqlite() -> Option<SqlStore> {
    let store = SqlStore::connect(&fresh_sqlite_url()).await.expect("opening a fresh SQLite file");
    store.migrate().await.expect("migrating SQLite");
    Some(store)
}

async fn postgres() -> Option<SqlStore> {
    let url = fresh_postgres_database().await?;
    let store = SqlStore::connect(&url).await.expect("connecting to the fresh PostgreSQL database");
    store.migrate().await.expect("migrating PostgreSQL");
    Some(store)
}

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-03-02 09:00:00.123456 UTC)
}

/// `store` again, over the same pool, counting every statement it executes.
fn counted(store: &SqlStore) -> (SqlStore, Arc<AtomicUsize>) {
    let statements = Arc::new(AtomicUsize::new(0));
    let mut db = store.connection().clone();
    let counter = statements.clone();
    db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (SqlStore::from_connection(db), statements)
}

/// A channel of a new organization, and `conversations` customers writing to it; the first
/// writes `messages` times, the others once. Returns the organization and the first
/// conversation.
async fn seed(store: &SqlStore, conversations: u32, messages: u32) -> (OrgId, ConversationId) {
    let org_id = OrgId::generate();
    let channel = NewChannel {
        id: ChannelId::generate(),
        org_id,
        provider: ChannelProvider::Sandbox,
        name: "Sandbox".into(),
        phone_number_id: "sandbox-reads".into(),
        display_phone_number: "+1 415 555 0100".into(),
        verify_token: String::new(),
        waba_id: None,
        default: atlas_conversations::DefaultRule::IfNone,
        created_at: t0(),
        templates: Vec::new(),
    };
    let entry = journal(org_id, "channels.create", RunStatus::Succeeded);
    store.create_channel(&channel, b"sealed", &|_: &atlas_conversations::Channel| entry.clone()).await.expect("create_channel");
    let mut first = None;
    for c in 0..conversations {
        let count = if c == 0 { messages } else { 1 };
        for m in 0..count {
            let at = t0() + Duration::seconds(i64::from(c * 100 + m));
            let inbound = NewInbound {
                org_id,
                channel_id: channel.id,
                from: PhoneNumber::parse(&format!("+1415555{c:04}")).expect("a valid number"),
                profile_name: (c % 2 == 0).then(|| format!("Customer {c}")),
                message_id: MessageId::generate(),
                provider_message_id: Some(format!("wamid.reads.{c}.{m}")),
                kind: MessageKind::Text,
                text: Some(format!("message {m}")),
                content: None,
                timestamp: at,
                received_at: at,
            };
            let recorded = store.record_inbound(&inbound, &|_: &InboundRecorded| None).await.expect("record_inbound");
            first.get_or_insert(recorded.conversation.id);
        }
    }
    (org_id, first.expect("at least one conversation"))
}

/// Every conversation page is one statement (the conversations joined with their customers);
/// the pages walk all of them once, newest first, with their customers.
async fn a_conversation_page_is_one_statement(store: SqlStore) {
    let (org_id, _) = seed(&store, 7, 1).await;
    let (reads, statements) = counted(&store);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let before = statements.load(Ordering::SeqCst);
        let page = reads.list_conversations(org_id, &PageRequest { limit: 3, after }).await.expect("list_conversations");
        assert_eq!(statements.load(Ordering::SeqCst) - before, 1, "one statement for a page of conversations");
        seen.extend(page.items);
        match page.next_cursor {
            Some(cursor) => after = Some(Cursor::decode(&cursor).expect("a cursor the store made")),
            None => break,
        }
    }
    let customers: Vec<(String, Option<String>)> =
        seen.iter().map(|c| (c.customer.phone_number.as_str().to_owned(), c.customer.name.clone())).collect();
    let expected: Vec<(String, Option<String>)> =
        (0..7).rev().map(|c| (format!("+1415555{c:04}"), (c % 2 == 0).then(|| format!("Customer {c}")))).collect();
    assert_eq!(customers, expected, "every conversation once, newest first, each with its own customer");
    assert!(seen.iter().all(|c| c.org_id == org_id && c.customer.org_id == org_id), "all of the organization");
}

/// A message page with messages is one statement, first and later pages alike; only a page with
/// none asks whether the conversation exists, so an unknown conversation is still `NotFound`.
async fn a_message_page_is_one_statement(store: SqlStore) {
    let (org_id, conversation) = seed(&store, 2, 5).await;
    let (reads, statements) = counted(&store);
    let mut texts = Vec::new();
    let mut after = None;
    loop {
        let before = statements.load(Ordering::SeqCst);
        let page = reads.list_messages(org_id, conversation, &PageRequest { limit: 2, after }).await.expect("list_messages");
        assert_eq!(statements.load(Ordering::SeqCst) - before, 1, "one statement for a page of messages");
        texts.extend(page.items.into_iter().map(|m| m.text.unwrap_or_default()));
        match page.next_cursor {
            Some(cursor) => after = Some(Cursor::decode(&cursor).expect("a cursor the store made")),
            None => break,
        }
    }
    assert_eq!(texts, ["message 4", "message 3", "message 2", "message 1", "message 0"], "every message once, newest first");

    let past_the_end = PageRequest { limit: 2, after: Some(Cursor { created_at: t0() - Duration::days(1), id: Uuid::nil() }) };
    let before = statements.load(Ordering::SeqCst);
    let empty = reads.list_messages(org_id, conversation, &past_the_end).await.expect("an empty page of a known conversation");
    assert!(empty.items.is_empty() && empty.next_cursor.is_none(), "nothing older than the oldest message: {empty:?}");
    assert_eq!(statements.load(Ordering::SeqCst) - before, 2, "an empty page also asks whether the conversation exists");

    let unknown = reads.list_messages(org_id, ConversationId::generate(), &PageRequest { limit: 2, after: None }).await;
    assert!(matches!(unknown, Err(ConversationError::NotFound)), "an unknown conversation is not found: {unknown:?}");
    let stranger = reads.list_messages(OrgId::generate(), conversation, &PageRequest { limit: 2, after: None }).await;
    assert!(matches!(stranger, Err(ConversationError::NotFound)), "another organization's conversation is not found: {stranger:?}");
}

macro_rules! backend_tests {
    ($backend:ident) => {
        mod $backend {
            macro_rules! store {
                () => {
                    match super::$backend().await {
                        Some(store) => store,
                        None => return,
                    }
                };
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_conversation_page_is_one_statement() {
                super::a_conversation_page_is_one_statement(store!()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_message_page_is_one_statement() {
                super::a_message_page_is_one_statement(store!()).await;
            }
        }
    };
}

backend_tests!(sqlite);
backend_tests!(postgres);
