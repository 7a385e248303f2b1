//! The jobs loop: each claimed job runs in a task of its own, waits for its host's and the
//! global permit, re-reads its URL if the row may be stale, sends, and hands its outcome to
//! the recorder. A job that ends any other way (a panic) gives its lease back through a guard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::attempt::{attempt, prepare};
use super::{Dispatch, Done};
use crate::store::dispatch::{self as sql, Job};
use crate::store::urls::UrlRow;

/// A URL row read this recently is as current as a re-read would be; an older one (the job
/// queued or waited for a permit meanwhile) is read again, so an edit or a disable made while
/// it waited applies. One read serves every job of the URL for this long, so a backlog waiting
/// on one host costs a read per URL, not one per job.
const FRESH: Duration = Duration::from_millis(100);

/// Receives jobs and runs each in its own task until `stop`; then gives back the leases of
/// jobs not started and waits for the running ones (the caller bounds that wait).
pub async fn run_jobs(
    dispatch: Arc<Dispatch>,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Done>,
    stop: CancellationToken,
    abandon: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let job = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let guard = LeaseGuard::new(job.delivery_id, done.clone());
        let (dispatch, stop, abandon) = (Arc::clone(&dispatch), stop.clone(), abandon.clone());
        tracker.spawn(async move { run_job(dispatch, job, guard, stop, abandon).await });
    }
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        let _ = done.send(Done::Release(job.delivery_id));
    }
}

/// Hands a job's lease back when the job ends without handing over an outcome (it panicked,
/// or its task was dropped), so the delivery is not held here, nor its host counted busy,
/// forever.
pub(super) struct LeaseGuard {
    delivery_id: i64,
    done: Option<mpsc::UnboundedSender<Done>>,
}

impl LeaseGuard {
    pub(super) fn new(delivery_id: i64, done: mpsc::UnboundedSender<Done>) -> LeaseGuard {
        LeaseGuard {
            delivery_id,
            done: Some(done),
        }
    }

    /// Hands over the job's end.
    pub(super) fn finish(mut self, end: Done) {
        if let Some(done) = self.done.take() {
            let _ = done.send(end);
        }
    }

    /// The send was abandoned at shutdown: the lease is left to expire (the request may have
    /// arrived; another worker sends it again only after the lease).
    pub(super) fn abandon(mut self) {
        self.done = None;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            tracing::error!(
                delivery_id = self.delivery_id,
                "a delivery's task ended without an outcome; its lease is given back"
            );
            let _ = done.send(Done::Release(self.delivery_id));
        }
    }
}

async fn run_job(
    dispatch: Arc<Dispatch>,
    job: Job,
    guard: LeaseGuard,
    stop: CancellationToken,
    abandon: CancellationToken,
) {
    let span = tracing::info_span!("delivery", delivery_id = job.delivery_id, conversion_id = %job.event.conversion_id,
        url_id = job.url.id, attempt = job.attempt);
    async move {
        tokio::select! {
            end = job_end(&dispatch, &job, &stop) => guard.finish(end),
            // Shutdown took too long: the request may or may not have arrived; the lease
            // expires and the delivery is sent again with the same idempotency key.
            _ = abandon.cancelled() => {
                tracing::warn!("send abandoned at shutdown");
                guard.abandon();
            }
        }
    }
    .instrument(span)
    .await
}

/// Runs a job to its end: an attempt made, or its lease to give back. The permits are
/// dropped on return, before the job is let go, so none outlives its host's entry.
async fn job_end(dispatch: &Dispatch, job: &Job, stop: &CancellationToken) -> Done {
    let release = Done::Release(job.delivery_id);
    let Some(host_permits) = dispatch.host_permits(job.delivery_id) else {
        return release;
    };
    let permits = tokio::select! {
        biased;
        _ = stop.cancelled() => None,
        permits = async {
            let h = host_permits.acquire_owned().await;
            let g = Arc::clone(&dispatch.global).acquire_owned().await;
            (h, g)
        } => Some(permits),
    };
    let Some((Ok(_host_permit), Ok(_global_permit))) = permits else {
        return release;
    };
    let lease_left = Instant::now()
        .checked_add(dispatch.lease_margin)
        .is_some_and(|t| t < job.lease_until);
    if !lease_left {
        // Too little lease left for a whole attempt: give it back to be claimed afresh
        // rather than risk two workers sending at once.
        tracing::debug!("lease too short to start; released");
        return release;
    }
    let Some(url) = current_url(dispatch, job).await else {
        return release;
    };
    // Over the URL's rate: put back to wait for its slot, not sent and not counted.
    if !super::rate::may_send(dispatch, job).await {
        return release;
    }
    let prepared = prepare(job, &url);
    Done::Attempt(attempt(dispatch, job, &url, prepared).await)
}

/// The URL's current row: the claimed one when it is fresh, or one read for another of its
/// jobs just as recently, else read again. `None` when the URL was disabled or removed
/// meanwhile (its deliveries are cancelled; nothing is sent), or when it cannot be read now
/// (the lease is given back and the delivery claimed again).
async fn current_url(dispatch: &Dispatch, job: &Job) -> Option<Arc<UrlRow>> {
    let now = Instant::now();
    let since = now.checked_sub(FRESH).unwrap_or(now);
    if job
        .lease_until
        .checked_sub(dispatch.lease)
        .is_some_and(|read_at| read_at >= since)
    {
        return Some(Arc::clone(&job.url));
    }
    let row = match dispatch.cached_url(job.url.id, since) {
        Some(row) => row,
        None => {
            let read = async {
                let client = dispatch.pool.get().await?;
                sql::current_url(&client, job.url.id).await
            };
            match read.await {
                Ok(row) => {
                    let row = row.map(Arc::new);
                    dispatch.note_url(job.url.id, now, row.clone());
                    row
                }
                Err(e) => {
                    tracing::warn!(error = %crate::report::one_line(&e), "cannot read the URL's current row; lease given back");
                    return None;
                }
            }
        }
    };
    if row.is_none() {
        tracing::info!("URL disabled or removed while the delivery waited; not sent");
    }
    row
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::{Done, LeaseGuard};

    #[tokio::test]
    async fn a_job_that_panics_hands_its_lease_back() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let guard = LeaseGuard::new(42, tx);
        let task = tokio::spawn(async move {
            let _guard = guard;
            panic!("a bug in a job");
        });
        assert!(task.await.is_err_and(|e| e.is_panic()));
        assert!(matches!(rx.recv().await, Some(Done::Release(42))));
        assert!(rx.recv().await.is_none(), "handed back once");
    }

    #[tokio::test]
    async fn a_finished_or_abandoned_job_hands_back_only_what_it_says() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        LeaseGuard::new(1, tx.clone()).finish(Done::Release(7));
        LeaseGuard::new(2, tx).abandon();
        assert!(matches!(rx.recv().await, Some(Done::Release(7))));
        assert!(rx.recv().await.is_none());
    }
}
