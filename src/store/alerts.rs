//! The automatic checks' SQL: URLs failing long enough to be disabled, each URL's 2xx share over
//! the last hour against its announced state (`url_alert_state`), and the alert outbox.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::Result;

/// One replica at a time runs the checks (a transaction-level advisory lock).
const CHECK_LOCK: i64 = 0x7870_625f_616c_7274; // "xpb_alrt"

/// A URL the checks talk about, with what they found.
#[derive(Debug, Clone)]
pub struct Found {
    pub url_id: i64,
    pub offer_id: String,
    pub url: String,
    pub attempts: i64,
    pub ok: i64,
    /// The last attempt's error code or HTTP code, as text.
    pub last_error: Option<String>,
    /// `url_alert_state.failing`, if the URL has a state.
    pub failing: Option<bool>,
}

/// Takes the checks' lock for the transaction; false when another replica holds it.
pub async fn try_lock(tx: &impl GenericClient) -> Result<bool> {
    let row = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&CHECK_LOCK])
        .await?;
    Ok(row.get(0))
}

/// Enabled URLs with at least `min` attempts after `since` (up to `now`), none a 2xx, whose
/// first attempt is older than `since` (so every attempt of that whole span failed).
pub async fn failing_since(
    tx: &impl GenericClient,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    min: i64,
) -> Result<Vec<Found>> {
    let rows = tx
        .query(
            "SELECT u.id, u.offer_id, u.url, count(*) AS n,
                    (array_agg(coalesce(a.error_code, a.http_code::text) ORDER BY a.sent_at DESC))[1] AS last
             FROM cross_postback_urls u
             JOIN attempts a ON a.url_id = u.id AND a.sent_at > $1 AND a.sent_at <= $2
             WHERE u.enabled AND u.removed_at IS NULL
             GROUP BY u.id
             HAVING count(*) >= $3
                AND count(*) FILTER (WHERE a.http_code BETWEEN 200 AND 299) = 0
                AND EXISTS (SELECT 1 FROM attempts o WHERE o.url_id = u.id AND o.sent_at <= $1)",
            &[&since, &now, &min],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Found {
            url_id: r.get(0),
            offer_id: r.get(1),
            url: r.get(2),
            attempts: r.get(3),
            ok: 0,
            last_error: r.get(4),
            failing: None,
        })
        .collect())
}

/// Disables a URL automatically with `reason` and cancels its pending deliveries; returns how
/// many were cancelled, or `None` when it was no longer enabled.
pub async fn disable(
    tx: &impl GenericClient,
    url_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<u64>> {
    super::urls::lock_offer_of(tx, url_id).await?;
    let n = tx
        .execute(
            "UPDATE cross_postback_urls
             SET enabled = false, auto_disabled = true, disabled_reason = $2, disabled_at = $3,
                 updated_at = now()
             WHERE id = $1 AND enabled AND removed_at IS NULL",
            &[&url_id, &reason, &now],
        )
        .await?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(super::urls::cancel_pending(tx, url_id).await?))
}

/// Each enabled URL with at least `min` attempts in the hour before `now`: its attempts, its
/// 2xx, and its announced state.
pub async fn last_hour(tx: &impl GenericClient, now: DateTime<Utc>, min: i64) -> Result<Vec<Found>> {
    let rows = tx
        .query(
            "SELECT u.id, u.offer_id, u.url, count(*) AS n,
                    count(*) FILTER (WHERE a.http_code BETWEEN 200 AND 299) AS ok, s.failing
             FROM cross_postback_urls u
             JOIN attempts a ON a.url_id = u.id
                  AND a.sent_at > $1::timestamptz - interval '1 hour' AND a.sent_at <= $1
             LEFT JOIN url_alert_state s ON s.url_id = u.id
             WHERE u.enabled AND u.removed_at IS NULL
             GROUP BY u.id, s.failing
             HAVING count(*) >= $2",
            &[&now, &min],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Found {
            url_id: r.get(0),
            offer_id: r.get(1),
            url: r.get(2),
            attempts: r.get(3),
            ok: r.get(4),
            last_error: None,
            failing: r.get(5),
        })
        .collect())
}

pub async fn set_failing(
    tx: &impl GenericClient,
    url_id: i64,
    failing: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO url_alert_state (url_id, failing, changed_at) VALUES ($1, $2, $3)
         ON CONFLICT (url_id) DO UPDATE SET failing = $2, changed_at = $3",
        &[&url_id, &failing, &now],
    )
    .await?;
    Ok(())
}

/// URLs disabled automatically and not enabled again (for the gauge).
pub async fn auto_disabled(client: &impl GenericClient) -> Result<i64> {
    let row = client
        .query_one(
            "SELECT count(*) FROM cross_postback_urls
             WHERE auto_disabled AND NOT enabled AND removed_at IS NULL",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Writes an alert, due at `now` (the time the checks ran as of).
pub async fn enqueue(
    tx: &impl GenericClient,
    url_id: i64,
    kind: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO alert_outbox (url_id, kind, payload, next_try_at) VALUES ($1, $2, $3, $4)",
        &[&url_id, &kind, payload, &now],
    )
    .await?;
    Ok(())
}

/// An alert taken to send: leased until `now` + `lease` so that another replica does not.
#[derive(Debug)]
pub struct Outgoing {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub tries: i32,
}

pub async fn claim_due(
    client: &impl GenericClient,
    now: DateTime<Utc>,
    lease: std::time::Duration,
    limit: i64,
) -> Result<Vec<Outgoing>> {
    let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1));
    let rows = client
        .query(
            "UPDATE alert_outbox SET next_try_at = $2
             WHERE id IN (SELECT id FROM alert_outbox
                          WHERE sent_at IS NULL AND failed_at IS NULL AND next_try_at <= $1
                          ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING id, kind, payload, tries",
            &[&now, &until, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Outgoing {
            id: r.get(0),
            kind: r.get(1),
            payload: r.get(2),
            tries: r.get(3),
        })
        .collect())
}

pub async fn sent(client: &impl GenericClient, id: i64, now: DateTime<Utc>) -> Result<()> {
    client
        .execute(
            "UPDATE alert_outbox SET sent_at = $2, tries = tries + 1 WHERE id = $1",
            &[&id, &now],
        )
        .await?;
    Ok(())
}

/// A try that failed: tried again at `retry_at`, or given up when `None`.
pub async fn try_failed(
    client: &impl GenericClient,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    client
        .execute(
            "UPDATE alert_outbox
             SET tries = tries + 1, last_error = $2,
                 next_try_at = coalesce($3, next_try_at),
                 failed_at = CASE WHEN $3::timestamptz IS NULL THEN $4::timestamptz END
             WHERE id = $1",
            &[&id, &error, &retry_at, &now],
        )
        .await?;
    Ok(())
}
