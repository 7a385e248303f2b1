//! Invalid messages: stored with a readable reason and dead-lettered; the worker keeps going.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn each_kind_of_invalid_message_is_stored_and_dead_lettered() {
    let mut env = Env::new().await;
    env.cfg.amqp.max_message_bytes = 2048;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let daemon = env.start().await;
    let oversized = ev("big", "approved", 0, json!({"comment": "x".repeat(4000)}));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json at all".to_vec(), "not valid JSON"),
        (b"{\"conversion_id\":\"\xff\xfe\"}".to_vec(), "not UTF-8"),
        (br#"{"status":"approved","updated_at":"2026-01-01T00:00:00Z","offer_id":1,"affiliate_id":1}"#.to_vec(), "missing required field `conversion_id`"),
        (ev("c", "paid", 0, json!({})).into_bytes(), "unknown status"),
        (br#"{"conversion_id":"c","status":1,"updated_at":"2026-01-01 00:00:00","offer_id":1,"affiliate_id":1}"#.to_vec(), "`updated_at`"),
        (oversized.clone().into_bytes(), "over amqp.max_message_bytes"),
    ];
    // The non-UTF-8 body must go out as raw bytes: publish those through the raw path.
    env.publish_raw(&cases.iter().map(|(b, _)| b.clone()).collect::<Vec<_>>())
        .await;
    env.publish(&[ev("after", "approved", 0, json!({}))]).await;
    let req = rx.wait_for(1).await.remove(0);
    assert_eq!(req.param("c").as_deref(), Some("after"), "the worker kept going");

    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", cases.len() as i64).await;
    // Lanes commit in parallel, so rows are matched by body, not by order.
    let stored = rows(
        &pg,
        "SELECT encode(body, 'hex'), reason, body_size, truncated::text, (body_sha256 IS NOT NULL)::text
         FROM rejected_messages",
    )
    .await;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let stored_row = |body: &[u8]| {
        let kept = &body[..body.len().min(64 * 1024)];
        stored
            .iter()
            .find(|r| r[0].as_deref() == Some(hex(kept).as_str()))
            .cloned()
    };
    for (body, want) in &cases {
        let row = stored_row(body).unwrap_or_else(|| panic!("{want}: body not stored as received"));
        let reason = row[1].clone().unwrap_or_default();
        assert!(reason.contains(want), "reason {reason:?} should mention {want:?}");
    }
    let big = stored_row(oversized.as_bytes()).expect("oversized row");
    assert_eq!(big[2].as_deref(), Some(oversized.len().to_string().as_str()));
    assert_eq!(big[3].as_deref(), Some("true"));
    assert_eq!(
        big[4].as_deref(),
        Some("true"),
        "oversized bodies keep their SHA-256"
    );

    // The dead-letter queue holds each one (and nothing more), with the reason in a header.
    let dead = env.dead_letters(cases.len()).await;
    // Each dead-lettered message is the body as published, with the reason that was stored.
    for (body, want) in &cases {
        let (_, reason) = dead
            .iter()
            .find(|(b, _)| b == body)
            .unwrap_or_else(|| panic!("{want}: not dead-lettered intact"));
        assert!(
            reason.contains(want),
            "x-xpb-reason {reason:?} should mention {want:?}"
        );
        let row = stored_row(body).expect("stored");
        assert_eq!(
            row[1].as_deref(),
            Some(reason.as_str()),
            "the header is the stored reason"
        );
    }
    // Counted by reason code, a label a platform team can alert on; the other codes show 0.
    // Counted after the ack, so waited for.
    let url = format!("http://{}/metrics", daemon.http());
    let lines: Vec<String> = [
        "not_json",
        "not_utf8",
        "missing_field",
        "bad_status",
        "bad_timestamp",
        "too_large",
    ]
    .iter()
    .map(|code| format!("xpb_rejected_messages_total{{reason=\"{code}\"}} 1"))
    .chain(["xpb_rejected_messages_total{reason=\"wrong_type\"} 0".to_owned()])
    .collect();
    eventually("each rejection counted under its reason code", || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        lines.iter().all(|l| text.contains(l.as_str())).then_some(())
    })
    .await;
    daemon.stop().await;
    assert_eq!(env.ready_messages(&env.cfg.amqp.queue).await, 0);
}
