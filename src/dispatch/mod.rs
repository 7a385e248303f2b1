//! Dispatch: run claimed deliveries (first attempts from intake, due retries from the poller,
//! followers handed on by the recorder) under global and per-host limits, and hand each
//! outcome to the recorder.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
use crate::ops::Metrics;
use crate::retry::Schedule;
use crate::sender::Sender;
use crate::store::dispatch::{HandOff, Job};
use crate::store::urls::UrlRow;

mod attempt;
mod inflight;
mod job;
mod poller;
mod rate;
mod recorder;

use inflight::InFlight;
pub use job::run_jobs;
pub use poller::{PollerError, run_poller};
pub use recorder::{Done, run_recorder};

/// What the dispatch tasks share.
pub struct Dispatch {
    pub owner: Uuid,
    pub pool: deadpool_postgres::Pool,
    pub metrics: Metrics,
    pub sender: Sender,
    pub schedule: Schedule,
    pub lease: Duration,
    /// No attempt starts unless this much of its lease is left.
    pub lease_margin: Duration,
    pub global: Arc<Semaphore>,
    pub per_host: usize,
    /// The one record of what this worker has in flight (see [`InFlight`]).
    in_flight: Mutex<InFlight>,
    pub capacity: usize,
    /// Wakes the poller when a retry has been scheduled.
    pub wake_poller: Notify,
    /// The URLs' rate limits, checked before each send.
    rates: rate::Rates,
    /// Cancelled when shutdown's deadline has passed: writes stop being retried (a lease not
    /// given back expires; an outcome not written is sent again with the same key).
    pub halt: CancellationToken,
}

impl Dispatch {
    pub fn new(
        cfg: &Config,
        owner: Uuid,
        pool: deadpool_postgres::Pool,
        metrics: Metrics,
        sender: Sender,
    ) -> Dispatch {
        let d = &cfg.delivery;
        Dispatch {
            owner,
            pool,
            metrics,
            sender,
            schedule: cfg.retry_schedule(),
            lease: d.lease.0,
            lease_margin: d.timeout.0.saturating_add(d.connect_timeout.0),
            global: Arc::new(Semaphore::new(d.concurrency)),
            per_host: d.per_host_concurrency,
            in_flight: Mutex::new(InFlight::new(d.per_host_concurrency)),
            capacity: d.concurrency.saturating_mul(2),
            wake_poller: Notify::new(),
            rates: rate::Rates::default(),
            halt: CancellationToken::new(),
        }
    }

    /// Takes over what a committed intake batch leaves once its messages are acked: the waiting
    /// deliveries' leases are given back (the recorder hands them on when the attempt in flight
    /// ends, or a poller claims them), and the first attempts start.
    pub async fn hand_off(&self, jobs: &mpsc::Sender<Job>, hand_off: HandOff) {
        recorder::release(self, &hand_off.held_until_acked).await;
        self.note_waiting(hand_off.waiting);
        self.submit_all(jobs, hand_off.jobs).await;
    }

    /// Gives back the leases of a batch that was committed but not acked, once its messages
    /// are back in the queue (the session's connection closed): the redelivered messages will
    /// be duplicates, so the first attempts need not wait out the lease, and the waiting
    /// deliveries are handed on as after an ack. Never call it while the messages may still be
    /// unacked: a poller could then send a delivery before its message is settled.
    pub async fn give_back(&self, hand_off: HandOff) {
        let mut ids: Vec<i64> = hand_off.jobs.iter().map(|j| j.delivery_id).collect();
        ids.extend(&hand_off.held_until_acked);
        recorder::release(self, &ids).await;
        self.note_waiting(hand_off.waiting);
    }

    /// Queues claimed jobs for sending; once dispatch has stopped taking jobs, the leases of
    /// those that did not get in are given back.
    async fn submit_all(&self, jobs: &mpsc::Sender<Job>, claimed: Vec<Job>) {
        let mut unsent = Vec::new();
        for job in claimed {
            if let Err(job) = self.submit(jobs, job).await {
                unsent.push(job.delivery_id);
            }
        }
        recorder::release(self, &unsent).await;
    }

    /// Queues one claimed job, held from now until its outcome (or release) is written.
    async fn submit(&self, jobs: &mpsc::Sender<Job>, job: Job) -> Result<(), Job> {
        lock(&self.in_flight).hold(job.delivery_id, job.url.id, job.url.host());
        match jobs.send(job).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(job)) => {
                self.recorded(&[job.delivery_id]);
                Err(job)
            }
        }
    }

    /// How many jobs this worker holds.
    pub fn outstanding(&self) -> usize {
        lock(&self.in_flight).len()
    }

    /// The deliveries this worker holds (the poller claims none of them).
    pub fn held(&self) -> Vec<i64> {
        lock(&self.in_flight).held()
    }

    /// Their outcome (or release) is written: the poller may claim them again.
    fn recorded(&self, ids: &[i64]) {
        let mut in_flight = lock(&self.in_flight);
        for id in ids {
            in_flight.forget(*id);
        }
    }

    /// Notes pairs whose new delivery waits for the one in flight, for as long as a lease.
    fn note_waiting(&self, pairs: Vec<(String, i64)>) {
        if !pairs.is_empty() {
            let now = Instant::now();
            let until = InFlight::waiting_until(now, self.lease);
            lock(&self.in_flight).note_waiting(pairs, now, until);
        }
    }

    /// Of these pairs, the ones with a delivery waiting (forgotten as they are returned).
    fn take_waiting(&self, pairs: impl IntoIterator<Item = (String, i64)>) -> Vec<(String, i64)> {
        lock(&self.in_flight).take_waiting(pairs, Instant::now())
    }

    /// URLs whose host has as many jobs held as it may run at once.
    fn saturated_urls(&self) -> Vec<i64> {
        lock(&self.in_flight).saturated()
    }

    /// A URL's row read at `since` or later for another job (`Some(None)`: disabled).
    fn cached_url(&self, url_id: i64, since: Instant) -> Option<Option<Arc<UrlRow>>> {
        lock(&self.in_flight).current_row(url_id, since)
    }

    /// Shares a URL's row, read at `read_at`, with its other jobs.
    fn note_url(&self, url_id: i64, read_at: Instant, row: Option<Arc<UrlRow>>) {
        lock(&self.in_flight).note_row(url_id, read_at, row);
    }

    /// The per-host permits of a held job.
    fn host_permits(&self, delivery_id: i64) -> Option<Arc<Semaphore>> {
        lock(&self.in_flight).permits(delivery_id)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use uuid::Uuid;

    use super::{Dispatch, job::LeaseGuard, lock, run_recorder};
    use crate::config::Config;
    use crate::guard::Guard;
    use crate::ops::Metrics;
    use crate::sender::Sender;

    #[tokio::test]
    async fn a_job_that_panics_is_let_go_and_its_host_is_no_longer_counted_busy() {
        let mut cfg = Config::default();
        cfg.delivery.per_host_concurrency = 1;
        // No database answers here: each write is tried once, as after shutdown's deadline.
        let pool = crate::store::pool("postgres://nobody@127.0.0.1:1/none", 1).expect("pool");
        let sender = Sender::new(
            Guard::new(true, Vec::new()),
            Duration::from_secs(1),
            Duration::from_secs(1),
            1024,
        )
        .expect("sender");
        let dispatch = Arc::new(Dispatch::new(
            &cfg,
            Uuid::new_v4(),
            pool,
            Metrics::default(),
            sender,
        ));
        dispatch.halt.cancel();
        lock(&dispatch.in_flight).hold(7, 1, "busy.test:80");
        assert_eq!(
            dispatch.saturated_urls(),
            vec![1],
            "its host is full while it runs"
        );

        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let guard = LeaseGuard::new(7, done_tx);
        let job = tokio::spawn(async move {
            let _guard = guard;
            panic!("a bug in a job");
        });
        assert!(job.await.is_err_and(|e| e.is_panic()));
        let (jobs_tx, _jobs_rx) = mpsc::channel(1);
        let done_rx = Arc::new(tokio::sync::Mutex::new(done_rx));
        // The recorder ends once every sender of outcomes (the guard's) is gone.
        tokio::time::timeout(
            Duration::from_secs(10),
            run_recorder(Arc::clone(&dispatch), done_rx, jobs_tx),
        )
        .await
        .expect("the recorder ends");
        assert_eq!(dispatch.outstanding(), 0);
        assert!(dispatch.saturated_urls().is_empty(), "the host is free again");
    }
}
