//! `redeliver` against `urls disable` of the same URL: they serialise on the offer's lock, in
//! the order intake takes its locks, so neither can deadlock the other.

use cross_postback::store;
use serde_json::json;

use crate::harness::*;

/// The deadlock schedule of row locks: the redelivery waits for a delivery row a test
/// transaction holds, the disable (which locks the URL row first) queues behind it; once the
/// row is free the redelivery holds it and, before the fix, wanted the URL row the disable held
/// while the disable wanted the delivery row.
#[tokio::test]
async fn a_redeliver_and_a_disable_of_the_same_url_do_not_deadlock() {
    let mut env = Env::new().await;
    env.cfg.delivery.retry_schedule = vec![ms(600_000)];
    let rx = Receiver::start().await;
    rx.script([Reply::status(500)]);
    let url_id = env.add_url("1", &rx.url("/pb?c={conversion_id}")).await;
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    let pg = env.pg().await;
    // Attempted once, failed, pending until a retry ten minutes away.
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'pending' AND attempts = 1
           AND lease_owner IS NULL",
        1,
    )
    .await;
    daemon.stop().await;
    let id = count(&pg, "SELECT id FROM deliveries").await;

    let locker = env.pg().await;
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM deliveries WHERE id = {id} FOR UPDATE"
        ))
        .await
        .expect("row locked");
    let waiting = "SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let pool = env.pool();
    let mut client = pool.get().await.expect("client");
    let redeliver = tokio::spawn(async move { store::redeliver::one(&mut client, id, false).await });
    wait_count(&pg, waiting, 1).await;
    let mut client = pool.get().await.expect("client");
    let disable = tokio::spawn(async move { store::urls::set_enabled(&mut client, url_id, false).await });
    eventually("the disable waits too (or, wrongly, ends)", || async {
        (disable.is_finished() || count(&pg, waiting).await == 2).then_some(())
    })
    .await;
    assert!(
        !disable.is_finished(),
        "the disable waits for the redeliver's locks, it does not end before it"
    );
    locker.batch_execute("COMMIT").await.expect("row unlocked");

    let redelivered = redeliver.await.expect("redeliver ran");
    let disabled = disable.await.expect("disable ran");
    let redelivered = redelivered.map_err(|e| cross_postback::report::one_line(&e));
    let disabled = disabled.map_err(|e| cross_postback::report::one_line(&e));
    assert!(
        redelivered.is_ok() && disabled.is_ok(),
        "no deadlock: redeliver {redelivered:?}, disable {disabled:?}"
    );
    assert!(
        matches!(redelivered, Ok(Err(store::redeliver::Refusal::Pending))),
        "a pending delivery is refused: {redelivered:?}"
    );
    assert_eq!(disabled, Ok(1), "the disable cancelled the pending delivery");
}
