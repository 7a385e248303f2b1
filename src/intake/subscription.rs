//! The consumer, asked for only as many deliveries as the byte budget has room for.
//!
//! The broker pushes up to the consumer's prefetch at once and the client library keeps every
//! pushed body in memory, so the budget is kept by the window asked for, not by waiting after
//! a delivery arrived. A consumer's prefetch is fixed when it subscribes (RabbitMQ applies
//! `basic.qos` to new consumers only), so changing the window means cancelling the consumer
//! and subscribing again. The messages a cancelled consumer was given stay unacked on the
//! channel and are decided and acked as usual (delivery tags belong to the channel); the ones
//! the broker sent before it read the cancel still arrive, up to the cancel-ok, and are taken
//! like any other. Nothing is requeued, so nothing is lost or seen twice.
//!
//! The first window of a subscription is one delivery, until a body shows how large they are:
//! a queue filled with large messages before start is not pushed all at once.
//!
//! A shard of ordered mode has a single active consumer: cancelling it would make another
//! replica's consumer active while this one still decides what it was given, so two replicas
//! would decide one conversion at once. Its window is fixed at the prefetch and it is never
//! cancelled (see [`Subscription::fixed`]).

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};

use super::IntakeError;
use super::budget::Budget;

pub(super) struct Subscription {
    channel: Channel,
    queue: String,
    tag: String,
    /// Subscriptions so far: each gets a tag of its own (a quorum queue still holding a
    /// cancelled consumer's unacked messages fails the channel when its tag is reused).
    subscriptions: u64,
    prefetch: u16,
    /// The largest body to expect: `amqp.max_message_bytes`, or a larger one seen since.
    /// `None` until the first delivery.
    unit: Option<usize>,
    floor: usize,
    consumer: Option<Consumer>,
    window: u16,
    /// This daemon cancelled the consumer: its end is a pause, not the broker's cancel.
    cancelling: bool,
    /// The window is the prefetch from the start and the consumer is never cancelled.
    fixed: bool,
}

impl Subscription {
    pub(super) fn new(
        channel: Channel,
        queue: &str,
        tag: String,
        prefetch: u16,
        max_message_bytes: usize,
    ) -> Self {
        Subscription {
            channel,
            queue: queue.to_owned(),
            tag,
            subscriptions: 0,
            prefetch,
            unit: None,
            floor: max_message_bytes.max(1),
            consumer: None,
            window: 0,
            cancelling: false,
            fixed: false,
        }
    }

    /// A subscription that keeps its place as the single active consumer of its queue.
    pub(super) fn fixed(mut self) -> Self {
        self.fixed = true;
        self
    }

    /// Subscribes with a window the budget has room for.
    pub(super) async fn start(&mut self, budget: &Budget) -> Result<(), IntakeError> {
        let window = match self.unit {
            _ if self.fixed => self.prefetch,
            Some(unit) => budget.window(unit, self.prefetch),
            None => 1,
        };
        self.channel.basic_qos(window, BasicQosOptions::default()).await?;
        self.subscriptions += 1;
        let tag = format!("{}-{}", self.tag, self.subscriptions);
        let consumer = self
            .channel
            .basic_consume(
                self.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::debug!(window, "subscribed");
        self.consumer = Some(consumer);
        self.window = window;
        Ok(())
    }

    /// The next delivery; while paused, waits for room and subscribes again. Cancel-safe.
    pub(super) async fn next(&mut self, budget: &Budget) -> Result<Delivery, IntakeError> {
        loop {
            match &mut self.consumer {
                Some(consumer) => match consumer.next().await {
                    Some(Ok(delivery)) => return Ok(delivery),
                    Some(Err(e)) => return Err(e.into()),
                    // The cancel-ok of our own cancel: every delivery before it was taken.
                    None if self.cancelling => {
                        self.consumer = None;
                        self.cancelling = false;
                    }
                    None => return Err(IntakeError::Cancelled),
                },
                None => {
                    budget.room_for(self.unit.unwrap_or(self.floor)).await;
                    self.start(budget).await?;
                }
            }
        }
    }

    /// After a body of `bytes` was taken: cancels the consumer when the budget is full (it
    /// subscribes again once there is room), or when the room left now fits a window at least
    /// twice the current one.
    pub(super) async fn taken(&mut self, bytes: usize, budget: &Budget) -> Result<(), IntakeError> {
        let unit = next_unit(self.unit, self.floor, bytes);
        self.unit = Some(unit);
        if self.fixed {
            return Ok(());
        }
        let fits = budget.window(unit, self.prefetch);
        // Worth a new subscription when the window at least doubles, or reaches the prefetch
        // (less the delivery just taken, which is held).
        let grow = fits > self.window
            && (fits >= self.window.saturating_mul(2) || fits.saturating_add(1) >= self.prefetch);
        if self.cancelling || self.consumer.is_none() || !(budget.full() || grow) {
            return Ok(());
        }
        self.cancelling = true;
        let tag = format!("{}-{}", self.tag, self.subscriptions);
        self.channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        Ok(())
    }
}

/// The body size to plan windows for after one of `bytes`: a larger body raises it at once (a
/// flood of large messages keeps it high), and each smaller body lowers it by a sixteenth
/// of its excess over `floor`, so one oversized message does not narrow the window for the
/// rest of the session.
fn next_unit(unit: Option<usize>, floor: usize, bytes: usize) -> usize {
    let unit = unit.unwrap_or(floor);
    let decayed = unit - (unit - floor.min(unit)) / 16;
    decayed.max(bytes)
}

#[cfg(test)]
mod tests {
    use super::next_unit;

    #[test]
    fn one_oversized_body_narrows_the_window_for_a_while_only() {
        let floor = 64 * 1024;
        let mut unit = next_unit(None, floor, 500);
        assert_eq!(unit, floor, "small bodies plan for the largest allowed one");
        unit = next_unit(Some(unit), floor, 16 * 1024 * 1024);
        assert_eq!(unit, 16 * 1024 * 1024, "a larger body raises it at once");
        for _ in 0..200 {
            unit = next_unit(Some(unit), floor, 500);
        }
        assert!(unit < floor + floor / 10, "back near the floor: {unit}");
        assert!(unit >= floor, "never under it: {unit}");
    }

    #[test]
    fn a_flood_of_large_bodies_keeps_it_high() {
        let floor = 64 * 1024;
        let big = 2 * 1024 * 1024;
        let mut unit = None;
        for _ in 0..100 {
            unit = Some(next_unit(unit, floor, big));
        }
        assert_eq!(unit, Some(big));
    }
}
