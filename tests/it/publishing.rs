//! `publish --check` and `publish` with the real binary: the daemon's verdicts line by line,
//! nothing declared unless asked, honest counts, the `x-conversion-id` header.

use lapin::options::{BasicGetOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

use crate::harness::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/events.jsonl");

/// Writes `text` to a fresh temporary file and returns its path.
fn file(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("xpb-publishing-{}.jsonl", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).expect("write temporary file");
    path
}

/// Runs the binary with `args` and a file of `text` as the last argument.
async fn cli_with_file(env: &Env, args: &[&str], text: &str) -> (i32, String, String) {
    let path = file(text);
    let mut all = args.to_vec();
    all.push(path.to_str().expect("path"));
    let out = env.cli_async(&all).await;
    let _ = std::fs::remove_file(&path);
    out
}

#[tokio::test]
async fn check_passes_a_valid_file_and_publishes_nothing() {
    let env = Env::new().await;
    let text = [
        ev("c1", "approved", 0, serde_json::json!({})),
        ev("c2", "1", 1, serde_json::json!({})),
    ]
    .join("\n");
    let (code, out, err) = cli_with_file(&env, &["publish", "--check"], &text).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "2 lines: 2 valid, 0 invalid\n"),
        "{err}"
    );
    // Nothing was declared, so nothing can have been published.
    let conn = cross_postback::amqp::connect(&env.cfg.amqp.url, "xpb-test probe")
        .await
        .expect("broker");
    let ch = conn.create_channel().await.expect("channel");
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let exists = ch
        .exchange_declare(
            env.cfg.amqp.exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            passive,
            FieldTable::default(),
        )
        .await;
    assert!(exists.is_err(), "--check declared the exchange");
}

#[tokio::test]
async fn check_names_each_invalid_line_with_the_daemons_reason() {
    let env = Env::new().await;
    let good = ev("c1", "approved", 0, serde_json::json!({}));
    let lines = [
        good.clone(),
        String::new(),
        r#"{"status":1,"updated_at":"2026-01-02T03:04:05Z","offer_id":1,"affiliate_id":1}"#.to_owned(),
        ev("c2", "approved", 0, serde_json::json!({ "payout": {} })),
        ev("c3", "paid", 0, serde_json::json!({})),
        ev(
            "c4",
            "approved",
            0,
            serde_json::json!({ "created_at": "yesterday" }),
        ),
        "not json".to_owned(),
        "   ".to_owned(),
        good,
    ];
    let (code, out, err) = cli_with_file(&env, &["publish", "--check"], &lines.join("\n")).await;
    assert_eq!(code, 1, "{out}{err}");
    let want = [
        "line 3: missing required field `conversion_id` [missing_field]",
        "line 4: `payout` must be a decimal number, got an object [wrong_type]",
        "line 5: unknown status \"paid\" (allowed: approved, confirmed, pending, declined, hold, not_found, or the codes 1, 2, 3, 5) [bad_status]",
        "line 6: `created_at` is not an RFC 3339 timestamp with an offset (premature end of input): \"yesterday\" [bad_timestamp]",
        "line 7: body is not valid JSON: expected ident at line 1 column 2 [not_json]",
        "7 lines: 2 valid, 5 invalid (skipped 2 blank lines)",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    assert_eq!(err.trim(), "error: 5 lines of 7 invalid");
}

#[tokio::test]
async fn check_applies_the_daemons_size_limit() {
    let env = Env::new().await;
    let big = ev(
        "c1",
        "approved",
        0,
        serde_json::json!({ "comment": "x".repeat(200) }),
    );
    let path = file(&big);
    let mut cmd = env.command();
    cmd.env("XPB_AMQP__MAX_MESSAGE_BYTES", "100");
    cmd.args(["publish", "--check", path.to_str().expect("path")]);
    let (code, out, _) = output_within_deadline(cmd).await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 1);
    let first = out.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "line 1: message is {} bytes, over amqp.max_message_bytes (100) [too_large]",
            big.len()
        )
    );
}

/// The shipped examples through `--check`, then through the daemon: the reason `--check`
/// prints for line 9 is the one the daemon stores.
#[tokio::test]
async fn check_and_the_daemon_give_the_same_reason() {
    let env = Env::new().await;
    let (code, out, _) = env.cli_async(&["publish", "--check", EXAMPLES]).await;
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[1], "9 lines: 8 valid, 1 invalid");
    let daemon = env.start().await;
    let (code, out, err) = env.cli_async(&["publish", EXAMPLES]).await;
    assert_eq!((code, out.as_str()), (0, "published 9 messages\n"), "{err}");
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", 1).await;
    daemon.stop().await;
    let stored = rows(&pg, "SELECT reason FROM rejected_messages").await;
    let reason = stored[0][0].clone().unwrap_or_default();
    assert!(lines[0].starts_with("line 9: "), "{out}");
    assert_eq!(lines[0], format!("line 9: {reason} [not_json]"));
}

#[tokio::test]
async fn publish_declares_nothing_by_default_and_says_what_to_do() {
    let env = Env::new().await;
    let (code, out, err) = cli_with_file(
        &env,
        &["publish"],
        &ev("c1", "approved", 0, serde_json::json!({})),
    )
    .await;
    assert_eq!(code, 1, "{out}");
    let exchange = &env.cfg.amqp.exchange;
    assert_eq!(
        err.trim(),
        format!(
            "error: exchange `{exchange}` does not exist on the broker: start the daemon once (it declares its exchanges and queues) or pass --declare"
        )
    );
    let (code, out, err) = cli_with_file(
        &env,
        &["publish", "--declare"],
        &ev("c1", "approved", 0, serde_json::json!({})),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "published 1 message\n"), "{err}");
    // Now it exists: without --declare it publishes.
    let (code, out, err) = cli_with_file(
        &env,
        &["publish"],
        &ev("c2", "approved", 0, serde_json::json!({})),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "published 1 message\n"), "{err}");
}

#[tokio::test]
async fn publish_skips_blank_lines_says_so_and_sets_the_conversion_header() {
    let env = Env::new().await;
    let text = format!(
        "{}\n\n{}\n\"no id\"\n",
        ev("c-1", "approved", 0, serde_json::json!({})),
        ev("c-2", "pending", 0, serde_json::json!({}))
    );
    let (code, out, err) = cli_with_file(&env, &["publish", "--declare"], &text).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "published 3 messages (skipped 1 blank line)\n"),
        "{err}"
    );
    let conn = cross_postback::amqp::connect(&env.cfg.amqp.url, "xpb-test reader")
        .await
        .expect("broker");
    let ch = conn.create_channel().await.expect("channel");
    let mut headers = Vec::new();
    for _ in 0..3 {
        let msg = ch
            .basic_get(
                env.cfg.amqp.queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
            .expect("a message in the queue");
        let table = msg.delivery.properties.headers().clone().unwrap_or_default();
        headers.push(match table.inner().get("x-conversion-id") {
            Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            _ => None,
        });
    }
    let _ = conn.close(200, "bye".into()).await;
    headers.sort();
    assert_eq!(headers, [None, Some("c-1".to_owned()), Some("c-2".to_owned())]);
}
