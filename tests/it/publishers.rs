//! The Python publisher of docs/publishing.md (tests/publishers/publish.py), run with pika
//! against the real broker and daemon: its events arrive as cross-postbacks.

use crate::harness::*;

const PUBLISHER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/publishers/publish.py");

/// Whether pika imports; when not, says so on the real stderr (the test harness captures
/// `eprintln!` of a passing test, which would hide the skip).
fn pika_installed(test: &str) -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import pika"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n!!! SKIPPED {test}: `python3 -c 'import pika'` fails; scripts/test installs pika \
             (python3 -m pip install pika) !!!\n"
        );
    }
    found
}

#[tokio::test]
async fn the_python_publisher_delivers_its_events() {
    if !pika_installed("the_python_publisher_delivers_its_events") {
        return;
    }
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?conv={conversion_id}&status={status}"))
        .await;
    let daemon = env.start().await;
    let events = [
        ev("py-1", "pending", 0, serde_json::json!({ "event_id": "py-1-p" })),
        ev("py-1", "approved", 1, serde_json::json!({ "event_id": "py-1-a" })),
        ev("py-2", "declined", 0, serde_json::json!({ "event_id": "py-2-d" })),
        // Refused by the daemon: its stored headers show what the publisher sent.
        ev("py-3", "paid", 0, serde_json::json!({})),
    ];
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(PUBLISHER)
        .arg("-")
        .env("AMQP_URL", &env.cfg.amqp.url)
        .env("EXCHANGE", &env.cfg.amqp.exchange)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("python3 runs");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, events.join("\n").as_bytes())
        .await
        .expect("write events");
    drop(stdin);
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("the publisher ends in time")
        .expect("the publisher runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "published 4 messages\n");

    let requests = rx.wait_for(3).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", 1).await;
    daemon.stop().await;
    let stored = rows(
        &pg,
        "SELECT routing_key, headers->>'x-conversion-id' FROM rejected_messages",
    )
    .await;
    assert_eq!(
        stored,
        [[Some("conversion.paid".to_owned()), Some("py-3".to_owned())]]
    );
    let mut got: Vec<(String, String, String)> = requests
        .iter()
        .map(|r| {
            (
                r.param("conv").unwrap_or_default(),
                r.param("status").unwrap_or_default(),
                r.header("idempotency-key").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got.sort();
    let id = |s: &str| s.to_owned();
    assert_eq!(
        got,
        [
            (id("py-1"), id("1"), id("py-1-a:1")),
            (id("py-1"), id("2"), id("py-1-p:1")),
            (id("py-2"), id("3"), id("py-2-d:1")),
        ]
    );
}

/// The publisher fails when the broker cannot route an event, instead of losing it.
#[tokio::test]
async fn the_python_publisher_fails_on_an_unroutable_event() {
    if !pika_installed("the_python_publisher_fails_on_an_unroutable_event") {
        return;
    }
    let env = Env::new().await;
    // The exchange exists, but no queue is bound to it.
    let conn = cross_postback::amqp::connect(&env.cfg.amqp.url, "xpb-test")
        .await
        .expect("broker");
    let ch = conn.create_channel().await.expect("channel");
    ch.exchange_declare(
        env.cfg.amqp.exchange.as_str().into(),
        lapin::ExchangeKind::Topic,
        lapin::options::ExchangeDeclareOptions::default(),
        lapin::types::FieldTable::default(),
    )
    .await
    .expect("declare");
    let _ = conn.close(200, "bye".into()).await;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(PUBLISHER)
        .arg("-")
        .env("AMQP_URL", &env.cfg.amqp.url)
        .env("EXCHANGE", &env.cfg.amqp.exchange)
        .stdin(std::process::Stdio::null());
    // An empty input publishes nothing and succeeds; one event must fail.
    let (code, out, _) = output_within_deadline(cmd).await;
    assert_eq!((code, out.as_str()), (0, "published 0 messages\n"));
    let path = std::env::temp_dir().join(format!("xpb-py-{}.jsonl", uuid::Uuid::new_v4()));
    std::fs::write(&path, ev("c1", "approved", 0, serde_json::json!({}))).expect("write");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(PUBLISHER)
        .arg(&path)
        .env("AMQP_URL", &env.cfg.amqp.url)
        .env("EXCHANGE", &env.cfg.amqp.exchange);
    let (code, _, err) = output_within_deadline(cmd).await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not accepted by the broker"), "{err}");
}

/// docs/publishing.md quotes the publisher that this suite runs, word for word.
#[test]
fn the_guide_quotes_the_tested_publisher() {
    let doc = include_str!("../../docs/publishing.md");
    let publisher = include_str!("../publishers/publish.py");
    assert!(
        doc.contains(&format!("```python\n{publisher}```")),
        "docs/publishing.md no longer quotes tests/publishers/publish.py as it is"
    );
}
