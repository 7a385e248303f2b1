//! `cross-postback publish`: each line verbatim, persistent and `mandatory`, with confirms.

use std::io::Read;

use anyhow::{Context, bail};
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;

use super::PublishArgs;
use crate::amqp;
use crate::config::Config;
use crate::event::Status;

/// The routing key of a line: `conversion.<status>`, or `conversion.unknown`.
pub fn routing_key(line: impl AsRef<[u8]>) -> String {
    let status = serde_json::from_slice::<serde_json::Value>(line.as_ref())
        .ok()
        .and_then(|v| {
            let s = v.get("status")?;
            let text = match s {
                serde_json::Value::String(t) => t.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Status::parse(&text)
        });
    format!("conversion.{}", status.map_or("unknown", |s| s.as_str()))
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
    let lines = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty());
    let conn = amqp::connect(&cfg.amqp.url, "cross-postback publish").await?;
    let channel = amqp::confirm_channel(&conn).await?;
    amqp::declare_topology(&channel, &cfg.amqp).await?;
    let mut pending = Vec::new();
    for line in lines {
        let key = args.routing_key.clone().unwrap_or_else(|| routing_key(line));
        let confirm = channel
            .basic_publish(
                cfg.amqp.exchange.as_str().into(),
                amqp::routing_key_short(&key),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                line,
                amqp::properties(FieldTable::default()),
            )
            .await?;
        pending.push(confirm);
    }
    let total = pending.len();
    let mut failed = 0;
    let mut first = None;
    for (i, confirm) in pending.into_iter().enumerate() {
        if let Err(e) = amqp::check_confirm(confirm.await?) {
            first.get_or_insert(format!("line {}: {e}", i + 1));
            failed += 1;
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    if let Some(first) = first {
        bail!("{failed} of {total} messages were not accepted by the broker (first: {first})");
    }
    println!("published {total} messages");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys() {
        assert_eq!(routing_key(r#"{"status":"Confirmed"}"#), "conversion.approved");
        assert_eq!(routing_key(r#"{"status":3}"#), "conversion.declined");
        assert_eq!(routing_key(r#"{"status":"weird"}"#), "conversion.unknown");
        assert_eq!(routing_key("not json"), "conversion.unknown");
    }
}
