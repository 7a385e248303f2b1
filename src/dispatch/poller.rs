//! The poller: claims due retries (and deliveries whose worker died) from Postgres.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Dispatch;
use crate::store::StoreError;
use crate::store::dispatch::{self as sql, Job};

/// Why the poller stopped.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// The database refuses the poller's statements themselves (a table or column missing, a
    /// privilege revoked): no retry will ever be claimed again, so waiting would only hide it.
    #[error("the poller's statements no longer match the database schema")]
    Schema(#[source] StoreError),
}

/// Claims due deliveries until `stop`. A database that cannot be reached is waited out; one
/// that refuses the statements ends the poller with an error (the daemon then stops).
pub async fn run_poller(
    dispatch: Arc<Dispatch>,
    jobs: mpsc::Sender<Job>,
    interval: Duration,
    stop: CancellationToken,
) -> Result<(), PollerError> {
    loop {
        let wait = match poll_once(&dispatch, &jobs).await {
            Ok(Some(wait)) => wait.min(interval),
            Ok(None) => interval,
            Err(e) if refuses_the_statements(&e) => return Err(PollerError::Schema(e)),
            Err(e) => {
                tracing::warn!(error = %crate::report::one_line(&e), "cannot claim due deliveries");
                interval
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
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
        let full = claimed.jobs.len() + claimed.undecodable.len() == free;
        let runnable = super::recorder::runnable(dispatch, claimed).await;
        dispatch.submit_all(jobs, runnable).await;
        if full {
            return Ok(Some(Duration::ZERO));
        }
    }
    let (due, next) = sql::due_summary(&client).await?;
    dispatch.metrics.retries_due.set(due);
    Ok(next.map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)))
}

/// An error the server answered with class 42 (undefined table or column, insufficient
/// privilege, syntax): it comes back on every poll until the schema or the grants change.
fn refuses_the_statements(e: &StoreError) -> bool {
    match e {
        StoreError::Db(db) => db.code().is_some_and(|c| c.code().starts_with("42")),
        _ => false,
    }
}
