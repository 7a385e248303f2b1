//! A routing key is the publisher's text: the daemon's log escapes its control characters, so a
//! key cannot forge a log line or drive the operator's terminal.

use lapin::types::FieldTable;

use crate::harness::child::Daemon;
use crate::harness::*;

#[tokio::test]
async fn a_routing_key_with_control_characters_is_logged_escaped() {
    let env = Env::new().await;
    let mut daemon = Daemon::spawn(&env, &[]);
    daemon.wait_for_line(&["consuming"]).await;
    let conn = cross_postback::amqp::connect(&env.cfg.amqp.url, "xpb-test publisher")
        .await
        .expect("broker");
    let channel = cross_postback::amqp::confirm_channel(&conn)
        .await
        .expect("channel");
    cross_postback::amqp::publish_confirmed(
        &channel,
        &env.cfg.amqp.exchange,
        "conversion.\u{1b}[2J\nFORGED line",
        b"not json",
        cross_postback::amqp::properties(FieldTable::default()),
    )
    .await
    .expect("published and confirmed");
    let _ = conn.close(200, "bye".into()).await;

    let line = daemon.wait_for_line(&["invalid message rejected"]).await;
    assert!(
        line.contains(r"conversion.\u{1b}[2J\nFORGED line"),
        "the key, escaped: {line}"
    );
    let seen = daemon.kill().await;
    assert!(
        !seen
            .iter()
            .any(|l| l.contains('\u{1b}') || l.starts_with("FORGED")),
        "a raw control character reached the log:\n{}",
        seen.join("\n")
    );
}
