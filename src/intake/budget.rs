//! The bytes of message bodies intake holds (delivered by the broker, not yet acked), bounded.
//!
//! Taking a delivery never waits: by the time the client library hands one over, its body is
//! already in memory. What bounds memory is how many the broker may push at once, so the
//! consumer asks for a window of deliveries (a per-consumer prefetch) sized from the room left
//! and the largest body seen, is cancelled once the budget is full, and consumes again once
//! there is room (see the consumer loop in the parent module).

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

pub struct Budget {
    total: usize,
    held: watch::Sender<usize>,
    in_flight: Gauge,
    peak: Gauge,
}

/// Bytes held until dropped (once the message is acked, or its session ended).
pub struct Held {
    bytes: usize,
    held: watch::Sender<usize>,
    in_flight: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held
            .send_modify(|held| *held = held.saturating_sub(self.bytes));
        self.in_flight.dec_by(gauge_value(self.bytes));
    }
}

impl Budget {
    /// A budget of `bytes` (at least one), reported by the two gauges.
    pub fn new(bytes: usize, in_flight: Gauge, peak: Gauge) -> Budget {
        Budget {
            total: bytes.max(1),
            held: watch::Sender::new(0),
            in_flight,
            peak,
        }
    }

    /// Counts a delivered body; it is in memory already, so this never waits.
    pub fn take(&self, bytes: usize) -> Held {
        let mut now = 0;
        self.held.send_modify(|held| {
            *held = held.saturating_add(bytes);
            now = *held;
        });
        self.in_flight.inc_by(gauge_value(bytes));
        // Only the consumer takes, so the peak is not raced.
        if gauge_value(now) > self.peak.get() {
            self.peak.set(gauge_value(now));
        }
        Held {
            bytes,
            held: self.held.clone(),
            in_flight: self.in_flight.clone(),
        }
    }

    /// Whether what is held has reached the budget: no more deliveries should be asked for.
    pub fn full(&self) -> bool {
        *self.held.borrow() >= self.total
    }

    /// How many deliveries of up to `unit` bytes fit in the room left: at least one (a body
    /// larger than the whole budget goes alone, once nothing else is held), at most `max`.
    pub fn window(&self, unit: usize, max: u16) -> u16 {
        let room = self.total.saturating_sub(*self.held.borrow());
        let fit = room / unit.max(1);
        u16::try_from(fit).unwrap_or(u16::MAX).clamp(1, max.max(1))
    }

    /// Waits until a body of `unit` bytes fits, or nothing is held at all.
    pub async fn room_for(&self, unit: usize) {
        let total = self.total;
        let mut rx = self.held.subscribe();
        // The sender lives in `self`, so the wait ends only by the condition.
        let _ = rx
            .wait_for(|held| *held == 0 || total.saturating_sub(*held) >= unit)
            .await;
    }
}

fn gauge_value(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn takes_fill_the_budget_and_the_gauges_follow() {
        let (in_flight, peak) = (Gauge::default(), Gauge::default());
        let budget = Budget::new(100, in_flight.clone(), peak.clone());
        assert_eq!(budget.window(10, 256), 10);
        let a = budget.take(60);
        assert!(!budget.full());
        assert_eq!(budget.window(10, 256), 4);
        assert_eq!(budget.window(10, 2), 2, "never over the configured prefetch");
        let b = budget.take(40);
        assert!(budget.full());
        assert_eq!((in_flight.get(), peak.get()), (100, 100));
        assert_eq!(budget.window(10, 256), 1, "at least one");
        let waiting = budget.room_for(10);
        tokio::pin!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none(), "no room");
        drop(a);
        waiting.await;
        assert_eq!((in_flight.get(), peak.get()), (40, 100));
        drop(b);
        // Larger than the whole budget: it goes once nothing else is held.
        budget.room_for(1000).await;
        let big = budget.take(1000);
        assert!(budget.full());
        assert_eq!((in_flight.get(), peak.get()), (1000, 1000));
        drop(big);
        assert_eq!(in_flight.get(), 0);
        assert!(!budget.full());
    }
}
