//! Ack discipline and crashes: SIGKILL between a send and its record loses nothing, and the
//! de-duplication absorbs a redelivered message.

use std::time::Duration;

use serde_json::json;

use crate::harness::child::Daemon;
use crate::harness::*;

#[tokio::test]
async fn sigkill_between_send_and_record_is_resent_with_the_same_key_and_redelivery_fires_nothing() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x?c={conversion_id}")).await;
    // The first request is held long enough to kill the daemon before it can record anything.
    rx.script([Reply {
        status: 200,
        retry_after: None,
        delay: Duration::from_secs(10),
    }]);
    let daemon = Daemon::spawn(&env, &[]);
    let event = ev("c1", "approved", 0, json!({"event_id": "e-crash"}));
    env.publish(std::slice::from_ref(&event)).await;
    let first = rx.wait_for(1).await.remove(0);
    daemon.kill().await; // SIGKILL

    let pg = env.pg().await;
    assert_eq!(
        count(&pg, "SELECT count(*) FROM attempts").await,
        0,
        "killed before the attempt was recorded"
    );
    assert_eq!(
        count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'pending'").await,
        1,
        "the delivery is not lost"
    );

    // The restarted daemon sends it again once the dead worker's lease has expired.
    let daemon = env.start().await;
    let again = rx.wait_for(2).await.remove(1);
    assert_eq!(again.header("idempotency-key"), first.header("idempotency-key"));
    assert_eq!(again.header("idempotency-key"), Some("e-crash:1"));
    eventually("delivered and recorded once", || async {
        (count(&pg, "SELECT count(*) FROM attempts WHERE http_code = 200").await == 1
            && count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'delivered'").await == 1)
            .then_some(())
    })
    .await;

    // A redelivery of the same message (a crash between commit and ack) is a duplicate.
    env.publish(&[event, ev("c2", "approved", 0, json!({}))]).await;
    let reqs = rx.wait_for(3).await;
    assert_eq!(reqs[2].param("c").as_deref(), Some("c2"));
    daemon.stop().await;
    assert_eq!(
        env.ready_messages(&env.cfg.amqp.queue).await,
        0,
        "the redelivered message was consumed and acked"
    );
    assert_eq!(rx.requests().len(), 3, "the redelivered event fired nothing");
    assert_eq!(count(&pg, "SELECT count(*) FROM deliveries").await, 2);
}
