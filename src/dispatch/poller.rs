//! The poller: claims due retries (and deliveries whose worker died) from Postgres.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Dispatch;
use crate::store::dispatch::{self as sql, Job};

/// Never poll more often than this, even when something is due (a due delivery may be waiting
/// for another one to the same URL to end, and is then handed on by the recorder).
const MIN_WAIT: Duration = Duration::from_millis(20);

pub async fn run_poller(
    dispatch: Arc<Dispatch>,
    jobs: mpsc::Sender<Job>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let wait = match poll_once(&dispatch, &jobs).await {
            Ok(Some(wait)) => wait.clamp(MIN_WAIT, interval),
            Ok(None) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim due deliveries");
                interval
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = dispatch.wake_poller.notified() => {}
        }
    }
}

/// Claims what fits, and returns how long until the next delivery is due (`Some(0)` when it
/// claimed all it could take and more may be due).
async fn poll_once(dispatch: &Dispatch, jobs: &mpsc::Sender<Job>) -> crate::store::Result<Option<Duration>> {
    let client = dispatch.pool.get().await?;
    let free = dispatch
        .capacity
        .saturating_sub(dispatch.outstanding.load(Ordering::Relaxed));
    if free > 0 {
        let limit = i64::try_from(free).unwrap_or(i64::MAX);
        let claimed = sql::claim_due(&client, dispatch.owner, dispatch.lease, limit).await?;
        let full = claimed.len() == free;
        dispatch.outstanding.fetch_add(claimed.len(), Ordering::Relaxed);
        for job in claimed {
            if jobs.send(job).await.is_err() {
                dispatch.outstanding.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if full {
            return Ok(Some(Duration::ZERO));
        }
    }
    let (due, next) = sql::due_summary(&client).await?;
    dispatch.metrics.retries_due.set(due);
    Ok(next.map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)))
}
