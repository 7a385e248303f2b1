//! The plan of one intake batch, as a pure function: what is known (the conversions'
//! histories, their open deliveries, the offers' URLs) and the batch's events in arrival
//! order in; the decisions, the conversions to write, the new deliveries (and when each may
//! start), and the older deliveries superseded, out. The store reads the one and writes the
//! other; nothing here touches the database or the broker.
//!
//! Superseding: a newer announced event that fires to a URL marks the conversion's older
//! non-terminal deliveries to that URL `superseded`. If one of them is in flight (leased), the
//! newer waits for it to end and the older is not retried. A delivery of this same batch has
//! no attempt yet, so one that a newer event of the batch supersedes never gets one.

use std::collections::HashMap;

use crate::dedupe::{Decision, Entry, History};
use crate::event::Event;

/// A cross-postback URL as the plan sees it.
pub trait Target {
    fn id(&self) -> i64;
    fn offer_id(&self) -> &str;
    /// Whether an announced event fires to it (its goal and status filters).
    fn matches(&self, event: &Event) -> bool;
}

/// A stored delivery that is not terminal (`pending`) or is in flight (leased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDelivery {
    pub id: i64,
    pub conversion_id: String,
    pub url_id: i64,
    pub pending: bool,
    pub leased: bool,
}

/// What the store read before deciding.
#[derive(Debug, Default)]
pub struct Snapshot<'a, U> {
    /// By conversion id; a conversion without a row is absent (a first event).
    pub histories: HashMap<String, History>,
    pub open: Vec<OpenDelivery>,
    /// The enabled URLs of the batch's offers.
    pub urls: &'a [U],
}

/// When a new delivery may make its first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Right after the batch is acked: leased to this worker and handed to dispatch.
    AfterAck,
    /// Once the attempt in flight to the same URL for the same conversion ends: leased until
    /// the ack (so nobody sends it before), then released.
    Waits,
    /// Superseded within its own batch, before any attempt: it gets none.
    Superseded,
}

/// One delivery to create: the event (an index into the batch) to a URL (an index into the
/// snapshot's URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDelivery {
    pub event: usize,
    pub url: usize,
    pub start: Start,
}

/// A conversion whose history changed, with the newest event that changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionWrite {
    pub conversion_id: String,
    pub event: usize,
    pub history: History,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per event, in order: the decision, or `None` where the batch holds no valid event.
    pub decisions: Vec<Option<Decision>>,
    /// Sorted by conversion id.
    pub conversions: Vec<ConversionWrite>,
    pub deliveries: Vec<NewDelivery>,
    /// Stored deliveries to mark `superseded`.
    pub supersede: Vec<i64>,
}

impl Plan {
    /// Deliveries superseded by this batch: stored ones and new ones.
    pub fn superseded(&self) -> usize {
        self.supersede.len() + self.count(Start::Superseded)
    }

    pub fn count(&self, start: Start) -> usize {
        self.deliveries.iter().filter(|d| d.start == start).count()
    }
}

/// One (conversion, URL) pair's deliveries as the plan goes: stored or planned.
enum Slot {
    Stored { id: i64, pending: bool, leased: bool },
    Planned(usize),
}

/// Decides the batch's events in arrival order and plans their writes.
pub fn plan<U: Target>(snapshot: Snapshot<'_, U>, events: &[Option<&Event>]) -> Plan {
    let Snapshot {
        mut histories,
        open,
        urls,
    } = snapshot;
    let mut by_offer: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, url) in urls.iter().enumerate() {
        by_offer.entry(url.offer_id()).or_default().push(i);
    }
    let mut slots: HashMap<(String, i64), Vec<Slot>> = HashMap::new();
    for o in open {
        let slot = Slot::Stored {
            id: o.id,
            pending: o.pending,
            leased: o.leased,
        };
        slots.entry((o.conversion_id, o.url_id)).or_default().push(slot);
    }
    let mut out = Plan::default();
    let mut changed: HashMap<String, usize> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let Some(event) = event else {
            out.decisions.push(None);
            continue;
        };
        let history = histories.entry(event.conversion_id.clone()).or_default();
        let decision = history.apply(Entry {
            status: event.status,
            sequence: event.sequence,
            updated_at: event.updated_at,
        });
        out.decisions.push(Some(decision));
        if matches!(decision, Decision::Accepted | Decision::Announced) {
            changed.insert(event.conversion_id.clone(), index);
        }
        if decision == Decision::Announced {
            let targets = by_offer
                .get(event.offer_id.as_str())
                .map_or(&[][..], Vec::as_slice);
            fire(event, index, targets, urls, &mut slots, &mut out);
        }
    }
    out.conversions = changed
        .into_iter()
        .map(|(conversion_id, event)| ConversionWrite {
            history: histories.remove(&conversion_id).unwrap_or_default(),
            conversion_id,
            event,
        })
        .collect();
    out.conversions
        .sort_unstable_by(|a, b| a.conversion_id.cmp(&b.conversion_id));
    out
}

/// Plans an announced event's deliveries to the URLs (of its offer) whose filters match.
fn fire<U: Target>(
    event: &Event,
    index: usize,
    targets: &[usize],
    urls: &[U],
    slots: &mut HashMap<(String, i64), Vec<Slot>>,
    out: &mut Plan,
) {
    for &u in targets {
        if !urls[u].matches(event) {
            continue;
        }
        let slot = slots
            .entry((event.conversion_id.clone(), urls[u].id()))
            .or_default();
        let start = supersede_older(slot, out);
        slot.push(Slot::Planned(out.deliveries.len()));
        out.deliveries.push(NewDelivery {
            event: index,
            url: u,
            start,
        });
    }
}

/// Supersedes a pair's older deliveries for a newer one; returns when the newer may start.
fn supersede_older(slot: &mut [Slot], out: &mut Plan) -> Start {
    let mut in_flight = false;
    for older in slot.iter_mut() {
        match older {
            Slot::Stored { id, pending, leased } => {
                in_flight |= *leased;
                if *pending {
                    *pending = false;
                    out.supersede.push(*id);
                }
            }
            Slot::Planned(i) => out.deliveries[*i].start = Start::Superseded,
        }
    }
    if in_flight { Start::Waits } else { Start::AfterAck }
}

#[cfg(test)]
mod tests;
