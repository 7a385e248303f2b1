//! `rejected list` and `rejected replay`: show invalid messages; publish one again once
//! the configuration that rejected it was fixed.

use serde_json::json;

use crate::harness::*;

/// `rejected list --format json`, as JSON.
async fn listed(env: &Env) -> Vec<serde_json::Value> {
    let (code, out, err) = env.cli_async(&["rejected", "list", "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    match serde_json::from_str(&out) {
        Ok(serde_json::Value::Array(rows)) => rows,
        other => panic!("a JSON array: {other:?} from {out}"),
    }
}

#[tokio::test]
async fn list_shows_a_rejected_message_and_replay_refuses_one_that_is_still_invalid() {
    let env = Env::new().await;
    let daemon = env.start().await;
    env.publish(&["not json\tat all".to_owned()]).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", 1).await;
    daemon.stop().await;

    let (code, out, err) = env.cli_async(&["rejected", "list"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for column in [
        "ID",
        "RECEIVED_AT",
        "ROUTING_KEY",
        "BODY_SIZE",
        "REASON",
        "REPLAYED_AT",
        "PREVIEW",
    ] {
        assert!(lines[0].contains(column), "{column} in {}", lines[0]);
    }
    for cell in ["conversion.unknown", "not valid JSON", "not json.at all"] {
        assert!(lines[1].contains(cell), "{cell:?} in {}", lines[1]);
    }
    let rows = listed(&env).await;
    assert_eq!(rows.len(), 1);
    let id = rows[0]["id"].as_i64().expect("numeric id");
    assert_eq!(rows[0]["body_size"], json!(15));
    assert_eq!(rows[0]["replayed_at"], json!(null));

    let (code, _, err) = env.cli_async(&["rejected", "replay", &id.to_string()]).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("would be rejected again") && err.contains("not valid JSON"),
        "{err}"
    );
    let (code, _, err) = env.cli_async(&["rejected", "replay", "999999"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no rejected message with id 999999"), "{err}");
    assert_eq!(listed(&env).await[0]["replayed_at"], json!(null), "not replayed");
}

#[tokio::test]
async fn a_message_rejected_for_its_size_is_replayed_once_the_limit_is_raised() {
    let mut env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let pg = env.pg().await;

    // Daemon A takes at most 300 bytes: a 1 KiB event is rejected, kept whole; a 70 KiB one is
    // rejected and only its first 64 KiB are kept.
    let mut small = env.cfg.clone();
    small.amqp.max_message_bytes = 300;
    let daemon = env.start_with(small).await;
    let kib = ev("big", "approved", 0, json!({"comment": "x".repeat(1000)}));
    let huge = ev("huge", "approved", 0, json!({"comment": "x".repeat(70_000)}));
    env.publish(&[kib.clone(), huge.clone()]).await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", 2).await;
    daemon.stop().await;
    let id_of = |size: usize| format!("SELECT id FROM rejected_messages WHERE body_size = {size}");
    let kib_id = count(&pg, &id_of(kib.len())).await.to_string();
    let huge_id = count(&pg, &id_of(huge.len())).await.to_string();

    // Daemon B has the default limit (64 KiB), as has the command line.
    env.cfg.amqp.max_message_bytes = 65_536;
    let daemon = env.start().await;
    let (code, _, err) = env.cli_async(&["rejected", "replay", &huge_id]).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("only its first 65536 were kept"), "{err}");

    let (code, out, err) = env.cli_async(&["rejected", "replay", &kib_id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("replayed rejected message {kib_id}")),
        "{out}"
    );
    assert!(
        out.contains("conversion.approved"),
        "its stored routing key: {out}"
    );
    let req = rx.wait_for(1).await.remove(0);
    assert_eq!(req.param("c").as_deref(), Some("big"));
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    assert_eq!(
        count(&pg, "SELECT count(*) FROM rejected_messages").await,
        2,
        "accepted this time, not rejected again"
    );

    let rows = listed(&env).await;
    let replayed = |id: &str| {
        rows.iter()
            .find(|r| r["id"].as_i64().map(|n| n.to_string()).as_deref() == Some(id))
            .map(|r| r["replayed_at"].is_string())
            .unwrap_or_else(|| panic!("row {id} listed"))
    };
    assert!(replayed(&kib_id), "{rows:?}");
    assert!(!replayed(&huge_id), "{rows:?}");
    daemon.stop().await;
}
