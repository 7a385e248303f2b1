//! The poller: claims due retries (and deliveries whose worker died) from Postgres.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Dispatch;
use crate::store::dispatch::{self as sql, Job};

pub async fn run_poller(
    dispatch: Arc<Dispatch>,
    jobs: mpsc::Sender<Job>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let wait = match poll_once(&dispatch, &jobs).await {
            Ok(Some(wait)) => wait.min(interval),
            Ok(None) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim due deliveries");
                interval
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = dispatch.wake_poller.notified() => {}
        }
    }
}

/// Claims what fits and returns how long to wait: zero when it took all it could and more may
/// be due, else until the next retry falls due.
async fn poll_once(dispatch: &Dispatch, jobs: &mpsc::Sender<Job>) -> crate::store::Result<Option<Duration>> {
    let client = dispatch.pool.get().await?;
    let free = dispatch.capacity.saturating_sub(dispatch.outstanding());
    if free > 0 {
        let limit = i64::try_from(free).unwrap_or(i64::MAX);
        let per_url = i64::try_from(dispatch.per_host).unwrap_or(i64::MAX);
        let skip = dispatch.saturated_urls();
        let held = dispatch.held();
        let claimed = sql::claim_due(
            &client,
            dispatch.owner,
            dispatch.lease,
            limit,
            per_url,
            &skip,
            &held,
        )
        .await?;
        let full = claimed.len() == free;
        let mut unsent = Vec::new();
        for job in claimed {
            if let Err(job) = dispatch.submit(jobs, job).await {
                unsent.push(job.delivery_id);
            }
        }
        super::release(dispatch, &unsent).await;
        if full {
            return Ok(Some(Duration::ZERO));
        }
    }
    let (due, next) = sql::due_summary(&client).await?;
    dispatch.metrics.retries_due.set(due);
    Ok(next.map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)))
}
