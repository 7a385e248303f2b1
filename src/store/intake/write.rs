//! Writes a batch's plan: prepared first, then sent in a fixed order in one round trip (the
//! superseding UPDATE before the INSERT of the newer `pending` rows, which the unique index
//! `deliveries_one_pending` would refuse otherwise).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::Statement;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::{Logged, Message, Rejected};
use crate::event::Event;
use crate::plan::{Plan, Start};
use crate::store::dispatch::{HandOff, Job};
use crate::store::urls::UrlRow;

type Pg<'a> = tokio_postgres::Transaction<'a>;
type PgResult<T> = Result<T, tokio_postgres::Error>;

/// The lease of the deliveries this worker starts or holds.
pub(super) struct Lease {
    pub owner: Uuid,
    pub length: Duration,
    /// When it ends, as this process counts time (no attempt may start that outlives it).
    pub until: Instant,
}

/// A planned delivery with what it refers to.
struct New<'a> {
    event: &'a Arc<Event>,
    url: &'a Arc<UrlRow>,
    start: Start,
}

const SUPERSEDE: &str = "UPDATE deliveries SET state = 'superseded', updated_at = now()
    WHERE id = ANY($1) AND state = 'pending'";

/// One round trip: the ids are drawn, the rows inserted, and the ids returned in the batch's
/// order (the CTE is materialised once: it is read twice and calls nextval).
const INSERT_DELIVERIES: &str = "WITH t AS (
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
    SELECT id FROM t ORDER BY ord";

/// The conversions' new state: an UPDATE of the stored ones, then an INSERT of the others. Not
/// `INSERT … ON CONFLICT`, whose speculative insertion writes one more WAL record per row: the
/// batch holds every one of its conversions' advisory locks, so no other intake inserts one of
/// them meanwhile.
const UPSERT_CONVERSIONS: &str = "WITH new AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
                             $7::timestamptz[])
            AS new(conversion_id, offer_id, affiliate_id, status, last_announced, history, updated_at)
    ), updated AS (
        UPDATE conversions c SET
            offer_id = new.offer_id, affiliate_id = new.affiliate_id, status = new.status,
            last_announced = new.last_announced, history = new.history,
            updated_at = new.updated_at, modified_at = now()
        FROM new WHERE c.conversion_id = new.conversion_id
        RETURNING c.conversion_id
    )
    INSERT INTO conversions
        (conversion_id, offer_id, affiliate_id, status, last_announced, history, updated_at)
    SELECT * FROM new WHERE conversion_id NOT IN (SELECT conversion_id FROM updated)";

const INSERT_REJECTED: &str = "INSERT INTO rejected_messages
        (body, body_size, body_sha256, truncated, routing_key, headers, reason)
    SELECT * FROM unnest($1::bytea[], $2::int4[], $3::bytea[], $4::bool[], $5::text[], $6::jsonb[],
                         $7::text[])";

/// Writes the plan and says what dispatch takes over after the ack.
pub(super) async fn write_plan(
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &Plan,
    urls: &[Arc<UrlRow>],
    messages: &[Message],
    lease: &Lease,
) -> PgResult<Logged> {
    let new: Vec<New> = plan
        .deliveries
        .iter()
        .filter_map(|d| match (messages.get(d.event), urls.get(d.url)) {
            (Some(Message::Valid(event)), Some(url)) => Some(New {
                event,
                url,
                start: d.start,
            }),
            _ => None,
        })
        .collect();
    let rejected: Vec<&Rejected> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Invalid(r) => Some(r),
            Message::Valid(_) => None,
        })
        .collect();
    let (supersede, insert, upsert, reject) = tokio::try_join!(
        prepare(tx, !plan.supersede.is_empty(), SUPERSEDE),
        prepare(tx, !new.is_empty(), INSERT_DELIVERIES),
        prepare(tx, !plan.conversions.is_empty(), UPSERT_CONVERSIONS),
        prepare(tx, !rejected.is_empty(), INSERT_REJECTED),
    )?;
    let pg: &Pg<'_> = tx;
    let superseded: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[&plan.supersede];
    let (_, ids, _, _) = tokio::try_join!(
        biased;
        run(pg, supersede.as_ref(), superseded),
        insert_deliveries(pg, insert.as_ref(), &new, lease),
        upsert_conversions(pg, upsert.as_ref(), plan, messages),
        insert_rejected(pg, reject.as_ref(), &rejected),
    )?;
    Ok(Logged {
        decisions: plan.decisions.clone(),
        deliveries: plan.deliveries.len(),
        superseded: plan.superseded(),
        hand_off: hand_off(&new, &ids, lease.until),
    })
}

/// A statement through the connection's cache, when it is needed.
async fn prepare(
    tx: &deadpool_postgres::Transaction<'_>,
    needed: bool,
    sql: &str,
) -> PgResult<Option<Statement>> {
    Ok(match needed {
        true => Some(tx.prepare_cached(sql).await?),
        false => None,
    })
}

/// Runs a prepared statement (its messages are written on the first poll), or nothing.
async fn run(
    pg: &Pg<'_>,
    statement: Option<&Statement>,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> PgResult<u64> {
    match statement {
        Some(statement) => pg.execute(statement, params).await,
        None => Ok(0),
    }
}

/// Inserts the new deliveries; returns their ids in the plan's order.
async fn insert_deliveries(
    pg: &Pg<'_>,
    statement: Option<&Statement>,
    new: &[New<'_>],
    lease: &Lease,
) -> PgResult<Vec<i64>> {
    let Some(statement) = statement else {
        return Ok(Vec::new());
    };
    let conversions: Vec<&str> = new.iter().map(|n| n.event.conversion_id.as_str()).collect();
    let url_ids: Vec<i64> = new.iter().map(|n| n.url.id).collect();
    let statuses: Vec<&str> = new.iter().map(|n| n.event.status.as_str()).collect();
    let events: Vec<Json<&Event>> = new.iter().map(|n| Json(&**n.event)).collect();
    let states: Vec<&str> = new
        .iter()
        .map(|n| match n.start {
            Start::Superseded => "superseded",
            Start::AfterAck | Start::Waits => "pending",
        })
        .collect();
    // Leased: first attempts, and waiting deliveries (so nobody sends them before the ack).
    let leased: Vec<bool> = new.iter().map(|n| n.start != Start::Superseded).collect();
    let lease_ms = lease.length.as_millis() as f64;
    let rows = pg
        .query(
            statement,
            &[
                &conversions,
                &url_ids,
                &statuses,
                &events,
                &states,
                &lease.owner,
                &lease_ms,
                &leased,
            ],
        )
        .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// What dispatch takes over once the batch is acked.
fn hand_off(new: &[New<'_>], ids: &[i64], lease_until: Instant) -> HandOff {
    let mut hand_off = HandOff::default();
    for (n, &id) in new.iter().zip(ids) {
        match n.start {
            Start::AfterAck => hand_off.jobs.push(Job {
                delivery_id: id,
                attempt: 1,
                retry_base: 0,
                event: Arc::clone(n.event),
                url: Arc::clone(n.url),
                lease_until,
            }),
            Start::Waits => {
                hand_off.waiting.push((n.event.conversion_id.clone(), n.url.id));
                hand_off.held_until_acked.push(id);
            }
            Start::Superseded => {}
        }
    }
    hand_off
}

async fn upsert_conversions(
    pg: &Pg<'_>,
    statement: Option<&Statement>,
    plan: &Plan,
    messages: &[Message],
) -> PgResult<u64> {
    let Some(statement) = statement else {
        return Ok(0);
    };
    let n = plan.conversions.len();
    let mut ids = Vec::with_capacity(n);
    let (mut offers, mut affiliates, mut statuses, mut announced, mut histories, mut times) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::<DateTime<Utc>>::with_capacity(n),
    );
    for c in &plan.conversions {
        let Some(Message::Valid(event)) = messages.get(c.event) else {
            continue;
        };
        let newest = c.history.accepted.last();
        ids.push(c.conversion_id.as_str());
        offers.push(event.offer_id.as_str());
        affiliates.push(event.affiliate_id.as_str());
        statuses.push(newest.map_or(event.status, |e| e.status).as_str());
        announced.push(c.history.last_announced.map(|s| s.as_str()));
        times.push(newest.map_or(event.updated_at, |e| e.updated_at));
        histories.push(Json(&c.history));
    }
    pg.execute(
        statement,
        &[
            &ids,
            &offers,
            &affiliates,
            &statuses,
            &announced,
            &histories,
            &times,
        ],
    )
    .await
}

async fn insert_rejected(
    pg: &Pg<'_>,
    statement: Option<&Statement>,
    rejected: &[&Rejected],
) -> PgResult<u64> {
    let Some(statement) = statement else {
        return Ok(0);
    };
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
    pg.execute(
        statement,
        &[&bodies, &sizes, &hashes, &truncated, &keys, &headers, &reasons],
    )
    .await
}
