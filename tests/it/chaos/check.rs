//! The checker: compares what the receivers saw and what Postgres holds with the ledger's model.
//!
//! - **lost**: a (event, URL) pair the model says must fire with no delivery, or one that is
//!   not in a terminal state;
//! - **unexpected**: a request or a delivery the model does not explain (an event that must not
//!   fire, a URL whose filters exclude it, a second delivery for one pair, wrong values or
//!   idempotency key), or any request to the refused address;
//! - **duplicates**: more than one 2xx for one (event, URL) pair, each explained only when a
//!   kill fell between the two and one of them was never recorded;
//! - **order**: a receiver seeing an older event of a conversion after a newer one, or recorded
//!   attempts of one conversion and URL overlapping in time;
//! - **unfounded**: `failed` without every attempt made and none a 2xx, `superseded` without a
//!   newer event firing to that URL, `delivered` that no receiver answered with a 2xx.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::ledger::{self, Ledger, UrlSpec};
use super::nemesis::{DaemonProcess, Faults};
use super::receiver::{Answer, ChaosReceiver, Seen};
use crate::harness::{Env, rows};

/// Waits until every conversion is decided up to its last event, nothing is pending and no
/// message is ready in the queue.
pub async fn wait_settled(
    env: &Env,
    pg: &tokio_postgres::Client,
    finals: &HashMap<String, DateTime<Utc>>,
    daemon: &mut DaemonProcess,
    limit: Duration,
) {
    let start = Instant::now();
    let mut said = Instant::now();
    loop {
        daemon.restart_if_exited();
        let decided = pg
            .query("SELECT conversion_id, updated_at FROM conversions", &[])
            .await
            .expect("conversions")
            .iter()
            .filter(|r| finals.get(r.get::<_, &str>(0)) == Some(&r.get::<_, DateTime<Utc>>(1)))
            .count();
        let pending: i64 = pg
            .query_one("SELECT count(*) FROM deliveries WHERE state = 'pending'", &[])
            .await
            .expect("pending")
            .get(0);
        let ready = env.ready_messages(&env.cfg.amqp.queue).await;
        if decided == finals.len() && pending == 0 && ready == 0 {
            return;
        }
        if said.elapsed() > Duration::from_secs(10) {
            println!(
                "chaos: settling: {decided}/{} conversions decided, {pending} deliveries pending, {ready} messages ready",
                finals.len()
            );
            said = Instant::now();
        }
        assert!(
            start.elapsed() < limit,
            "not settled after {limit:?}: {decided}/{} conversions decided, {pending} deliveries pending, {ready} messages ready",
            finals.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[derive(Debug, Default)]
pub struct Report {
    events: usize,
    published: usize,
    conversions: usize,
    expected: usize,
    states: BTreeMap<String, usize>,
    answers: BTreeMap<String, usize>,
    requests: usize,
    lost: Vec<String>,
    unexpected: Vec<String>,
    duplicates_after_kill: usize,
    /// Terminal states without the evidence they need.
    unfounded: Vec<String>,
    /// Attempts of one (conversion, URL) that overlapped in time.
    concurrent: Vec<String>,
    unexplained_duplicates: Vec<String>,
    order: Vec<String>,
    phantom: Vec<String>,
    refused_attempts: i64,
    refused_not_blocked: Vec<String>,
    rejected_missing: Vec<String>,
    exits: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn check(
    pg: &tokio_postgres::Client,
    ledger: &Ledger,
    url_ids: &[(&'static str, i64)],
    specs: &[UrlSpec],
    receivers: &[ChaosReceiver],
    invalid: &[String],
    faults: &Faults,
    exits: Vec<String>,
) -> Report {
    let mut r = Report {
        events: ledger.distinct_events,
        published: ledger.published.len(),
        conversions: ledger.conversions,
        expected: ledger.expected.len(),
        exits,
        ..Report::default()
    };
    let events = ledger::by_id(ledger);
    let tag_of_id: HashMap<i64, &str> = url_ids.iter().map(|(t, id)| (*id, *t)).collect();
    let id_of_tag: HashMap<&str, i64> = url_ids.iter().copied().collect();
    let refused: Vec<&str> = specs
        .iter()
        .filter(|s| s.receiver == receivers.len() - 1)
        .map(|s| s.tag)
        .collect();

    // What the receivers saw.
    let mut by_key: HashMap<(String, String), Vec<Seen>> = HashMap::new();
    for (i, rx) in receivers.iter().enumerate() {
        let mut last_seq: HashMap<(String, String), i64> = HashMap::new();
        for seen in rx.seen() {
            r.requests += 1;
            *r.answers.entry(answer_name(seen.answer)).or_default() += 1;
            let tag = seen.path.strip_prefix("/u/").unwrap_or(&seen.path).to_owned();
            let e = seen.param("e").unwrap_or_default().to_owned();
            if i == receivers.len() - 1 {
                r.unexpected
                    .push(format!("a request to the refused address: {} {e}", seen.path));
                continue;
            }
            let Some(event) = events.get(e.as_str()) else {
                r.unexpected
                    .push(format!("a request for an unknown event {e:?} at {tag}"));
                continue;
            };
            if !ledger.expected.contains(&(e.clone(), tag.clone())) {
                r.unexpected
                    .push(format!("{e} ({}) must not fire at {tag}", event.status));
            }
            let key = format!("{e}:{}", id_of_tag.get(tag.as_str()).copied().unwrap_or(-1));
            if seen.idempotency_key.as_deref() != Some(key.as_str())
                || seen.param("c") != Some(event.conversion.as_str())
                || seen.param("s") != Some(event.status)
            {
                r.unexpected.push(format!(
                    "{e} at {tag}: wrong values {:?} (key {:?})",
                    seen.query, seen.idempotency_key
                ));
            }
            let seq = event.seq;
            let newest = last_seq
                .entry((event.conversion.clone(), tag.clone()))
                .or_insert(seq);
            if seq < *newest {
                r.order.push(format!(
                    "{} at {tag}: sequence {seq} after {}",
                    event.conversion, *newest
                ));
            }
            *newest = (*newest).max(seq);
            by_key.entry((e, tag)).or_default().push(seen);
        }
    }

    // Duplicates: a second 2xx for one pair. One is explained by a kill only when a 2xx of
    // that pair was never recorded (its attempt was in flight when the process died) and a kill
    // fell between the two. A database outage explains none: the worker never claims again a
    // delivery whose outcome it holds unrecorded.
    let recorded: HashMap<(String, String), i64> = pg
        .query(
            "SELECT d.event->>'event_id', a.url_id, count(*) FROM attempts a
             JOIN deliveries d ON d.id = a.delivery_id
             WHERE a.http_code BETWEEN 200 AND 299 GROUP BY 1, 2",
            &[],
        )
        .await
        .expect("recorded successes")
        .iter()
        .map(|row| {
            let tag = tag_of_id.get(&row.get::<_, i64>(1)).copied().unwrap_or("?");
            ((row.get::<_, String>(0), tag.to_owned()), row.get::<_, i64>(2))
        })
        .collect();
    for ((e, tag), seen) in &by_key {
        let ok: Vec<&Seen> = seen.iter().filter(|s| s.answer.is_success()).collect();
        let unrecorded = ok.len() as i64 > recorded.get(&(e.clone(), tag.clone())).copied().unwrap_or(0);
        for pair in ok.windows(2) {
            let (a, b) = (pair[0].at, pair[1].at);
            if unrecorded && faults.kills.iter().any(|k| a <= *k && *k <= b) {
                r.duplicates_after_kill += 1;
            } else {
                r.unexplained_duplicates.push(format!(
                    "{e} at {tag}: 2xx twice, {:?} apart, no kill with a lost record between",
                    b - a
                ));
            }
        }
    }

    // What Postgres holds.
    let deliveries = pg
        .query(
            "SELECT url_id, event->>'event_id', state, attempts FROM deliveries ORDER BY id",
            &[],
        )
        .await
        .expect("deliveries");
    let mut rows_per_pair: HashMap<(String, String), Vec<String>> = HashMap::new();
    // The newest event that fires to each (conversion, URL).
    let mut newest_firing: HashMap<(&str, &str), i64> = HashMap::new();
    for (e, tag) in &ledger.expected {
        if let Some(ev) = events.get(e.as_str()) {
            let newest = newest_firing
                .entry((ev.conversion.as_str(), tag.as_str()))
                .or_insert(ev.seq);
            *newest = (*newest).max(ev.seq);
        }
    }
    for d in &deliveries {
        let url_id: i64 = d.get(0);
        let e: String = d.get::<_, Option<String>>(1).unwrap_or_default();
        let state: String = d.get(2);
        let attempts: i32 = d.get(3);
        *r.states.entry(state.clone()).or_default() += 1;
        let tag = tag_of_id.get(&url_id).copied().unwrap_or("?");
        let pair = (e.clone(), tag.to_owned());
        let event = events.get(e.as_str());
        // `superseded` needs a newer event that fires to the same URL; `failed` (away from
        // the refused address) every attempt of the schedule made, none of them a 2xx.
        if state == "superseded"
            && !event.is_some_and(|ev| {
                newest_firing
                    .get(&(ev.conversion.as_str(), tag))
                    .is_some_and(|newest| *newest > ev.seq)
            })
        {
            r.unfounded
                .push(format!("{e} at {tag}: superseded, but nothing newer fires there"));
        }
        if state == "failed"
            && !refused.contains(&tag)
            && (attempts != super::nemesis::ATTEMPTS || recorded.get(&pair).is_some_and(|n| *n > 0))
        {
            r.unfounded.push(format!(
                "{e} at {tag}: failed after {attempts} attempts (recorded 2xx: {:?})",
                recorded.get(&pair)
            ));
        }
        if state == "delivered"
            && !by_key
                .get(&(e.clone(), tag.to_owned()))
                .is_some_and(|s| s.iter().any(|s| s.answer.is_success()))
        {
            r.phantom
                .push(format!("{e} at {tag}: delivered, but no receiver answered 2xx"));
        }
        if refused.contains(&tag) && state == "delivered" {
            r.refused_not_blocked
                .push(format!("{e} at {tag}: delivered to a refused address"));
        }
        rows_per_pair.entry((e, tag.to_owned())).or_default().push(state);
    }
    for ((e, tag), states) in &rows_per_pair {
        if !ledger.expected.contains(&(e.clone(), tag.clone())) {
            r.unexpected
                .push(format!("a delivery of {e} to {tag} that must not exist"));
        } else if states.len() > 1 {
            r.unexpected
                .push(format!("{} deliveries of {e} to {tag}", states.len()));
        }
        if states.iter().any(|s| s == "pending") {
            r.lost.push(format!("{e} to {tag}: still pending"));
        }
    }
    for (e, tag) in &ledger.expected {
        if !rows_per_pair.contains_key(&(e.clone(), tag.clone())) {
            r.lost.push(format!("{e} to {tag}: no delivery"));
        }
    }

    // At most one attempt in flight per (conversion, URL): recorded attempts never overlap.
    for row in pg
        .query(
            "SELECT conversion_id, url_id, sent_at::text, prev_end::text FROM (
                 SELECT conversion_id, url_id, sent_at,
                        lag(sent_at + duration_ms * interval '1 millisecond')
                            OVER (PARTITION BY conversion_id, url_id ORDER BY sent_at) AS prev_end
                 FROM attempts) a
             WHERE sent_at < prev_end",
            &[],
        )
        .await
        .expect("overlapping attempts")
    {
        let (c, u, at, prev): (String, i64, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        r.concurrent.push(format!(
            "{c} at URL {u}: an attempt at {at} while one ran until {prev}"
        ));
    }

    // The refused address: every attempt recorded `blocked`, none retried past a kill's window.
    for tag in &refused {
        let id = id_of_tag[tag];
        let row = pg
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE error_code = 'blocked') FROM attempts WHERE url_id = $1",
                &[&id],
            )
            .await
            .expect("refused attempts");
        let (all, blocked): (i64, i64) = (row.get(0), row.get(1));
        r.refused_attempts += all;
        if all != blocked {
            r.refused_not_blocked.push(format!(
                "{tag}: {} of {all} attempts not recorded as blocked",
                all - blocked
            ));
        }
    }

    // Invalid messages: each stored with its reason.
    let stored: Vec<String> = rows(pg, "SELECT convert_from(body, 'UTF8') FROM rejected_messages")
        .await
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect();
    for body in invalid {
        if !stored.contains(body) {
            r.rejected_missing
                .push(format!("not in rejected_messages: {body}"));
        }
    }
    r
}

fn answer_name(a: Answer) -> String {
    match a {
        Answer::Status(s) => s.to_string(),
        Answer::Hung => "hung".into(),
        Answer::Reset => "reset".into(),
    }
}

impl Report {
    pub fn ok(&self, left_in_queue: u32) -> bool {
        left_in_queue == 0
            && [
                &self.lost,
                &self.unexpected,
                &self.unexplained_duplicates,
                &self.order,
                &self.phantom,
                &self.unfounded,
                &self.concurrent,
                &self.refused_not_blocked,
                &self.rejected_missing,
                &self.exits,
            ]
            .iter()
            .all(|v| v.is_empty())
    }

    pub fn table(&self, took: Duration, faults: &Faults, left_in_queue: u32) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "chaos run");
        let _ = writeln!(
            t,
            "  events           {} ({} published, duplicates included) over {} conversions",
            self.events, self.published, self.conversions
        );
        let _ = writeln!(
            t,
            "  faults           {} kills, {} broker cuts, {} database cuts, {} broker restarts, {} database restarts",
            faults.kills.len(),
            faults.broker_outages.len() - faults.broker_restarts,
            faults.db_outages.len() - faults.db_restarts,
            faults.broker_restarts,
            faults.db_restarts
        );
        let _ = writeln!(t, "  time             {:.1} s", took.as_secs_f64());
        let _ = writeln!(t, "  must fire        {} (event, URL) pairs", self.expected);
        let _ = writeln!(t, "  deliveries       {:?}", self.states);
        let _ = writeln!(
            t,
            "  requests         {} answered {:?}",
            self.requests, self.answers
        );
        let _ = writeln!(
            t,
            "  refused attempts {} (all blocked, none sent)",
            self.refused_attempts
        );
        let _ = writeln!(t, "  lost             {}", self.lost.len());
        let _ = writeln!(t, "  unexpected       {}", self.unexpected.len());
        let _ = writeln!(
            t,
            "  duplicates       {} after a kill, {} unexplained",
            self.duplicates_after_kill,
            self.unexplained_duplicates.len()
        );
        let _ = writeln!(t, "  unfounded state  {}", self.unfounded.len());
        let _ = writeln!(t, "  concurrent       {}", self.concurrent.len());
        let _ = writeln!(t, "  order violations {}", self.order.len());
        let _ = writeln!(t, "  phantom          {}", self.phantom.len());
        let _ = writeln!(t, "  left in queue    {left_in_queue}");
        let _ = writeln!(t, "  daemon exits     {}", self.exits.len());
        for (name, list) in [
            ("lost", &self.lost),
            ("unexpected", &self.unexpected),
            ("unexplained duplicate", &self.unexplained_duplicates),
            ("order", &self.order),
            ("phantom", &self.phantom),
            ("unfounded", &self.unfounded),
            ("concurrent", &self.concurrent),
            ("refused", &self.refused_not_blocked),
            ("rejected", &self.rejected_missing),
            ("exit", &self.exits),
        ] {
            for line in list.iter().take(10) {
                let _ = writeln!(t, "  {name}: {line}");
            }
        }
        t
    }
}
