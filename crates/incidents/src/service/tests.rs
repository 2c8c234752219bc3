use super::*;
use crate::model::Reference;
use proptest::prelude::*;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-04-01 12:00 UTC);

fn new_incident(at: OffsetDateTime) -> NewIncident {
    NewIncident {
        id: IncidentId::generate(),
        org_id: OrgId::from_uuid(uuid::Uuid::nil()),
        title: "Database connection pool exhausted".into(),
        description: None,
        severity: Severity::P1,
        source: Some("prometheus".into()),
        ci_ids: vec!["ci-001".into()],
        assignee: None,
        dedup_key: Some("db-pool".into()),
        who: "key_test".into(),
        at,
    }
}

fn incident_at(status: Status, at: OffsetDateTime) -> Incident {
    let (mut i, _) = new_incident(at).build(Reference(1));
    if let Some(walk) = path_to(Status::Triggered, status) {
        for s in walk {
            let notes = (s == Status::Resolved).then(|| "fixed".to_owned());
            i.transition(s, "key_test", None, notes, at).unwrap();
        }
    }
    i
}

/// The reference rule, as the issue words it.
fn expected(status: Status, resolved_ago: Duration, window: Duration) -> Outcome {
    match status {
        Status::Closed => Outcome::Created,
        Status::Resolved if resolved_ago < window => Outcome::Reopened,
        Status::Resolved => Outcome::Created,
        _ => Outcome::Appended,
    }
}

fn outcome(plan: &Plan) -> Outcome {
    match plan {
        Plan::Create(_) => Outcome::Created,
        Plan::Change { outcome, .. } | Plan::Nothing { outcome, .. } => *outcome,
    }
}

proptest! {
    /// Dedup: an unresolved incident absorbs, a resolved one reopens within the window and not
    /// after it, a closed one never absorbs.
    #[test]
    fn dedup_follows_the_reference_rule(status in (0usize..7).prop_map(|i| Status::ALL[i]), ago_secs in 0i64..7200, window_secs in 1i64..7200) {
        let existing = incident_at(status, T0);
        let now = T0 + Duration::seconds(ago_secs);
        let plan = fold_signal(std::slice::from_ref(&existing), &new_incident(now), "key_test", now, Duration::seconds(window_secs));
        prop_assert_eq!(outcome(&plan), expected(status, Duration::seconds(ago_secs), Duration::seconds(window_secs)));
        if let Plan::Change { incident, entries, previous_version, .. } = &plan {
            prop_assert_eq!(*previous_version, existing.version);
            prop_assert_eq!(incident.occurrences, existing.occurrences + 1);
            prop_assert_eq!(entries[0].sequence, existing.last_sequence + 1);
        }
    }

    /// MTTA and MTTR are never negative, whatever times the moves carry (clocks can be set back).
    #[test]
    fn mtta_and_mttr_are_never_negative(offsets in proptest::collection::vec(-100_000i64..100_000, 1..12), choices in proptest::collection::vec(0usize..2, 12)) {
        let mut incident = incident_at(Status::Triggered, T0);
        for (i, off) in offsets.iter().enumerate() {
            let options = incident.status.allowed();
            if options.is_empty() { break; }
            let to = options[choices[i] % options.len()];
            let notes = (to == Status::Resolved).then(|| "fixed".to_owned());
            incident.transition(to, "key_test", None, notes, T0 + Duration::seconds(*off)).unwrap();
            let t = incident_times(&incident);
            prop_assert!(t.mtta_seconds.is_none_or(|s| s >= 0));
            prop_assert!(t.mttr_seconds.is_none_or(|s| s >= 0));
            let summary = aggregate(&[t]);
            prop_assert!(summary.mtta_seconds.is_none_or(|s| s >= 0.0));
            prop_assert!(summary.mttr_seconds.is_none_or(|s| s >= 0.0));
        }
    }

    /// An update to a status outside the allowed list is refused with exactly that list, and
    /// changes nothing.
    #[test]
    fn illegal_updates_are_refused_with_the_allowed_list(from in (0usize..7).prop_map(|i| Status::ALL[i]), to in (0usize..7).prop_map(|i| Status::ALL[i])) {
        let current = incident_at(from, T0);
        let request = UpdateIncident { status: Some(to), resolution_notes: (to == Status::Resolved).then(|| "done".into()), ..UpdateIncident::default() };
        match apply_update(&current, "key_test", &request, T0) {
            Ok(Plan::Change { incident, entries, .. }) => {
                prop_assert!(from.can_move_to(to));
                prop_assert_eq!(incident.status, to);
                prop_assert_eq!(entries.len(), 1);
            }
            Err(IncidentError::InvalidTransition { allowed, .. }) => {
                prop_assert!(!from.can_move_to(to));
                prop_assert_eq!(allowed, from.allowed().to_vec());
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

#[test]
fn resolving_needs_resolution_notes() {
    let current = incident_at(Status::Investigating, T0);
    let request = UpdateIncident { status: Some(Status::Resolved), ..UpdateIncident::default() };
    assert!(matches!(apply_update(&current, "k", &request, T0), Err(IncidentError::Invalid { field: "resolution_notes", .. })));
}

#[test]
fn an_acknowledge_walks_a_fresh_incident_through_open() {
    let current = incident_at(Status::Triggered, T0);
    let alert = Alert {
        dedup_key: "db-pool".into(),
        action: AlertAction::Acknowledge,
        summary: None,
        description: None,
        severity: None,
        source: None,
        ci_ids: vec![],
    };
    let plan = alert_plan(std::slice::from_ref(&current), &alert, current.org_id, "k", T0, DEFAULT_REOPEN_WINDOW);
    let Plan::Change { incident, entries, .. } = plan else { panic!("expected a change") };
    assert_eq!(incident.status, Status::Acknowledged);
    let walked: Vec<_> = entries.iter().map(|e| (e.from, e.to, e.sequence)).collect();
    assert_eq!(walked, vec![(Some(Status::Triggered), Some(Status::Open), 2), (Some(Status::Open), Some(Status::Acknowledged), 3)]);
    let resolve = Alert { action: AlertAction::Resolve, ..alert.clone() };
    let plan = alert_plan(&[], &resolve, current.org_id, "k", T0, DEFAULT_REOPEN_WINDOW);
    assert!(matches!(plan, Plan::Nothing { outcome: Outcome::Dropped, .. }));
}
