//! `deliveries` and `attempts` on the dispatch side: claim due deliveries with a lease, record
//! attempts (many in one transaction), hand a conversion's next delivery to the same URL on
//! once the one in flight ends, and give back leases of deliveries that will not be sent now.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::Result;
use super::urls::{self, UrlRow};
use crate::event::Event;
use crate::retry::ErrorCode;

mod kinds;
pub use kinds::{DeliveryState, Method};

/// One claimed delivery, ready for its next attempt.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery_id: i64,
    /// The number of the attempt about to be made (1 for the first).
    pub attempt: i32,
    /// The attempts made before the current round: 0, or as many as the delivery had when it
    /// was last redelivered (`cross-postback redeliver`). See [`Job::schedule_attempt`].
    pub retry_base: i32,
    pub event: Arc<Event>,
    pub url: Arc<UrlRow>,
    /// When this worker's lease ends; no attempt may start that could outlive it.
    pub lease_until: Instant,
}

impl Job {
    /// This attempt's place in the retry schedule: 1 for the first attempt of a round (the first
    /// ever, or the first after a redelivery), so a redelivered delivery gets the whole schedule.
    pub fn schedule_attempt(&self) -> u32 {
        u32::try_from(self.attempt - self.retry_base).unwrap_or(1).max(1)
    }
}

/// What a committed intake batch hands to dispatch once its messages are acked.
#[derive(Debug, Default)]
pub struct HandOff {
    /// First attempts leased to this worker, to start right after the ack.
    pub jobs: Vec<Job>,
    /// (conversion, URL) pairs whose new delivery waits for an attempt in flight to end.
    pub waiting: Vec<(String, i64)>,
    /// Those waiting deliveries: leased to this worker until its messages are acked, so no one
    /// (this worker's poller included) sends them before; then released.
    pub held_until_acked: Vec<i64>,
}

/// The end of one attempt, as recorded.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub url_id: i64,
    pub url: String,
    pub method: Method,
    pub event: Arc<Event>,
    pub attempt: i32,
    pub http_code: Option<i32>,
    pub error_code: Option<ErrorCode>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub duration_ms: i32,
    pub sent_at: DateTime<Utc>,
    /// The delivery's state after this attempt: pending (retry due at `next_attempt_at`),
    /// delivered or failed.
    pub state: DeliveryState,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The claim, in two steps: pick candidates, then lock them with SKIP LOCKED, re-check, and
/// lease them. `{cand}` picks (id, next_attempt_at) rows.
///
/// The second step and the lease are the same for both forms of the claim. The event's
/// `conversion_id` and `status` are read from the row's own columns: this release still stores
/// them in `event` too, with the same values, so a later release can stop storing them twice while
/// replicas of this one still run (a rolling upgrade) and read its rows right.
const CLAIM: &str = "
    WITH cand AS ({cand}), c AS (
        SELECT d.id FROM deliveries d JOIN cand ON cand.id = d.id
        WHERE d.state = 'pending' AND (d.lease_until IS NULL OR d.lease_until < now())
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE deliveries d
    SET lease_owner = $1, lease_until = now() + $2::float8 * interval '1 millisecond', updated_at = now()
    FROM c, cross_postback_urls u
    WHERE d.id = c.id AND u.id = d.url_id AND u.enabled AND u.removed_at IS NULL
    RETURNING d.id AS delivery_id, d.attempts, d.retry_base,
              d.event || jsonb_build_object('conversion_id', d.conversion_id, 'status', d.status) AS event,
              u.id, u.offer_id, u.url, u.method, u.goal, u.statuses, u.body, u.content_type,
              u.follow_redirects, u.enabled, u.headers, u.timeout_ms";

/// A due delivery that may be claimed: not leased, and no other delivery of its conversion and
/// URL under a live lease (one attempt in flight per pair, across replicas). That other one
/// cannot be pending (`deliveries_one_pending` allows one per pair, and `d` is it), so the check
/// reads `deliveries_in_flight`, which holds only the leased deliveries that are not pending.
const CLAIMABLE: &str = "d.state = 'pending' AND d.next_attempt_at <= now()
    AND (d.lease_until IS NULL OR d.lease_until < now())
    AND NOT EXISTS (
        SELECT 1 FROM deliveries s
        WHERE s.conversion_id = d.conversion_id AND s.url_id = d.url_id
          AND s.id <> d.id AND s.state <> 'pending' AND s.lease_until > now())";

/// Candidates for due deliveries: for each enabled URL (none of `$5`, whose hosts are busy), its
/// oldest claimable deliveries, at most `$4` (one slow receiver cannot take every slot), read
/// from `deliveries_pending_by_url` (url_id, next_attempt_at) and stopping at the limit; then the
/// oldest `$3` of those. So a poll reads about as many rows as it may claim, plus one index probe
/// per URL and the rows it skips (leased ones, held ones `$6`), whatever the backlog behind them.
pub static CLAIM_DUE: LazyLock<String> = LazyLock::new(|| {
    let cand = format!(
        "SELECT x.id, x.next_attempt_at
        FROM cross_postback_urls u
        CROSS JOIN LATERAL (
            SELECT d.id, d.next_attempt_at FROM deliveries d
            WHERE d.url_id = u.id AND {CLAIMABLE} AND NOT (d.id = ANY($6::bigint[]))
            ORDER BY d.next_attempt_at
            LIMIT $4
        ) x
        WHERE u.enabled AND u.removed_at IS NULL AND NOT (u.id = ANY($5::bigint[]))
        ORDER BY x.next_attempt_at
        LIMIT $3"
    );
    CLAIM.replace("{cand}", &cand)
});

/// Candidates for the next delivery of given (conversion, URL) pairs `$5`, `$6`: at most one
/// pending each (`deliveries_one_pending`), so `$3` and `$4` bound nothing more than the pairs.
static CLAIM_PAIRS: LazyLock<String> = LazyLock::new(|| {
    let cand = format!(
        "SELECT d.id, d.next_attempt_at
        FROM unnest($5::text[], $6::bigint[]) AS p(conversion_id, url_id)
        JOIN deliveries d ON d.conversion_id = p.conversion_id AND d.url_id = p.url_id
        WHERE {CLAIMABLE} AND $4::int8 > 0
        ORDER BY d.next_attempt_at
        LIMIT $3"
    );
    CLAIM.replace("{cand}", &cand)
});

/// What a claim leased: jobs ready to run, and deliveries whose stored event no longer
/// decodes (delivery id, why), which must be failed rather than sent from a guess.
#[derive(Debug, Default)]
pub struct Claimed {
    pub jobs: Vec<Job>,
    pub undecodable: Vec<(i64, String)>,
}

/// Claims up to `limit` due deliveries, at most `per_url` for any one URL, none for the URLs
/// in `skip` (their hosts are busy with this worker's jobs already) and none of `held` (this
/// worker's own jobs whose outcome is not recorded yet: after a database outage longer than the
/// lease, one must not be claimed and sent again while its record waits to be written).
pub async fn claim_due(
    client: &impl GenericClient,
    owner: Uuid,
    lease: Duration,
    limit: i64,
    per_url: i64,
    skip: &[i64],
    held: &[i64],
) -> Result<Claimed> {
    claim(client, &CLAIM_DUE, owner, lease, limit, per_url, &[&skip, &held]).await
}

/// Claims the next due delivery of each (conversion, URL) pair whose attempt just ended.
pub async fn claim_followers(
    client: &impl GenericClient,
    owner: Uuid,
    lease: Duration,
    pairs: &[(String, i64)],
) -> Result<Claimed> {
    if pairs.is_empty() {
        return Ok(Claimed::default());
    }
    let conversions: Vec<&str> = pairs.iter().map(|(c, _)| c.as_str()).collect();
    let urls: Vec<i64> = pairs.iter().map(|(_, u)| *u).collect();
    let limit = i64::try_from(pairs.len()).unwrap_or(i64::MAX);
    claim(
        client,
        &CLAIM_PAIRS,
        owner,
        lease,
        limit,
        limit,
        &[&conversions, &urls],
    )
    .await
}

/// Runs one form of [`CLAIM`] with its filter's two parameters.
async fn claim(
    client: &impl GenericClient,
    sql: &str,
    owner: Uuid,
    lease: Duration,
    limit: i64,
    per_url: i64,
    filter: &[&(dyn ToSql + Sync); 2],
) -> Result<Claimed> {
    let started = Instant::now();
    let lease_ms = lease.as_millis() as f64;
    let rows = super::query(
        client,
        sql,
        &[&owner, &lease_ms, &limit, &per_url, filter[0], filter[1]],
    )
    .await?;
    let lease_until = lease_end(started, lease);
    let mut claimed = Claimed::default();
    for row in &rows {
        match job_from_row(row, lease_until) {
            Ok(job) => claimed.jobs.push(job),
            Err(undecodable) => claimed.undecodable.push(undecodable),
        }
    }
    Ok(claimed)
}

/// When a lease taken at `started` ends, saturating (a lease too long to add ends in a
/// century, which no attempt outlives).
pub fn lease_end(started: Instant, lease: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
    started.checked_add(lease.min(CENTURY)).unwrap_or(started)
}

fn job_from_row(row: &tokio_postgres::Row, lease_until: Instant) -> std::result::Result<Job, (i64, String)> {
    let delivery_id: i64 = row.get("delivery_id");
    let event: serde_json::Value = row.get("event");
    let event: Event = serde_json::from_value(event)
        .map_err(|e| (delivery_id, format!("the stored event does not decode: {e}")))?;
    let attempts: i32 = row.get("attempts");
    Ok(Job {
        delivery_id,
        attempt: attempts + 1,
        retry_base: row.get("retry_base"),
        event: Arc::new(event),
        url: Arc::new(UrlRow::from_row(row)),
        lease_until,
    })
}

/// Fails leased deliveries whose stored event does not decode, each with an attempt row
/// (error code `render`, the reason) made from what the delivery row itself holds: nothing
/// is sent from a guessed event, and the delivery is not claimed again.
pub async fn fail_undecodable(
    client: &impl GenericClient,
    owner: Uuid,
    failed: &[(i64, String)],
) -> Result<u64> {
    if failed.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = failed.iter().map(|(id, _)| *id).collect();
    let reasons: Vec<&str> = failed.iter().map(|(_, r)| r.as_str()).collect();
    super::execute(
        client,
        "WITH f AS (
             UPDATE deliveries d SET state = 'failed', attempts = d.attempts + 1,
                 next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = now()
             FROM unnest($2::bigint[], $3::text[]) AS x(id, reason), cross_postback_urls u
             WHERE d.id = x.id AND d.lease_owner = $1 AND d.state = 'pending' AND u.id = d.url_id
             RETURNING d.id, d.url_id, u.url, u.method, d.conversion_id, u.offer_id, d.status,
                       d.attempts, x.reason
         )
         INSERT INTO attempts (delivery_id, url_id, url, method, conversion_id, affiliate_id,
             offer_id, status, attempt, error_code, error, duration_ms, sent_at)
         SELECT f.id, f.url_id, f.url, f.method, f.conversion_id, coalesce(c.affiliate_id, ''),
                f.offer_id, f.status, f.attempts, 'render', f.reason, 0, now()
         FROM f LEFT JOIN conversions c ON c.conversion_id = f.conversion_id",
        &[&owner, &ids, &reasons],
    )
    .await
}

/// A URL's current row, if it is still enabled and not removed.
pub async fn current_url(client: &impl GenericClient, url_id: i64) -> Result<Option<UrlRow>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {} FROM cross_postback_urls WHERE id = $1 AND enabled AND removed_at IS NULL",
            urls::COLUMNS
        )
    });
    let rows = super::query(client, &SQL, &[&url_id]).await?;
    Ok(rows.first().map(UrlRow::from_row))
}

/// Records attempts and updates their deliveries in one transaction. A delivery whose lease
/// this worker no longer holds keeps its state (the attempt row is still written: it happened).
/// Written again after a lost answer to a commit that was done, it adds nothing: an attempt
/// already recorded (same delivery, number and `sent_at`: `attempts_once`) is skipped, and the
/// deliveries' leases are no longer this worker's.
/// One superseded while its attempt was in flight is never retried; it ends `delivered` when
/// that attempt was (the receiver has the older status), and stays `superseded` otherwise.
pub async fn record(
    client: &mut deadpool_postgres::Client,
    owner: Uuid,
    records: &[AttemptRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    // Borrowed from the records: nothing is copied to be bound.
    let col = |f: for<'r> fn(&'r AttemptRecord) -> Option<&'r str>| records.iter().map(f).collect::<Vec<_>>();
    let delivery_ids: Vec<i64> = records.iter().map(|r| r.delivery_id).collect();
    let url_ids: Vec<i64> = records.iter().map(|r| r.url_id).collect();
    let urls = col(|r| Some(&r.url));
    let methods = col(|r| Some(r.method.as_str()));
    let conversions = col(|r| Some(&r.event.conversion_id));
    let affiliates = col(|r| Some(&r.event.affiliate_id));
    let affiliate_names = col(|r| r.event.field("affiliate_name"));
    let offers = col(|r| Some(&r.event.offer_id));
    let offer_names = col(|r| r.event.field("offer_name"));
    let goals = col(|r| r.event.field("goal"));
    let statuses = col(|r| Some(r.event.status.as_str()));
    let payouts: Vec<Option<Decimal>> = records.iter().map(|r| r.event.payout).collect();
    let revenues: Vec<Option<Decimal>> = records.iter().map(|r| r.event.revenue).collect();
    let currencies = col(|r| r.event.field("currency"));
    let comments = col(|r| r.event.field("comment"));
    let attempt_nos: Vec<i32> = records.iter().map(|r| r.attempt).collect();
    let codes: Vec<Option<i32>> = records.iter().map(|r| r.http_code).collect();
    let error_codes = col(|r| r.error_code.map(ErrorCode::as_str));
    let errors = col(|r| r.error.as_deref());
    let excerpts = col(|r| r.response_excerpt.as_deref());
    let durations: Vec<i32> = records.iter().map(|r| r.duration_ms).collect();
    let sent: Vec<DateTime<Utc>> = records.iter().map(|r| r.sent_at).collect();
    let states: Vec<&str> = records.iter().map(|r| r.state.as_str()).collect();
    let next: Vec<Option<DateTime<Utc>>> = records.iter().map(|r| r.next_attempt_at).collect();
    let insert_params: &[&(dyn ToSql + Sync)] = &[
        &delivery_ids,
        &url_ids,
        &urls,
        &methods,
        &conversions,
        &affiliates,
        &affiliate_names,
        &offers,
        &offer_names,
        &goals,
        &statuses,
        &payouts,
        &revenues,
        &currencies,
        &comments,
        &attempt_nos,
        &codes,
        &error_codes,
        &errors,
        &excerpts,
        &durations,
        &sent,
    ];
    let update_params: &[&(dyn ToSql + Sync)] = &[&delivery_ids, &attempt_nos, &states, &next, &owner];
    // Both in one round trip.
    tokio::try_join!(
        super::execute(
            &tx,
            "INSERT INTO attempts (delivery_id, url_id, url, method, conversion_id, affiliate_id, affiliate_name,
            offer_id, offer_name, goal, status, payout, revenue, currency, comment, attempt, http_code,
            error_code, error, response_excerpt, duration_ms, sent_at)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::numeric[], $13::numeric[],
            $14::text[], $15::text[], $16::int4[], $17::int4[], $18::text[], $19::text[], $20::text[],
            $21::int4[], $22::timestamptz[])
         ON CONFLICT (delivery_id, attempt, sent_at) DO NOTHING",
            insert_params,
        ),
        super::execute(
            &tx,
            "UPDATE deliveries d SET
            attempts = greatest(d.attempts, u.attempt),
            state = CASE WHEN d.state = 'pending' THEN u.state
                WHEN d.state = 'superseded' AND u.state = 'delivered' THEN 'delivered'
                ELSE d.state END,
            next_attempt_at = CASE WHEN d.state = 'pending' THEN u.next_at ELSE d.next_attempt_at END,
            lease_owner = NULL, lease_until = NULL, updated_at = now()
         FROM unnest($1::bigint[], $2::int4[], $3::text[], $4::timestamptz[]) AS u(id, attempt, state, next_at)
         WHERE d.id = u.id AND d.lease_owner = $5",
            update_params,
        ),
    )?;
    tx.commit().await?;
    Ok(())
}

/// Gives back this worker's leases of deliveries it will not send now: claimed but not
/// started (shutdown, too little lease left), or written by intake to wait for an ack.
pub async fn release(client: &impl GenericClient, owner: Uuid, ids: &[i64]) -> Result<u64> {
    super::execute(
        client,
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE lease_owner = $1 AND id = ANY($2)",
        &[&owner, &ids],
    )
    .await
}

/// The most due deliveries [`due_summary`] counts: beyond it the count reads this (the metric
/// then says "at least"), so the count costs at most this many index entries whatever the backlog.
pub const DUE_COUNT_CAP: i64 = 10_000;

/// Pending deliveries due now (counted up to [`DUE_COUNT_CAP`]), and when the next one not yet
/// due will be (for the poller's sleep; the ones already due wait for a slot or for a delivery
/// in flight, which wake it). Both read `deliveries_pending_by_url` per enabled URL: the count
/// stops at the cap, the next time is one index probe per URL.
pub async fn due_summary(client: &impl GenericClient) -> Result<(i64, Option<DateTime<Utc>>)> {
    let rows = super::query(
        client,
        "SELECT
            (SELECT count(*) FROM (
                SELECT 1 FROM cross_postback_urls u
                CROSS JOIN LATERAL (
                    SELECT 1 FROM deliveries d
                    WHERE d.url_id = u.id AND d.state = 'pending' AND d.next_attempt_at <= now()
                    LIMIT $1) x
                WHERE u.enabled AND u.removed_at IS NULL
                LIMIT $1) due),
            (SELECT min(n.next_attempt_at) FROM cross_postback_urls u
             CROSS JOIN LATERAL (
                SELECT d.next_attempt_at FROM deliveries d
                WHERE d.url_id = u.id AND d.state = 'pending' AND d.next_attempt_at > now()
                ORDER BY d.next_attempt_at LIMIT 1) n
             WHERE u.enabled AND u.removed_at IS NULL)",
        &[&DUE_COUNT_CAP],
    )
    .await?;
    Ok(rows.first().map_or((0, None), |row| (row.get(0), row.get(1))))
}
