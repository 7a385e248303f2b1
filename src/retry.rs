//! Retry policy (docs/delivery.md) as pure values: which outcomes retry, when the next attempt is
//! due. Jitter is passed in, so every case is pinned by a unit test.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The stable error codes stored with each failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Timeout,
    Connect,
    Dns,
    Tls,
    Http,
    Blocked,
    Render,
    Redirects,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Timeout => "timeout",
            ErrorCode::Connect => "connect",
            ErrorCode::Dns => "dns",
            ErrorCode::Tls => "tls",
            ErrorCode::Http => "http",
            ErrorCode::Blocked => "blocked",
            ErrorCode::Render => "render",
            ErrorCode::Redirects => "redirects",
        }
    }
}

/// What an attempt's outcome means for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry,
    Fail,
}

/// Classifies an attempt: an HTTP status when a response came, else the error code.
pub fn classify(http_code: Option<u16>, error: Option<ErrorCode>) -> Verdict {
    match (http_code, error) {
        // The status line came but the body did not: the request may not have completed.
        (_, Some(ErrorCode::Timeout | ErrorCode::Connect)) => Verdict::Retry,
        (Some(code), None) if (200..300).contains(&code) => Verdict::Delivered,
        (Some(code), _) if code >= 500 || matches!(code, 408 | 425 | 429) => Verdict::Retry,
        (Some(_), _) => Verdict::Fail,
        (None, Some(ErrorCode::Dns | ErrorCode::Tls)) => Verdict::Retry,
        (None, _) => Verdict::Fail,
    }
}

/// Whether a response's `Retry-After` is honoured (on 429 and 503 only).
pub fn honours_retry_after(http_code: u16) -> bool {
    matches!(http_code, 429 | 503)
}

/// Parses `Retry-After`: delay-seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

/// The retry schedule: attempts in all = 1 + its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    steps: Vec<Duration>,
}

impl Schedule {
    pub fn new(steps: Vec<Duration>) -> Schedule {
        Schedule { steps }
    }

    #[cfg(test)]
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.steps.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The delay before the attempt after `attempt` (1-based, the one that just failed), or
    /// `None` when none is left. `jitter` is drawn uniformly from 0.8..=1.2 by the caller.
    /// A `Retry-After` replaces the jittered step, clamped to [this step, the last step].
    pub fn next_delay(&self, attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        let step = *self.steps.get(index)?;
        let last = *self.steps.last()?;
        Some(match retry_after {
            Some(asked) => asked.clamp(step, last.max(step)),
            None => step.mul_f64(jitter.clamp(0.8, 1.2)),
        })
    }
}

/// The jitter for a retry: a receiver that asked to slow down (429) or did not answer in time
/// gets at least the schedule's step, never less.
pub fn at_least_the_step(http_code: Option<u16>, error: Option<ErrorCode>, jitter: f64) -> f64 {
    if http_code == Some(429) || error == Some(ErrorCode::Timeout) {
        jitter.max(1.0)
    } else {
        jitter
    }
}

/// A uniform jitter factor in 0.8..=1.2.
pub fn jitter() -> f64 {
    rand::random_range(0.8..=1.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn schedule() -> Schedule {
        Schedule::new(vec![secs(5), secs(30), secs(120)])
    }

    #[test]
    fn classification() {
        let table = [
            (Some(200), None, Verdict::Delivered),
            (Some(204), None, Verdict::Delivered),
            (Some(500), None, Verdict::Retry),
            (Some(503), None, Verdict::Retry),
            (Some(408), None, Verdict::Retry),
            (Some(425), None, Verdict::Retry),
            (Some(429), None, Verdict::Retry),
            (Some(404), None, Verdict::Fail),
            (Some(400), None, Verdict::Fail),
            (Some(301), None, Verdict::Fail),
            (Some(302), Some(ErrorCode::Redirects), Verdict::Fail),
            (Some(200), Some(ErrorCode::Timeout), Verdict::Retry),
            (Some(101), None, Verdict::Fail),
            (None, Some(ErrorCode::Timeout), Verdict::Retry),
            (None, Some(ErrorCode::Connect), Verdict::Retry),
            (None, Some(ErrorCode::Dns), Verdict::Retry),
            (None, Some(ErrorCode::Tls), Verdict::Retry),
            (None, Some(ErrorCode::Blocked), Verdict::Fail),
            (None, Some(ErrorCode::Render), Verdict::Fail),
            (None, Some(ErrorCode::Redirects), Verdict::Fail),
        ];
        for (code, err, want) in table {
            assert_eq!(classify(code, err), want, "{code:?} {err:?}");
        }
    }

    #[test]
    fn delays_follow_the_schedule_with_jitter() {
        let s = schedule();
        assert_eq!(s.max_attempts(), 4);
        assert_eq!(s.next_delay(1, 1.0, None), Some(secs(5)));
        assert_eq!(s.next_delay(1, 0.8, None), Some(secs(4)));
        assert_eq!(s.next_delay(2, 1.2, None), Some(secs(36)));
        assert_eq!(s.next_delay(3, 1.0, None), Some(secs(120)));
        assert_eq!(s.next_delay(4, 1.0, None), None, "no attempt after the last");
        assert_eq!(s.next_delay(0, 1.0, None), None);
        assert_eq!(s.next_delay(1, 5.0, None), Some(secs(6)), "jitter is clamped");
    }

    #[test]
    fn retry_after_is_clamped_to_this_step_and_the_last() {
        let s = schedule();
        assert_eq!(s.next_delay(1, 1.2, Some(secs(60))), Some(secs(60)));
        assert_eq!(
            s.next_delay(1, 1.2, Some(secs(1))),
            Some(secs(5)),
            "never sooner than the step"
        );
        assert_eq!(
            s.next_delay(1, 1.2, Some(secs(99_999))),
            Some(secs(120)),
            "never later than the last step"
        );
        assert_eq!(s.next_delay(3, 1.0, Some(secs(0))), Some(secs(120)));
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("7", now), Some(secs(7)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(secs(120)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now),
            Some(secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert!(honours_retry_after(429) && honours_retry_after(503) && !honours_retry_after(500));
    }

    #[test]
    fn slow_down_and_timeouts_wait_at_least_the_step() {
        assert_eq!(at_least_the_step(Some(429), None, 0.8), 1.0);
        assert_eq!(at_least_the_step(None, Some(ErrorCode::Timeout), 0.9), 1.0);
        assert_eq!(at_least_the_step(Some(429), None, 1.1), 1.1);
        assert_eq!(at_least_the_step(Some(500), Some(ErrorCode::Http), 0.8), 0.8);
        assert_eq!(at_least_the_step(None, Some(ErrorCode::Connect), 0.85), 0.85);
        let s = schedule();
        let j = at_least_the_step(Some(429), None, 0.8);
        assert_eq!(s.next_delay(1, j, None), Some(secs(5)));
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.8..=1.2).contains(&j), "{j}");
        }
    }
}
