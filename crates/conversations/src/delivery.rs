//! Delivery states of an outbound message and how provider statuses move them.
//!
//! Statuses arrive out of order and more than once, so the rules form a *join semilattice*:
//! applying an event is a merge that is commutative, associative and idempotent. That is what
//! makes every permutation of a message's events give the same record, a duplicate change
//! nothing, and the state never move backwards.
//!
//! The order of states is `queued < sending < sent < delivered < read < failed`:
//! - forward only: an event of a lower rank than the current state changes nothing (a late
//!   `delivered` after `read` is ignored);
//! - `read` implies `delivered` (and both imply `sent`): their timestamps are filled in from
//!   the read (or delivered) event when no earlier one is known;
//! - `failed` is terminal and wins: once a `failed` is seen, in any order, the message is
//!   `failed`. A `read` after `failed` does not resurrect it.
//!   A `failed` that arrives *after* `delivered`/`read` is **not** ignored: ignoring it would make
//!   the outcome depend on arrival order (`[failed, read]` vs `[read, failed]`), which the
//!   permutation rule forbids. The anomaly stays visible instead: the record keeps
//!   `delivered_at`/`read_at` beside `failed_at`.
//! - every timestamp slot keeps the *earliest* time reported for it, whatever the arrival
//!   order; the error kept is the one of the earliest `failed` event (ties: an event with an
//!   error beats one without, then the smaller error).

use crate::model::{wire_enum, MessageError};
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

wire_enum!(
    /// Where an outbound message stands: `queued → sending → sent → delivered → read`, or
    /// `failed`. `sending` means a worker holds the outbox row (including between retries).
    DeliveryState {
        Queued = "queued",
        Sending = "sending",
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        Failed = "failed",
    }
);

impl DeliveryState {
    /// The position in `queued < sending < sent < delivered < read < failed`.
    pub const fn rank(self) -> u8 {
        match self {
            DeliveryState::Queued => 0,
            DeliveryState::Sending => 1,
            DeliveryState::Sent => 2,
            DeliveryState::Delivered => 3,
            DeliveryState::Read => 4,
            DeliveryState::Failed => 5,
        }
    }

    /// The state after `event`: the higher-ranked of the two. Forward only, duplicates are
    /// no-ops, `failed` is terminal.
    #[must_use]
    pub const fn advance(self, event: DeliveryState) -> DeliveryState {
        if event.rank() > self.rank() {
            event
        } else {
            self
        }
    }

    /// Whether nothing can change this state any more.
    pub const fn is_terminal(self) -> bool {
        matches!(self, DeliveryState::Failed)
    }
}

/// One status report about a message: a provider receipt (`sent`, `delivered`, `read`,
/// `failed` with its error) or a worker's own step (`sending`, `sent` on acceptance, `failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub state: DeliveryState,
    /// The event's own time (the provider's `timestamp`), not its arrival.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Only meaningful for `failed`.
    pub error: Option<MessageError>,
}

impl StatusEvent {
    /// An event without error.
    pub fn new(state: DeliveryState, at: OffsetDateTime) -> Self {
        Self { state, at, error: None }
    }

    /// A `failed` event with its error.
    pub fn failed(at: OffsetDateTime, error: MessageError) -> Self {
        Self { state: DeliveryState::Failed, at, error: Some(error) }
    }
}

/// An outbound message's delivery state with a timestamp per state and the failure's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub state: DeliveryState,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub read_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failed_at: Option<OffsetDateTime>,
    pub error: Option<MessageError>,
}

impl Default for DeliveryRecord {
    fn default() -> Self {
        Self::queued()
    }
}

fn earliest(slot: Option<OffsetDateTime>, at: OffsetDateTime) -> Option<OffsetDateTime> {
    Some(slot.map_or(at, |s| s.min(at)))
}

impl DeliveryRecord {
    /// A message just queued.
    pub const fn queued() -> Self {
        Self { state: DeliveryState::Queued, sent_at: None, delivered_at: None, read_at: None, failed_at: None, error: None }
    }

    /// Merges one event (see the module's rules). Returns whether the record changed.
    pub fn apply(&mut self, event: &StatusEvent) -> bool {
        let before = self.clone();
        self.state = self.state.advance(event.state);
        let at = event.at;
        match event.state {
            DeliveryState::Queued | DeliveryState::Sending => {}
            DeliveryState::Sent => {
                self.sent_at = earliest(self.sent_at, at);
            }
            DeliveryState::Delivered => {
                self.sent_at = earliest(self.sent_at, at);
                self.delivered_at = earliest(self.delivered_at, at);
            }
            DeliveryState::Read => {
                self.sent_at = earliest(self.sent_at, at);
                self.delivered_at = earliest(self.delivered_at, at);
                self.read_at = earliest(self.read_at, at);
            }
            DeliveryState::Failed => {
                // The earliest failed event wins, its error with it; on a tie, one that carries an
                // error beats one that does not, then the smaller error.
                let key = |at: OffsetDateTime, error: &Option<MessageError>| (at, error.is_none(), error.clone());
                let replace = match self.failed_at {
                    None => true,
                    Some(current) => key(at, &event.error) < key(current, &self.error),
                };
                if replace {
                    self.failed_at = Some(at);
                    self.error = event.error.clone();
                }
            }
        }
        *self != before
    }

    /// The record after `event`.
    #[must_use]
    pub fn applied(mut self, event: &StatusEvent) -> Self {
        self.apply(event);
        self
    }

    /// The record after every event, in the given (any) order.
    #[must_use]
    pub fn applied_all<'a>(mut self, events: impl IntoIterator<Item = &'a StatusEvent>) -> Self {
        for event in events {
            self.apply(event);
        }
        self
    }

    /// The latest time the record knows of (the agent API's `updated_at`); `None` while only
    /// queued or sending.
    pub fn updated_at(&self) -> Option<OffsetDateTime> {
        [self.sent_at, self.delivered_at, self.read_at, self.failed_at].into_iter().flatten().max()
    }
}

impl fmt::Display for DeliveryRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-04-07 00:00 UTC);

    fn at(secs: i64) -> OffsetDateTime {
        T0 + Duration::seconds(secs)
    }

    fn ev(state: DeliveryState, secs: i64) -> StatusEvent {
        StatusEvent::new(state, at(secs))
    }

    fn e131047() -> MessageError {
        MessageError::new("131047", "Re-engagement message")
    }

    #[test]
    fn the_happy_path_walks_queued_sending_sent_delivered_read() {
        let record = DeliveryRecord::queued().applied_all(&[
            ev(DeliveryState::Sending, 0),
            ev(DeliveryState::Sent, 1),
            ev(DeliveryState::Delivered, 2),
            ev(DeliveryState::Read, 3),
        ]);
        assert_eq!(record.state, DeliveryState::Read);
        assert_eq!((record.sent_at, record.delivered_at, record.read_at), (Some(at(1)), Some(at(2)), Some(at(3))));
        assert_eq!(record.updated_at(), Some(at(3)));
    }

    #[test]
    fn a_late_delivered_after_read_changes_nothing() {
        let mut record = DeliveryRecord::queued().applied_all(&[ev(DeliveryState::Sent, 1), ev(DeliveryState::Read, 3)]);
        let before = record.clone();
        // Its timestamp is later than the one read implied, so even the slot keeps the earlier.
        assert!(!record.apply(&ev(DeliveryState::Delivered, 4)));
        assert_eq!(record, before);
    }

    #[test]
    fn a_late_delivered_with_an_earlier_timestamp_only_corrects_delivered_at() {
        let record = DeliveryRecord::queued().applied_all(&[ev(DeliveryState::Read, 3), ev(DeliveryState::Delivered, 2)]);
        assert_eq!(record.state, DeliveryState::Read);
        assert_eq!(record.delivered_at, Some(at(2)));
    }

    #[test]
    fn read_without_delivered_implies_delivered() {
        let record = DeliveryRecord::queued().applied(&ev(DeliveryState::Read, 5));
        assert_eq!(record.state, DeliveryState::Read);
        assert_eq!(record.delivered_at, Some(at(5)));
        assert_eq!(record.sent_at, Some(at(5)));
    }

    #[test]
    fn a_duplicate_changes_nothing() {
        let mut record = DeliveryRecord::queued().applied(&ev(DeliveryState::Delivered, 2));
        assert!(!record.apply(&ev(DeliveryState::Delivered, 2)));
    }

    #[test]
    fn failed_after_sent_fails_the_message_with_the_provider_code() {
        let record = DeliveryRecord::queued().applied_all(&[ev(DeliveryState::Sent, 1), StatusEvent::failed(at(2), e131047())]);
        assert_eq!(record.state, DeliveryState::Failed);
        assert_eq!(record.failed_at, Some(at(2)));
        assert_eq!(record.error, Some(e131047()));
        assert_eq!(record.sent_at, Some(at(1)));
    }

    #[test]
    fn a_read_after_failed_does_not_resurrect_the_message_but_its_time_is_kept() {
        let record = DeliveryRecord::queued().applied_all(&[StatusEvent::failed(at(2), e131047()), ev(DeliveryState::Read, 3)]);
        assert_eq!(record.state, DeliveryState::Failed);
        assert!(DeliveryState::Failed.is_terminal());
        assert_eq!(record.read_at, Some(at(3)));
        assert_eq!(record.error, Some(e131047()));
    }

    #[test]
    fn a_failed_after_read_still_fails_the_message_so_that_order_never_matters() {
        let a = DeliveryRecord::queued().applied_all(&[ev(DeliveryState::Read, 3), StatusEvent::failed(at(4), e131047())]);
        let b = DeliveryRecord::queued().applied_all(&[StatusEvent::failed(at(4), e131047()), ev(DeliveryState::Read, 3)]);
        assert_eq!(a, b);
        assert_eq!(a.state, DeliveryState::Failed);
    }

    #[test]
    fn the_earliest_failure_names_the_error() {
        let first = MessageError::new("131026", "undeliverable");
        let record =
            DeliveryRecord::queued().applied_all(&[StatusEvent::failed(at(9), e131047()), StatusEvent::failed(at(5), first.clone())]);
        assert_eq!((record.failed_at, record.error), (Some(at(5)), Some(first)));
    }

    #[test]
    fn wire_names_are_the_seed_status_names() {
        assert_eq!(DeliveryState::parse("read"), Some(DeliveryState::Read));
        assert_eq!(serde_json::to_string(&DeliveryState::Queued).unwrap(), "\"queued\"");
        assert_eq!(DeliveryState::parse("READ"), None);
    }

    fn any_state() -> impl Strategy<Value = DeliveryState> {
        proptest::sample::select(DeliveryState::ALL.to_vec())
    }

    fn any_event() -> impl Strategy<Value = StatusEvent> {
        (any_state(), 0i64..100, proptest::option::of(0u8..3)).prop_map(|(state, secs, err)| StatusEvent {
            state,
            at: at(secs),
            error: if state == DeliveryState::Failed {
                err.map(|n| MessageError::new(format!("13104{n}"), "provider error"))
            } else {
                None
            },
        })
    }

    fn events_and_permutation() -> impl Strategy<Value = (Vec<StatusEvent>, Vec<StatusEvent>)> {
        proptest::collection::vec(any_event(), 0..12).prop_flat_map(|events| (Just(events.clone()), Just(events).prop_shuffle()))
    }

    proptest! {
        /// Any permutation of a message's status events yields the same final state and the
        /// same timestamps (and error).
        #[test]
        fn any_permutation_gives_the_same_record((events, shuffled) in events_and_permutation()) {
            let a = DeliveryRecord::queued().applied_all(&events);
            let b = DeliveryRecord::queued().applied_all(&shuffled);
            prop_assert_eq!(a, b);
        }

        /// The state never moves backwards: after each event its rank is at least the rank
        /// before, and no timestamp once set is ever cleared.
        #[test]
        fn the_state_never_moves_backwards(events in proptest::collection::vec(any_event(), 0..16)) {
            let mut record = DeliveryRecord::queued();
            for event in &events {
                let before = record.clone();
                record.apply(event);
                prop_assert!(record.state.rank() >= before.state.rank());
                prop_assert!(before.sent_at.is_none() || record.sent_at.is_some());
                prop_assert!(before.delivered_at.is_none() || record.delivered_at.is_some());
                prop_assert!(before.read_at.is_none() || record.read_at.is_some());
                prop_assert!(before.failed_at.is_none() || record.failed_at.is_some());
            }
        }

        /// Applying an event twice equals applying it once, from any starting record.
        #[test]
        fn applying_twice_equals_applying_once(history in proptest::collection::vec(any_event(), 0..8), event in any_event()) {
            let start = DeliveryRecord::queued().applied_all(&history);
            let once = start.clone().applied(&event);
            let twice = once.clone().applied(&event);
            prop_assert_eq!(once, twice);
        }

        /// Once failed, always failed.
        #[test]
        fn failed_is_terminal(events in proptest::collection::vec(any_event(), 0..12), at_secs in 0i64..100) {
            let mut record = DeliveryRecord::queued().applied(&StatusEvent::new(DeliveryState::Failed, at(at_secs)));
            for event in &events {
                record.apply(event);
                prop_assert_eq!(record.state, DeliveryState::Failed);
            }
        }

        /// `advance` is the maximum by rank: commutative, associative, idempotent.
        #[test]
        fn advance_is_a_join(a in any_state(), b in any_state(), c in any_state()) {
            prop_assert_eq!(a.advance(b), b.advance(a));
            prop_assert_eq!(a.advance(b).advance(c), a.advance(b.advance(c)));
            prop_assert_eq!(a.advance(a), a);
        }
    }
}
