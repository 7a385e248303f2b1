//! The inputs of a session: one consumer per queue, each on a channel of its own (delivery tags
//! and acks are per channel, so each input keeps its own ack order), each read by a task that
//! forwards its deliveries, in order, to the session's loop.

use std::collections::BTreeMap;
use std::sync::Arc;

use lapin::message::Delivery;
use lapin::{Channel, Connection};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::IntakeError;
use super::budget::{Budget, Held};
use super::subscription::Subscription;
use crate::config::{Amqp, AmqpMode};
use crate::ops::Metrics;

/// The header ordered mode hashes on.
pub const CONVERSION_HEADER: &str = "x-conversion-id";

/// A subscribed input queue.
pub(super) struct Input {
    pub channel: Channel,
    sub: Subscription,
}

/// A delivery from input number `input`, counted in the budget.
pub(super) struct Arrived {
    pub delivery: Delivery,
    pub held: Held,
    pub input: usize,
}

/// Each input's delivery tags in a batch.
pub(super) type TagsByInput = BTreeMap<usize, Vec<u64>>;

/// Subscribes to every queue, the first on `first` (a channel already open), the others each on
/// a new channel. In ordered mode each keeps a fixed window (see the subscription module).
pub(super) async fn subscribe(
    conn: &Connection,
    first: Channel,
    queues: &[String],
    cfg: &Amqp,
    owner: Uuid,
    budget: &Budget,
) -> Result<Vec<Input>, IntakeError> {
    let mut inputs = Vec::with_capacity(queues.len());
    for (n, queue) in queues.iter().enumerate() {
        let channel = match n {
            0 => first.clone(),
            _ => match conn.create_channel().await {
                Ok(channel) => channel,
                Err(e) => return Err(close_all(inputs, e.into()).await),
            },
        };
        // One tag per input, each unique on its channel.
        let tag = match queues.len() {
            1 => format!("cross-postback-{owner}"),
            _ => format!("cross-postback-{owner}-{queue}"),
        };
        let mut sub = Subscription::new(channel.clone(), queue, tag, cfg.prefetch, cfg.max_message_bytes);
        if cfg.mode == AmqpMode::Ordered {
            sub = sub.fixed();
        }
        let started = sub.start(budget).await;
        inputs.push(Input { channel, sub });
        if let Err(e) = started {
            return Err(close_all(inputs, e).await);
        }
    }
    Ok(inputs)
}

async fn close_all(inputs: Vec<Input>, e: IntakeError) -> IntakeError {
    for input in inputs {
        if input.channel.status().connected() {
            let _ = input.channel.close(200, "bye".into()).await;
        }
    }
    e
}

/// Starts one reading task per input; returns them and where their deliveries arrive. With
/// `unordered` (ordered mode), a message without the conversion header is counted there.
pub(super) fn start(
    inputs: Vec<Input>,
    budget: &Arc<Budget>,
    unordered: Option<Metrics>,
) -> (JoinSet<Result<(), IntakeError>>, mpsc::Receiver<Arrived>) {
    let (tx, rx) = mpsc::channel(inputs.len().max(1));
    let mut feeds = JoinSet::new();
    for (input, Input { sub, .. }) in inputs.into_iter().enumerate() {
        let (tx, budget, metrics) = (tx.clone(), Arc::clone(budget), unordered.clone());
        feeds.spawn(read(sub, input, budget, tx, metrics));
    }
    (feeds, rx)
}

async fn read(
    mut sub: Subscription,
    input: usize,
    budget: Arc<Budget>,
    tx: mpsc::Sender<Arrived>,
    metrics: Option<Metrics>,
) -> Result<(), IntakeError> {
    loop {
        let delivery = sub.next(&budget).await?;
        let bytes = delivery.data.len();
        let held = budget.take(bytes);
        sub.taken(bytes, &budget).await?;
        if let Some(metrics) = &metrics
            && !has_conversion_header(&delivery)
        {
            metrics.scale.unordered_messages.inc();
        }
        let arrived = Arrived {
            delivery,
            held,
            input,
        };
        if tx.send(arrived).await.is_err() {
            return Ok(());
        }
    }
}

fn has_conversion_header(delivery: &Delivery) -> bool {
    delivery
        .properties
        .headers()
        .as_ref()
        .is_some_and(|h| h.inner().contains_key(CONVERSION_HEADER))
}

/// What an input's task ending means for the session: always its end.
pub(super) fn ended(
    ended: Result<Result<(), IntakeError>, tokio::task::JoinError>,
) -> Result<(), IntakeError> {
    match ended {
        Ok(Ok(())) => Err(IntakeError::InputStopped),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(IntakeError::LanePanicked(e.to_string())),
    }
}

/// Groups a batch's delivery tags by input (`inputs[i]` is the input of `batch[i]`).
pub(super) fn tags_by_input(batch: &[Delivery], inputs: &[usize]) -> TagsByInput {
    group(batch.iter().map(|d| d.delivery_tag).zip(inputs.iter().copied()))
}

fn group(tagged: impl Iterator<Item = (u64, usize)>) -> TagsByInput {
    let mut by = TagsByInput::new();
    for (tag, input) in tagged {
        by.entry(input).or_default().push(tag);
    }
    by
}

#[cfg(test)]
mod tests {
    use super::group;

    #[test]
    fn tags_are_grouped_by_their_input_in_order() {
        let by = group([(3, 1), (3, 0), (4, 1), (5, 0), (6, 1)].into_iter());
        assert_eq!(by.len(), 2);
        assert_eq!(by[&0], [3, 5]);
        assert_eq!(by[&1], [3, 4, 6]);
    }
}
