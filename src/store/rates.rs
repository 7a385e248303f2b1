//! Per-URL rate limits: the URL's setting, and the slots every replica takes from one row per
//! URL (`url_rate_buckets.tat`, the generic cell rate algorithm's theoretical arrival time).
//!
//! A send takes the next slot: `tat` moves on by one interval (1 / rate). The slot is now when
//! `tat` is at most `burst - 1` intervals ahead of now; otherwise the delivery keeps its slot
//! (`url_rate_slots`), waits until it, and is then sent without taking another. Every send of a
//! URL, on any replica, takes one slot in the one row, so the rate holds in total.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::Result;
use crate::url_spec::rate::{Per, RateLimit};

/// Sets or clears a URL's rate limit; false when no URL (not removed) has that id.
pub async fn set(client: &impl GenericClient, url_id: i64, rate: Option<RateLimit>) -> Result<bool> {
    let (count, unit, burst) = match rate {
        Some(r) => (Some(r.count as i32), Some(r.per.as_str()), Some(r.burst as i32)),
        None => (None, None, None),
    };
    let n = client
        .execute(
            "UPDATE cross_postback_urls SET rate_count = $2, rate_unit = $3, rate_burst = $4,
                 updated_at = now()
             WHERE id = $1 AND removed_at IS NULL",
            &[&url_id, &count, &unit, &burst],
        )
        .await?;
    Ok(n == 1)
}

/// The rate of a row that selected `rate_count`, `rate_unit` and `rate_burst`; `None` when it
/// has none or did not select them.
pub fn of_row(row: &tokio_postgres::Row) -> Option<RateLimit> {
    let count: i32 = row.try_get::<_, Option<i32>>("rate_count").ok().flatten()?;
    let unit: String = row.try_get::<_, Option<String>>("rate_unit").ok().flatten()?;
    let burst: i32 = row.try_get::<_, Option<i32>>("rate_burst").ok().flatten()?;
    Some(RateLimit {
        count: u32::try_from(count).ok()?,
        per: Per::from_stored(&unit),
        burst: u32::try_from(burst).ok()?,
    })
}

/// Every URL with a rate limit.
pub async fn all(client: &impl GenericClient) -> Result<Vec<(i64, RateLimit)>> {
    let rows = client
        .query(
            "SELECT id, rate_count, rate_unit, rate_burst FROM cross_postback_urls
             WHERE rate_count IS NOT NULL AND removed_at IS NULL",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.get::<_, i64>(0), of_row(r)?)))
        .collect())
}

/// When delivery `delivery_id` to `url_id` may be sent: `None` now (a slot taken or its kept
/// slot reached), or the time of the slot it keeps.
pub async fn slot(
    client: &impl GenericClient,
    url_id: i64,
    delivery_id: i64,
    rate: &RateLimit,
) -> Result<Option<DateTime<Utc>>> {
    let kept = client
        .query_opt(
            "SELECT slot, slot <= now() FROM url_rate_slots WHERE delivery_id = $1",
            &[&delivery_id],
        )
        .await?;
    if let Some(row) = kept {
        if !row.get::<_, bool>(1) {
            return Ok(Some(row.get(0)));
        }
        client
            .execute(
                "DELETE FROM url_rate_slots WHERE delivery_id = $1",
                &[&delivery_id],
            )
            .await?;
        return Ok(None);
    }
    let interval = 1.0 / rate.per_second();
    let tolerance = f64::from(rate.burst.saturating_sub(1)) * interval;
    let take = "WITH b AS (SELECT greatest(tat, now()) AS t FROM url_rate_buckets
                           WHERE url_id = $1 FOR UPDATE)
                UPDATE url_rate_buckets u SET tat = b.t + $2::float8 * interval '1 second'
                FROM b WHERE u.url_id = $1
                RETURNING b.t - $3::float8 * interval '1 second' AS slot, now() AS now";
    let mut row = client.query_opt(take, &[&url_id, &interval, &tolerance]).await?;
    if row.is_none() {
        client
            .execute(
                "INSERT INTO url_rate_buckets (url_id, tat) VALUES ($1, now()) ON CONFLICT DO NOTHING",
                &[&url_id],
            )
            .await?;
        row = client.query_opt(take, &[&url_id, &interval, &tolerance]).await?;
    }
    let Some(row) = row else { return Ok(None) };
    let (slot, now): (DateTime<Utc>, DateTime<Utc>) = (row.get(0), row.get(1));
    if slot <= now {
        return Ok(None);
    }
    client
        .execute(
            "INSERT INTO url_rate_slots (delivery_id, slot) VALUES ($1, $2)
             ON CONFLICT (delivery_id) DO UPDATE SET slot = $2",
            &[&delivery_id, &slot],
        )
        .await?;
    Ok(Some(slot))
}

/// Puts a leased delivery back to wait for `slot`: no attempt, nothing counted. The caller then
/// gives its lease back.
pub async fn wait_for(
    client: &impl GenericClient,
    delivery_id: i64,
    owner: uuid::Uuid,
    slot: DateTime<Utc>,
) -> Result<()> {
    client
        .execute(
            "UPDATE deliveries SET next_attempt_at = $3, updated_at = now()
             WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
            &[&delivery_id, &owner, &slot],
        )
        .await?;
    Ok(())
}
