//! A consumer cancelled by the server (here: its queue deleted) is noticed and logged; the
//! daemon reconnects, declares the topology again and goes on.

use lapin::options::QueueDeleteOptions;
use serde_json::json;

use crate::harness::child::Daemon;
use crate::harness::*;

#[tokio::test]
async fn a_deleted_queue_cancels_the_consumer_and_the_daemon_reconnects() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let mut daemon = Daemon::spawn(&env, &[]);
    daemon.wait_for_line(&["consuming"]).await;
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
    daemon.wait_for_line(&["cancelled the consumer"]).await;
    daemon.wait_for_line(&["consuming"]).await;

    // The new session declared the queue again before consuming; events flow as before.
    env.publish(&[ev("after", "approved", 0, json!({}))]).await;
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs[1].param("c").as_deref(), Some("after"));
    daemon.kill().await;
}
