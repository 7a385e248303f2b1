//! Intake: consume, validate, decide and log a batch in one transaction, dead-letter the
//! invalid messages, then ack the batch with `multiple` — only after the commit.
//!
//! One consumer per input queue and process (the work queue, or in ordered mode each shard and
//! the unordered queue), each on a channel of its own. Each message goes to one of
//! `amqp.lanes` lanes by its conversion id; a lane decides its batches one after another, so the events of one conversion are
//! decided in the order they were received, while lanes (different conversions) commit
//! concurrently. Acks follow the commits in delivery order (see [`acks`]). Any broker or
//! database failure ends the session: the connection closes (RabbitMQ requeues what was not
//! acked), and a new session starts once both answer again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::amqp::{self, AmqpError};
use crate::config::Config;
use crate::dedupe::Decision;
use crate::dispatch::Dispatch;
use crate::ops::{Health, Metrics};
use crate::store::{self, StoreError, dispatch::Job, intake as sql};

/// How often a batch is tried again after a deadlock before the session gives up.
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    #[error("broker")]
    Lapin(#[from] lapin::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] sql::LogError),
    #[error("the broker cancelled the consumer (queue deleted or consumer timeout)")]
    Cancelled,
    #[error("an intake lane stopped")]
    LaneStopped,
    #[error("an intake input stopped")]
    InputStopped,
    #[error("an intake lane panicked: {0}")]
    LanePanicked(String),
}

mod acks;
mod budget;
mod feed;
mod log;
mod parse;
mod subscription;

use acks::Acks;
use budget::{Budget, Held};

/// What batches committed but not acked leave to dispatch, given back once the session's
/// connection is closed.
type Unsettled = Arc<std::sync::Mutex<Vec<store::dispatch::HandOff>>>;

/// What the lanes of one session share to settle their batches after the commit.
#[derive(Clone)]
struct Settle {
    /// One per input (its own channel), in the order of the inputs.
    acks: Arc<Vec<Acks>>,
    /// The publisher-confirms channel for dead letters.
    dlx: Channel,
    unsettled: Unsettled,
}

/// A delivery taken from an input, parsed, with the room its body holds in the budget and the
/// index of its input.
type Taken = (Delivery, sql::Message, Held, usize);

#[derive(Clone)]
pub struct Intake {
    pub cfg: Arc<Config>,
    pub pool: deadpool_postgres::Pool,
    pub health: Arc<Health>,
    pub metrics: Metrics,
    pub dispatch: Arc<Dispatch>,
    pub jobs: mpsc::Sender<Job>,
    pub owner: Uuid,
}

impl Intake {
    /// Runs sessions until `stop`, reconnecting with backoff after each failure.
    pub async fn run(self, stop: CancellationToken) {
        let builder = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times();
        let mut delays = builder.build();
        while !stop.is_cancelled() {
            let started = Instant::now();
            let result = self.session(&stop).await;
            self.health.set_broker(false);
            match result {
                Ok(()) => return,
                Err(e) => {
                    self.metrics.intake_restarts.inc();
                    if started.elapsed() > Duration::from_secs(30) {
                        delays = builder.build();
                    }
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(error = %crate::report::one_line(&e), retry_in_ms = delay.as_millis() as u64, "intake stopped consuming; reconnecting");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    async fn session(&self, stop: &CancellationToken) -> Result<(), IntakeError> {
        // Consume only while the database answers: nothing could be logged or acked otherwise.
        store::ping(&self.pool).await?;
        let cfg = &self.cfg.amqp;
        let conn = amqp::connect(&cfg.url, "cross-postback intake").await?;
        // A channel closed by the broker (a consuming one, or the dead-letter one while idle)
        // or the connection failing is reported here, so the session ends at once rather than
        // when the channel is next used. Listening from the start: events are not kept.
        let mut events = conn.events_listener();
        let setup = conn.create_channel().await?;
        let queues = amqp::declare_topology(&setup, cfg).await?;
        amqp::unbind_other_mode(&setup, cfg).await?;
        let dlx = amqp::confirm_channel(&conn).await?;
        // Room for every prefetched message at its largest valid size, per input: valid traffic
        // never waits for it; larger messages are asked for fewer at a time.
        let budget = Arc::new(Budget::new(
            usize::from(cfg.prefetch)
                .saturating_mul(cfg.max_message_bytes)
                .saturating_mul(queues.len()),
            self.metrics.intake_bytes.clone(),
            self.metrics.intake_bytes_peak.clone(),
        ));
        let inputs = feed::subscribe(&conn, setup, &queues, cfg, self.owner, &budget).await;
        let inputs = match inputs {
            Ok(inputs) => inputs,
            Err(e) => {
                amqp::close(&conn, &[&dlx]).await;
                return Err(e);
            }
        };
        self.health.set_broker(true);
        tracing::info!(queues = %queues.join(","), prefetch = cfg.prefetch, mode = ?cfg.mode, "consuming");
        let channels: Vec<Channel> = inputs.iter().map(|i| i.channel.clone()).collect();
        let settle = Settle {
            acks: Arc::new(channels.iter().map(|c| Acks::new(c.clone())).collect()),
            dlx: dlx.clone(),
            unsettled: Unsettled::default(),
        };
        let result = self.consume(&settle, inputs, &budget, &mut events, stop).await;
        // Closing hands every unacked message back to the queue; the channels first, so that
        // none is left to close after the connection (which the client logs as an error).
        let mut open: Vec<&Channel> = vec![&dlx];
        open.extend(channels.iter());
        let closed = amqp::close(&conn, &open).await;
        let unsettled = std::mem::take(&mut *settle.unsettled.lock().unwrap_or_else(|e| e.into_inner()));
        // Only now are the messages of committed but unacked batches back in the queue, so no
        // one sends their deliveries while one is unacked. If the close failed the broker may
        // not know yet: the leases then run out instead.
        if closed {
            for hand_off in unsettled {
                self.dispatch.give_back(hand_off).await;
            }
        }
        result
    }

    /// Reads messages from every input and hands each to its lane until `stop`, then lets the
    /// lanes finish what they hold. A lane or an input that fails ends the session.
    async fn consume(
        &self,
        settle: &Settle,
        inputs: Vec<feed::Input>,
        budget: &Arc<Budget>,
        events: &mut (impl futures_util::Stream<Item = lapin::Event> + Unpin),
        stop: &CancellationToken,
    ) -> Result<(), IntakeError> {
        let mut lanes = JoinSet::new();
        let mut senders = Vec::new();
        for _ in 0..self.cfg.amqp.lanes {
            let (tx, rx) = mpsc::channel::<Taken>(self.cfg.amqp.batch_size);
            senders.push(tx);
            let (me, settle) = (self.clone(), settle.clone());
            lanes.spawn(async move { me.lane(rx, &settle).await });
        }
        let ordered = self.cfg.amqp.mode == crate::config::AmqpMode::Ordered;
        let (mut feeds, mut arrived) = feed::start(inputs, budget, ordered.then(|| self.metrics.clone()));
        let result = loop {
            let next = tokio::select! {
                biased;
                _ = stop.cancelled() => break Ok(()),
                Some(ended) = lanes.join_next() => break lane_end(ended),
                Some(lapin::Event::Error(e)) = events.next() => break Err(e.into()),
                Some(ended) = feeds.join_next() => break feed::ended(ended),
                next = arrived.recv() => next,
            };
            let Some(feed::Arrived {
                delivery,
                held,
                input,
            }) = next
            else {
                break Err(IntakeError::LaneStopped);
            };
            settle.acks[input].received(delivery.delivery_tag);
            // Parsed once, here: the lane needs the conversion id, the transaction the event.
            let message = parse::message(&delivery, self.cfg.amqp.max_message_bytes);
            let lane = lane_of(&message, delivery.delivery_tag, senders.len());
            let sent = tokio::select! {
                sent = senders[lane].send((delivery, message, held, input)) => sent.is_ok(),
                Some(ended) = lanes.join_next() => break lane_end(ended),
            };
            if !sent {
                break Err(IntakeError::LaneStopped);
            }
        };
        // What the inputs hold and did not hand over stays unacked: the broker requeues it.
        feeds.abort_all();
        // Closing the senders lets each lane finish the batches it holds, then end.
        drop(senders);
        if result.is_err() {
            lanes.abort_all();
        }
        let mut outcome = result;
        while let Some(ended) = lanes.join_next().await {
            if outcome.is_ok() {
                outcome = lane_end(ended);
                if outcome.is_err() {
                    // The others may wait for acks that will not come now: end them too.
                    lanes.abort_all();
                }
            }
        }
        outcome
    }

    /// One lane: batches of what has arrived, each decided and logged in one transaction.
    ///
    /// A batch ends before a second event of a conversion it holds: that one starts the next
    /// batch, so the earlier event's first attempt is handed over (in flight) before the later
    /// one is decided. A Pending followed at once by its Approved then sends both, in order,
    /// and no delivery is superseded by an event of its own batch (it would get no attempt).
    async fn lane(&self, mut rx: mpsc::Receiver<Taken>, settle: &Settle) -> Result<(), IntakeError> {
        let mut next = None;
        loop {
            let first = match next.take() {
                Some(taken) => taken,
                None => match rx.recv().await {
                    Some(taken) => taken,
                    None => return Ok(()),
                },
            };
            // The batch's conversions, so each message is checked once, not against every other.
            let mut conversions = std::collections::HashSet::new();
            conversions.extend(conversion_of(&first));
            let mut batch = vec![first];
            while batch.len() < self.cfg.amqp.batch_size {
                let Ok(taken) = rx.try_recv() else { break };
                if conversion_of(&taken).is_some_and(|id| !conversions.insert(id)) {
                    next = Some(taken);
                    break;
                }
                batch.push(taken);
            }
            self.process(settle, batch).await?;
        }
    }

    async fn process(&self, settle: &Settle, taken: Vec<Taken>) -> Result<(), IntakeError> {
        let mut batch = Vec::with_capacity(taken.len());
        let mut messages = Vec::with_capacity(taken.len());
        // Released when this returns: acked, or the session ends (and the broker requeues).
        let mut held = Vec::with_capacity(taken.len());
        let mut inputs = Vec::with_capacity(taken.len());
        for (d, m, h, input) in taken {
            batch.push(d);
            messages.push(m);
            held.push(h);
            inputs.push(input);
        }
        let tags = feed::tags_by_input(&batch, &inputs);
        let logged = self.log(&batch, &mut messages).await?;
        if let Err(e) = self
            .finish(&settle.acks, &settle.dlx, &batch, &messages, &tags)
            .await
        {
            // Committed but not acked: the session ends, and once its connection is closed (the
            // messages back in the queue) the leases are given back.
            settle
                .unsettled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(logged.hand_off);
            return Err(e);
        }
        self.count(&messages, &logged);
        self.metrics.batch_messages.observe(batch.len() as f64);
        for (input, tags) in &tags {
            // No request while one of these is unacked: a lane that committed ahead of an
            // earlier delivery in another lane waits for that commit's ack.
            if let Some(last) = tags.iter().max() {
                settle.acks[*input].wait_acked(*last).await;
            }
        }
        // Acked: the waiting deliveries may now be handed on (by the recorder once the attempt
        // in flight ends, or by a poller).
        self.dispatch.hand_off(&self.jobs, logged.hand_off).await;
        Ok(())
    }

    /// After the commit: dead-letter the invalid messages, then mark the batch done, which
    /// acks every message up to the first one still in a lane.
    async fn finish(
        &self,
        acks: &[Acks],
        dlx: &Channel,
        batch: &[Delivery],
        messages: &[sql::Message],
        tags: &feed::TagsByInput,
    ) -> Result<(), IntakeError> {
        for (delivery, message) in batch.iter().zip(messages) {
            if let sql::Message::Invalid(rejected) = message {
                self.dead_letter(dlx, delivery, &rejected.reason).await?;
            }
        }
        // Delivery tags are per channel, and each input has its own channel and acks.
        for (input, tags) in tags {
            acks[*input].done(tags.iter().copied()).await?;
        }
        Ok(())
    }

    async fn dead_letter(&self, dlx: &Channel, d: &Delivery, reason: &str) -> Result<(), IntakeError> {
        let headers = d.properties.headers().clone().unwrap_or_default();
        let props = amqp::properties(amqp::with_header(headers, "x-xpb-reason", reason));
        amqp::publish_confirmed(
            dlx,
            &self.cfg.amqp.dead_letter_exchange,
            d.routing_key.as_str(),
            &d.data,
            props,
        )
        .await?;
        Ok(())
    }

    fn count(&self, messages: &[sql::Message], logged: &sql::Logged) {
        for (message, decision) in messages.iter().zip(&logged.decisions) {
            let outcome = decision.map_or("rejected", Decision::as_str);
            self.metrics.event(outcome);
            if let sql::Message::Valid(e) = message {
                if matches!(decision, Some(Decision::Duplicate | Decision::Stale)) {
                    tracing::info!(conversion_id = %e.conversion_id, status = %e.status, outcome, "event skipped");
                } else {
                    tracing::debug!(conversion_id = %e.conversion_id, status = %e.status, outcome, "event decided");
                }
            } else if let sql::Message::Invalid(rejected) = message {
                self.metrics.reject(rejected.code);
            }
        }
        self.metrics.delivery("created", logged.deliveries as u64);
        self.metrics.delivery("superseded", logged.superseded as u64);
    }
}

/// The lane of a message: by its conversion id, so one conversion's events stay in order; an
/// invalid message by its tag.
fn lane_of(message: &sql::Message, tag: u64, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    match message {
        sql::Message::Valid(event) => event.conversion_id.hash(&mut h),
        sql::Message::Invalid(_) => tag.hash(&mut h),
    }
    (h.finish() % lanes as u64) as usize
}

/// The conversion a taken message is an event of; an invalid message is of none.
fn conversion_of(taken: &Taken) -> Option<String> {
    match &taken.1 {
        sql::Message::Valid(event) => Some(event.conversion_id.clone()),
        sql::Message::Invalid(_) => None,
    }
}

/// What a finished lane task means for the session.
fn lane_end(ended: Result<Result<(), IntakeError>, tokio::task::JoinError>) -> Result<(), IntakeError> {
    match ended {
        Ok(result) => result,
        Err(e) => Err(IntakeError::LanePanicked(e.to_string())),
    }
}
