//! De-duplication and order, end to end.

use serde_json::json;

use crate::harness::*;

async fn statuses_sent(receiver: &Receiver) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .map(|r| r.param("s").unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn pending_then_approved_back_to_back_are_both_sent_in_order() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?c={conversion_id}&s={status_name}"))
        .await;
    let daemon = env.start().await;
    env.publish(&[
        ev("c1", "pending", 0, json!({})),
        ev("c1", "approved", 1, json!({})),
    ])
    .await;
    rx.wait_for(2).await;
    assert_eq!(statuses_sent(&rx).await, ["pending", "approved"]);
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM attempts WHERE http_code = 200", 2).await;
    daemon.stop().await;
    assert_eq!(statuses_sent(&rx).await.len(), 2, "nothing more was sent");
}

#[tokio::test]
async fn duplicate_publish_and_stale_replay_fire_nothing() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?s={status_name}")).await;
    let daemon = env.start().await;
    env.publish(&[
        ev("c1", "approved", 10, json!({})),
        ev("c1", "approved", 10, json!({})),
    ])
    .await;
    rx.wait_for(1).await;
    // A stale replay (older than the newest accepted event) and the same status again later.
    env.publish(&[
        ev("c1", "pending", 5, json!({})),
        ev("c1", "approved", 20, json!({})),
        ev("c1", "declined", 30, json!({})),
    ])
    .await;
    rx.wait_for(2).await;
    assert_eq!(statuses_sent(&rx).await, ["approved", "declined"]);
    let pg = env.pg().await;
    assert_eq!(count(&pg, "SELECT count(*) FROM deliveries").await, 2);
    let metrics = reqwest::get(format!("http://{}/metrics", daemon.http()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"xpb_events_consumed_total{outcome="duplicate"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"xpb_events_consumed_total{outcome="stale"} 1"#),
        "{metrics}"
    );
    daemon.stop().await;
    assert_eq!(
        env.ready_messages(&env.cfg.amqp.queue).await,
        0,
        "every message acked"
    );
}

#[tokio::test]
async fn re_approval_after_decline_is_announced_again() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?s={status}")).await;
    let daemon = env.start().await;
    for (i, status) in ["approved", "declined", "approved"].iter().enumerate() {
        env.publish(&[ev("c1", status, i as i64, json!({}))]).await;
        rx.wait_for(i + 1).await;
    }
    assert_eq!(statuses_sent(&rx).await, ["1", "3", "1"]);
    daemon.stop().await;
}

#[tokio::test]
async fn hold_updates_state_and_sends_nothing() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?s={status_name}")).await;
    let daemon = env.start().await;
    env.publish(&[ev("c1", "pending", 0, json!({})), ev("c1", "hold", 1, json!({}))])
        .await;
    let pg = env.pg().await;
    eventually("hold recorded as the conversion's state", || async {
        let r = rows(
            &pg,
            "SELECT status, last_announced FROM conversions WHERE conversion_id = 'c1'",
        )
        .await;
        (r == vec![vec![Some("hold".to_owned()), Some("pending".to_owned())]]).then_some(())
    })
    .await;
    // Pending → hold → Approved announces Approved; hold itself fired nothing.
    env.publish(&[ev("c1", "approved", 2, json!({}))]).await;
    rx.wait_for(2).await;
    assert_eq!(statuses_sent(&rx).await, ["pending", "approved"]);
    daemon.stop().await;
}

#[tokio::test]
async fn a_newer_status_supersedes_an_older_one_waiting_for_retry() {
    let RetryWaiting {
        env, rx, daemon, pg, ..
    } = retry_waiting(ms(60_000), "/pb?s={status_name}", "pending").await;
    env.publish(&[ev("c1", "approved", 1, json!({}))]).await;
    rx.wait_for(2).await;
    assert_eq!(statuses_sent(&rx).await, ["pending", "approved"]);
    let want = vec![
        vec![Some("pending".to_owned()), Some("superseded".to_owned())],
        vec![Some("approved".to_owned()), Some("delivered".to_owned())],
    ];
    eventually("the older delivery superseded, the newer delivered", || async {
        (rows(&pg, "SELECT status, state FROM deliveries ORDER BY id").await == want).then_some(())
    })
    .await;
    daemon.stop().await;
}

/// The last announced status is read from the column `conversions.last_announced`: a row whose
/// stored history lacks it (as a later release will write it) still makes a newer Approved after
/// an Approved a duplicate, and the Declined after it is announced.
#[tokio::test]
async fn the_last_announced_status_is_read_back_from_its_column() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?s={status_name}")).await;
    let daemon = env.start().await;
    let pg = env.pg().await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;
    pg.batch_execute("UPDATE conversions SET history = history - 'last_announced'")
        .await
        .expect("the history stripped");
    assert_eq!(
        rows(
            &pg,
            "SELECT history ? 'last_announced', last_announced FROM conversions"
        )
        .await,
        vec![vec![Some("f".to_owned()), Some("approved".to_owned())]]
    );
    env.publish(&[ev("c1", "approved", 1, json!({}))]).await;
    env.publish(&[ev("c1", "declined", 2, json!({}))]).await;
    rx.wait_for(2).await;
    wait_count(&pg, "SELECT count(*) FROM attempts WHERE http_code = 200", 2).await;
    daemon.stop().await;
    assert_eq!(statuses_sent(&rx).await, ["approved", "declined"]);
}
