//! A delivery never fires from a guessed or stale state: a stored event that no longer decodes
//! fails the delivery with the reason; a job that waited for a permit renders from the URL's
//! current row, and sends nothing if the URL was disabled meanwhile.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn a_delivery_whose_stored_event_does_not_decode_fails_with_the_reason() {
    let w = retry_waiting(ms(2000), "/x?c={conversion_id}", "approved").await;
    w.pg.batch_execute("UPDATE deliveries SET event = '{\"not\": \"an event\"}'")
        .await
        .expect("corrupt the event");
    wait_count(
        &w.pg,
        "SELECT count(*) FROM deliveries WHERE state = 'failed' AND lease_owner IS NULL AND attempts = 2",
        1,
    )
    .await;
    let attempt = rows(
        &w.pg,
        "SELECT attempt, error_code, error, http_code FROM attempts ORDER BY attempt DESC LIMIT 1",
    )
    .await;
    assert_eq!(attempt[0][0..2], [s("2"), s("render")]);
    let error = attempt[0][2].clone().unwrap_or_default();
    assert!(error.contains("stored event does not decode"), "{error}");
    assert_eq!(attempt[0][3], None);
    assert_eq!(w.rx.requests().len(), 1, "nothing sent from a guessed event");
    w.daemon.stop().await;
}

/// Two first attempts to one URL with one permit per host: the first holds the permit while its
/// receiver takes its time, the second waits for it. Returns the env, its receiver, the URL's id
/// the running daemon and the waiting conversion, once the second is waiting.
async fn one_waits_for_the_permit() -> (Env, Receiver, i64, Running, &'static str) {
    let mut env = Env::new().await;
    env.cfg.delivery.per_host_concurrency = 1;
    let rx = Receiver::start().await;
    let url_id = env.add_url("1", &rx.url("/old?c={conversion_id}")).await;
    let mut slow = Reply::status(200);
    slow.delay = Duration::from_millis(1500);
    rx.script([slow]);
    let daemon = env.start().await;
    env.publish(&[
        ev("c1", "approved", 0, json!({})),
        ev("c2", "approved", 0, json!({})),
    ])
    .await;
    let first = rx.wait_for(1).await.remove(0).param("c");
    let waiting = if first.as_deref() == Some("c1") {
        "c2"
    } else {
        "c1"
    };
    (env, rx, url_id, daemon, waiting)
}

#[tokio::test]
async fn disabling_a_url_stops_a_delivery_waiting_for_a_permit() {
    let (env, rx, url_id, daemon, waiting) = one_waits_for_the_permit().await;
    let mut client = env.pool().get().await.expect("db");
    cross_postback::store::urls::set_enabled(&mut client, url_id, false)
        .await
        .expect("disabled");
    let pg = env.pg().await;
    // The first ends (recorded); the second is let go (its lease released) either way.
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE lease_owner IS NULL AND (state <> 'pending' OR attempts > 0)",
        2,
    )
    .await;
    assert_eq!(
        rx.requests().len(),
        1,
        "the waiting delivery was sent after the disable"
    );
    let waited = rows(
        &pg,
        &format!(
            "SELECT d.state, count(a.id) FROM deliveries d LEFT JOIN attempts a ON a.delivery_id = d.id
             WHERE d.conversion_id = '{waiting}' GROUP BY d.state"
        ),
    )
    .await;
    assert_eq!(waited, vec![vec![s("cancelled"), s("0")]]);
    daemon.stop().await;
}

#[tokio::test]
async fn a_delivery_waiting_for_a_permit_renders_from_the_current_row() {
    let (env, rx, url_id, daemon, waiting) = one_waits_for_the_permit().await;
    let new = rx.url("/new?c={conversion_id}");
    env.pg()
        .await
        .execute(
            "UPDATE cross_postback_urls SET url = $1, updated_at = now() WHERE id = $2",
            &[&new, &url_id],
        )
        .await
        .expect("edited");
    let reqs = rx.wait_for(2).await;
    let second = &reqs[1];
    assert_eq!(second.param("c").as_deref(), Some(waiting));
    assert!(second.target.starts_with("/new?"), "sent to {}", second.target);
    daemon.stop().await;
}
