//! Knowledge end to end, on SQLite and PostgreSQL: ingest (chunked), list, get, delete, the
//! agents' search (seed 000's shape, scores in [0, 1], the expected document first, a blank
//! `q` refused), the context endpoint's grounding for the latest inbound text, the tool
//! manifest generated from the one registry, and tenant isolation between two organizations.

use atlas_e2e::{on_both_backends, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const DOCS: &[(&str, &str)] = &[
    ("Opening hours", "Our store is open Monday to Friday from 9am to 6pm. On Saturday we open at 10am. We are closed on Sundays and public holidays."),
    ("Password reset", "To reset your password, open the app, tap Settings, then Account, then Reset password. You will receive an email with a reset link."),
    ("Refund policy", "Refunds are issued within 14 days of purchase. Return the item unused in its original packaging."),
];

async fn ingest(server: &TestServer, key: &str, title: &str, content: &str) -> String {
    let body =
        json!({"title": title, "content": content, "source_url": format!("https://help.example.com/{}", title.len()), "tags": ["faq"]});
    let answer = server.call(Method::POST, "/v1/atlas/knowledge", Some(key), Some(body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    assert!(answer.data()["chunk_count"].as_u64().unwrap() >= 1);
    answer.data()["id"].as_str().unwrap().to_owned()
}

async fn search(server: &TestServer, key: &str, q: &str) -> Vec<Value> {
    let answer = server.call(Method::GET, &format!("/agent/v1/knowledge/search?q={q}&limit=5"), Some(key), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.data()["results"].as_array().unwrap().clone()
}

on_both_backends!(ingest_search_and_delete, Options::default(), |server| {
    let (_, key) = server.mint(&["atlas.knowledge.read", "atlas.knowledge.write"]).await;
    let mut ids = Vec::new();
    for (title, content) in DOCS {
        ids.push(ingest(&server, &key, title, content).await);
    }
    // A long document is split into several chunks of at most about 1,000 characters.
    let long = "Our warehouse team packs every order with care and checks each item twice. ".repeat(60);
    let long_answer =
        server.call(Method::POST, "/v1/atlas/knowledge", Some(&key), Some(json!({"title": "Warehouse", "content": long}))).await;
    assert_eq!(long_answer.status, StatusCode::CREATED);
    assert!(long_answer.data()["chunk_count"].as_u64().unwrap() >= 5, "{:?}", long_answer.body);

    let results = search(&server, &key, "how%20do%20I%20reset%20my%20password").await;
    assert_eq!(results[0]["document_id"], ids[1].as_str(), "{results:?}");
    assert_eq!(results[0]["title"], "Password reset");
    assert!(results[0]["content"].as_str().unwrap().contains("reset"));
    assert!(results[0]["source_url"].as_str().unwrap().starts_with("https://help.example.com/"));
    let scores: Vec<f64> = results.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
    assert_eq!(search(&server, &key, "open%20on%20saturday").await[0]["title"], "Opening hours");
    let warehouse = search(&server, &key, "warehouse").await;
    assert!(warehouse[0]["content"].as_str().unwrap().chars().count() <= 1_000, "a result is a chunk");

    for bad in ["", "q=", "q=%20%20", "q=x&limit=0", "q=x&limit=51"] {
        let answer = server.call(Method::GET, &format!("/agent/v1/knowledge/search?{bad}"), Some(&key), None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", answer.body);
        assert_eq!(answer.code(), "VALIDATION_ERROR");
    }
    let blank = server.call(Method::POST, "/v1/atlas/knowledge", Some(&key), Some(json!({"title": " ", "content": "x"}))).await;
    assert_eq!(blank.status, StatusCode::BAD_REQUEST);
    assert_eq!(blank.body["error"]["details"]["fields"][0]["field"], "title");
    let bad_url = server
        .call(Method::POST, "/v1/atlas/knowledge", Some(&key), Some(json!({"title": "t", "content": "x", "source_url": "ftp://x"})))
        .await;
    assert_eq!(bad_url.status, StatusCode::BAD_REQUEST);

    let list = server.call(Method::GET, "/v1/atlas/knowledge?limit=2", Some(&key), None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.data()["documents"].as_array().unwrap().len(), 2);
    assert!(list.data()["documents"][0].get("content").is_none(), "a list leaves the content out");
    let cursor = list.data()["next_cursor"].as_str().expect("a second page").to_owned();
    let rest = server.call(Method::GET, &format!("/v1/atlas/knowledge?limit=2&cursor={cursor}"), Some(&key), None).await;
    assert_eq!(rest.data()["documents"].as_array().unwrap().len(), 2);

    let one = server.call(Method::GET, &format!("/v1/atlas/knowledge/{}", ids[0]), Some(&key), None).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.data()["content"], DOCS[0].1);
    assert_eq!(one.data()["tags"], json!(["faq"]));

    let deleted = server.call(Method::DELETE, &format!("/v1/atlas/knowledge/{}", ids[1]), Some(&key), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.data()["deleted"], true);
    assert!(search(&server, &key, "password").await.is_empty(), "a deleted document is not found");
    assert_eq!(server.call(Method::GET, &format!("/v1/atlas/knowledge/{}", ids[1]), Some(&key), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.call(Method::DELETE, &format!("/v1/atlas/knowledge/{}", ids[1]), Some(&key), None).await.status,
        StatusCode::NOT_FOUND
    );

    let runs = server.call(Method::GET, "/v1/atlas/runs?operation=knowledge.create", Some(&server.admin_key), None).await;
    assert_eq!(runs.data()["runs"].as_array().unwrap().len(), 4, "one run per ingest");
    server.stop().await;
});

on_both_backends!(organizations_never_see_each_other_s_knowledge, Options::default(), |server| {
    let (_, ours) = server.mint(&["atlas.knowledge.read", "atlas.knowledge.write"]).await;
    let theirs = server.organization("Other").await;
    let id = ingest(&server, &ours, "Opening hours", DOCS[0].1).await;
    let their_id = ingest(&server, &theirs, "Their hours", "Their shop is open on Saturday from noon.").await;

    let found: Vec<Value> = search(&server, &theirs, "saturday").await;
    assert_eq!(found.iter().map(|r| r["document_id"].clone()).collect::<Vec<_>>(), vec![json!(their_id)], "only their own");
    assert_eq!(server.call(Method::GET, &format!("/v1/atlas/knowledge/{id}"), Some(&theirs), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(server.call(Method::DELETE, &format!("/v1/atlas/knowledge/{id}"), Some(&theirs), None).await.status, StatusCode::NOT_FOUND);
    let listed = server.call(Method::GET, "/v1/atlas/knowledge", Some(&theirs), None).await;
    assert_eq!(listed.data()["documents"].as_array().unwrap().len(), 1);
    assert_eq!(search(&server, &ours, "saturday").await[0]["document_id"], id.as_str(), "ours is still there");

    let (_, reader) = server.mint(&["atlas.knowledge.read"]).await;
    let refused = server.call(Method::POST, "/v1/atlas/knowledge", Some(&reader), Some(json!({"title": "t", "content": "c"}))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    server.stop().await;
});

on_both_backends!(context_grounds_the_latest_inbound_text, Options::default(), |server| {
    for (title, content) in DOCS {
        ingest(&server, &server.admin_key, title, content).await;
    }
    let event = json!({"channel": "whatsapp", "customer": {"phone_number": "+14155552671"}, "event_type": "message.received",
                       "message": {"text": "Hi! Are you open on Saturday?"}});
    let received = server.call(Method::POST, "/v1/atlas/events", Some(&server.admin_key), Some(event)).await;
    assert_eq!(received.status, StatusCode::OK, "{:?}", received.body);
    let conversation = received.data()["conversation_id"].as_str().unwrap().to_owned();
    let context = server.call(Method::GET, &format!("/v1/atlas/context/{conversation}"), Some(&server.admin_key), None).await;
    assert_eq!(context.status, StatusCode::OK, "{:?}", context.body);
    let knowledge = context.data()["knowledge"].as_array().unwrap();
    assert!(!knowledge.is_empty() && knowledge.len() <= 3, "{knowledge:?}");
    assert_eq!(knowledge[0]["title"], "Opening hours");
    assert!(knowledge[0]["score"].as_f64().unwrap() > 0.0);
    server.stop().await;
});

#[tokio::test]
async fn the_manifest_is_the_registry_filtered_by_scopes() {
    let server = TestServer::sqlite().await;
    let (_, key) = server.mint(&["atlas.actions.execute", "atlas.knowledge.read"]).await;
    let answer = server.call(Method::GET, "/agent/v1/tools/manifest", Some(&key), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let tools = answer.data()["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    for expected in ["search_knowledge", "send_message", "send_message_to_phone", "draft_message", "handoff", "get_message_status"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    for hidden in ["get_conversation", "create_incident", "create_task"] {
        assert!(!names.contains(&hidden), "{hidden} needs a scope the key lacks");
    }
    for tool in tools {
        assert_eq!(tool["type"], "function");
        assert!(tool["function"]["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(tool["function"]["parameters"]["type"], "object");
        assert!(tool["function"]["parameters"]["properties"].is_object());
        assert!(tool["x-required-scopes"].as_array().is_some_and(|s| s.len() == 1));
    }
    let admin = server.call(Method::GET, "/agent/v1/tools/manifest", Some(&server.admin_key), None).await;
    let all: Vec<&str> = admin.data()["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(all.contains(&"create_incident") && all.contains(&"get_conversation") && all.contains(&"update_task_status"), "{all:?}");
    server.stop().await;
}
