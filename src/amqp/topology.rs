//! The topology the daemon declares at each session: the exchanges, the dead-letter queue, and
//! the inputs of its mode.
//!
//! - `shared`: the work queue `amqp.queue`, bound to `amqp.exchange` with `amqp.routing_key`.
//! - `ordered`: `amqp.exchange` → (`amqp.routing_key`) → `<queue>.ordered` (fanout, the switch)
//!   → `<queue>.hash` (`x-consistent-hash` on the `x-conversion-id` header) → `amqp.shards`
//!   queues `<queue>.0` … `<queue>.<shards-1>`, each with a single active consumer. What the
//!   hash exchange cannot route goes to its alternate exchange `<queue>.unordered` (fanout) and
//!   queue `<queue>.unordered`, consumed too, so nothing is left unroutable.
//!
//! The daemon binds its mode's input, then unbinds the other's (the work queue, or the switch),
//! so starting replicas of the other mode moves new messages over and the old input only drains.
//! Other commands that declare (`publish --declare`, `rejected replay`) only add bindings.
//! The switch is a plain fanout exchange so that a `shared` daemon can declare it (and so unbind
//! it without a NOT_FOUND) on a broker without the consistent-hash plugin.

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeUnbindOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::AmqpError;
use crate::config::{Amqp, AmqpMode};

/// The hash exchange's type (RabbitMQ's consistent-hash plugin).
const CONSISTENT_HASH: &str = "x-consistent-hash";

/// The names of ordered mode's exchanges and queues, derived from `amqp.queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub switch: String,
    pub hash: String,
    pub unordered: String,
    pub shards: Vec<String>,
}

impl Names {
    pub fn of(cfg: &Amqp) -> Names {
        let q = &cfg.queue;
        Names {
            switch: format!("{q}.ordered"),
            hash: format!("{q}.hash"),
            unordered: format!("{q}.unordered"),
            shards: (0..cfg.shards).map(|n| format!("{q}.{n}")).collect(),
        }
    }
}

/// Every queue and exchange `cfg` declares in either mode: (queues, exchanges).
pub fn declared_names(cfg: &Amqp) -> (Vec<String>, Vec<String>) {
    let names = Names::of(cfg);
    let mut queues = vec![
        cfg.queue.clone(),
        cfg.dead_letter_queue.clone(),
        names.unordered.clone(),
    ];
    queues.extend(names.shards);
    let exchanges = vec![
        cfg.exchange.clone(),
        cfg.dead_letter_exchange.clone(),
        names.switch,
        names.hash,
        names.unordered,
    ];
    (queues, exchanges)
}

/// Deletes `queues` and `exchanges`, each on a channel of its own (a refused delete closes its
/// channel); best effort, for tests and benches that clean up after themselves.
pub async fn delete_all(conn: &lapin::Connection, queues: &[String], exchanges: &[String]) {
    for q in queues {
        if let Ok(ch) = conn.create_channel().await {
            let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
            let _ = ch.close(200, "deleted".into()).await;
        }
    }
    for x in exchanges {
        if let Ok(ch) = conn.create_channel().await {
            let _ = ch.exchange_delete(x.as_str().into(), Default::default()).await;
            let _ = ch.close(200, "deleted".into()).await;
        }
    }
}

/// Declares the exchanges, the dead-letter queue and the inputs of `cfg.mode`, and binds them
/// (see [`unbind_other_mode`] for the switch). Returns the queues to consume. A clash with an existing
/// declaration is an error that names what clashed.
pub async fn declare_topology(channel: &Channel, cfg: &Amqp) -> Result<Vec<String>, AmqpError> {
    for exchange in [&cfg.exchange, &cfg.dead_letter_exchange] {
        exchange_of(channel, exchange, ExchangeKind::Topic, FieldTable::default()).await?;
    }
    let args = queue_args(cfg, false);
    queue(channel, &cfg.dead_letter_queue, args.clone(), cfg).await?;
    bind_queue(channel, &cfg.dead_letter_queue, &cfg.dead_letter_exchange, "#").await?;
    // Both modes declare the work queue and the switch (plain types): unbinding them then never
    // meets a missing exchange or queue, which would close the channel.
    queue(channel, &cfg.queue, args, cfg).await?;
    let names = Names::of(cfg);
    exchange_of(
        channel,
        &names.switch,
        ExchangeKind::Fanout,
        FieldTable::default(),
    )
    .await?;
    match cfg.mode {
        AmqpMode::Shared => {
            bind_queue(channel, &cfg.queue, &cfg.exchange, &cfg.routing_key).await?;
            Ok(vec![cfg.queue.clone()])
        }
        AmqpMode::Ordered => {
            declare_ordered(channel, cfg, &names).await?;
            let mut inputs = names.shards.clone();
            inputs.push(names.unordered);
            Ok(inputs)
        }
    }
}

/// Unbinds the other mode's input from `amqp.exchange`, so new messages reach only this mode's
/// (declared first). Only the daemon does this: a command run with another mode's
/// configuration must not move a running deployment's traffic.
pub async fn unbind_other_mode(channel: &Channel, cfg: &Amqp) -> Result<(), AmqpError> {
    let names = Names::of(cfg);
    let (what, result) = match cfg.mode {
        AmqpMode::Shared => (
            &names.switch,
            channel
                .exchange_unbind(
                    names.switch.as_str().into(),
                    cfg.exchange.as_str().into(),
                    cfg.routing_key.as_str().into(),
                    ExchangeUnbindOptions::default(),
                    FieldTable::default(),
                )
                .await,
        ),
        AmqpMode::Ordered => (
            &cfg.queue,
            channel
                .queue_unbind(
                    cfg.queue.as_str().into(),
                    cfg.exchange.as_str().into(),
                    cfg.routing_key.as_str().into(),
                    FieldTable::default(),
                )
                .await,
        ),
    };
    result.map_err(|source| topology(format!("unbinding `{what}` from `{}`", cfg.exchange), source))
}

/// The hash exchange with its alternate, the shards, and the switch bound last (once every
/// queue is in place).
async fn declare_ordered(channel: &Channel, cfg: &Amqp, names: &Names) -> Result<(), AmqpError> {
    exchange_of(
        channel,
        &names.unordered,
        ExchangeKind::Fanout,
        FieldTable::default(),
    )
    .await?;
    queue(channel, &names.unordered, queue_args(cfg, true), cfg).await?;
    bind_queue(channel, &names.unordered, &names.unordered, "").await?;
    let mut args = FieldTable::default();
    args.insert(
        "hash-header".into(),
        AMQPValue::LongString("x-conversion-id".into()),
    );
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString(names.unordered.as_str().into()),
    );
    declare_exchange(channel, &names.hash, CONSISTENT_HASH, args).await?;
    for shard in &names.shards {
        queue(channel, shard, queue_args(cfg, true), cfg).await?;
        // Equal weights: each shard gets one point on the ring.
        bind_queue(channel, shard, &names.hash, "1").await?;
    }
    bind_exchange(channel, &names.hash, &names.switch, "").await?;
    bind_exchange(channel, &names.switch, &cfg.exchange, &cfg.routing_key).await
}

/// Declares a durable exchange of type `kind`; a type the broker does not know (a plugin not
/// enabled) is [`AmqpError::MissingPlugin`].
pub async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: &'static str,
    args: FieldTable,
) -> Result<(), AmqpError> {
    exchange_of(channel, name, ExchangeKind::Custom(kind.to_owned()), args)
        .await
        .map_err(|e| match e {
            AmqpError::Topology { source, .. } if is_unknown_exchange_type(&source) => {
                AmqpError::MissingPlugin {
                    exchange: name.to_owned(),
                    kind,
                    source,
                }
            }
            other => other,
        })
}

/// RabbitMQ answers an unknown exchange type with 503 COMMAND_INVALID "unknown exchange type".
fn is_unknown_exchange_type(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError};
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => {
            *p.kind() == AMQPErrorKind::Hard(AMQPHardError::COMMANDINVALID)
                && p.get_message().as_str().contains("unknown exchange type")
        }
        _ => false,
    }
}

async fn exchange_of(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
    args: FieldTable,
) -> Result<(), AmqpError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(name.into(), kind, durable, args)
        .await
        .map_err(|source| topology(format!("exchange `{name}`"), source))
}

fn queue_args(cfg: &Amqp, single_active: bool) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(cfg.queue_type.as_str().into()),
    );
    if single_active {
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    args
}

async fn queue(channel: &Channel, name: &str, args: FieldTable, cfg: &Amqp) -> Result<(), AmqpError> {
    let single = args.inner().contains_key("x-single-active-consumer");
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(name.into(), opts, args)
        .await
        .map(drop)
        .map_err(|source| {
            let extra = if single {
                ", x-single-active-consumer=true"
            } else {
                ""
            };
            topology(
                format!(
                    "queue `{name}` with x-queue-type={} (amqp.queue_type){extra}",
                    cfg.queue_type.as_str()
                ),
                source,
            )
        })
}

async fn bind_queue(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), AmqpError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| topology(format!("binding of `{queue}` to `{exchange}`"), source))
}

async fn bind_exchange(
    channel: &Channel,
    destination: &str,
    source_x: &str,
    key: &str,
) -> Result<(), AmqpError> {
    channel
        .exchange_bind(
            destination.into(),
            source_x.into(),
            key.into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| {
            topology(
                format!("binding of exchange `{destination}` to `{source_x}`"),
                source,
            )
        })
}

fn topology(what: String, source: lapin::Error) -> AmqpError {
    AmqpError::Topology { what, source }
}

#[cfg(test)]
mod tests {
    use super::Names;

    #[test]
    fn ordered_names_follow_the_work_queue() {
        let mut cfg = crate::config::Config::default().amqp;
        cfg.queue = "xpb".into();
        cfg.shards = 3;
        let names = Names::of(&cfg);
        assert_eq!(names.switch, "xpb.ordered");
        assert_eq!(names.hash, "xpb.hash");
        assert_eq!(names.unordered, "xpb.unordered");
        assert_eq!(names.shards, ["xpb.0", "xpb.1", "xpb.2"]);
    }
}
