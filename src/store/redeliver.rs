//! `cross-postback redeliver`: put finished deliveries back to `pending`, due now, so the
//! daemon's poller sends each again as a new attempt with the same idempotency key.
//!
//! Locks: the intake transaction's per-conversion advisory locks, taken in the same hash order,
//! so a redelivery and a newer event of the same conversion serialise (and cannot deadlock): the
//! newer event then supersedes the redelivered delivery like any pending one. Then, as intake
//! does, the offers' locks, shared: a concurrent `urls disable` or `urls remove` (which takes
//! its URL's offer exclusively before it touches any row) waits and then cancels what was
//! queued, and a redelivery after it reads the URL disabled. No URL row is locked, so the two
//! cannot deadlock over the URL row and the delivery rows.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{Result, StoreError};

/// Why a delivery is not sent again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("its URL {0} was removed")]
    UrlRemoved(i64),
    #[error("its URL {0} is disabled (`urls enable {0}` first)")]
    UrlDisabled(i64),
    #[error("it is already pending, queued for its next attempt")]
    Pending,
    #[error("an attempt of it is in flight; try again when it has ended")]
    InFlight,
    #[error("{}, superseded it; --force sends it anyway", newer(*.0))]
    Superseded(Option<i64>),
    #[error(
        "delivery {0} of the same conversion and URL is pending, and only one may be; try again when it has ended"
    )]
    OtherPending(i64),
}

fn newer(id: Option<i64>) -> String {
    match id {
        Some(id) => format!("delivery {id}, a newer status to the same URL"),
        None => "a newer status to the same URL".into(),
    }
}

impl Refusal {
    /// A short label, for counting the deliveries `--failed` skipped.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::UrlRemoved(_) => "URL removed",
            Refusal::UrlDisabled(_) => "URL disabled",
            Refusal::Pending => "pending",
            Refusal::InFlight => "in flight",
            Refusal::Superseded(_) => "superseded",
            Refusal::OtherPending(_) => "another pending",
        }
    }
}

/// What is known of a delivery when deciding whether it may be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub url_id: i64,
    pub state: String,
    pub attempts: i32,
    /// Its lease has not expired: an attempt may be running right now.
    pub in_flight: bool,
    pub url_enabled: bool,
    pub url_removed: bool,
    /// The next newer delivery of the same conversion and URL, if any.
    pub newer: Option<i64>,
    /// Another delivery of the same conversion and URL in state `pending`, if any.
    pub other_pending: Option<i64>,
}

/// Whether a delivery may be sent again; `force` overrides only the superseding.
pub fn check(c: &Candidate, force: bool) -> std::result::Result<(), Refusal> {
    if c.url_removed {
        return Err(Refusal::UrlRemoved(c.url_id));
    }
    if !c.url_enabled {
        return Err(Refusal::UrlDisabled(c.url_id));
    }
    if c.state == "pending" {
        return Err(Refusal::Pending);
    }
    if c.in_flight {
        return Err(Refusal::InFlight);
    }
    if !force && let Some(newer) = c.newer {
        return Err(Refusal::Superseded(Some(newer)));
    }
    if let Some(other) = c.other_pending {
        return Err(Refusal::OtherPending(other));
    }
    if !force && c.state == "superseded" {
        return Err(Refusal::Superseded(None));
    }
    Ok(())
}

/// One delivery queued again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    /// The number of the attempt that will be made.
    pub next_attempt: i32,
}

/// What `redeliver --failed` did.
#[derive(Debug, Default)]
pub struct Batch {
    pub queued: Vec<Queued>,
    pub skipped: Vec<(i64, Refusal)>,
}

/// Queues one delivery again, or says why not.
pub async fn one(
    client: &mut deadpool_postgres::Client,
    id: i64,
    force: bool,
) -> Result<std::result::Result<Queued, Refusal>> {
    let tx = client.transaction().await?;
    let conversion: Option<String> = tx
        .query_opt("SELECT conversion_id FROM deliveries WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0));
    let Some(conversion) = conversion else {
        return Err(StoreError::Invalid(format!("no delivery with id {id}")));
    };
    lock_conversions(&tx, &[conversion]).await?;
    lock_offers(&tx, &[id]).await?;
    let candidate = candidates(&tx, &[id]).await?.pop();
    let Some(candidate) = candidate else {
        return Err(StoreError::Invalid(format!("no delivery with id {id}")));
    };
    if let Err(refusal) = check(&candidate, force) {
        return Ok(Err(refusal));
    }
    requeue(&tx, &[id]).await?;
    tx.commit().await?;
    Ok(Ok(Queued {
        id,
        next_attempt: candidate.attempts + 1,
    }))
}

/// Queues again every delivery in state `failed` (of one offer, updated since a time), skipping
/// the ones [`check`] refuses.
pub async fn failed(
    client: &mut deadpool_postgres::Client,
    offer: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> Result<Batch> {
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT id, conversion_id FROM deliveries
             WHERE state = 'failed'
               AND ($1::text IS NULL OR event->>'offer_id' = $1)
               AND ($2::timestamptz IS NULL OR updated_at >= $2)",
            &[&offer, &since],
        )
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let conversions: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    lock_conversions(&tx, &conversions).await?;
    lock_offers(&tx, &ids).await?;
    let mut batch = Batch::default();
    let mut ok = Vec::new();
    // Under the locks, again: one may have changed since it was picked.
    for c in candidates(&tx, &ids).await? {
        if c.state != "failed" {
            continue;
        }
        match check(&c, false) {
            Ok(()) => {
                ok.push(c.id);
                batch.queued.push(Queued {
                    id: c.id,
                    next_attempt: c.attempts + 1,
                });
            }
            Err(refusal) => batch.skipped.push((c.id, refusal)),
        }
    }
    requeue(&tx, &ok).await?;
    tx.commit().await?;
    Ok(batch)
}

/// The intake transaction's per-conversion locks, in its order.
async fn lock_conversions(tx: &impl GenericClient, conversions: &[String]) -> Result<()> {
    if conversions.is_empty() {
        return Ok(());
    }
    tx.execute(super::intake::LOCK_CONVERSIONS, &[&conversions])
        .await?;
    Ok(())
}

/// The intake transaction's shared locks on the offers of these deliveries' URLs, in its order.
async fn lock_offers(tx: &impl GenericClient, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let offers: Vec<String> = tx
        .query(
            "SELECT DISTINCT u.offer_id FROM deliveries d
             JOIN cross_postback_urls u ON u.id = d.url_id WHERE d.id = ANY($1)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute(super::intake::LOCK_OFFERS, &[&offers, &super::urls::OFFER_LOCKS])
        .await?;
    Ok(())
}

/// Reads and locks the deliveries, with what [`check`] needs to know of their neighbours.
async fn candidates(tx: &impl GenericClient, ids: &[i64]) -> Result<Vec<Candidate>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            "SELECT d.id, d.url_id, d.state, d.attempts,
                    coalesce(d.lease_until > now(), false) AS in_flight,
                    u.enabled, u.removed_at IS NOT NULL AS removed,
                    (SELECT min(n.id) FROM deliveries n
                     WHERE n.conversion_id = d.conversion_id AND n.url_id = d.url_id
                       AND n.id > d.id) AS newer,
                    (SELECT min(n.id) FROM deliveries n
                     WHERE n.conversion_id = d.conversion_id AND n.url_id = d.url_id
                       AND n.id <> d.id AND n.state = 'pending') AS other_pending
             FROM deliveries d JOIN cross_postback_urls u ON u.id = d.url_id
             WHERE d.id = ANY($1)
             ORDER BY d.id
             FOR UPDATE OF d",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Candidate {
            id: r.get(0),
            url_id: r.get(1),
            state: r.get(2),
            attempts: r.get(3),
            in_flight: r.get(4),
            url_enabled: r.get(5),
            url_removed: r.get(6),
            newer: r.get(7),
            other_pending: r.get(8),
        })
        .collect())
}

/// Back to `pending`, due now, lease cleared; the retry schedule starts again from here.
async fn requeue(tx: &impl GenericClient, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "UPDATE deliveries SET state = 'pending', next_attempt_at = now(), lease_owner = NULL,
                lease_until = NULL, retry_base = attempts, updated_at = now()
         WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered() -> Candidate {
        Candidate {
            id: 7,
            url_id: 3,
            state: "delivered".into(),
            attempts: 1,
            in_flight: false,
            url_enabled: true,
            url_removed: false,
            newer: None,
            other_pending: None,
        }
    }

    #[test]
    fn what_may_be_sent_again() {
        let with = |f: fn(&mut Candidate)| {
            let mut c = delivered();
            f(&mut c);
            c
        };
        let table: Vec<(Candidate, bool, std::result::Result<(), Refusal>)> = vec![
            (delivered(), false, Ok(())),
            (with(|c| c.state = "failed".into()), false, Ok(())),
            (with(|c| c.state = "cancelled".into()), false, Ok(())),
            (with(|c| c.state = "pending".into()), true, Err(Refusal::Pending)),
            (with(|c| c.in_flight = true), true, Err(Refusal::InFlight)),
            (
                with(|c| c.url_enabled = false),
                true,
                Err(Refusal::UrlDisabled(3)),
            ),
            (
                with(|c| {
                    c.url_enabled = false;
                    c.url_removed = true;
                }),
                true,
                Err(Refusal::UrlRemoved(3)),
            ),
            (
                with(|c| c.newer = Some(9)),
                false,
                Err(Refusal::Superseded(Some(9))),
            ),
            (with(|c| c.newer = Some(9)), true, Ok(())),
            (
                with(|c| {
                    c.state = "superseded".into();
                    c.newer = Some(9);
                }),
                false,
                Err(Refusal::Superseded(Some(9))),
            ),
            (
                with(|c| c.state = "superseded".into()),
                false,
                Err(Refusal::Superseded(None)),
            ),
            (with(|c| c.state = "superseded".into()), true, Ok(())),
            (
                with(|c| {
                    c.state = "superseded".into();
                    c.newer = Some(9);
                    c.other_pending = Some(9);
                }),
                false,
                Err(Refusal::Superseded(Some(9))),
            ),
            (
                with(|c| {
                    c.state = "superseded".into();
                    c.newer = Some(9);
                    c.other_pending = Some(9);
                }),
                true,
                Err(Refusal::OtherPending(9)),
            ),
        ];
        for (candidate, force, want) in table {
            assert_eq!(check(&candidate, force), want, "{candidate:?} force={force}");
        }
    }
}
