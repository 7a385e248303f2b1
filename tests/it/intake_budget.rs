//! Memory: intake holds at most `prefetch` × `amqp.max_message_bytes` bytes of message bodies,
//! however large the messages queued before it starts.

use crate::harness::*;

#[tokio::test]
async fn a_flood_of_large_messages_stays_within_the_byte_budget() {
    const MESSAGES: usize = 24;
    const SIZE: usize = 200_000;
    let mut env = Env::new().await;
    env.cfg.amqp.prefetch = 8;
    env.cfg.amqp.max_message_bytes = 64 * 1024;
    let budget = 8 * 64 * 1024;
    // Oversized (so rejected), and larger than a third of the budget: at most two fit at once,
    // where prefetch alone would let eight in.
    let bodies: Vec<Vec<u8>> = (0..MESSAGES).map(|i| vec![b'a' + (i % 26) as u8; SIZE]).collect();
    env.publish_raw(&bodies).await;

    let daemon = env.start().await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", MESSAGES as i64).await;
    let metrics = &daemon.daemon.as_ref().expect("running").metrics;
    let peak = metrics.intake_bytes_peak.get();
    assert!(
        peak <= budget,
        "held {peak} bytes at once, over the budget of {budget}"
    );
    assert!(peak >= SIZE as i64, "the flood went through intake (peak {peak})");
    eventually("every body released once acked", || async {
        (metrics.intake_bytes.get() == 0).then_some(())
    })
    .await;
    daemon.stop().await;
    assert_eq!(
        env.ready_messages(&env.cfg.amqp.queue).await,
        0,
        "every message acked"
    );
}
