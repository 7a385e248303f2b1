//! The intake transaction: decide a batch of messages (§4) and log the conversions' new state,
//! their `pending` deliveries and the rejected messages, all in one commit.
//!
//! Locks: one transaction-scoped advisory lock per conversion, taken in hash order, so two
//! replicas deciding the same conversion serialise and never deadlock each other.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

use super::Result;
use super::dispatch::{HandOff, Job};
use super::urls::{COLUMNS, UrlRow};
use crate::dedupe::{Decision, Entry, History};
use crate::event::Event;

/// A message as intake hands it to the store.
#[derive(Debug)]
pub enum Message {
    Valid(Arc<Event>),
    Invalid(Rejected),
}

/// An invalid message, kept with its reason (SPEC §6 `rejected_messages`).
#[derive(Debug, Clone)]
pub struct Rejected {
    pub body: Vec<u8>,
    pub size: usize,
    pub sha256: Option<Vec<u8>>,
    pub truncated: bool,
    pub routing_key: String,
    pub headers: serde_json::Value,
    pub reason: String,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct Logged {
    /// Per message, in order: the decision, or `None` for a rejected one.
    pub decisions: Vec<Option<Decision>>,
    pub deliveries: usize,
    pub superseded: usize,
    /// What dispatch takes over once the batch's messages are acked.
    pub hand_off: HandOff,
}

/// A conversion's delivery to one URL that is not yet terminal, or is in flight.
struct Open {
    id: Option<i64>,
    new_index: Option<usize>,
    pending: bool,
    leased: bool,
}

struct NewDelivery {
    conversion_id: String,
    url: Arc<UrlRow>,
    event: Arc<Event>,
    superseded: bool,
    leased: bool,
}

/// Decides and logs one batch in one transaction.
pub async fn log_batch(
    client: &mut deadpool_postgres::Client,
    messages: &[Message],
    owner: Uuid,
    lease: Duration,
) -> Result<Logged> {
    let started = Instant::now();
    let tx = client.transaction().await?;
    let events: Vec<&Event> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Valid(e) => Some(&**e),
            Message::Invalid(_) => None,
        })
        .collect();
    let mut ids: Vec<&str> = events.iter().map(|e| e.conversion_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();

    let mut histories: HashMap<String, History> = HashMap::new();
    let mut urls_by_offer: HashMap<String, Vec<Arc<UrlRow>>> = HashMap::new();
    let mut open: HashMap<(String, i64), Vec<Open>> = HashMap::new();
    if !ids.is_empty() {
        let mut offers: Vec<&str> = events.iter().map(|e| e.offer_id.as_str()).collect();
        offers.sort_unstable();
        offers.dedup();
        // One round trip: the statements are sent together and run in order, the locks first.
        let (by_ids, by_offers) = ([&ids as &(dyn ToSql + Sync)], [&offers as &(dyn ToSql + Sync)]);
        let (_, conversions, urls, deliveries) = tokio::try_join!(
            super::execute(&tx, LOCK_CONVERSIONS, &by_ids),
            super::query(&tx, READ_CONVERSIONS, &by_ids),
            super::query(&tx, &READ_URLS, &by_offers),
            super::query(&tx, READ_OPEN_DELIVERIES, &by_ids),
        )?;
        for row in conversions {
            let history = row
                .try_get::<_, Json<History>>(1)
                .map(|j| j.0)
                .unwrap_or_default();
            histories.insert(row.get(0), history);
        }
        for row in urls {
            let url = UrlRow::from_row(&row);
            urls_by_offer
                .entry(url.offer_id.clone())
                .or_default()
                .push(Arc::new(url));
        }
        for row in deliveries {
            open.entry((row.get(1), row.get(2))).or_default().push(Open {
                id: Some(row.get(0)),
                new_index: None,
                pending: row.get(3),
                leased: row.get(4),
            });
        }
    }

    let mut logged = Logged::default();
    let mut new: Vec<NewDelivery> = Vec::new();
    let mut supersede: Vec<i64> = Vec::new();
    let mut changed: HashMap<String, &Event> = HashMap::new();
    for message in messages {
        let Message::Valid(event) = message else {
            logged.decisions.push(None);
            continue;
        };
        let history = histories.entry(event.conversion_id.clone()).or_default();
        let decision = history.apply(Entry {
            status: event.status,
            sequence: event.sequence,
            updated_at: event.updated_at,
        });
        logged.decisions.push(Some(decision));
        if matches!(decision, Decision::Accepted | Decision::Announced) {
            changed.insert(event.conversion_id.clone(), event);
        }
        if decision != Decision::Announced {
            continue;
        }
        let shared = Arc::clone(event);
        for url in urls_by_offer.get(&event.offer_id).into_iter().flatten() {
            if !url.matches(event) {
                continue;
            }
            let slot = open.entry((event.conversion_id.clone(), url.id)).or_default();
            for older in slot.iter_mut().filter(|o| o.pending) {
                older.pending = false;
                match (older.id, older.new_index) {
                    (Some(id), _) => supersede.push(id),
                    (None, Some(i)) => new[i].superseded = true,
                    (None, None) => {}
                }
            }
            let leased = !slot.iter().any(|o| o.leased);
            slot.push(Open {
                id: None,
                new_index: Some(new.len()),
                pending: true,
                leased,
            });
            new.push(NewDelivery {
                conversion_id: event.conversion_id.clone(),
                url: Arc::clone(url),
                event: Arc::clone(&shared),
                superseded: false,
                leased,
            });
        }
    }

    logged.superseded = supersede.len() + new.iter().filter(|n| n.superseded).count();
    logged.deliveries = new.len();
    logged.hand_off.waiting = new
        .iter()
        .filter(|n| !n.leased && !n.superseded)
        .map(|n| (n.conversion_id.clone(), n.url.id))
        .collect();
    // The writes are independent of each other: sent together, in one round trip or two.
    let (_, _, (jobs, held), _) = tokio::try_join!(
        write_conversions(&tx, &changed, &histories),
        supersede_older(&tx, &supersede),
        write_deliveries(&tx, &new, owner, lease, started),
        write_rejected(&tx, messages),
    )?;
    logged.hand_off.jobs = jobs;
    logged.hand_off.held_until_acked = held;
    tx.commit().await?;
    Ok(logged)
}

/// Transaction-scoped advisory locks on the batch's conversions, in hash order, so replicas
/// deciding the same conversion serialise and never deadlock.
pub(super) const LOCK_CONVERSIONS: &str = "SELECT pg_advisory_xact_lock(h) FROM
    (SELECT DISTINCT hashtextextended(c, 0) AS h FROM unnest($1::text[]) AS c) AS s
    ORDER BY h";

const READ_CONVERSIONS: &str = "SELECT conversion_id, history FROM conversions WHERE conversion_id = ANY($1)";

/// FOR SHARE: a concurrent `urls disable` waits for this commit, then cancels what it logged.
static READ_URLS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM cross_postback_urls WHERE enabled AND offer_id = ANY($1) FOR SHARE")
});

/// Locked (FOR UPDATE), so a poller cannot lease one of these between this read and the
/// superseding: it either leased it before (and this sees the lease) or skips it.
const READ_OPEN_DELIVERIES: &str = "SELECT id, conversion_id, url_id, state = 'pending',
        coalesce(lease_until > now(), false)
    FROM deliveries
    WHERE conversion_id = ANY($1) AND (state = 'pending' OR lease_until > now())
    FOR UPDATE";

async fn supersede_older(tx: &deadpool_postgres::Transaction<'_>, ids: &[i64]) -> Result<()> {
    if !ids.is_empty() {
        super::execute(
            tx,
            "UPDATE deliveries SET state = 'superseded', updated_at = now() WHERE id = ANY($1) AND state = 'pending'",
            &[&ids],
        )
        .await?;
    }
    Ok(())
}

async fn write_conversions(
    tx: &deadpool_postgres::Transaction<'_>,
    changed: &HashMap<String, &Event>,
    histories: &HashMap<String, History>,
) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(changed.len());
    let (mut offers, mut affiliates, mut statuses, mut announced, mut hist, mut times) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let empty = History::default();
    for (id, event) in changed {
        let history = histories.get(id).unwrap_or(&empty);
        let newest: Option<DateTime<Utc>> = history.accepted.last().map(|e| e.updated_at);
        ids.push(id.as_str());
        offers.push(event.offer_id.as_str());
        affiliates.push(event.affiliate_id.as_str());
        statuses.push(
            history
                .accepted
                .last()
                .map_or(event.status, |e| e.status)
                .as_str(),
        );
        announced.push(history.last_announced.map(|s| s.as_str()));
        times.push(newest.unwrap_or(event.updated_at));
        hist.push(Json(history));
    }
    super::execute(
        tx,
        "INSERT INTO conversions (conversion_id, offer_id, affiliate_id, status, last_announced, history, updated_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[])
         ON CONFLICT (conversion_id) DO UPDATE SET
            offer_id = EXCLUDED.offer_id, affiliate_id = EXCLUDED.affiliate_id, status = EXCLUDED.status,
            last_announced = EXCLUDED.last_announced, history = EXCLUDED.history,
            updated_at = EXCLUDED.updated_at, modified_at = now()",
        &[&ids, &offers, &affiliates, &statuses, &announced, &hist, &times],
    )
    .await?;
    Ok(())
}

async fn write_deliveries(
    tx: &deadpool_postgres::Transaction<'_>,
    new: &[NewDelivery],
    owner: Uuid,
    lease: Duration,
    started: Instant,
) -> Result<(Vec<Job>, Vec<i64>)> {
    if new.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let conversions: Vec<&str> = new.iter().map(|n| n.conversion_id.as_str()).collect();
    let url_ids: Vec<i64> = new.iter().map(|n| n.url.id).collect();
    let statuses: Vec<&str> = new.iter().map(|n| n.event.status.as_str()).collect();
    let events: Vec<Json<&Event>> = new.iter().map(|n| Json(&*n.event)).collect();
    let states: Vec<&str> = new
        .iter()
        .map(|n| if n.superseded { "superseded" } else { "pending" })
        .collect();
    // Leased: first attempts (they start after the ack, even one a newer event of the same
    // batch superseded: it counts as in flight) and waiting deliveries (released after the ack).
    let leased: Vec<bool> = new.iter().map(|n| n.leased || !n.superseded).collect();
    let lease_ms = lease.as_millis() as f64;
    // One round trip: the ids are drawn, the rows inserted, and the ids returned in the
    // batch's order (the CTE is materialised once: it is read twice and calls nextval).
    let ids: Vec<i64> = super::query(
        tx,
        "WITH t AS (
             SELECT nextval(pg_get_serial_sequence('deliveries', 'id')) AS id, c, u, s, e, st, l, ord
             FROM unnest($1::text[], $2::bigint[], $3::text[], $4::jsonb[], $5::text[], $8::bool[])
                  WITH ORDINALITY AS t(c, u, s, e, st, l, ord)
         ), inserted AS (
             INSERT INTO deliveries (id, conversion_id, url_id, status, event, state, next_attempt_at,
                                     lease_owner, lease_until)
             SELECT id, c, u, s, e, st, now(),
                    CASE WHEN l THEN $6::uuid END,
                    CASE WHEN l THEN now() + $7::float8 * interval '1 millisecond' END
             FROM t
         )
         SELECT id FROM t ORDER BY ord",
        &[
            &conversions,
            &url_ids,
            &statuses,
            &events,
            &states,
            &owner,
            &lease_ms,
            &leased,
        ],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    let lease_until = started + lease;
    let jobs = new
        .iter()
        .zip(&ids)
        .filter(|(n, _)| n.leased)
        .map(|(n, id)| Job {
            delivery_id: *id,
            attempt: 1,
            retry_base: 0,
            event: Arc::clone(&n.event),
            url: Arc::clone(&n.url),
            lease_until,
        })
        .collect();
    let held = new
        .iter()
        .zip(&ids)
        .filter(|(n, _)| !n.leased && !n.superseded)
        .map(|(_, id)| *id)
        .collect();
    Ok((jobs, held))
}

async fn write_rejected(tx: &deadpool_postgres::Transaction<'_>, messages: &[Message]) -> Result<()> {
    let rejected: Vec<&Rejected> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Invalid(r) => Some(r),
            Message::Valid(_) => None,
        })
        .collect();
    if rejected.is_empty() {
        return Ok(());
    }
    let bodies: Vec<&[u8]> = rejected.iter().map(|r| r.body.as_slice()).collect();
    let sizes: Vec<i32> = rejected
        .iter()
        .map(|r| i32::try_from(r.size).unwrap_or(i32::MAX))
        .collect();
    let hashes: Vec<Option<&[u8]>> = rejected.iter().map(|r| r.sha256.as_deref()).collect();
    let truncated: Vec<bool> = rejected.iter().map(|r| r.truncated).collect();
    let keys: Vec<&str> = rejected.iter().map(|r| r.routing_key.as_str()).collect();
    let headers: Vec<&serde_json::Value> = rejected.iter().map(|r| &r.headers).collect();
    let reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
    super::execute(
        tx,
        "INSERT INTO rejected_messages (body, body_size, body_sha256, truncated, routing_key, headers, reason)
         SELECT * FROM unnest($1::bytea[], $2::int4[], $3::bytea[], $4::bool[], $5::text[], $6::jsonb[], $7::text[])",
        &[&bodies, &sizes, &hashes, &truncated, &keys, &headers, &reasons],
    )
    .await?;
    Ok(())
}
