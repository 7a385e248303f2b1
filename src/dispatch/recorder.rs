//! The recorder: writes attempt outcomes many at a time, then hands each (conversion, URL)
//! pair's next due delivery on, so a newer status starts as soon as the older one ends.

use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use tokio::sync::mpsc;

use super::Dispatch;
use crate::store::dispatch::{self as sql, AttemptRecord, Claimed, DeliveryState, Job};

/// Most outcomes written in one transaction.
const BATCH: usize = 512;

/// What a dispatch task hands back.
#[derive(Debug)]
pub enum Done {
    Attempt(AttemptRecord),
    /// Claimed but not started (delivery id): give the lease back.
    Release(i64),
}

/// Runs until every sender of `done` is gone, so nothing handed back is lost at shutdown.
/// Several recorders share `done`, so one batch's commit overlaps the next one's writes.
pub async fn run_recorder(
    dispatch: Arc<Dispatch>,
    done: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Done>>>,
    jobs: mpsc::Sender<Job>,
) {
    loop {
        let batch = {
            let mut done = done.lock().await;
            let Some(first) = done.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match done.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
            batch
        };
        let mut records = Vec::new();
        let mut releases = Vec::new();
        for d in batch {
            match d {
                Done::Attempt(r) => records.push(r),
                Done::Release(id) => releases.push(id),
            }
        }
        // Each step is retried on its own, so a failure after a commit never repeats it.
        if !records.is_empty() {
            let (d, recs) = (&*dispatch, &records);
            persist(d, "record attempts", || async move {
                let mut client = d.pool.get().await?;
                sql::record(&mut client, d.owner, recs).await
            })
            .await;
        }
        release(&dispatch, &releases).await;
        let ids: Vec<i64> = records.iter().map(|r| r.delivery_id).chain(releases).collect();
        dispatch.recorded(&ids);
        count(&dispatch, &records);
        if records.iter().any(|r| r.state == DeliveryState::Pending) {
            dispatch.wake_poller.notify_one();
        }
        let followers = claim_followers(&dispatch, &records).await;
        dispatch.submit_all(&jobs, followers).await;
    }
}

/// Retries a write until it succeeds: an outcome is never dropped while the database is away
/// (the lease may expire meanwhile; then the delivery is sent again, with the same key). Only
/// shutdown's deadline ([`Dispatch::halt`]) ends the retries.
async fn persist<F, Fut>(dispatch: &Dispatch, what: &str, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = crate::store::Result<()>>,
{
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .build();
    loop {
        match op().await {
            Ok(()) => return,
            Err(e) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %crate::report::one_line(&e), retry_in_ms = delay.as_millis() as u64, owner = %dispatch.owner, "cannot {what}; retrying");
                tokio::select! {
                    _ = dispatch.halt.cancelled() => {
                        tracing::warn!(owner = %dispatch.owner, "shutdown deadline: could not {what}; leases expire and the deliveries are sent again");
                        return;
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Gives back leases of claimed jobs that were not started.
pub(super) async fn release(dispatch: &Dispatch, ids: &[i64]) {
    if ids.is_empty() {
        return;
    }
    persist(dispatch, "release leases", || async move {
        let client = dispatch.pool.get().await?;
        sql::release(&client, dispatch.owner, ids).await.map(|_| ())
    })
    .await;
}

/// The next due delivery of each (conversion, URL) whose attempt just ended. Best effort: what
/// is not handed on here, the poller claims.
async fn claim_followers(dispatch: &Dispatch, records: &[AttemptRecord]) -> Vec<Job> {
    let mut pairs = dispatch.take_waiting(records.iter().map(|r| (r.event.conversion_id.clone(), r.url_id)));
    if pairs.is_empty() {
        return Vec::new();
    }
    pairs.sort_unstable();
    pairs.dedup();
    let claimed = async {
        let client = dispatch.pool.get().await?;
        sql::claim_followers(&client, dispatch.owner, dispatch.lease, &pairs).await
    };
    match claimed.await {
        Ok(claimed) => runnable(dispatch, claimed).await,
        Err(e) => {
            tracing::warn!(error = %crate::report::one_line(&e), "cannot hand on followers; the poller will claim them");
            Vec::new()
        }
    }
}

/// The claimed jobs that can run; a delivery whose stored event does not decode is failed
/// with the reason (never sent from a guess, never claimed again).
pub(super) async fn runnable(dispatch: &Dispatch, claimed: Claimed) -> Vec<Job> {
    if !claimed.undecodable.is_empty() {
        for (delivery_id, reason) in &claimed.undecodable {
            tracing::error!(delivery_id, reason = %reason, "delivery failed: its stored event does not decode");
        }
        let bad = &claimed.undecodable;
        persist(dispatch, "fail undecodable deliveries", || async move {
            let client = dispatch.pool.get().await?;
            sql::fail_undecodable(&client, dispatch.owner, bad)
                .await
                .map(|_| ())
        })
        .await;
        dispatch.metrics.delivery("failed", bad.len() as u64);
    }
    claimed.jobs
}

fn count(dispatch: &Dispatch, records: &[AttemptRecord]) {
    for r in records {
        // An attempt that leaves its delivery pending scheduled a retry; any other state is
        // counted under its own name.
        let outcome = match r.state {
            DeliveryState::Pending => "retried",
            other => other.as_str(),
        };
        dispatch.metrics.delivery(outcome, 1);
    }
}
