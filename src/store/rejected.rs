//! `rejected_messages` as the CLI reads them: list, fetch one to replay, mark it replayed.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::Result;

/// How many bytes of each body `list` reads, for its preview.
pub const PREVIEW_BYTES: i32 = 200;

/// One rejected message as listed.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub routing_key: Option<String>,
    pub body_size: i32,
    pub reason: String,
    pub replayed_at: Option<DateTime<Utc>>,
    /// The first [`PREVIEW_BYTES`] bytes of the body.
    pub head: Vec<u8>,
}

/// The newest `limit` rejected messages, newest first.
pub async fn list(client: &impl GenericClient, limit: i64) -> Result<Vec<Listed>> {
    let rows = client
        .query(
            "SELECT id, received_at, routing_key, body_size, reason, replayed_at,
                    substring(body FROM 1 FOR $2)
             FROM rejected_messages ORDER BY id DESC LIMIT $1",
            &[&limit, &PREVIEW_BYTES],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Listed {
            id: r.get(0),
            received_at: r.get(1),
            routing_key: r.get(2),
            body_size: r.get(3),
            reason: r.get(4),
            replayed_at: r.get(5),
            head: r.get(6),
        })
        .collect())
}

/// A rejected message with its stored body.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: i64,
    pub body: Vec<u8>,
    /// The size as received; larger than `body` when only the first 64 KiB were kept.
    pub body_size: i32,
    pub routing_key: Option<String>,
    pub reason: String,
}

impl Stored {
    /// Whether the stored body is the whole message (it may be flagged `truncated` merely for
    /// being over `amqp.max_message_bytes` while still under the 64 KiB kept).
    pub fn is_complete(&self) -> bool {
        usize::try_from(self.body_size).is_ok_and(|size| size == self.body.len())
    }
}

pub async fn get(client: &impl GenericClient, id: i64) -> Result<Option<Stored>> {
    let row = client
        .query_opt(
            "SELECT id, body, body_size, routing_key, reason FROM rejected_messages WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| Stored {
        id: r.get(0),
        body: r.get(1),
        body_size: r.get(2),
        routing_key: r.get(3),
        reason: r.get(4),
    }))
}

/// Records that the message was published again.
pub async fn mark_replayed(client: &impl GenericClient, id: i64) -> Result<()> {
    client
        .execute(
            "UPDATE rejected_messages SET replayed_at = now() WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(())
}
