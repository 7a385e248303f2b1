//! Validation of one delivery: an event, or a rejected message with its reason.

use std::sync::Arc;

use lapin::message::Delivery;
use sha2::{Digest, Sha256};

use crate::amqp;
use crate::event;
use crate::output;
use crate::store::intake as sql;

/// How much of an oversized body is kept in `rejected_messages`.
const OVERSIZED_KEEP: usize = 64 * 1024;

/// Validates one message; an invalid one keeps its body (or the first 64 KiB of it).
pub(super) fn message(d: &Delivery, max: usize) -> sql::Message {
    // The same check `publish --check` makes, with the same reasons.
    let (code, reason) = match event::parse_within(&d.data, max) {
        Ok(event) => return sql::Message::Valid(Arc::new(event)),
        Err(invalid) => (invalid.reason_code(), invalid.0),
    };
    let rejected = rejected(d, max, code, reason);
    if let sql::Message::Invalid(r) = &rejected {
        tracing::warn!(routing_key = %output::printable(&r.routing_key), reason = %r.reason, "invalid message rejected");
    }
    rejected
}

/// A message rejected for `reason`, kept with its body (or the first 64 KiB of it).
pub(super) fn rejected(d: &Delivery, max: usize, code: &'static str, reason: String) -> sql::Message {
    let truncated = d.data.len() > max;
    let body = if truncated {
        d.data[..OVERSIZED_KEEP.min(d.data.len())].to_vec()
    } else {
        d.data.clone()
    };
    // The key is the publisher's text: cleaned as for Postgres, then with its control
    // characters escaped, so it cannot forge a log line or drive a terminal.
    let routing_key = amqp::clean(d.routing_key.as_str());
    sql::Message::Invalid(sql::Rejected {
        body,
        size: d.data.len(),
        sha256: truncated.then(|| Sha256::digest(&d.data).to_vec()),
        truncated,
        routing_key,
        headers: amqp::headers_json(d.properties.headers().as_ref()),
        reason,
        code,
    })
}
