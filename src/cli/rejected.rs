//! `cross-postback rejected list` and `rejected replay ID`: show invalid messages, and publish
//! one again once the configuration (or the daemon) that rejected it was fixed.

use anyhow::{Context, bail};
use clap::Subcommand;
use lapin::types::FieldTable;

use super::{Format, table};
use crate::config::Config;
use crate::store::{self, rejected};
use crate::{amqp, event};

#[derive(Debug, Subcommand)]
pub enum RejectedCommand {
    /// List invalid messages, newest first, with a preview of each body.
    List {
        /// Most messages shown.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Publish a rejected message again, to amqp.exchange with its routing key.
    Replay {
        /// The rejected message's id (see `rejected list`).
        id: i64,
    },
}

/// Characters of a body shown in the list.
const PREVIEW_CHARS: usize = 60;

pub async fn run(cmd: RejectedCommand, cfg: &Config) -> anyhow::Result<()> {
    let pool = store::pool(&cfg.database.url, 2)?;
    let client = pool.get().await.context("connecting to the database")?;
    match cmd {
        RejectedCommand::List { limit, format } => {
            let rows = rejected::list(&client, limit).await?;
            let header = [
                "id",
                "received_at",
                "routing_key",
                "body_size",
                "reason",
                "replayed_at",
                "preview",
            ];
            let cells: Vec<Vec<table::Cell>> = rows
                .into_iter()
                .map(|r| {
                    let size = usize::try_from(r.body_size).unwrap_or(usize::MAX);
                    vec![
                        table::Cell::Int(r.id),
                        table::Cell::Time(r.received_at),
                        table::Cell::opt_text(r.routing_key),
                        table::Cell::Int(i64::from(r.body_size)),
                        table::Cell::Text(r.reason),
                        table::Cell::opt_time(r.replayed_at),
                        table::Cell::Text(preview(&r.head, size)),
                    ]
                })
                .collect();
            table::print(format, &header, &cells);
            Ok(())
        }
        RejectedCommand::Replay { id } => replay(&client, id, cfg).await,
    }
}

async fn replay(client: &deadpool_postgres::Client, id: i64, cfg: &Config) -> anyhow::Result<()> {
    let Some(msg) = rejected::get(client, id).await? else {
        bail!("no rejected message with id {id}");
    };
    if !msg.is_complete() {
        bail!(
            "rejected message {id} cannot be replayed: it was {} bytes and only its first {} were kept",
            msg.body_size,
            msg.body.len()
        );
    }
    let max = cfg.amqp.max_message_bytes;
    if msg.body.len() > max {
        bail!(
            "rejected message {id} is {} bytes, over amqp.max_message_bytes ({max}): raise the limit first",
            msg.body.len()
        );
    }
    if let Err(invalid) = event::parse(&msg.body) {
        bail!("rejected message {id} would be rejected again: {}", invalid.0);
    }
    let key = match msg.routing_key.as_deref() {
        Some(k) if !k.is_empty() => k.to_owned(),
        _ => super::routing_key(&msg.body),
    };
    let conn = amqp::connect(&cfg.amqp.url, "cross-postback rejected replay").await?;
    let channel = amqp::confirm_channel(&conn).await?;
    amqp::declare_topology(&channel, &cfg.amqp).await?;
    // The header lets a message rejected again be traced to the one it replays.
    let headers = amqp::with_header(FieldTable::default(), "x-xpb-replay-of", &id.to_string());
    let published = amqp::publish_confirmed(
        &channel,
        &cfg.amqp.exchange,
        &key,
        &msg.body,
        amqp::properties(headers),
    )
    .await;
    let _ = conn.close(200, "bye".into()).await;
    published.with_context(|| format!("publishing rejected message {id}"))?;
    rejected::mark_replayed(client, id)
        .await
        .with_context(|| format!("rejected message {id} was published again, but recording that failed"))?;
    println!(
        "replayed rejected message {id} ({}) to exchange {} with routing key {key}",
        msg.reason, cfg.amqp.exchange
    );
    Ok(())
}

/// The start of a body as one printable line: invalid UTF-8 and control characters shown as
/// `.`, an ellipsis when there is more.
pub fn preview(head: &[u8], size: usize) -> String {
    let text = String::from_utf8_lossy(head);
    let mut out: String = text
        .chars()
        .take(PREVIEW_CHARS)
        .map(|c| match c {
            '\u{FFFD}' => '.',
            c if c.is_control() => '.',
            c => c,
        })
        .collect();
    if text.chars().count() > PREVIEW_CHARS || size > head.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews() {
        assert_eq!(preview(b"not json", 8), "not json");
        assert_eq!(preview(b"{\"a\":\n1}\t", 9), "{\"a\":.1}.");
        assert_eq!(preview(b"\xff\xfeok", 4), "..ok");
        let long = "x".repeat(100);
        assert_eq!(preview(long.as_bytes(), 100), format!("{}…", "x".repeat(60)));
        assert_eq!(preview(b"abc", 70_000), "abc…", "more than was read");
    }
}
