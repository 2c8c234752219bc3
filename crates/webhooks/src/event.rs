//! What subscribers hear about: event types ([`EventType`]), the filters a subscription lists
//! ([`EventFilter`], [`EventFilters`]), an event ([`Event`]) and the exact payload bytes every
//! delivery of it carries, and [`PendingEvent`], the outbox row a use case commits in the same
//! transaction as the change that caused it (carried in its journal entry's `events`, as an
//! `atlas_runs::OutboxEvent`).
//!
//! Event types are lower-case segments joined by dots (`[a-z][a-z0-9_]*`, at least two
//! segments, at most 128 characters). The first segment is the *family*:
//! - `atlas` and `agent` are **closed**: only the types Atlas defines exist
//!   (`atlas.event.received`, `atlas.action.executed`, `atlas.run.updated`,
//!   `atlas.webhook.test`, `agent.message_delivery`, `agent.message_received`);
//! - `incident`, `change`, `task`, `project`, `runbook` and `request` are **open**: reserved for the other product
//!   areas, any well-formed name in them is accepted (`incident.created`,
//!   `task.dependency.added`), so those areas can add types without touching this crate;
//! - any other family is refused.

use crate::endpoint::EndpointId;
use atlas_kernel::{typed_id, OrgId};
use atlas_runs::OutboxEvent;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

typed_id!(
    /// One event: something that happened to a resource, fanned out to every matching endpoint.
    EventId,
    "evt"
);

/// The longest event type (or filter) accepted, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 128;
/// The longest segment of an event type, in bytes.
pub const MAX_SEGMENT_LEN: usize = 64;
/// The most filters one subscription may list.
pub const MAX_FILTERS: usize = 32;

/// The first segment of an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `atlas.*`: the cross-cutting platform events (closed).
    Atlas,
    /// `agent.*`: agent-facing events (closed).
    Agent,
    /// `incident.*` (open, reserved for Operations).
    Incident,
    /// `change.*` (open, reserved for Operations).
    Change,
    /// `task.*` (open, reserved for Work).
    Task,
    /// `project.*` (open, reserved for Work).
    Project,
    /// `runbook.*` (open, reserved for Operations' runbooks).
    Runbook,
    /// `request.*` (open, Operations: service requests).
    Request,
}

impl Family {
    /// Every family, in the order error messages list them.
    pub const ALL: [Family; 8] =
        [Family::Atlas, Family::Agent, Family::Incident, Family::Change, Family::Task, Family::Project, Family::Runbook, Family::Request];

    /// The family's segment.
    pub const fn as_str(self) -> &'static str {
        match self {
            Family::Atlas => "atlas",
            Family::Agent => "agent",
            Family::Incident => "incident",
            Family::Change => "change",
            Family::Task => "task",
            Family::Project => "project",
            Family::Runbook => "runbook",
            Family::Request => "request",
        }
    }

    /// The family named `segment`, if Atlas has one.
    pub fn parse(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == segment)
    }

    /// Whether any well-formed name in this family is an event type (the reserved families of
    /// the other product areas), rather than only the types Atlas defines.
    pub const fn is_open(self) -> bool {
        matches!(self, Family::Incident | Family::Change | Family::Task | Family::Project | Family::Runbook | Family::Request)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not an event type, a filter, or a list of filters. Every message names the
/// offending value and says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventTypeError {
    #[error(
        "`{value}` is not an event type: lower-case segments ([a-z][a-z0-9_]*, at most {MAX_SEGMENT_LEN} characters) joined by dots, \
         at most {MAX_EVENT_TYPE_LEN} characters in all, such as `incident.created`"
    )]
    Malformed { value: String },
    #[error("`{value}`: unknown event family `{family}`; the families are atlas, agent, incident, change, task, project and runbook")]
    UnknownFamily { value: String, family: String },
    #[error(
        "`{value}` is not an Atlas event; the {family} family holds only {known}",
        known = known_types(*.family)
    )]
    UnknownEvent { value: String, family: Family },
    #[error("`{value}`: a wildcard must be the whole last segment after a family, as in `incident.*` or `atlas.*`")]
    BadWildcard { value: String },
    #[error("`{value}` matches no Atlas event; the {family} family holds only {known}", known = known_types(*.family))]
    MatchesNothing { value: String, family: Family },
    #[error("a subscription lists at least one event type or filter")]
    NoFilters,
    #[error("a subscription lists at most {MAX_FILTERS} event types or filters")]
    TooManyFilters,
}

fn known_types(family: Family) -> String {
    let names: Vec<&str> = EventType::FIXED.iter().filter(|t| t.family() == family).map(EventType::as_str).collect();
    names.join(", ")
}

fn well_formed_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_SEGMENT_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// The family of a dotted name whose segments are already checked, or why it has none.
fn family_of(value: &str) -> Result<Family, EventTypeError> {
    let first = value.split('.').next().unwrap_or_default();
    Family::parse(first).ok_or_else(|| EventTypeError::UnknownFamily { value: value.to_owned(), family: first.to_owned() })
}

/// An event type, such as `atlas.event.received` or `incident.created`: always well formed and
/// of a known family (see the module documentation). Serializes as its name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(Cow<'static, str>);

impl EventType {
    /// An external event was fed in (`POST /v1/atlas/events`, an inbound message).
    pub const EVENT_RECEIVED: EventType = EventType(Cow::Borrowed("atlas.event.received"));
    /// An action (`reply`, `draft`, `handoff`) was executed.
    pub const ACTION_EXECUTED: EventType = EventType(Cow::Borrowed("atlas.action.executed"));
    /// A run changed status.
    pub const RUN_UPDATED: EventType = EventType(Cow::Borrowed("atlas.run.updated"));
    /// A test delivery (`POST /v1/atlas/webhooks/:id/test`): sent to one endpoint, whatever its
    /// filters, and never fanned out.
    pub const WEBHOOK_TEST: EventType = EventType(Cow::Borrowed("atlas.webhook.test"));
    /// An outbound message's delivery state changed (seed 000's agent callback).
    pub const AGENT_MESSAGE_DELIVERY: EventType = EventType(Cow::Borrowed("agent.message_delivery"));
    /// A customer wrote in a conversation an external agent serves (its `data.agent_id` names
    /// the agent; the agent answers through the tool API).
    pub const AGENT_MESSAGE_RECEIVED: EventType = EventType(Cow::Borrowed("agent.message_received"));

    /// Every type of the closed families (`atlas`, `agent`).
    pub const FIXED: [EventType; 6] = [
        Self::EVENT_RECEIVED,
        Self::ACTION_EXECUTED,
        Self::RUN_UPDATED,
        Self::WEBHOOK_TEST,
        Self::AGENT_MESSAGE_DELIVERY,
        Self::AGENT_MESSAGE_RECEIVED,
    ];

    /// Parses an event type.
    ///
    /// # Errors
    /// `Malformed` for a badly spelled name (a `*` included: that is a filter),
    /// `UnknownFamily` for a family Atlas does not have, `UnknownEvent` for a name in a closed
    /// family that Atlas does not define.
    pub fn parse(value: &str) -> Result<Self, EventTypeError> {
        let malformed = || EventTypeError::Malformed { value: value.to_owned() };
        if value.len() > MAX_EVENT_TYPE_LEN || !value.contains('.') || !value.split('.').all(well_formed_segment) {
            return Err(malformed());
        }
        let family = family_of(value)?;
        if family.is_open() {
            return Ok(Self(Cow::Owned(value.to_owned())));
        }
        Self::FIXED.into_iter().find(|t| t.as_str() == value).ok_or(EventTypeError::UnknownEvent { value: value.to_owned(), family })
    }

    /// The type `<family>.<name>` of an open family, such as `EventType::open(Family::Incident,
    /// "created")` for `incident.created`.
    ///
    /// # Errors
    /// `UnknownEvent` when `family` is closed; `Malformed` when `name` is not well formed.
    pub fn open(family: Family, name: &str) -> Result<Self, EventTypeError> {
        let value = format!("{family}.{name}");
        if !family.is_open() {
            return Err(EventTypeError::UnknownEvent { value, family });
        }
        Self::parse(&value)
    }

    /// The name, as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The family (the first segment).
    pub fn family(&self) -> Family {
        family_of(&self.0).unwrap_or(Family::Atlas)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventType({})", self.0)
    }
}

impl std::str::FromStr for EventType {
    type Err = EventTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One entry of a subscription's list: an exact event type, or a prefix wildcard whose `*` is
/// the whole last segment (`incident.*`, `atlas.*`, `task.dependency.*`). Serializes as written.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum EventFilter {
    /// Matches this type only.
    Exact(EventType),
    /// Matches every type starting with `prefix`, which ends with a dot (`incident.`).
    Prefix { family: Family, prefix: String },
}

impl EventFilter {
    /// Parses a filter.
    ///
    /// # Errors
    /// `BadWildcard` for a `*` anywhere but as the whole last segment after a family (so a bare
    /// `*` is refused: name the families you want); `MatchesNothing` for a wildcard in a closed
    /// family that no Atlas type starts with (`atlas.foo.*`); otherwise the errors of
    /// [`EventType::parse`].
    pub fn parse(value: &str) -> Result<Self, EventTypeError> {
        if !value.contains('*') {
            return EventType::parse(value).map(EventFilter::Exact);
        }
        let bad = || EventTypeError::BadWildcard { value: value.to_owned() };
        let Some(head) = value.strip_suffix(".*") else {
            return Err(bad());
        };
        if head.contains('*') {
            return Err(bad());
        }
        if value.len() > MAX_EVENT_TYPE_LEN || !head.split('.').all(well_formed_segment) {
            return Err(EventTypeError::Malformed { value: value.to_owned() });
        }
        let family = family_of(head)?;
        let prefix = format!("{head}.");
        if !family.is_open() && !EventType::FIXED.iter().any(|t| t.as_str().starts_with(&prefix)) {
            return Err(EventTypeError::MatchesNothing { value: value.to_owned(), family });
        }
        Ok(EventFilter::Prefix { family, prefix })
    }

    /// Whether `event_type` is one this filter selects.
    pub fn matches(&self, event_type: &EventType) -> bool {
        match self {
            EventFilter::Exact(t) => t == event_type,
            EventFilter::Prefix { prefix, .. } => event_type.as_str().starts_with(prefix.as_str()),
        }
    }

    /// For a wildcard, the prefix (ending with a dot) every matching type starts with. A SQL
    /// adapter matching in the database must compare with `substr`/`starts_with`, not `LIKE`:
    /// `_` is a `LIKE` wildcard and may appear in names.
    pub fn prefix(&self) -> Option<&str> {
        match self {
            EventFilter::Exact(_) => None,
            EventFilter::Prefix { prefix, .. } => Some(prefix),
        }
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventFilter::Exact(t) => f.write_str(t.as_str()),
            EventFilter::Prefix { prefix, .. } => write!(f, "{prefix}*"),
        }
    }
}

impl fmt::Debug for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventFilter({self})")
    }
}

impl Serialize for EventFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A subscription's filters (the API's `events`): 1 to [`MAX_FILTERS`] entries, duplicates
/// removed, in the order given. Serializes as a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilters(Vec<EventFilter>);

impl EventFilters {
    /// Parses a subscription's list.
    ///
    /// # Errors
    /// `NoFilters` for an empty list, `TooManyFilters` for more than [`MAX_FILTERS`] distinct
    /// entries, or the first entry's [`EventFilter::parse`] error.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, EventTypeError> {
        let filters = values.iter().map(|v| EventFilter::parse(v.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Self::new(filters)
    }

    /// Wraps already parsed filters (duplicates removed).
    ///
    /// # Errors
    /// `NoFilters` or `TooManyFilters`.
    pub fn new(filters: Vec<EventFilter>) -> Result<Self, EventTypeError> {
        let mut unique: Vec<EventFilter> = Vec::with_capacity(filters.len());
        for filter in filters {
            if !unique.contains(&filter) {
                unique.push(filter);
            }
        }
        match unique.len() {
            0 => Err(EventTypeError::NoFilters),
            n if n > MAX_FILTERS => Err(EventTypeError::TooManyFilters),
            _ => Ok(Self(unique)),
        }
    }

    /// Whether any filter selects `event_type`: the fan-out rule.
    pub fn matches_any(&self, event_type: &EventType) -> bool {
        self.0.iter().any(|f| f.matches(event_type))
    }

    /// The filters, in order.
    pub fn as_slice(&self) -> &[EventFilter] {
        &self.0
    }
}

impl Serialize for EventFilters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for EventFilters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let filters = Vec::<EventFilter>::deserialize(d)?;
        Self::new(filters).map_err(serde::de::Error::custom)
    }
}

/// Something that happened to a resource, as subscribers will hear of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub org_id: OrgId,
    pub event_type: EventType,
    /// When it happened (the payload's `timestamp`), not when it is delivered.
    pub timestamp: OffsetDateTime,
    /// The resource as the API returns it (or what the event says about it).
    pub data: serde_json::Value,
    /// The resource the event is about (`msg_…`, `run_…`, `INC-00000001`), for filtering lists.
    pub resource_id: Option<String>,
    /// The resource's version after the change: consumers keep the highest they have seen per
    /// resource and drop older events, since deliveries may arrive out of order.
    pub version: i64,
}

/// The payload as serialized: `type`, `timestamp`, `data`, in that order.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    data: serde_json::Value,
}

impl Event {
    /// A new event with a fresh id.
    pub fn new(
        org_id: OrgId,
        event_type: EventType,
        timestamp: OffsetDateTime,
        data: serde_json::Value,
        resource_id: Option<String>,
        version: i64,
    ) -> Self {
        Self { id: EventId::generate(), org_id, event_type, timestamp, data, resource_id, version }
    }

    /// The body every delivery of this event carries, and signs:
    /// `{"type": "<event type>", "timestamp": "<RFC 3339>", "data": {…, "version": <version>}}`
    /// (the Standard Webhooks payload shape). The resource version rides **inside `data`**:
    /// when `data` is an object, its `version` member is set to [`Event::version`] (replacing
    /// one already there, so the two can never disagree); any other `data` (an array, a
    /// scalar, null) is wrapped as `{"value": <data>, "version": <version>}`.
    pub fn payload(&self) -> Vec<u8> {
        let data = match &self.data {
            serde_json::Value::Object(map) => {
                let mut map = map.clone();
                map.insert("version".to_owned(), self.version.into());
                serde_json::Value::Object(map)
            }
            other => serde_json::json!({ "value": other, "version": self.version }),
        };
        // RFC 3339 covers years 0 to 9999; a clock outside that range is not one Atlas runs on,
        // and Unix seconds are still an unambiguous timestamp.
        let timestamp = self.timestamp.format(&Rfc3339).unwrap_or_else(|_| self.timestamp.unix_timestamp().to_string());
        let payload = Payload { event_type: self.event_type.as_str(), timestamp, data };
        serde_json::to_vec(&payload).unwrap_or_default()
    }

    /// The outbox row for this event, payload serialized once, so every delivery, retry and
    /// replay sends (and signs) the very same bytes.
    pub fn pending(&self) -> PendingEvent {
        PendingEvent {
            id: self.id,
            org_id: self.org_id,
            event_type: self.event_type.clone(),
            occurred_at: self.timestamp,
            resource_id: self.resource_id.clone(),
            version: self.version,
            payload: self.payload(),
            to: None,
        }
    }
}

/// An event as the outbox stores it: one row in the events table, written **in the same
/// transaction as the change that caused it** and expanded into deliveries later by
/// `DeliveryQueue::fan_out`. Carried to the SQL adapter in the journal entry's `events` (see
/// [`PendingEvent::outbox`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub id: EventId,
    pub org_id: OrgId,
    pub event_type: EventType,
    pub occurred_at: OffsetDateTime,
    pub resource_id: Option<String>,
    pub version: i64,
    /// The exact body of every delivery ([`Event::payload`]).
    pub payload: Vec<u8>,
    /// The one endpoint it is addressed to (`None`: every endpoint whose filters match).
    pub to: Option<EndpointId>,
}

impl PendingEvent {
    /// The outbox row as a journal entry carries it (its organization is the run's).
    pub fn outbox(&self) -> OutboxEvent {
        OutboxEvent {
            id: self.id.as_uuid(),
            event_type: self.event_type.as_str().to_owned(),
            occurred_at: self.occurred_at,
            resource_id: self.resource_id.clone(),
            version: self.version,
            payload: self.payload.clone(),
            to: self.to.map(|e| e.as_uuid()),
        }
    }
}

impl Event {
    /// This event as an outbox row for a journal entry: `entry.events.push(event.outbox())`
    /// commits it in the same transaction as the change that caused it.
    pub fn outbox(&self) -> OutboxEvent {
        self.pending().outbox()
    }

    /// [`outbox`](Self::outbox), addressed to `endpoint` alone: fan-out delivers it there (when
    /// the endpoint is enabled and subscribes to its type) and nowhere else.
    pub fn outbox_to(&self, endpoint: EndpointId) -> OutboxEvent {
        OutboxEvent { to: Some(endpoint.as_uuid()), ..self.outbox() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn the_atlas_and_agent_types_parse_to_their_constants() {
        for t in EventType::FIXED {
            assert_eq!(EventType::parse(t.as_str()).unwrap(), t);
        }
        assert_eq!(EventType::parse("agent.message_delivery").unwrap().family(), Family::Agent);
    }

    #[test]
    fn any_well_formed_name_in_a_reserved_family_is_a_type() {
        for name in ["incident.created", "change.approved", "task.dependency.added", "project.archived", "incident.sev_2"] {
            let t = EventType::parse(name).unwrap();
            assert_eq!(t.as_str(), name);
            assert!(t.family().is_open());
        }
        assert_eq!(EventType::open(Family::Incident, "resolved").unwrap().as_str(), "incident.resolved");
        assert!(matches!(EventType::open(Family::Atlas, "anything"), Err(EventTypeError::UnknownEvent { .. })));
    }

    #[test]
    fn unknown_families_are_refused_with_the_list_of_families() {
        let err = EventType::parse("invoice.paid").unwrap_err();
        assert_eq!(err, EventTypeError::UnknownFamily { value: "invoice.paid".into(), family: "invoice".into() });
        assert!(err.to_string().contains("atlas, agent, incident, change, task, project and runbook"), "{err}");
    }

    #[test]
    fn names_atlas_does_not_define_in_a_closed_family_are_refused_listing_the_known_ones() {
        let err = EventType::parse("atlas.event.deleted").unwrap_err();
        assert!(matches!(err, EventTypeError::UnknownEvent { family: Family::Atlas, .. }));
        assert!(err.to_string().contains("atlas.event.received"), "{err}");
    }

    #[test]
    fn malformed_names_are_refused() {
        let long = format!("incident.{}", "a".repeat(130));
        for bad in [
            "",
            "incident",
            "incident.",
            ".created",
            "Incident.created",
            "incident..x",
            "incident.1st",
            "incident.cré",
            "incident.a-b",
            &long,
        ] {
            assert!(matches!(EventType::parse(bad), Err(EventTypeError::Malformed { .. })), "{bad:?}");
        }
        assert!(matches!(EventType::parse("incident.*"), Err(EventTypeError::Malformed { .. })));
    }

    #[test]
    fn an_exact_filter_matches_only_its_type() {
        let f = EventFilter::parse("atlas.event.received").unwrap();
        assert!(f.matches(&EventType::EVENT_RECEIVED));
        assert!(!f.matches(&EventType::ACTION_EXECUTED));
        assert_eq!(f.prefix(), None);
    }

    #[test]
    fn a_wildcard_matches_every_type_under_its_prefix_and_nothing_else() {
        let incidents = EventFilter::parse("incident.*").unwrap();
        assert!(incidents.matches(&EventType::parse("incident.created").unwrap()));
        assert!(incidents.matches(&EventType::parse("incident.status.changed").unwrap()));
        assert!(!incidents.matches(&EventType::parse("change.created").unwrap()));
        assert_eq!(incidents.prefix(), Some("incident."));

        let atlas = EventFilter::parse("atlas.*").unwrap();
        assert!(atlas.matches(&EventType::RUN_UPDATED));
        assert!(!atlas.matches(&EventType::AGENT_MESSAGE_DELIVERY));

        let deeper = EventFilter::parse("task.dependency.*").unwrap();
        assert!(deeper.matches(&EventType::parse("task.dependency.added").unwrap()));
        assert!(!deeper.matches(&EventType::parse("task.dependency_count").unwrap()));
        assert!(EventFilter::parse("atlas.event.*").unwrap().matches(&EventType::EVENT_RECEIVED));
    }

    #[test]
    fn a_wildcard_anywhere_but_the_whole_last_segment_is_refused() {
        for bad in ["*", "*.created", "incident*", "incident.cr*", "incident.*.created", "incident.**", "*.*"] {
            assert!(matches!(EventFilter::parse(bad), Err(EventTypeError::BadWildcard { .. })), "{bad}");
        }
        assert!(matches!(EventFilter::parse("invoice.*"), Err(EventTypeError::UnknownFamily { .. })));
        assert!(matches!(EventFilter::parse("atlas.foo.*"), Err(EventTypeError::MatchesNothing { family: Family::Atlas, .. })));
        assert!(matches!(EventFilter::parse("Incident.*"), Err(EventTypeError::Malformed { .. })));
    }

    #[test]
    fn filters_display_and_serialize_as_written() {
        let filters = EventFilters::parse(&["atlas.event.received", "incident.*"]).unwrap();
        let json = serde_json::to_string(&filters).unwrap();
        assert_eq!(json, r#"["atlas.event.received","incident.*"]"#);
        assert_eq!(serde_json::from_str::<EventFilters>(&json).unwrap(), filters);
        assert!(serde_json::from_str::<EventFilters>(r#"["nope.*"]"#).is_err());
    }

    #[test]
    fn a_subscription_matches_when_any_filter_does() {
        let filters = EventFilters::parse(&["atlas.event.received", "incident.*"]).unwrap();
        assert!(filters.matches_any(&EventType::EVENT_RECEIVED));
        assert!(filters.matches_any(&EventType::parse("incident.resolved").unwrap()));
        assert!(!filters.matches_any(&EventType::RUN_UPDATED));
    }

    #[test]
    fn a_subscription_lists_one_to_thirty_two_distinct_filters() {
        assert_eq!(EventFilters::parse::<&str>(&[]), Err(EventTypeError::NoFilters));
        let duplicates = EventFilters::parse(&["incident.*", "incident.*", "atlas.run.updated"]).unwrap();
        assert_eq!(duplicates.as_slice().len(), 2);
        let many: Vec<String> = (0..33).map(|i| format!("task.t{i}")).collect();
        assert_eq!(EventFilters::parse(&many), Err(EventTypeError::TooManyFilters));
        assert!(EventFilters::parse(&many[..32]).is_ok());
    }

    fn event(data: serde_json::Value) -> Event {
        Event::new(
            OrgId::generate(),
            EventType::parse("incident.updated").unwrap(),
            datetime!(2026-04-07 12:00:00.5 UTC),
            data,
            Some("INC-00000001".into()),
            7,
        )
    }

    #[test]
    fn the_payload_is_type_timestamp_and_data_carrying_the_resource_version() {
        let e = event(serde_json::json!({"id": "INC-00000001", "status": "resolved", "version": 3}));
        let body = String::from_utf8(e.payload()).unwrap();
        assert_eq!(
            body,
            r#"{"type":"incident.updated","timestamp":"2026-04-07T12:00:00.5Z","data":{"id":"INC-00000001","status":"resolved","version":7}}"#
        );
    }

    #[test]
    fn data_that_is_not_an_object_is_wrapped_beside_the_version() {
        let e = event(serde_json::json!([1, 2]));
        let body: serde_json::Value = serde_json::from_slice(&e.payload()).unwrap();
        assert_eq!(body["data"], serde_json::json!({"value": [1, 2], "version": 7}));
    }

    #[test]
    fn the_outbox_row_carries_the_payload_bytes_and_rides_beside_a_journal_entry() {
        let e = event(serde_json::json!({}));
        let pending = e.pending();
        assert_eq!(pending.payload, e.payload());
        assert_eq!((pending.id, pending.version, pending.occurred_at), (e.id, 7, e.timestamp));
    }

    proptest! {
        /// Parsing never panics, and whatever parses displays back to the same text.
        #[test]
        fn parsing_round_trips_and_never_panics(s in "[a-z*._]{0,40}") {
            if let Ok(t) = EventType::parse(&s) {
                prop_assert_eq!(t.as_str(), s.as_str());
            }
            if let Ok(f) = EventFilter::parse(&s) {
                prop_assert_eq!(f.to_string(), s.clone());
                prop_assert_eq!(EventFilter::parse(&f.to_string()).unwrap(), f);
            }
        }

        /// A wildcard `<family>.*` matches exactly the well-formed types of that family.
        #[test]
        fn a_family_wildcard_matches_exactly_its_family(family in 2usize..6, other in 2usize..6, name in "[a-z][a-z0-9_]{0,10}") {
            let filter = EventFilter::parse(&format!("{}.*", Family::ALL[family])).unwrap();
            let t = EventType::open(Family::ALL[other], &name).unwrap();
            prop_assert_eq!(filter.matches(&t), family == other);
        }
    }
}
