use super::*;
use crate::event::{self, Status};
use Decision::*;
use Start::*;
use Status::*;

/// A URL of offer "1" (or another) with a status filter and an optional goal.
struct Url {
    id: i64,
    offer: &'static str,
    statuses: &'static [Status],
    goal: Option<&'static str>,
}

const ALL: &[Status] = &[Approved, Pending, Declined];

fn url(id: i64) -> Url {
    Url {
        id,
        offer: "1",
        statuses: ALL,
        goal: None,
    }
}

impl Target for Url {
    fn id(&self) -> i64 {
        self.id
    }
    fn offer_id(&self) -> &str {
        self.offer
    }
    fn matches(&self, e: &Event) -> bool {
        self.statuses.contains(&e.status) && self.goal.is_none_or(|g| e.field("goal") == Some(g))
    }
}

/// An event of offer 1; `secs` after a fixed start orders one conversion's events.
fn ev(conversion: &str, status: &str, secs: i64) -> Event {
    ev_with(conversion, status, secs, serde_json::json!({}))
}

fn ev_with(conversion: &str, status: &str, secs: i64, extra: serde_json::Value) -> Event {
    let at = chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid time");
    let mut v = serde_json::json!({
        "conversion_id": conversion, "status": status, "updated_at": at.to_rfc3339(),
        "offer_id": 1, "affiliate_id": 2,
    });
    if let (Some(map), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
        map.extend(more);
    }
    event::parse(v.to_string().as_bytes()).expect("valid event")
}

/// A history in which these (status, secs) pairs were accepted in order.
fn history(pairs: &[(Status, i64)]) -> History {
    let mut h = History::default();
    for &(status, secs) in pairs {
        h.apply(Entry {
            status,
            sequence: None,
            updated_at: chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time"),
        });
    }
    h
}

fn open(id: i64, conversion: &str, url_id: i64, pending: bool, leased: bool) -> OpenDelivery {
    OpenDelivery {
        id,
        conversion_id: conversion.into(),
        url_id,
        pending,
        leased,
    }
}

fn run(known: &[(&str, History)], stored: Vec<OpenDelivery>, urls: &[Url], events: &[Event]) -> Plan {
    let snapshot = Snapshot {
        histories: known.iter().map(|(c, h)| ((*c).to_owned(), h.clone())).collect(),
        open: stored,
        urls,
    };
    let refs: Vec<Option<&Event>> = events.iter().map(Some).collect();
    plan(snapshot, &refs)
}

fn new(event: usize, url: usize, start: Start) -> NewDelivery {
    NewDelivery { event, url, start }
}

/// Every row of the de-duplication table, through the plan: the decision and what it fires.
#[test]
fn every_row_of_the_deduplication_table() {
    let a = [(Approved, 10)];
    let cases: Vec<(&str, History, Event, Decision, usize)> = vec![
        (
            "first event: announced",
            History::default(),
            ev("c", "pending", 0),
            Announced,
            1,
        ),
        (
            "same status and key: duplicate",
            history(&a),
            ev("c", "approved", 10),
            Duplicate,
            0,
        ),
        (
            "older than the newest: stale",
            history(&a),
            ev("c", "declined", 5),
            Stale,
            0,
        ),
        (
            "hold: accepted, fires nothing",
            history(&a),
            ev("c", "hold", 11),
            Accepted,
            0,
        ),
        (
            "not_found: accepted",
            history(&a),
            ev("c", "not_found", 11),
            Accepted,
            0,
        ),
        (
            "same announced status: duplicate",
            history(&a),
            ev("c", "approved", 12),
            Duplicate,
            0,
        ),
        (
            "a real change: announced",
            history(&a),
            ev("c", "declined", 12),
            Announced,
            1,
        ),
        (
            "return to an earlier status",
            history(&[(Approved, 0), (Declined, 1)]),
            ev("c", "approved", 2),
            Announced,
            1,
        ),
        (
            "pending, hold, then approved",
            history(&[(Pending, 0), (Hold, 1)]),
            ev("c", "approved", 2),
            Announced,
            1,
        ),
        (
            "hold keeps the announced status",
            history(&[(Pending, 0), (Hold, 1)]),
            ev("c", "pending", 2),
            Duplicate,
            0,
        ),
        (
            "equal key, other status",
            history(&a),
            ev("c", "declined", 10),
            Announced,
            1,
        ),
    ];
    for (name, known, event, decision, fired) in cases {
        let p = run(&[("c", known)], vec![], &[url(7)], &[event]);
        assert_eq!(p.decisions, [Some(decision)], "{name}");
        assert_eq!(p.deliveries.len(), fired, "{name}");
        let written = matches!(decision, Accepted | Announced);
        assert_eq!(
            p.conversions.len(),
            usize::from(written),
            "{name}: conversion written"
        );
    }
}

#[test]
fn accepted_events_write_the_newest_history_once_per_conversion() {
    let events = [ev("c", "pending", 0), ev("c", "hold", 1), ev("d", "approved", 0)];
    let p = run(&[], vec![], &[], &events);
    assert_eq!(p.decisions, [Some(Announced), Some(Accepted), Some(Announced)]);
    assert!(p.deliveries.is_empty(), "no URL, nothing fires");
    let written: Vec<(&str, usize)> = p
        .conversions
        .iter()
        .map(|c| (c.conversion_id.as_str(), c.event))
        .collect();
    assert_eq!(written, [("c", 1), ("d", 2)]);
    assert_eq!(p.conversions[0].history, history(&[(Pending, 0), (Hold, 1)]));
}

#[test]
fn rejected_messages_keep_their_place_in_the_decisions() {
    let e = ev("c", "approved", 0);
    let snapshot = Snapshot {
        histories: HashMap::new(),
        open: vec![],
        urls: &[url(7)],
    };
    let p = plan(snapshot, &[None, Some(&e), None]);
    assert_eq!(p.decisions, [None, Some(Announced), None]);
    assert_eq!(p.deliveries, [new(1, 0, AfterAck)]);
}

/// The superseding cases: (name, stored deliveries, URLs, events) → (new deliveries,
/// stored ones superseded).
#[test]
fn superseding() {
    let pending = || history(&[(Pending, 0)]);
    let approved_only: &[Status] = &[Approved];
    type Case = (
        &'static str,
        Vec<OpenDelivery>,
        Vec<Url>,
        Vec<Event>,
        Vec<NewDelivery>,
        Vec<i64>,
    );
    let cases: Vec<Case> = vec![
        (
            "an older pending retry is superseded; the newer starts after the ack",
            vec![open(1, "c", 7, true, false)],
            vec![url(7)],
            vec![ev("c", "approved", 1)],
            vec![new(0, 0, AfterAck)],
            vec![1],
        ),
        (
            "an older one in flight: superseded (not retried), the newer waits",
            vec![open(1, "c", 7, true, true)],
            vec![url(7)],
            vec![ev("c", "approved", 1)],
            vec![new(0, 0, Waits)],
            vec![1],
        ),
        (
            "an attempt in flight of a delivery already superseded: the newer still waits",
            vec![open(1, "c", 7, false, true)],
            vec![url(7)],
            vec![ev("c", "approved", 1)],
            vec![new(0, 0, Waits)],
            vec![],
        ),
        (
            "an event the URL's filter excludes supersedes nothing there",
            vec![open(1, "c", 7, true, false), open(2, "c", 8, true, false)],
            vec![
                Url {
                    statuses: approved_only,
                    ..url(7)
                },
                url(8),
            ],
            vec![ev("c", "declined", 1)],
            vec![new(0, 1, AfterAck)],
            vec![2],
        ),
        (
            "a goal filter excludes too",
            vec![open(1, "c", 7, true, false)],
            vec![Url {
                goal: Some("sale"),
                ..url(7)
            }],
            vec![ev_with("c", "approved", 1, serde_json::json!({"goal": "lead"}))],
            vec![],
            vec![],
        ),
        (
            "same batch: the older gets no attempt, the newer starts after the ack",
            vec![],
            vec![url(7)],
            vec![ev("new", "pending", 0), ev("new", "approved", 1)],
            vec![new(0, 0, Superseded), new(1, 0, AfterAck)],
            vec![],
        ),
        (
            "same batch behind one in flight: the stored and the first new superseded",
            vec![open(1, "c", 7, true, true)],
            vec![url(7)],
            vec![ev("c", "approved", 1), ev("c", "declined", 2)],
            vec![new(0, 0, Superseded), new(1, 0, Waits)],
            vec![1],
        ),
        (
            "other conversions and other URLs are left alone",
            vec![open(1, "other", 7, true, false), open(2, "c", 9, true, false)],
            vec![url(7)],
            vec![ev("c", "approved", 1)],
            vec![new(0, 0, AfterAck)],
            vec![],
        ),
        (
            "another offer's URL does not fire",
            vec![],
            vec![Url { offer: "2", ..url(7) }],
            vec![ev("c", "approved", 1)],
            vec![],
            vec![],
        ),
        (
            "hold advances without firing or superseding",
            vec![open(1, "c", 7, true, false)],
            vec![url(7)],
            vec![ev("c", "hold", 1)],
            vec![],
            vec![],
        ),
        (
            "a return to an earlier status supersedes like any change",
            vec![open(1, "c", 7, true, false)],
            vec![url(7)],
            vec![ev("c", "declined", 1), ev("c", "pending", 2)],
            vec![new(0, 0, Superseded), new(1, 0, AfterAck)],
            vec![1],
        ),
    ];
    for (name, stored, urls, events, want_new, want_superseded) in cases {
        let p = run(&[("c", pending())], stored, &urls, &events);
        assert_eq!(p.deliveries, want_new, "{name}");
        assert_eq!(p.supersede, want_superseded, "{name}");
        assert_eq!(
            p.superseded(),
            want_superseded.len() + want_new.iter().filter(|n| n.start == Superseded).count(),
            "{name}"
        );
    }
}

#[test]
fn a_duplicate_or_stale_event_supersedes_nothing() {
    let known = history(&[(Pending, 0), (Approved, 5)]);
    let stored = vec![open(1, "c", 7, true, false)];
    let events = [
        ev("c", "pending", 0),
        ev("c", "declined", 3),
        ev("c", "approved", 9),
    ];
    let p = run(&[("c", known)], stored, &[url(7)], &events);
    assert_eq!(p.decisions, [Some(Duplicate), Some(Stale), Some(Duplicate)]);
    assert!(p.deliveries.is_empty() && p.supersede.is_empty());
    assert!(p.conversions.is_empty(), "nothing accepted, nothing written");
}
