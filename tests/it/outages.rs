//! Outages: while Postgres is unreachable nothing is acked and nothing is lost; the same for a
//! RabbitMQ connection loss. Each is simulated by a TCP proxy of the test's own, cut and
//! restored, so the shared servers stay up for the other tests.

use serde_json::json;

use crate::harness::proxy::{Proxy, target_of, through};
use crate::harness::*;

#[tokio::test]
async fn while_postgres_is_away_nothing_is_acked_and_it_resumes_by_itself() {
    let mut env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let proxy = Proxy::start(target_of(&env.cfg.database.url, 5432)).await;
    env.cfg.database.url = through(&env.cfg.database.url, &proxy);
    let daemon = env.start().await;
    let base = daemon.http();
    eventually("ready", || async { ready(base).await.then_some(()) }).await;

    proxy.cut();
    eventually("not ready while the database is away", || async {
        (!ready(base).await).then_some(())
    })
    .await;
    let events: Vec<String> = (0..5)
        .map(|i| ev(&format!("c{i}"), "approved", 0, json!({})))
        .collect();
    env.publish(&events).await;
    // Nothing can be logged, so nothing is acked: the daemon lets go of its consumer and all
    // five wait in the queue.
    eventually("no consumer, and the messages back in the queue", || async {
        (env.queue_state(&env.cfg.amqp.queue).await == (5, 0)).then_some(())
    })
    .await;
    assert!(rx.requests().is_empty());

    proxy.restore();
    let reqs = rx.wait_for(5).await;
    assert_eq!(reqs.len(), 5);
    eventually("ready again", || async { ready(base).await.then_some(()) }).await;
    daemon.stop().await;
    assert_eq!(env.ready_messages(&env.cfg.amqp.queue).await, 0);
}

#[tokio::test]
async fn after_a_broker_connection_loss_it_reconnects_and_goes_on() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    let direct = env.cfg.amqp.url.clone();
    let proxy = Proxy::start(target_of(&direct, 5672)).await;
    let mut daemon_cfg = env.cfg.clone();
    daemon_cfg.amqp.url = through(&direct, &proxy);
    let daemon = env.start_with(daemon_cfg).await;
    let base = daemon.http();
    eventually("ready", || async { ready(base).await.then_some(()) }).await;
    env.publish(&[ev("before", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;

    proxy.cut();
    eventually("not ready while the broker is away", || async {
        (!ready(base).await).then_some(())
    })
    .await;
    env.publish(&[ev("during", "approved", 0, json!({}))]).await; // straight to the broker
    proxy.restore();
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs[1].param("c").as_deref(), Some("during"));
    eventually("ready again", || async { ready(base).await.then_some(()) }).await;
    daemon.stop().await;
    assert_eq!(rx.requests().len(), 2);
}
