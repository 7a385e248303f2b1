//! What this worker has in flight, in one place: the jobs it holds (from hand-off to the
//! written outcome), their per-host load and permits, and the (conversion, URL) pairs whose
//! next delivery waits for one of them. Every map shrinks back to empty when nothing is held
//! or waiting, so memory follows the work in flight, not the hosts and URLs ever seen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::store::urls::UrlRow;

/// One host's load: the jobs held for it (queued, waiting for a permit, sending, or waiting
/// for their record) and the permits of those that may send at once.
struct Host {
    held: usize,
    permits: Arc<Semaphore>,
}

/// One held job.
struct Held {
    host: Arc<str>,
    url_id: i64,
}

/// A URL with jobs held: its host, how many, and its row as last read for one of them (when,
/// and the row, or `None` when it was found disabled or removed), shared by the others.
struct Url {
    host: Arc<str>,
    held: usize,
    current: Option<(Instant, Option<Arc<UrlRow>>)>,
}

/// The single record of what is in flight here.
pub(super) struct InFlight {
    per_host: usize,
    jobs: HashMap<i64, Held>,
    hosts: HashMap<Arc<str>, Host>,
    /// URL id → its entry: the URLs the poller skips when their host is full.
    urls: HashMap<i64, Url>,
    /// (conversion, URL) → until when the note is kept. A pair whose delivery in flight is on
    /// another replica never ends here: the note expires with the lease, and the poller takes
    /// the waiting delivery then.
    waiting: HashMap<(String, i64), Instant>,
}

impl InFlight {
    pub(super) fn new(per_host: usize) -> InFlight {
        InFlight {
            per_host: per_host.max(1),
            jobs: HashMap::new(),
            hosts: HashMap::new(),
            urls: HashMap::new(),
            waiting: HashMap::new(),
        }
    }

    /// Holds a job (again: counted once). Returns the permits of its host.
    pub(super) fn hold(&mut self, delivery_id: i64, url_id: i64, host: &str) -> Arc<Semaphore> {
        if let Some(held) = self.jobs.get(&delivery_id) {
            return Arc::clone(&self.hosts[&held.host].permits);
        }
        let per_host = self.per_host;
        let key: Arc<str> = match self.hosts.get_key_value(host) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(host),
        };
        let host = self.hosts.entry(Arc::clone(&key)).or_insert_with(|| Host {
            held: 0,
            permits: Arc::new(Semaphore::new(per_host)),
        });
        host.held += 1;
        let permits = Arc::clone(&host.permits);
        self.urls
            .entry(url_id)
            .or_insert_with(|| Url {
                host: Arc::clone(&key),
                held: 0,
                current: None,
            })
            .held += 1;
        self.jobs.insert(delivery_id, Held { host: key, url_id });
        permits
    }

    /// The permits of a held job's host (`None` when it is not held).
    pub(super) fn permits(&self, delivery_id: i64) -> Option<Arc<Semaphore>> {
        let held = self.jobs.get(&delivery_id)?;
        self.hosts.get(&held.host).map(|h| Arc::clone(&h.permits))
    }

    /// Lets a job go (its outcome or release is written); a host or URL left with nothing held
    /// is forgotten. Callers drop a job's permit before this, so no permit outlives its host.
    pub(super) fn forget(&mut self, delivery_id: i64) {
        let Some(held) = self.jobs.remove(&delivery_id) else {
            return;
        };
        if let Some(host) = self.hosts.get_mut(&held.host) {
            host.held -= 1;
            if host.held == 0 {
                self.hosts.remove(&held.host);
            }
        }
        if let Some(url) = self.urls.get_mut(&held.url_id) {
            url.held -= 1;
            if url.held == 0 {
                self.urls.remove(&held.url_id);
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.jobs.len()
    }

    pub(super) fn held(&self) -> Vec<i64> {
        self.jobs.keys().copied().collect()
    }

    /// URLs whose host has as many jobs held as it may run at once.
    pub(super) fn saturated(&self) -> Vec<i64> {
        let mut urls: Vec<i64> = self
            .urls
            .iter()
            .filter(|(_, url)| self.hosts.get(&url.host).is_some_and(|h| h.held >= self.per_host))
            .map(|(id, _)| *id)
            .collect();
        urls.sort_unstable();
        urls
    }

    /// A URL's row as read at `since` or later for another of its jobs (`Some(None)`: it was
    /// disabled or removed), if there is one.
    pub(super) fn current_row(&self, url_id: i64, since: Instant) -> Option<Option<Arc<UrlRow>>> {
        let (read_at, row) = self.urls.get(&url_id)?.current.as_ref()?;
        (*read_at >= since).then(|| row.clone())
    }

    /// Keeps a URL's row read at `read_at` for its other jobs (while it has jobs held).
    pub(super) fn note_row(&mut self, url_id: i64, read_at: Instant, row: Option<Arc<UrlRow>>) {
        if let Some(url) = self.urls.get_mut(&url_id)
            && url.current.as_ref().is_none_or(|(at, _)| *at < read_at)
        {
            url.current = Some((read_at, row));
        }
    }

    /// Notes pairs whose new delivery waits for the one in flight, until `until`.
    pub(super) fn note_waiting(&mut self, pairs: Vec<(String, i64)>, now: Instant, until: Instant) {
        self.expire(now);
        for pair in pairs {
            self.waiting.insert(pair, until);
        }
    }

    /// Of these pairs, the ones with a delivery waiting (forgotten as they are returned).
    pub(super) fn take_waiting(
        &mut self,
        pairs: impl IntoIterator<Item = (String, i64)>,
        now: Instant,
    ) -> Vec<(String, i64)> {
        self.expire(now);
        if self.waiting.is_empty() {
            return Vec::new();
        }
        pairs
            .into_iter()
            .filter(|p| self.waiting.remove(p).is_some())
            .collect()
    }

    fn expire(&mut self, now: Instant) {
        self.waiting.retain(|_, until| *until > now);
    }

    /// How long a waiting note is kept: the lease of the delivery it waits for.
    pub(super) fn waiting_until(now: Instant, lease: Duration) -> Instant {
        crate::store::dispatch::lease_end(now, lease)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::InFlight;

    /// Every count matches the jobs held, and nothing is kept for what holds nothing.
    fn assert_consistent(f: &InFlight) {
        for (host, h) in &f.hosts {
            let n = f.jobs.values().filter(|j| &j.host == host).count();
            assert_eq!(h.held, n, "host {host} counts {} held, has {n}", h.held);
            assert!(n > 0, "host {host} kept with nothing held");
        }
        for (url, entry) in &f.urls {
            let n = f.jobs.values().filter(|j| j.url_id == *url).count();
            assert_eq!(entry.held, n, "URL {url}");
            assert!(n > 0, "URL {url} kept with nothing held");
        }
        for j in f.jobs.values() {
            assert!(f.hosts.contains_key(&j.host) && f.urls.contains_key(&j.url_id));
        }
    }

    #[test]
    fn a_host_saturated_through_one_url_skips_its_other_urls_too() {
        let mut f = InFlight::new(2);
        f.hold(1, 10, "tracker.test:443");
        f.hold(2, 11, "other.test:443");
        assert_eq!(f.saturated(), Vec::<i64>::new());
        f.hold(3, 10, "tracker.test:443");
        f.hold(3, 10, "tracker.test:443"); // the same job again counts once
        assert_eq!(f.saturated(), vec![10]);
        f.hold(4, 12, "tracker.test:443"); // a third URL of the same host
        assert_eq!(f.saturated(), vec![10, 12]);
        assert_consistent(&f);
        f.forget(1);
        f.forget(3);
        assert_eq!(f.saturated(), Vec::<i64>::new(), "back under the limit");
        assert_eq!(f.len(), 2);
        assert_consistent(&f);
    }

    #[test]
    fn hosts_and_urls_are_forgotten_when_nothing_is_held() {
        let mut f = InFlight::new(4);
        for id in 0..100 {
            f.hold(id, id % 7, &format!("h{}.test:80", id % 13));
            assert_consistent(&f);
        }
        for id in (0..100).rev() {
            f.forget(id);
            f.forget(id); // twice is harmless
            assert_consistent(&f);
        }
        assert!(f.jobs.is_empty() && f.hosts.is_empty() && f.urls.is_empty());
    }

    #[test]
    fn one_host_shares_one_set_of_permits_and_a_new_one_starts_full() {
        let mut f = InFlight::new(2);
        let a = f.hold(1, 10, "a.test:80");
        let b = f.hold(2, 11, "a.test:80");
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        let permit = a.try_acquire_owned().expect("a permit");
        assert_eq!(b.available_permits(), 1);
        drop(permit);
        f.forget(1);
        f.forget(2);
        assert!(f.permits(1).is_none());
        assert_eq!(f.hold(3, 10, "a.test:80").available_permits(), 2);
    }

    #[test]
    fn waiting_pairs_are_taken_once_and_expire_with_the_lease() {
        let mut f = InFlight::new(1);
        let now = Instant::now();
        let until = InFlight::waiting_until(now, Duration::from_secs(10));
        f.note_waiting(vec![("c1".into(), 1), ("c2".into(), 1)], now, until);
        assert_eq!(
            f.take_waiting([("c1".into(), 1), ("c3".into(), 1)], now),
            vec![("c1".into(), 1)]
        );
        assert!(f.take_waiting([("c1".into(), 1)], now).is_empty(), "taken once");
        // c2's delivery in flight was another replica's: the note does not outlive the lease.
        let later = now + Duration::from_secs(11);
        assert!(f.take_waiting([("c2".into(), 1)], later).is_empty());
        assert!(f.waiting.is_empty());
    }

    #[test]
    fn a_url_row_read_for_one_job_serves_the_others_while_fresh_and_goes_with_the_last() {
        let mut f = InFlight::new(2);
        f.hold(1, 10, "a.test:80");
        f.hold(2, 10, "a.test:80");
        let t0 = Instant::now();
        assert!(f.current_row(10, t0).is_none(), "nothing read yet");
        f.note_row(10, t0, None); // found disabled
        assert_eq!(f.current_row(10, t0), Some(None));
        assert!(
            f.current_row(10, t0 + Duration::from_millis(1)).is_none(),
            "too old"
        );
        f.note_row(10, t0 - Duration::from_secs(1), None);
        assert_eq!(
            f.current_row(10, t0),
            Some(None),
            "an older read does not replace a newer one"
        );
        f.forget(1);
        f.forget(2);
        f.hold(3, 10, "a.test:80");
        assert!(
            f.current_row(10, t0).is_none(),
            "forgotten with the URL's last job"
        );
        f.note_row(11, t0, None); // a URL with nothing held keeps nothing
        assert!(!f.urls.contains_key(&11));
    }

    #[test]
    fn a_lease_too_long_to_add_still_gives_an_expiry() {
        let now = Instant::now();
        assert!(InFlight::waiting_until(now, Duration::MAX) > now);
    }
}
