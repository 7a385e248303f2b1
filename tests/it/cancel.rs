//! A consumer cancelled by the server (here: its queue deleted) is noticed and logged; the
//! daemon reconnects, declares the topology again and goes on.

use std::time::Duration;

use lapin::options::QueueDeleteOptions;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn a_deleted_queue_cancels_the_consumer_and_the_daemon_reconnects() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let (mut child, mut logs) = env.spawn_daemon();
    let mut seen = Vec::new();
    let mut wait_for_log = async |needle: &str| {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), logs.recv())
                .await
                .unwrap_or_else(|_| panic!("no log line with {needle:?}; saw {seen:?}"))
                .expect("daemon still logging");
            if line.contains(needle) {
                return;
            }
            seen.push(line);
        }
    };
    wait_for_log("consuming").await;
    env.publish(&[ev("before", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;

    let conn = cross_postback::amqp::connect(&env.cfg.amqp.url, "xpb-test deleter")
        .await
        .expect("broker");
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_delete(env.cfg.amqp.queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("queue deleted");
    let _ = conn.close(200, "bye".into()).await;
    wait_for_log("cancelled the consumer").await;
    wait_for_log("consuming").await;

    // The new session declared the queue again before consuming; events flow as before.
    env.publish(&[ev("after", "approved", 0, json!({}))]).await;
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs[1].param("c").as_deref(), Some("after"));
    let _ = child.kill();
    let _ = child.wait();
}
