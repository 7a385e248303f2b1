//! Acks in delivery order. Lanes commit out of order; a message is acked only once it and every
//! message delivered before it on the channel are committed, with one `multiple` ack up to the
//! newest such tag (RabbitMQ: `multiple` acks every unacked tag up to and including it).
//! A lane waits for its own tags to be acked before it starts any request (no HTTP
//! request while a message is unacknowledged), which may take until another lane commits.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use lapin::Channel;
use lapin::options::BasicAckOptions;

pub struct Acks {
    channel: Channel,
    state: Mutex<State>,
    /// Held across an ack, so acks go out in increasing order.
    acking: tokio::sync::Mutex<()>,
    /// The newest tag acked, watched by lanes waiting for their tags to be acked.
    acked: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// Tags delivered and not yet acked, in delivery order.
    order: VecDeque<u64>,
    /// Of those, the ones whose batch committed.
    done: HashSet<u64>,
}

impl Acks {
    pub fn new(channel: Channel) -> Acks {
        Acks {
            channel,
            state: Mutex::new(State::default()),
            acking: tokio::sync::Mutex::new(()),
            acked: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Notes a delivery, in the order the channel delivered it.
    pub fn received(&self, tag: u64) {
        self.lock().order.push_back(tag);
    }

    /// Marks tags committed and acks as far as the delivery order allows.
    pub async fn done(&self, tags: impl IntoIterator<Item = u64>) -> Result<(), lapin::Error> {
        let frontier = self.lock().complete(tags);
        let Some(tag) = frontier else { return Ok(()) };
        let _acking = self.acking.lock().await;
        if tag > *self.acked.borrow() {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await?;
            self.acked.send_replace(tag);
        }
        Ok(())
    }

    /// Waits until every tag up to `tag` is acked.
    pub async fn wait_acked(&self, tag: u64) {
        let mut acked = self.acked.subscribe();
        // The sender lives in `self`, so the wait ends only by the condition.
        let _ = acked.wait_for(|a| *a >= tag).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Records committed tags; returns the newest tag up to which everything is committed.
    fn complete(&mut self, tags: impl IntoIterator<Item = u64>) -> Option<u64> {
        self.done.extend(tags);
        let mut frontier = None;
        while let Some(&front) = self.order.front() {
            if !self.done.remove(&front) {
                break;
            }
            self.order.pop_front();
            frontier = Some(front);
        }
        frontier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_advance_only_over_committed_prefixes() {
        let mut s = State::default();
        s.order.extend([1, 2, 3, 4, 5]);
        assert_eq!(s.complete([2, 3]), None, "1 is still in a lane");
        assert_eq!(s.complete([1]), Some(3));
        assert_eq!(s.complete([5]), None);
        assert_eq!(s.complete([4]), Some(5));
        assert!(s.order.is_empty() && s.done.is_empty());
    }
}
