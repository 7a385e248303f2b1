//! Failed partner-link look-ups, counted per client address in fixed windows: an address
//! that guesses tokens is turned away (429) until its window ends. Memory is bounded: old
//! windows are dropped when the table grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed look-ups an address may make per window.
pub const MAX_FAILURES: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub struct FailedLookups {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Default for FailedLookups {
    fn default() -> FailedLookups {
        FailedLookups::new(MAX_FAILURES, WINDOW)
    }
}

impl FailedLookups {
    pub fn new(max: u32, window: Duration) -> FailedLookups {
        FailedLookups {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may look a token up now; `Err` holds how long until it may.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&ip) {
            Some((start, n)) if *n >= self.max && now < *start + self.window => {
                Err(*start + self.window - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed look-up of `ip`.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= SWEEP_AT {
            let window = self.window;
            seen.retain(|_, (start, _)| now < *start + window);
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_turned_away_after_its_failures_until_the_window_ends() {
        let limit = FailedLookups::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limit.check(a, t0), Ok(()), "failure {i}");
            limit.record_failure(a, t0);
        }
        assert_eq!(
            limit.check(a, t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        assert_eq!(limit.check(b, t0), Ok(()), "another address is not affected");
        assert_eq!(limit.check(a, t0 + Duration::from_secs(60)), Ok(()));
        limit.record_failure(a, t0 + Duration::from_secs(60));
        assert_eq!(
            limit.check(a, t0 + Duration::from_secs(61)),
            Ok(()),
            "a new window"
        );
    }
}
