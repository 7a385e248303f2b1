//! The chaos run's ledger: the events it publishes, in the order it publishes them, and what
//! the de-duplication rules say must fire for them (the model the checker compares the outcome with).

use std::collections::{HashMap, HashSet};

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

/// One cross-postback URL of the run.
#[derive(Debug, Clone)]
pub struct UrlSpec {
    /// Names the URL in its path (`/u/<tag>`).
    pub tag: &'static str,
    pub offer: &'static str,
    /// Index of the receiver it points at.
    pub receiver: usize,
    pub statuses: Option<&'static [&'static str]>,
    pub goal: Option<&'static str>,
}

impl UrlSpec {
    fn matches(&self, e: &LedgerEvent) -> bool {
        self.offer == e.offer
            && self.statuses.is_none_or(|s| s.contains(&e.status))
            && self
                .goal
                .is_none_or(|g| e.goal.is_some_and(|eg| eg.eq_ignore_ascii_case(g)))
    }
}

#[derive(Debug, Clone)]
pub struct LedgerEvent {
    pub conversion: String,
    pub offer: &'static str,
    pub seq: i64,
    /// The status as announced (normalised).
    pub status: &'static str,
    pub goal: Option<&'static str>,
    pub event_id: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// The message as published (the status may be spelled as an alias).
    pub body: String,
}

pub struct Ledger {
    /// In publishing order; an entry may repeat an earlier one (a duplicate publish).
    pub published: Vec<LedgerEvent>,
    pub distinct_events: usize,
    pub conversions: usize,
    /// (event id, URL tag) pairs that must fire.
    pub expected: HashSet<(String, String)>,
    /// Each conversion's `updated_at` once all its events are decided: that of the last event
    /// the model accepts (a repeat of the announced status is not accepted).
    pub settled: HashMap<String, chrono::DateTime<chrono::Utc>>,
}

/// Builds `conversions` conversions of 1–4 events each, interleaved so that a conversion's
/// events often follow each other closely, with about 3 % published twice.
pub fn build(rng: &mut StdRng, conversions: usize, urls: &[UrlSpec]) -> Ledger {
    let base = chrono::DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z").expect("base time");
    let mut per_conversion: Vec<Vec<LedgerEvent>> = Vec::new();
    for c in 0..conversions {
        let conversion = format!("cv-{c}");
        let offer = if c % 3 == 2 { "2" } else { "1" };
        let goal = [None, Some("sale"), Some("SALE"), Some("lead")]
            .choose(rng)
            .copied()
            .flatten();
        let n = rng.random_range(1..=4);
        let mut events = Vec::new();
        for seq in 1..=n {
            let status = *["pending", "approved", "declined", "hold", "approved"]
                .choose(rng)
                .expect("a status");
            let spelled = match status {
                "approved" => *["approved", "Approved", "confirmed", "1"]
                    .choose(rng)
                    .expect("spelling"),
                "declined" => *["declined", "3"].choose(rng).expect("spelling"),
                other => other,
            };
            let event_id = format!("{conversion}-{seq}");
            let updated_at = (base + chrono::Duration::seconds(seq)).to_utc();
            let mut body = serde_json::json!({
                "conversion_id": conversion,
                "status": spelled,
                "updated_at": updated_at.to_rfc3339(),
                "sequence": seq,
                "offer_id": offer.parse::<i64>().expect("numeric offer"),
                "affiliate_id": "7",
                "event_id": event_id,
                "sub1": seq.to_string(),
                "payout": "1.50",
                "currency": "USD",
            });
            if let Some(g) = goal {
                body["goal"] = g.into();
            }
            events.push(LedgerEvent {
                conversion: conversion.clone(),
                offer,
                seq,
                status,
                goal,
                event_id,
                updated_at,
                body: body.to_string(),
            });
        }
        per_conversion.push(events);
    }

    let mut expected = HashSet::new();
    let mut settled = HashMap::new();
    for events in &per_conversion {
        let mut announced: Option<&str> = None;
        for e in events {
            if announced == Some(e.status) {
                continue;
            }
            settled.insert(e.conversion.clone(), e.updated_at);
            if matches!(e.status, "hold" | "not_found") {
                continue;
            }
            announced = Some(e.status);
            for u in urls.iter().filter(|u| u.matches(e)) {
                expected.insert((e.event_id.clone(), u.tag.to_owned()));
            }
        }
    }

    // Interleave: take the next event of one of the first few conversions still open.
    let distinct_events = per_conversion.iter().map(Vec::len).sum();
    let mut open: Vec<std::collections::VecDeque<LedgerEvent>> =
        per_conversion.into_iter().map(Into::into).collect();
    open.reverse();
    let mut published = Vec::with_capacity(distinct_events + distinct_events / 20);
    while !open.is_empty() {
        let window = open.len().min(8);
        let i = open.len() - 1 - rng.random_range(0..window);
        let e = open[i].pop_front().expect("an open conversion has an event");
        if open[i].is_empty() {
            open.remove(i);
        }
        if rng.random_bool(0.03) {
            published.push(e.clone());
        }
        published.push(e);
    }
    Ledger {
        published,
        distinct_events,
        conversions,
        expected,
        settled,
    }
}

/// The ledger's events by id.
pub fn by_id(ledger: &Ledger) -> HashMap<&str, &LedgerEvent> {
    ledger
        .published
        .iter()
        .map(|e| (e.event_id.as_str(), e))
        .collect()
}
