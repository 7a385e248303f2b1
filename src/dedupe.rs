//! The de-duplication and order decision (docs/dedup.md), as a pure function over what is known
//! of one conversion.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Status;

/// How many accepted (status, order key) pairs are kept per conversion. Real conversions
/// change status a handful of times; past this the oldest pairs are dropped, and a replay of
/// one of those is still refused as stale (it is older than the newest).
const HISTORY_LIMIT: usize = 64;

/// One accepted event's status and order key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "s")]
    pub status: Status,
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    #[serde(rename = "t")]
    pub updated_at: DateTime<Utc>,
}

impl Entry {
    /// The order of two events: by `sequence` when both carry one, else by `updated_at`.
    pub fn order(&self, other: &Entry) -> Ordering {
        match (self.sequence, other.sequence) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.updated_at.cmp(&other.updated_at),
        }
    }
}

/// What is known of one conversion: the accepted pairs in the order they were accepted, and
/// the last announced status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub accepted: Vec<Entry>,
    pub last_announced: Option<Status>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Same status and order key as an accepted event, or the status already announced.
    Duplicate,
    /// Older than the newest accepted event.
    Stale,
    /// Advances the order, fires nothing (`hold`, `not_found`).
    Accepted,
    /// Accepted and announced: fires to every matching URL.
    Announced,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Duplicate => "duplicate",
            Decision::Stale => "stale",
            Decision::Accepted => "accepted",
            Decision::Announced => "announced",
        }
    }
}

impl History {
    /// The decision table, top down; the first row that matches decides.
    pub fn decide(&self, event: &Entry) -> Decision {
        let same = |a: &Entry| a.status == event.status && a.order(event) == Ordering::Equal;
        if self.accepted.iter().any(same) {
            return Decision::Duplicate;
        }
        if let Some(newest) = self.accepted.last()
            && event.order(newest) == Ordering::Less
        {
            return Decision::Stale;
        }
        if !event.status.is_announced() {
            return Decision::Accepted;
        }
        if self.last_announced == Some(event.status) {
            return Decision::Duplicate;
        }
        Decision::Announced
    }

    /// Decides, and records the event when it is accepted.
    pub fn apply(&mut self, event: Entry) -> Decision {
        let decision = self.decide(&event);
        match decision {
            Decision::Duplicate | Decision::Stale => {}
            Decision::Accepted | Decision::Announced => {
                if decision == Decision::Announced {
                    self.last_announced = Some(event.status);
                }
                self.accepted.push(event);
                if self.accepted.len() > HISTORY_LIMIT {
                    let excess = self.accepted.len() - HISTORY_LIMIT;
                    self.accepted.drain(..excess);
                }
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use Status::*;

    fn at(status: Status, secs: i64, sequence: Option<i64>) -> Entry {
        Entry {
            status,
            sequence,
            updated_at: DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid time"),
        }
    }

    /// Runs a story of events through one history and returns the decisions.
    fn story(events: &[Entry]) -> Vec<Decision> {
        let mut h = History::default();
        events.iter().map(|e| h.apply(*e)).collect()
    }

    #[test]
    fn table_of_cases() {
        let cases: Vec<(&str, Vec<Entry>, Vec<Decision>)> = vec![
            (
                "first event announces",
                vec![at(Pending, 0, None)],
                vec![Announced],
            ),
            (
                "pending then approved",
                vec![at(Pending, 0, None), at(Approved, 1, None)],
                vec![Announced, Announced],
            ),
            (
                "redelivery is a duplicate",
                vec![at(Approved, 0, None), at(Approved, 0, None)],
                vec![Announced, Duplicate],
            ),
            (
                "old redelivery after a change is a duplicate, not stale",
                vec![at(Pending, 0, None), at(Approved, 5, None), at(Pending, 0, None)],
                vec![Announced, Announced, Duplicate],
            ),
            (
                "stale replay",
                vec![at(Approved, 5, None), at(Pending, 1, None)],
                vec![Announced, Stale],
            ),
            (
                "re-approval after decline",
                vec![
                    at(Approved, 0, None),
                    at(Declined, 1, None),
                    at(Approved, 2, None),
                ],
                vec![Announced, Announced, Announced],
            ),
            (
                "same status later is announced once",
                vec![at(Approved, 0, None), at(Approved, 3, None)],
                vec![Announced, Duplicate],
            ),
            (
                "hold advances order, fires nothing",
                vec![at(Pending, 0, None), at(Hold, 1, None), at(Approved, 2, None)],
                vec![Announced, Accepted, Announced],
            ),
            (
                "hold does not reset the announced status",
                vec![at(Pending, 0, None), at(Hold, 1, None), at(Pending, 2, None)],
                vec![Announced, Accepted, Duplicate],
            ),
            (
                "not_found is accepted",
                vec![at(NotFound, 0, None)],
                vec![Accepted],
            ),
            (
                "hold before anything stale afterwards",
                vec![at(Hold, 5, None), at(Pending, 1, None)],
                vec![Accepted, Stale],
            ),
            (
                "equal key, other status, in arrival order",
                vec![at(Pending, 0, None), at(Approved, 0, None)],
                vec![Announced, Announced],
            ),
            (
                "sequence wins over updated_at",
                vec![at(Pending, 10, Some(1)), at(Approved, 5, Some(2))],
                vec![Announced, Announced],
            ),
            (
                "older sequence is stale",
                vec![at(Approved, 0, Some(2)), at(Pending, 10, Some(1))],
                vec![Announced, Stale],
            ),
            (
                "equal sequence is the same",
                vec![at(Approved, 0, Some(3)), at(Approved, 9, Some(3))],
                vec![Announced, Duplicate],
            ),
            (
                "mixed: falls back to updated_at",
                vec![at(Approved, 5, Some(3)), at(Pending, 1, None)],
                vec![Announced, Stale],
            ),
        ];
        for (name, events, want) in cases {
            assert_eq!(story(&events), want, "{name}");
        }
    }

    #[test]
    fn history_is_bounded_and_keeps_the_newest() {
        let mut h = History::default();
        for i in 0..200 {
            let status = if i % 2 == 0 { Approved } else { Declined };
            assert_eq!(h.apply(at(status, i, None)), Announced);
        }
        assert_eq!(h.accepted.len(), HISTORY_LIMIT);
        assert_eq!(
            h.accepted.last().map(|a| a.updated_at),
            Some(at(Approved, 199, None).updated_at)
        );
        assert_eq!(h.decide(&at(Approved, 0, None)), Stale);
    }

    #[test]
    fn stored_form_round_trips() {
        let mut h = History::default();
        h.apply(at(Pending, 0, Some(1)));
        h.apply(at(Hold, 1, None));
        let json = serde_json::to_string(&h).expect("serialises");
        assert_eq!(serde_json::from_str::<History>(&json).expect("deserialises"), h);
    }
}
