//! The recorder: writes attempt outcomes many at a time, then hands each (conversion, URL)
//! pair's next due delivery on, so a newer status starts as soon as the older one ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::BackoffBuilder;
use tokio::sync::mpsc;

use super::Dispatch;
use crate::store::dispatch::{self as sql, AttemptRecord, Job};

/// Most outcomes written in one transaction.
const BATCH: usize = 512;

/// What a dispatch task hands back.
#[derive(Debug)]
pub enum Done {
    Attempt(AttemptRecord),
    /// Claimed but not started: give the lease back.
    Release(i64),
}

/// Runs until every sender of `done` is gone, so nothing handed back is lost at shutdown.
pub async fn run_recorder(
    dispatch: Arc<Dispatch>,
    mut done: mpsc::UnboundedReceiver<Done>,
    jobs: mpsc::Sender<Job>,
) {
    while let Some(first) = done.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match done.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let mut records = Vec::new();
        let mut releases = Vec::new();
        for d in batch {
            match d {
                Done::Attempt(r) => records.push(r),
                Done::Release(id) => releases.push(id),
            }
        }
        let followers = write(&dispatch, &records, &releases).await;
        dispatch.outstanding.fetch_sub(n, Ordering::Relaxed);
        count(&dispatch, &records);
        if records.iter().any(|r| r.state == "pending") {
            dispatch.wake_poller.notify_one();
        }
        forward(&dispatch, &jobs, followers).await;
    }
}

/// Writes until it succeeds: an outcome is never dropped while the database is away (the
/// lease may expire meanwhile; then the delivery is sent again, with the same key).
async fn write(dispatch: &Dispatch, records: &[AttemptRecord], releases: &[i64]) -> Vec<Job> {
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .build();
    loop {
        match write_once(dispatch, records, releases).await {
            Ok(followers) => return followers,
            Err(e) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, records = records.len(), "cannot record attempts; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn write_once(
    dispatch: &Dispatch,
    records: &[AttemptRecord],
    releases: &[i64],
) -> crate::store::Result<Vec<Job>> {
    let mut client = dispatch.pool.get().await?;
    sql::record(&mut client, dispatch.owner, records).await?;
    if !releases.is_empty() {
        sql::release(&client, dispatch.owner, releases).await?;
    }
    let mut pairs: Vec<(String, i64)> = records
        .iter()
        .map(|r| (r.event.conversion_id.clone(), r.url_id))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    sql::claim_followers(&client, dispatch.owner, dispatch.lease, &pairs).await
}

fn count(dispatch: &Dispatch, records: &[AttemptRecord]) {
    for r in records {
        let outcome = match r.state {
            "delivered" => "delivered",
            "failed" => "failed",
            _ => "retried",
        };
        dispatch.metrics.delivery(outcome, 1);
    }
}

/// Queues followers; once dispatch has stopped taking jobs, their leases are given back.
async fn forward(dispatch: &Dispatch, jobs: &mpsc::Sender<Job>, followers: Vec<Job>) {
    let mut unsent = Vec::new();
    for job in followers {
        dispatch.outstanding.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(job)) = jobs.send(job).await {
            dispatch.outstanding.fetch_sub(1, Ordering::Relaxed);
            unsent.push(job.delivery_id);
        }
    }
    if !unsent.is_empty() {
        let _ = write(dispatch, &[], &unsent).await;
    }
}
