//! The behavioural suite every `IncidentStore` must pass, driven through the `Incidents` use
//! cases: references per organization that are never reused, dedup folding (created,
//! appended, reopened; a closed incident never absorbs), the sequenced timeline, refusals that
//! write nothing, exactly one winner among concurrent transitions from one state, lists with
//! filters and cursors, organizations isolated, and a failed journal leaving nothing behind.
//!
//! Each check works in organizations of its own, so the checks may share one store.

use crate::accounts::journal;
use atlas_incidents::{
    Applied, CreateIncident, IncidentError, IncidentFilter, IncidentKey, IncidentStore, Incidents, IncidentsConfig, Outcome, Reference,
    Severity, Status, UpdateIncident,
};
use atlas_kernel::{ManualClock, OrgId, PageRequest};
use atlas_runs::JournalEntry;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Runs every check of the suite against `store`.
pub async fn suite(store: Arc<dyn IncidentStore>) {
    references_are_per_organization_and_never_reused(store.clone()).await;
    dedup_creates_appends_and_reopens_and_a_closed_incident_never_absorbs(store.clone()).await;
    the_timeline_is_sequenced_and_a_refused_move_writes_nothing(store.clone()).await;
    concurrent_transitions_from_one_state_have_exactly_one_winner(store.clone()).await;
    lists_filter_and_page_newest_first(store.clone()).await;
    a_failed_journal_leaves_no_incident_and_no_number(store).await;
}

fn start() -> OffsetDateTime {
    time::macros::datetime!(2026-04-01 12:00:00 UTC)
}

fn service(store: Arc<dyn IncidentStore>, clock: &ManualClock) -> Incidents {
    Incidents::new(store, Arc::new(clock.clone()), IncidentsConfig { reopen_window: Duration::hours(1) })
}

fn entry(org_id: OrgId) -> impl Fn(&Vec<Applied>) -> JournalEntry + Send + Sync {
    move |_| journal(org_id, "incidents.test")
}

fn request(title: &str, dedup_key: Option<&str>) -> CreateIncident {
    CreateIncident {
        title: title.into(),
        severity: Some(Severity::P1),
        source: Some("prometheus".into()),
        ci_ids: vec!["ci-001".into()],
        dedup_key: dedup_key.map(str::to_owned),
        ..CreateIncident::default()
    }
}

async fn create(s: &Incidents, org: OrgId, title: &str, dedup_key: Option<&str>) -> Applied {
    s.create(org, "key_test", request(title, dedup_key), &entry(org)).await.unwrap_or_else(|e| panic!("creating {title} failed: {e:?}"))
}

async fn move_to(s: &Incidents, org: OrgId, key: IncidentKey, to: Status) -> Result<Applied, IncidentError> {
    let notes = (to == Status::Resolved).then(|| "scaled the pool".to_owned());
    s.update(
        org,
        "key_test",
        key,
        UpdateIncident { status: Some(to), resolution_notes: notes, ..UpdateIncident::default() },
        None,
        &entry(org),
    )
    .await
}

async fn walk(s: &Incidents, org: OrgId, key: IncidentKey, to: Status) {
    let current = s.get(org, key).await.expect("get").status;
    for step in atlas_incidents::path_to(current, to).expect("a legal path") {
        move_to(s, org, key, step).await.unwrap_or_else(|e| panic!("moving to {step} failed: {e:?}"));
    }
}

/// INC-00000001, 2, 3 in one organization; another organization starts at 1 again; an
/// incident reads back by id and by reference.
pub async fn references_are_per_organization_and_never_reused(store: Arc<dyn IncidentStore>) {
    let clock = ManualClock::new(start());
    let s = service(store, &clock);
    let (a, b) = (OrgId::generate(), OrgId::generate());
    let mut refs = Vec::new();
    for n in 0..3 {
        refs.push(create(&s, a, &format!("a{n}"), None).await.incident.expect("created").reference.to_string());
    }
    assert_eq!(refs, ["INC-00000001", "INC-00000002", "INC-00000003"], "references count up per organization");
    let other = create(&s, b, "b0", None).await.incident.expect("created");
    assert_eq!(other.reference.to_string(), "INC-00000001", "another organization has its own sequence");
    let by_ref = s.get(a, IncidentKey::Reference(Reference(2))).await.expect("by reference");
    assert_eq!(by_ref.title, "a1");
    let by_id = s.get(a, IncidentKey::Id(by_ref.id)).await.expect("by id");
    assert_eq!(by_id, by_ref, "id and reference name the same incident");
    assert!(matches!(s.get(b, IncidentKey::Id(by_ref.id)).await, Err(IncidentError::NotFound)), "another organization cannot read it");
}

/// A dedup key folds into its unresolved incident, reopens one resolved within the window,
/// creates after the window, and a closed incident never absorbs.
pub async fn dedup_creates_appends_and_reopens_and_a_closed_incident_never_absorbs(store: Arc<dyn IncidentStore>) {
    let clock = ManualClock::new(start());
    let s = service(store, &clock);
    let org = OrgId::generate();
    let first = create(&s, org, "pool exhausted", Some("db-pool")).await;
    assert_eq!(first.outcome, Outcome::Created);
    let id = first.incident.expect("created").id;
    clock.advance(Duration::minutes(1));
    let again = create(&s, org, "pool exhausted", Some("db-pool")).await;
    assert_eq!(again.outcome, Outcome::Appended, "an unresolved incident absorbs its key");
    let absorbed = again.incident.expect("the incident");
    assert_eq!((absorbed.id, absorbed.occurrences), (id, 2));
    walk(&s, org, IncidentKey::Id(id), Status::Resolved).await;
    clock.advance(Duration::minutes(59));
    let reopened = create(&s, org, "pool exhausted", Some("db-pool")).await;
    assert_eq!(reopened.outcome, Outcome::Reopened, "resolved 59 minutes ago, within the hour");
    let r = reopened.incident.expect("the incident");
    assert_eq!((r.id, r.status, r.reopen_count), (id, Status::Reopened, 1));
    walk(&s, org, IncidentKey::Id(id), Status::Resolved).await;
    clock.advance(Duration::minutes(61));
    let late = create(&s, org, "pool exhausted", Some("db-pool")).await;
    assert_eq!(late.outcome, Outcome::Created, "resolved 61 minutes ago: a new incident");
    let late_id = late.incident.expect("created").id;
    assert_ne!(late_id, id);
    walk(&s, org, IncidentKey::Id(late_id), Status::Closed).await;
    let after_close = create(&s, org, "pool exhausted", Some("db-pool")).await;
    assert_eq!(after_close.outcome, Outcome::Created, "a closed incident never absorbs");
    assert_ne!(after_close.incident.expect("created").id, late_id);
}

/// Entries are numbered 1, 2, 3, … with who, from and to; a refused move adds nothing.
pub async fn the_timeline_is_sequenced_and_a_refused_move_writes_nothing(store: Arc<dyn IncidentStore>) {
    let clock = ManualClock::new(start());
    let s = service(store, &clock);
    let org = OrgId::generate();
    let id = create(&s, org, "disk full", None).await.incident.expect("created").id;
    let key = IncidentKey::Id(id);
    move_to(&s, org, key, Status::Open).await.expect("triggered → open");
    let refused = move_to(&s, org, key, Status::Resolved).await;
    match refused {
        Err(IncidentError::InvalidTransition { from, allowed, .. }) => {
            assert_eq!(from, Status::Open);
            assert_eq!(allowed, vec![Status::Acknowledged]);
        }
        other => panic!("open → resolved must be refused, got {other:?}"),
    }
    move_to(&s, org, key, Status::Acknowledged).await.expect("open → acknowledged");
    let timeline = s.timeline(org, key).await.expect("timeline");
    let seen: Vec<_> = timeline.iter().map(|e| (e.sequence, e.from, e.to)).collect();
    assert_eq!(
        seen,
        vec![
            (1, None, Some(Status::Triggered)),
            (2, Some(Status::Triggered), Some(Status::Open)),
            (3, Some(Status::Open), Some(Status::Acknowledged))
        ],
        "the refused move left no entry"
    );
    assert!(timeline.iter().all(|e| e.who == "key_test"));
    let incident = s.get(org, key).await.expect("get");
    assert_eq!((incident.version, incident.last_sequence), (3, 3));
}

/// Eight concurrent `open → acknowledged` moves of one incident: exactly one succeeds, the
/// others are refused from `acknowledged`, and the timeline holds one acknowledgement.
pub async fn concurrent_transitions_from_one_state_have_exactly_one_winner(store: Arc<dyn IncidentStore>) {
    let clock = ManualClock::new(start());
    let s = Arc::new(service(store, &clock));
    let org = OrgId::generate();
    let id = create(&s, org, "race", None).await.incident.expect("created").id;
    move_to(&s, org, IncidentKey::Id(id), Status::Open).await.expect("open");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { move_to(&s, org, IncidentKey::Id(id), Status::Acknowledged).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => won += 1,
            Err(IncidentError::InvalidTransition { from: Status::Acknowledged, .. }) => {}
            Err(e) => panic!("a loser must be refused from acknowledged, got {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one concurrent transition wins");
    let acks = s.timeline(org, IncidentKey::Id(id)).await.expect("timeline").iter().filter(|e| e.to == Some(Status::Acknowledged)).count();
    assert_eq!(acks, 1);
}

/// Lists are newest first, filter by status, severity, source, item and time, and page with a
/// cursor.
pub async fn lists_filter_and_page_newest_first(store: Arc<dyn IncidentStore>) {
    let clock = ManualClock::new(start());
    let s = service(store, &clock);
    let org = OrgId::generate();
    let mut made = Vec::new();
    for n in 0..5 {
        let mut r = request(&format!("i{n}"), None);
        r.severity = Some(if n % 2 == 0 { Severity::P1 } else { Severity::P3 });
        r.ci_ids = vec![format!("ci-{}", n % 2)];
        made.push(s.create(org, "key_test", r, &entry(org)).await.expect("create").incident.expect("created"));
        clock.advance(Duration::minutes(10));
    }
    walk(&s, org, IncidentKey::Id(made[0].id), Status::Open).await;
    let page = PageRequest { limit: 2, after: None };
    let first = s.list(org, &IncidentFilter::default(), &page).await.expect("list");
    assert_eq!(first.items.iter().map(|i| i.title.as_str()).collect::<Vec<_>>(), ["i4", "i3"]);
    let next = PageRequest::parse(Some(2), first.next_cursor.as_deref()).expect("cursor");
    let second = s.list(org, &IncidentFilter::default(), &next).await.expect("list");
    assert_eq!(second.items.iter().map(|i| i.title.as_str()).collect::<Vec<_>>(), ["i2", "i1"]);
    let all = PageRequest { limit: 50, after: None };
    let titles = |f: IncidentFilter| {
        let s = &s;
        async move { s.list(org, &f, &all).await.expect("list").items.into_iter().map(|i| i.title).collect::<Vec<_>>() }
    };
    assert_eq!(titles(IncidentFilter { severity: Some(Severity::P3), ..Default::default() }).await, ["i3", "i1"]);
    assert_eq!(titles(IncidentFilter { status: Some(Status::Open), ..Default::default() }).await, ["i0"]);
    assert_eq!(titles(IncidentFilter { ci_id: Some("ci-1".into()), ..Default::default() }).await, ["i3", "i1"]);
    assert_eq!(titles(IncidentFilter { source: Some("nagios".into()), ..Default::default() }).await, Vec::<String>::new());
    let from = start() + Duration::minutes(10);
    let to = start() + Duration::minutes(30);
    assert_eq!(titles(IncidentFilter { from: Some(from), to: Some(to), ..Default::default() }).await, ["i2", "i1"]);
    let other = s.list(OrgId::generate(), &IncidentFilter::default(), &all).await.expect("list");
    assert!(other.items.is_empty(), "another organization sees none");
}

/// A create whose journal cannot be written (its run id is taken) leaves no incident, and the
/// next create still gets INC-00000001.
pub async fn a_failed_journal_leaves_no_incident_and_no_number(store: Arc<dyn IncidentStore>) {
    let clock = ManualClock::new(start());
    let s = service(store, &clock);
    let org = OrgId::generate();
    let taken = journal(org, "incidents.create");
    let first = s.create(org, "k", request("first", None), &|_: &Vec<Applied>| taken.clone()).await.expect("first create");
    assert_eq!(first.incident.expect("created").reference.0, 1);
    let failed = s.create(org, "k", request("doomed", None), &|_: &Vec<Applied>| taken.clone()).await;
    assert!(matches!(failed, Err(IncidentError::Store(_))), "a run id that exists fails the call, got {failed:?}");
    let all = s.list(org, &IncidentFilter::default(), &PageRequest::default()).await.expect("list");
    assert_eq!(all.items.len(), 1, "the failed create left nothing");
    let next = create(&s, org, "second", None).await.incident.expect("created");
    assert_eq!(next.reference.to_string(), "INC-00000002", "the failed create's number was not consumed");
}
