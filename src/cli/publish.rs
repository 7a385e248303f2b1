//! `cross-postback publish`: each line verbatim, persistent and `mandatory`, with confirms and
//! the `x-conversion-id` header; or, with `--check`, each line validated as the daemon would.

use std::io::Read;

use anyhow::{Context, bail};
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

use super::PublishArgs;
use crate::amqp;
use crate::config::Config;
use crate::event::{self, Status};

/// The header that carries the conversion's id, so that a consumer can tell the conversion
/// without parsing the body.
pub const CONVERSION_ID_HEADER: &str = "x-conversion-id";

/// The routing key of a line: `conversion.<status>`, or `conversion.unknown`.
pub fn routing_key(line: impl AsRef<[u8]>) -> String {
    routing_key_of(&json_of(line.as_ref()))
}

fn json_of(line: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(line).ok()
}

fn routing_key_of(json: &Option<serde_json::Value>) -> String {
    let status = json.as_ref().and_then(|v| {
        let text = match v.get("status")? {
            serde_json::Value::String(t) => t.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Status::parse(&text)
    });
    format!("conversion.{}", status.map_or("unknown", |s| s.as_str()))
}

/// The headers of a line: `x-conversion-id` when it has a string `conversion_id`.
fn headers_of(json: &Option<serde_json::Value>) -> FieldTable {
    let id = json
        .as_ref()
        .and_then(|v| v.get("conversion_id")?.as_str().map(str::to_owned));
    match id {
        Some(id) => amqp::with_header(FieldTable::default(), CONVERSION_ID_HEADER, &id),
        None => FieldTable::default(),
    }
}

/// The input's lines: (line number from 1, bytes); blank lines are counted apart.
struct Lines<'a> {
    lines: Vec<(usize, &'a [u8])>,
    blank: usize,
}

fn lines(input: &[u8]) -> Lines<'_> {
    let mut all: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    // The newline that ends the last line opens no line of its own.
    if all.last().is_some_and(|l| l.is_empty()) {
        all.pop();
    }
    let mut out = Lines {
        lines: Vec::new(),
        blank: 0,
    };
    for (i, line) in all.into_iter().enumerate() {
        if line.trim_ascii().is_empty() {
            out.blank += 1;
        } else {
            out.lines.push((i + 1, line));
        }
    }
    out
}

/// "1 message", "2 messages".
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn skipped(blank: usize) -> String {
    if blank == 0 {
        String::new()
    } else {
        format!(" (skipped {})", plural(blank, "blank line"))
    }
}

pub async fn run(args: PublishArgs, cfg: &Config) -> anyhow::Result<()> {
    // Bytes, not text: each line goes out verbatim, invalid ones (not UTF-8, not JSON) too.
    let mut input = Vec::new();
    match args.file.as_deref() {
        Some(p) if p.as_os_str() != "-" => {
            input = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut input)
                .context("reading standard input")?;
        }
    }
    let lines = lines(&input);
    if args.check {
        return check(&lines, cfg.amqp.max_message_bytes);
    }
    publish(&args, &lines, cfg).await
}

/// Validates each line with the daemon's parser and size limit; prints each invalid line and
/// a summary.
fn check(lines: &Lines<'_>, max_bytes: usize) -> anyhow::Result<()> {
    let mut invalid = 0;
    for (number, line) in &lines.lines {
        if let Err(e) = event::parse_within(line, max_bytes) {
            invalid += 1;
            println!("line {number}: {e} [{}]", e.reason_code());
        }
    }
    let total = lines.lines.len();
    println!(
        "{}: {} valid, {} invalid{}",
        plural(total, "line"),
        total - invalid,
        invalid,
        skipped(lines.blank)
    );
    if invalid > 0 {
        bail!("{} of {total} invalid", plural(invalid, "line"));
    }
    Ok(())
}

async fn publish(args: &PublishArgs, lines: &Lines<'_>, cfg: &Config) -> anyhow::Result<()> {
    // Every broker error comes back here and is printed once, as one line.
    crate::telemetry::mute_broker_logs();
    let conn = amqp::connect(&cfg.amqp.url, "cross-postback publish").await?;
    let channel = amqp::confirm_channel(&conn).await?;
    if args.declare {
        amqp::declare_topology(&channel, &cfg.amqp).await?;
    } else {
        exchange_exists(&channel, &cfg.amqp.exchange).await?;
    }
    let mut pending = Vec::new();
    for (number, line) in &lines.lines {
        let json = json_of(line);
        let key = args.routing_key.clone().unwrap_or_else(|| routing_key_of(&json));
        let confirm = channel
            .basic_publish(
                cfg.amqp.exchange.as_str().into(),
                amqp::routing_key_short(&key),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                line,
                amqp::properties(headers_of(&json)),
            )
            .await?;
        pending.push((*number, confirm));
    }
    let total = pending.len();
    let mut failed = 0;
    let mut first = None;
    for (number, confirm) in pending {
        if let Err(e) = amqp::check_confirm(confirm.await?) {
            first.get_or_insert(format!("line {number}: {e}"));
            failed += 1;
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    if let Some(first) = first {
        bail!("{failed} of {total} messages were not accepted by the broker (first: {first})");
    }
    println!("published {}{}", plural(total, "message"), skipped(lines.blank));
    Ok(())
}

/// Fails with one clear line when the exchange is missing: publishing declares nothing unless
/// asked, so a mistyped name cannot create an exchange nobody consumes from.
async fn exchange_exists(channel: &Channel, exchange: &str) -> anyhow::Result<()> {
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let found = channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            passive,
            FieldTable::default(),
        )
        .await;
    match found {
        Ok(()) => Ok(()),
        Err(e) if amqp::is_not_found(&e) => bail!(
            "exchange `{exchange}` does not exist on the broker: start the daemon once (it \
             declares its exchanges and queues) or pass --declare"
        ),
        Err(e) => {
            Err(amqp::AmqpError::from(e)).context(format!("checking that exchange `{exchange}` exists"))
        }
    }
}

#[cfg(test)]
mod tests;
