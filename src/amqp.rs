//! RabbitMQ: connection, topology, and publishing with publisher confirms.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

mod topology;

pub use topology::{
    Names, declare_exchange, declare_topology, declared_names, delete_all, unbind_other_mode,
};

/// Errors of the broker. A variant's text names what failed; its cause is its source, left out
/// of the text (print the whole with [`crate::report::one_line`]).
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("broker")]
    Lapin(#[from] lapin::Error),
    #[error(
        "declaring {what} (an existing queue or exchange declared with other arguments must be deleted, or the configuration changed to match it)"
    )]
    Topology { what: String, source: lapin::Error },
    #[error(
        "declaring exchange `{exchange}` of type {kind}: the broker does not know that type; \
         amqp.mode = \"ordered\" needs RabbitMQ's rabbitmq_consistent_hash_exchange plugin \
         (`rabbitmq-plugins enable rabbitmq_consistent_hash_exchange`)"
    )]
    MissingPlugin {
        exchange: String,
        kind: &'static str,
        source: lapin::Error,
    },
    #[error("the broker returned the message as unroutable ({0})")]
    Returned(String),
    #[error("the broker refused the message (nack)")]
    Nacked,
}

pub async fn connect(url: &str, name: &str) -> Result<Connection, AmqpError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Ok(Connection::connect(url, props).await?)
}

/// Closes `channels`, each awaited, then the connection. A channel whose last handle is
/// dropped while its connection is open asks the client to close it in the background; if the
/// connection starts closing first, that late close fails and the client logs it as a
/// connection error. Closed here first, nothing is left for the background. Returns whether
/// the connection closed cleanly (the broker then holds every message left unacked).
pub async fn close(conn: &Connection, channels: &[&Channel]) -> bool {
    for channel in channels {
        if channel.status().connected() {
            let _ = channel.close(200, "bye".into()).await;
        }
    }
    conn.close(200, "bye".into()).await.is_ok()
}

/// Whether the broker refused this client for good: a login refused, a virtual host missing
/// or not allowed. Waiting does not change that; an unreachable broker may come up.
pub fn is_refused(e: &AmqpError) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    let AmqpError::Lapin(e) = e else {
        return false;
    };
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => matches!(
            p.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
                | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
        ),
        lapin::ErrorKind::AuthProviderError(_) | lapin::ErrorKind::InvalidProtocolVersion(_) => true,
        _ => false,
    }
}

/// Where the broker of `url` is, for messages: `host:port`; nothing secret.
pub fn server_address(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let default = if u.scheme() == "amqps" { 5671 } else { 5672 };
            format!(
                "{}:{}",
                u.host_str().unwrap_or("localhost"),
                u.port().unwrap_or(default)
            )
        }
        Err(_) => "an unparsable address".to_owned(),
    }
}

/// Whether the broker answered 404 NOT_FOUND (a passive declare of something missing).
pub fn is_not_found(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(
        e.kind(),
        lapin::ErrorKind::ProtocolError(p) if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)
    )
}

/// A channel with publisher confirms on.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel, AmqpError> {
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(channel)
}

/// Persistent JSON message properties, with headers.
pub fn properties(headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_headers(headers)
}

/// Publishes one message as `mandatory` and waits for its confirm: a nack or a return is an
/// error.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), AmqpError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key_short(routing_key),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            props,
        )
        .await?
        .await?;
    check_confirm(confirm)
}

/// Turns a publisher confirm into a result.
pub fn check_confirm(confirm: lapin::Confirmation) -> Result<(), AmqpError> {
    if confirm.is_nack() {
        return Err(AmqpError::Nacked);
    }
    match confirm.take_message() {
        Some(returned) => Err(AmqpError::Returned(format!(
            "{} {}",
            returned.reply_code,
            returned.reply_text.as_str()
        ))),
        None => Ok(()),
    }
}

/// A routing key cut to AMQP's 255-byte limit (on a character boundary).
pub fn routing_key_short(key: &str) -> ShortString {
    let mut end = key.len().min(255);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    key[..end].into()
}

/// Message headers as JSON, for `rejected_messages.headers`.
pub fn headers_json(headers: Option<&FieldTable>) -> serde_json::Value {
    let Some(table) = headers else {
        return serde_json::Value::Null;
    };
    serde_json::Value::Object(
        table
            .inner()
            .iter()
            .map(|(k, v)| (clean(k.as_str()), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &AMQPValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        AMQPValue::Boolean(b) => J::Bool(*b),
        AMQPValue::ShortShortInt(n) => J::from(*n),
        AMQPValue::ShortShortUInt(n) => J::from(*n),
        AMQPValue::ShortInt(n) => J::from(*n),
        AMQPValue::ShortUInt(n) => J::from(*n),
        AMQPValue::LongInt(n) => J::from(*n),
        AMQPValue::LongUInt(n) => J::from(*n),
        AMQPValue::LongLongInt(n) => J::from(*n),
        AMQPValue::Timestamp(n) => J::from(*n),
        AMQPValue::ShortString(s) => J::String(clean(s.as_str())),
        AMQPValue::LongString(s) => J::String(clean(&String::from_utf8_lossy(s.as_bytes()))),
        AMQPValue::FieldArray(a) => J::Array(a.as_slice().iter().map(value_json).collect()),
        AMQPValue::FieldTable(t) => headers_json(Some(t)),
        other => J::String(clean(&format!("{other:?}"))),
    }
}

/// Text for Postgres, which cannot hold NUL.
pub fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// Adds a text header.
pub fn with_header(mut table: FieldTable, key: &str, value: &str) -> FieldTable {
    table.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    table
}

#[cfg(test)]
mod tests {
    use super::AmqpError;

    #[test]
    fn the_broker_address_names_host_and_port_and_nothing_secret() {
        assert_eq!(
            super::server_address("amqp://u:secret@mq.example/%2f"),
            "mq.example:5672"
        );
        assert_eq!(super::server_address("amqps://u:secret@mq:1/v"), "mq:1");
    }

    /// Each cause once, however the error is printed.
    #[test]
    fn a_broker_error_shows_its_cause_once() {
        let cause = || lapin::Error::from(lapin::ErrorKind::ChannelsLimitReached);
        let topology = AmqpError::Topology {
            what: "queue `q`".into(),
            source: cause(),
        };
        for e in [AmqpError::from(cause()), topology] {
            let e = anyhow::Error::new(e);
            for text in [format!("{e:#}"), crate::report::one_line(e.as_ref())] {
                assert_eq!(text.matches("maximum number of channels").count(), 1, "{text}");
            }
        }
    }
}
