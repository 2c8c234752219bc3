//! The behavioural suite every `CmdbStore` must pass: items read back as written and list
//! newest first with class and environment filters, relationships need both ends in the same
//! organization and exist once, links come back in the asked direction for a whole frontier,
//! organizations never see each other's items, and a failed write leaves nothing behind.
//!
//! Each check works in organizations of its own, so the checks may share one store.

use crate::accounts::{journal, now};
use atlas_cmdb::{
    CiId, CmdbStore, CmdbStoreError, ConfigurationItem, Direction, ItemFilter, Link, Relationship, RelationshipId, RelationshipType,
};
use atlas_kernel::{OrgId, PageRequest};
use serde_json::json;
use time::Duration;

/// Runs every check of the suite against `store`.
pub async fn suite(store: &dyn CmdbStore) {
    items_read_back_and_list_newest_first_with_filters(store).await;
    relationships_need_both_ends_in_the_organization_and_exist_once(store).await;
    links_follow_the_asked_direction_for_a_whole_frontier(store).await;
}

/// An item of `org` created `offset_s` seconds after a fixed base.
pub fn sample_item(org_id: OrgId, name: &str, class: &str, environment: Option<&str>, offset_s: i64) -> ConfigurationItem {
    let at = now() + Duration::seconds(offset_s);
    ConfigurationItem {
        id: CiId::generate(),
        org_id,
        name: name.into(),
        class: class.into(),
        environment: environment.map(str::to_owned),
        attributes: json!({"ip": "10.0.0.1", "os": "Ubuntu 22.04"}),
        created_at: at,
        updated_at: at,
    }
}

/// Stores `item` (panics on failure).
pub async fn insert(store: &dyn CmdbStore, item: &ConfigurationItem) {
    store
        .insert_item(item, &journal(item.org_id, "cmdb.items.create"))
        .await
        .unwrap_or_else(|e| panic!("inserting {} failed: {e:?}", item.name));
}

/// Relates `source` to `target` (panics on failure).
pub async fn relate(store: &dyn CmdbStore, org_id: OrgId, source: CiId, target: CiId) -> Relationship {
    let r = Relationship {
        id: RelationshipId::generate(),
        org_id,
        source_id: source,
        target_id: target,
        kind: RelationshipType::DependsOn,
        created_at: now(),
    };
    store.insert_relationship(&r, &journal(org_id, "cmdb.relationships.create")).await.unwrap_or_else(|e| panic!("relating failed: {e:?}"));
    r
}

async fn items_read_back_and_list_newest_first_with_filters(store: &dyn CmdbStore) {
    let org = OrgId::generate();
    let web = sample_item(org, "web-server-01", "server", Some("production"), 0);
    let db = sample_item(org, "db-01", "database", Some("production"), 1);
    let staging = sample_item(org, "web-server-02", "server", Some("staging"), 2);
    for item in [&web, &db, &staging] {
        insert(store, item).await;
    }
    let back = store.item(org, web.id).await.expect("reading an item").expect("the item exists");
    assert_eq!(back, web, "an item reads back as written (timestamps at microsecond precision)");
    assert_eq!(store.item(OrgId::generate(), web.id).await.expect("reading"), None, "another organization never sees the item");

    let all = store.items(org, &ItemFilter::default(), &PageRequest::default()).await.expect("listing");
    let names: Vec<&str> = all.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["web-server-02", "db-01", "web-server-01"], "newest first");
    let servers =
        store.items(org, &ItemFilter { class: Some("server".into()), environment: None }, &PageRequest::default()).await.expect("listing");
    assert_eq!(servers.items.len(), 2, "the class filter keeps the servers");
    let prod_servers = store
        .items(org, &ItemFilter { class: Some("server".into()), environment: Some("production".into()) }, &PageRequest::default())
        .await
        .expect("listing");
    assert_eq!(prod_servers.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![web.id], "both filters narrow together");

    let first = store.items(org, &ItemFilter::default(), &PageRequest::parse(Some(2), None).expect("page")).await.expect("listing");
    assert_eq!(first.items.len(), 2);
    let cursor = first.next_cursor.clone().expect("a next page exists");
    let late = sample_item(org, "late", "server", None, 10);
    insert(store, &late).await;
    let second =
        store.items(org, &ItemFilter::default(), &PageRequest::parse(Some(2), Some(&cursor)).expect("page")).await.expect("listing");
    assert_eq!(second.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![web.id], "the cursor is stable under inserts");

    let found = store.items_by_id(org, &[web.id, db.id, CiId::generate()]).await.expect("reading by ids");
    assert_eq!(found.len(), 2, "only existing items of the organization come back");
    assert!(store.items_by_id(OrgId::generate(), &[web.id]).await.expect("reading by ids").is_empty());
}

async fn relationships_need_both_ends_in_the_organization_and_exist_once(store: &dyn CmdbStore) {
    let org = OrgId::generate();
    let (app, db) = (sample_item(org, "app", "service", None, 0), sample_item(org, "db", "database", None, 1));
    let foreign = sample_item(OrgId::generate(), "theirs", "database", None, 2);
    for item in [&app, &db, &foreign] {
        insert(store, item).await;
    }
    let r = relate(store, org, app.id, db.id).await;
    let again = Relationship { id: RelationshipId::generate(), ..r.clone() };
    let result = store.insert_relationship(&again, &journal(org, "cmdb.relationships.create")).await;
    assert!(matches!(result, Err(CmdbStoreError::Duplicate)), "the same relationship twice is a duplicate, got {result:?}");
    let runs_on = Relationship { id: RelationshipId::generate(), kind: RelationshipType::RunsOn, ..r.clone() };
    store
        .insert_relationship(&runs_on, &journal(org, "cmdb.relationships.create"))
        .await
        .expect("another type between the same items is allowed");

    let to_foreign = Relationship { id: RelationshipId::generate(), target_id: foreign.id, ..r.clone() };
    let result = store.insert_relationship(&to_foreign, &journal(org, "cmdb.relationships.create")).await;
    assert!(matches!(result, Err(CmdbStoreError::MissingItem("target_id"))), "another organization's item is missing, got {result:?}");
    let from_nothing = Relationship { id: RelationshipId::generate(), source_id: CiId::generate(), ..r.clone() };
    let result = store.insert_relationship(&from_nothing, &journal(org, "cmdb.relationships.create")).await;
    assert!(matches!(result, Err(CmdbStoreError::MissingItem("source_id"))), "an unknown source is missing, got {result:?}");
    let links = store.links(org, &[db.id], Direction::Downstream).await.expect("links");
    assert_eq!(links.len(), 2, "the refused relationships left nothing behind: {links:?}");
}

async fn links_follow_the_asked_direction_for_a_whole_frontier(store: &dyn CmdbStore) {
    let org = OrgId::generate();
    let items: Vec<ConfigurationItem> = (0..4).map(|i| sample_item(org, &format!("ci-{i}"), "server", None, i)).collect();
    for item in &items {
        insert(store, item).await;
    }
    let id = |i: usize| items[i].id;
    relate(store, org, id(1), id(0)).await; // 1 depends on 0
    relate(store, org, id(2), id(0)).await; // 2 depends on 0
    relate(store, org, id(3), id(1)).await; // 3 depends on 1
    let mut down = store.links(org, &[id(0)], Direction::Downstream).await.expect("links");
    down.sort();
    let mut expected = vec![
        Link { from: id(0), to: id(1), kind: RelationshipType::DependsOn },
        Link { from: id(0), to: id(2), kind: RelationshipType::DependsOn },
    ];
    expected.sort();
    assert_eq!(down, expected, "downstream: the items that depend on the frontier");
    let up = store.links(org, &[id(3), id(1)], Direction::Upstream).await.expect("links");
    let mut pairs: Vec<(CiId, CiId)> = up.iter().map(|l| (l.from, l.to)).collect();
    pairs.sort();
    let mut want = vec![(id(3), id(1)), (id(1), id(0))];
    want.sort();
    assert_eq!(pairs, want, "upstream: what the frontier depends on, for every frontier item in one call");
    assert!(
        store.links(OrgId::generate(), &[id(0)], Direction::Downstream).await.expect("links").is_empty(),
        "organizations never see each other's links"
    );
}
