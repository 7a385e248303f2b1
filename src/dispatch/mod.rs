//! Dispatch: run claimed deliveries (first attempts from intake, due retries from the poller,
//! followers handed on by the recorder) under global and per-host limits, and hand each
//! outcome to the recorder.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::Config;
use crate::ops::Metrics;
use crate::retry::{ErrorCode, Schedule, Verdict, at_least_the_step, classify, jitter};
use crate::sender::{self, Sender};
use crate::store::dispatch::{AttemptRecord, HandOff, Job};

mod poller;
mod recorder;

pub use poller::run_poller;
pub use recorder::{Done, release, run_recorder};

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
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Jobs handed to dispatch whose outcome is not recorded yet (see [`Held`]).
    held: Mutex<Held>,
    /// (conversion, URL) pairs with a delivery waiting for one in flight here to end: the
    /// recorder hands those on at once; any other waits for the poller.
    waiting: Mutex<HashSet<(String, i64)>>,
    pub capacity: usize,
    /// Wakes the poller when a retry has been scheduled.
    pub wake_poller: Notify,
}

/// The jobs a worker holds, from [`Dispatch::submit`] until their outcome (or the release of
/// their lease) is written, in all and per host: the poller claims no more than can start soon,
/// skips the URLs of hosts that already have all the work they may run at once, and never
/// claims one of these again, even once its lease has run out while the database was away and
/// its record waits.
#[derive(Default)]
struct Held {
    /// Delivery id → host:port.
    jobs: HashMap<i64, String>,
    per_host: HashMap<String, usize>,
    /// URL id → host:port, of every URL this worker has sent to.
    url_hosts: HashMap<i64, String>,
}

impl Held {
    fn insert(&mut self, delivery_id: i64, url_id: i64, host: &str) {
        self.url_hosts.entry(url_id).or_insert_with(|| host.to_owned());
        if self.jobs.insert(delivery_id, host.to_owned()).is_none() {
            *self.per_host.entry(host.to_owned()).or_default() += 1;
        }
    }

    /// URLs whose host has `limit` jobs held or more.
    fn saturated(&self, limit: usize) -> Vec<i64> {
        let mut urls: Vec<i64> = self
            .url_hosts
            .iter()
            .filter(|(_, host)| self.per_host.get(*host).is_some_and(|n| *n >= limit))
            .map(|(id, _)| *id)
            .collect();
        urls.sort_unstable();
        urls
    }

    fn remove(&mut self, delivery_id: i64) {
        let Some(host) = self.jobs.remove(&delivery_id) else {
            return;
        };
        if let Some(n) = self.per_host.get_mut(&host) {
            *n -= 1;
            if *n == 0 {
                self.per_host.remove(&host);
            }
        }
    }
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
            lease_margin: d.timeout.0 + d.connect_timeout.0,
            global: Arc::new(Semaphore::new(d.concurrency)),
            per_host: d.per_host_concurrency,
            hosts: Mutex::new(HashMap::new()),
            held: Mutex::new(Held::default()),
            waiting: Mutex::new(HashSet::new()),
            capacity: d.concurrency * 2,
            wake_poller: Notify::new(),
        }
    }

    /// Queues a claimed job for sending. When dispatch has stopped taking jobs, the job comes
    /// back (its lease is to be released).
    pub async fn submit(&self, jobs: &mpsc::Sender<Job>, job: Job) -> Result<(), Job> {
        lock(&self.held).insert(job.delivery_id, job.url.id, job.url.host());
        match jobs.send(job).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(job)) => {
                self.recorded(&[job.delivery_id]);
                Err(job)
            }
        }
    }

    /// Takes over what a committed intake batch leaves once its messages are acked: the waiting
    /// deliveries' leases are given back (the recorder hands them on when the attempt in flight
    /// ends, or a poller claims them), and the first attempts start.
    pub async fn hand_off(&self, jobs: &mpsc::Sender<Job>, hand_off: HandOff) {
        release(self, &hand_off.held_until_acked).await;
        self.note_waiting(hand_off.waiting);
        let mut unsent = Vec::new();
        for job in hand_off.jobs {
            if let Err(job) = self.submit(jobs, job).await {
                unsent.push(job.delivery_id);
            }
        }
        release(self, &unsent).await;
    }

    /// Gives back the first attempts' leases of a batch that was committed but not acked: the
    /// redelivered messages will be duplicates, so they need not wait out the lease.
    pub async fn give_back(&self, hand_off: HandOff) {
        let ids: Vec<i64> = hand_off.jobs.iter().map(|j| j.delivery_id).collect();
        release(self, &ids).await;
    }

    /// How many jobs this worker holds.
    pub fn outstanding(&self) -> usize {
        lock(&self.held).jobs.len()
    }

    /// The deliveries this worker holds (the poller claims none of them).
    pub fn held(&self) -> Vec<i64> {
        lock(&self.held).jobs.keys().copied().collect()
    }

    /// Their outcome (or release) is written: the poller may claim them again.
    pub fn recorded(&self, ids: &[i64]) {
        let mut held = lock(&self.held);
        for id in ids {
            held.remove(*id);
        }
    }

    /// Notes pairs whose new delivery waits for the one in flight.
    pub fn note_waiting(&self, pairs: Vec<(String, i64)>) {
        if !pairs.is_empty() {
            lock(&self.waiting).extend(pairs);
        }
    }

    /// Of these pairs, the ones with a delivery waiting (forgotten as they are returned).
    pub fn take_waiting(&self, pairs: impl IntoIterator<Item = (String, i64)>) -> Vec<(String, i64)> {
        let mut waiting = lock(&self.waiting);
        if waiting.is_empty() {
            return Vec::new();
        }
        pairs.into_iter().filter(|p| waiting.remove(p)).collect()
    }

    /// URLs whose host has as many jobs held as it may run at once.
    pub fn saturated_urls(&self) -> Vec<i64> {
        lock(&self.held).saturated(self.per_host)
    }

    fn host_limit(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = lock(&self.hosts);
        Arc::clone(
            hosts
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host))),
        )
    }
}

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
        let (dispatch, done, stop, abandon) =
            (Arc::clone(&dispatch), done.clone(), stop.clone(), abandon.clone());
        tracker.spawn(async move { run_job(dispatch, job, done, stop, abandon).await });
    }
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        let _ = done.send(Done::Release(job.delivery_id));
    }
}

async fn run_job(
    dispatch: Arc<Dispatch>,
    job: Job,
    done: mpsc::UnboundedSender<Done>,
    stop: CancellationToken,
    abandon: CancellationToken,
) {
    let span = tracing::info_span!("delivery", delivery_id = job.delivery_id, conversion_id = %job.event.conversion_id,
        url_id = job.url.id, attempt = job.attempt);
    async move {
        let prepared = prepare(&job);
        let host_limit = dispatch.host_limit(job.url.host());
        let permits = tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            permits = async {
                let h = host_limit.acquire_owned().await;
                let g = Arc::clone(&dispatch.global).acquire_owned().await;
                (h, g)
            } => Some(permits),
        };
        let Some((Ok(_host_permit), Ok(_global_permit))) = permits else {
            let _ = done.send(Done::Release(job.delivery_id));
            return;
        };
        if Instant::now() + dispatch.lease_margin >= job.lease_until {
            // Too little lease left for a whole attempt: give it back to be claimed afresh
            // rather than risk two workers sending at once.
            tracing::debug!("lease too short to start; released");
            let _ = done.send(Done::Release(job.delivery_id));
            return;
        }
        tokio::select! {
            record = attempt(&dispatch, &job, prepared) => {
                let _ = done.send(Done::Attempt(record));
            }
            // Shutdown took too long: the request may or may not have arrived; the lease
            // expires and the delivery is sent again with the same idempotency key.
            _ = abandon.cancelled() => tracing::warn!("send abandoned at shutdown"),
        }
    }
    .instrument(span)
    .await
}

/// Renders the request from the URL's current row and the delivery's event.
fn prepare(job: &Job) -> Result<sender::Request, String> {
    let rand = Uuid::new_v4().to_string();
    let templates = job.url.templates.as_ref().map_err(Clone::clone)?;
    let url = templates
        .url
        .render_url(&job.event, &rand)
        .map_err(|e| e.to_string())?;
    let method = if job.url.method == "POST" {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    let body = if method == reqwest::Method::POST {
        let escape = job.url.body_escape();
        let content_type = escape.mime();
        let text = match &templates.body {
            Some(t) => t.render(&job.event, escape, &rand),
            None => job.event.canonical_json().to_string(),
        };
        Some((bytes::Bytes::from(text), content_type))
    } else {
        None
    };
    let idempotency_key = match &job.event.event_id {
        Some(event_id) => format!("{event_id}:{}", job.url.id),
        None => job.delivery_id.to_string(),
    };
    Ok(sender::Request {
        method,
        url,
        body,
        idempotency_key,
        follow_redirects: job.url.follow_redirects,
    })
}

/// Makes one attempt and decides what comes next.
async fn attempt(dispatch: &Dispatch, job: &Job, prepared: Result<sender::Request, String>) -> AttemptRecord {
    let sent_at = Utc::now();
    let (url, method, response) = match prepared {
        Ok(req) => {
            let response = dispatch.sender.send(&req).await;
            (req.url, req.method.to_string(), response)
        }
        Err(reason) => {
            let response = sender::Response {
                http_code: None,
                error: Some((
                    ErrorCode::Render,
                    format!("the URL or body does not render: {reason}"),
                )),
                excerpt: None,
                retry_after: None,
                duration: Duration::ZERO,
            };
            (job.url.url.clone(), job.url.method.clone(), response)
        }
    };
    let verdict = classify(response.http_code, response.error.as_ref().map(|(c, _)| *c));
    let next_delay = match verdict {
        Verdict::Retry => dispatch.schedule.next_delay(
            job.schedule_attempt(),
            at_least_the_step(
                response.http_code,
                response.error.as_ref().map(|(c, _)| *c),
                jitter(),
            ),
            response.retry_after,
        ),
        _ => None,
    };
    let (state, next_attempt_at) = match (verdict, next_delay) {
        (Verdict::Delivered, _) => ("delivered", None),
        (Verdict::Retry, Some(d)) => (
            "pending",
            chrono::Duration::from_std(d).ok().map(|d| Utc::now() + d),
        ),
        _ => ("failed", None),
    };
    dispatch
        .metrics
        .attempt(response.http_code, response.duration.as_secs_f64());
    log_attempt(&url, &response, state);
    AttemptRecord {
        delivery_id: job.delivery_id,
        url_id: job.url.id,
        url,
        method,
        event: Arc::clone(&job.event),
        attempt: job.attempt,
        http_code: response.http_code.map(i32::from),
        error_code: response.error.as_ref().map(|(c, _)| c.as_str()),
        error: response.error.map(|(_, text)| text),
        response_excerpt: response.excerpt,
        duration_ms: i32::try_from(response.duration.as_millis()).unwrap_or(i32::MAX),
        sent_at,
        state,
        next_attempt_at,
    }
}

fn log_attempt(url: &str, response: &sender::Response, state: &str) {
    let masked = crate::mask::mask_url(url);
    let ms = response.duration.as_millis() as u64;
    match &response.error {
        None => tracing::info!(url = %masked, http_code = response.http_code, duration_ms = ms, "delivered"),
        Some((code, text)) => {
            tracing::warn!(url = %masked, http_code = response.http_code, error_code = code.as_str(),
            error = %text, duration_ms = ms, next = state, "attempt failed")
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::Held;

    #[test]
    fn a_host_saturated_through_one_url_skips_its_other_urls_too() {
        let mut held = Held::default();
        held.insert(1, 10, "tracker.test:443");
        held.insert(2, 11, "other.test:443");
        assert_eq!(held.saturated(2), Vec::<i64>::new());
        held.insert(3, 10, "tracker.test:443");
        held.insert(3, 10, "tracker.test:443"); // the same job again counts once
        assert_eq!(held.saturated(2), vec![10]);
        held.insert(4, 12, "tracker.test:443"); // a third URL of the same host
        assert_eq!(held.saturated(2), vec![10, 12]);
        held.remove(1);
        held.remove(3);
        assert_eq!(held.saturated(2), Vec::<i64>::new(), "back under the limit");
        assert_eq!(held.jobs.len(), 2);
    }
}
