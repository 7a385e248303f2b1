//! The bytes of message bodies intake holds (taken from the consumer, not yet acked), bounded:
//! past the budget the consumer stops taking deliveries until acks free room. Prefetch bounds
//! how many messages the broker pushes, not how large they are; this bounds what intake holds,
//! and the broker's `max_message_size` bounds what the client library buffers before that.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Budget {
    room: Arc<Semaphore>,
    total: u32,
    in_flight: Gauge,
    peak: Gauge,
}

/// Bytes held until dropped (once the message is acked, or its session ended).
pub struct Held {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: i64,
    in_flight: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.in_flight.dec_by(self.bytes);
    }
}

impl Budget {
    /// A budget of `bytes` (at most 4 GiB), reported by the two gauges.
    pub fn new(bytes: usize, in_flight: Gauge, peak: Gauge) -> Budget {
        let total = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
        Budget {
            room: Arc::new(Semaphore::new(total as usize)),
            total,
            in_flight,
            peak,
        }
    }

    /// Waits for room for a body of `bytes`. One larger than the whole budget waits until
    /// nothing else is held, then goes alone.
    pub async fn take(&self, bytes: usize) -> Held {
        let permits = u32::try_from(bytes).unwrap_or(u32::MAX).min(self.total);
        // Fails only once closed, which this semaphore never is.
        let permit = Arc::clone(&self.room).acquire_many_owned(permits).await.ok();
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let now = self.in_flight.inc_by(bytes).saturating_add(bytes);
        // Only the consumer takes, so the peak is not raced.
        if now > self.peak.get() {
            self.peak.set(now);
        }
        Held {
            _permit: permit,
            bytes,
            in_flight: self.in_flight.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn takes_wait_for_room_and_the_gauges_follow() {
        let (in_flight, peak) = (Gauge::default(), Gauge::default());
        let budget = Budget::new(100, in_flight.clone(), peak.clone());
        let a = budget.take(60).await;
        let b = budget.take(40).await;
        assert_eq!((in_flight.get(), peak.get()), (100, 100));
        let waiting = budget.take(10);
        tokio::pin!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none(), "over the budget");
        drop(a);
        let c = waiting.await;
        assert_eq!((in_flight.get(), peak.get()), (50, 100));
        drop((b, c));
        // Larger than the whole budget: alone, once everything else is released.
        let big = budget.take(1000).await;
        assert_eq!((in_flight.get(), peak.get()), (1000, 1000));
        drop(big);
        assert_eq!(in_flight.get(), 0);
    }
}
