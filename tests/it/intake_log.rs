//! The intake transaction's regressions: statement order on a fresh connection, a same-batch
//! supersede, and a stored history that no longer decodes.

use serde_json::json;

use crate::harness::child::Daemon;
use crate::harness::*;

fn restarts(daemon: &Running) -> u64 {
    daemon
        .daemon
        .as_ref()
        .expect("running")
        .metrics
        .intake_restarts
        .get()
}

/// One connection, so the second batch runs on the connection whose statement cache holds the
/// first batch's statements but not the superseding UPDATE: the writes must still reach
/// Postgres in order (an INSERT before the UPDATE breaks `deliveries_one_pending` and ends the
/// intake session).
#[tokio::test]
async fn the_first_supersede_on_a_connection_does_not_restart_intake() {
    let mut env = Env::new().await;
    env.cfg.database.pool_size = 1;
    env.cfg.amqp.lanes = 1;
    env.cfg.delivery.retry_schedule = vec![ms(60_000)];
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?s={status_name}")).await;
    rx.script([Reply::status(500)]);
    let daemon = env.start().await;
    env.publish(&[ev("c1", "pending", 0, json!({}))]).await;
    rx.wait_for(1).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'pending' AND attempts = 1",
        1,
    )
    .await;

    env.publish(&[ev("c1", "approved", 1, json!({}))]).await;
    let want = vec![
        vec![s("pending"), s("superseded")],
        vec![s("approved"), s("delivered")],
    ];
    eventually("the pending retry superseded, the approved delivered", || async {
        (rows(&pg, "SELECT status, state FROM deliveries ORDER BY id").await == want).then_some(())
    })
    .await;
    assert_eq!(restarts(&daemon), 0, "no intake session restarted");
    daemon.stop().await;
}

/// Pending and Approved of one conversion waiting together in one lane: they are decided in
/// separate batches, so the Pending is handed over (in flight) before the Approved supersedes
/// it, and both are sent, in order. (Decided in one batch, the Pending would be superseded
/// before its first attempt, and get none.)
#[tokio::test]
async fn a_pending_and_its_approved_queued_together_are_both_sent_in_order() {
    let mut env = Env::new().await;
    env.cfg.amqp.lanes = 1;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?c={conversion_id}&s={status_name}"))
        .await;
    let pg = env.pg().await;
    // The first batch (another conversion) waits on this lock, so the next two messages
    // queue up in the lane together.
    let blocker = env.pg().await;
    blocker
        .execute("SELECT pg_advisory_lock(hashtextextended('b0', 0))", &[])
        .await
        .expect("lock taken");
    let daemon = env.start().await;
    env.publish(&[ev("b0", "approved", 0, json!({}))]).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        1,
    )
    .await;
    env.publish(&[
        ev("c1", "pending", 0, json!({})),
        ev("c1", "approved", 1, json!({})),
    ])
    .await;
    eventually("both delivered to the consumer", || async {
        (env.ready_messages(&env.cfg.amqp.queue).await == 0).then_some(())
    })
    .await;
    blocker
        .execute("SELECT pg_advisory_unlock(hashtextextended('b0', 0))", &[])
        .await
        .expect("lock released");

    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE conversion_id = 'c1' AND status = 'approved'
           AND state = 'delivered'",
        1,
    )
    .await;
    let metrics = reqwest::get(format!("http://{}/metrics", daemon.http()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("xpb_intake_batch_messages_count 3\n"),
        "b0, then each event of c1 in a batch of its own: {metrics}"
    );
    daemon.stop().await;
    let sent: Vec<String> = rx
        .requests()
        .iter()
        .filter(|r| r.param("c").as_deref() == Some("c1"))
        .map(|r| r.param("s").unwrap_or_default())
        .collect();
    assert_eq!(sent, ["pending", "approved"]);
}

/// A history that no longer decodes is that conversion's problem only: its event is rejected
/// with a reason naming the conversion (stored and dead-lettered, so it can be replayed once the
/// row is fixed), nothing is decided or fired from a guessed history, and intake goes on.
#[tokio::test]
async fn an_undecodable_history_rejects_that_conversions_event_and_intake_goes_on() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?c={conversion_id}")).await;
    let pg = env.pg().await;
    pg.batch_execute(
        "INSERT INTO conversions (conversion_id, offer_id, affiliate_id, status, last_announced,
                                  history, updated_at)
         VALUES ('c-corrupt', '1', '2', 'approved', 'approved', '{\"accepted\": 7}', now())",
    )
    .await
    .expect("corrupt row written");
    let daemon = env.start().await;
    env.publish(&[ev("c-corrupt", "approved", 0, json!({}))]).await;
    env.publish(&[ev("c-fine", "approved", 0, json!({}))]).await;
    let reqs = rx.wait_for(1).await;
    assert_eq!(reqs[0].param("c").as_deref(), Some("c-fine"));

    let dead = env.dead_letters(1).await;
    assert!(
        dead[0].1.contains("c-corrupt") && dead[0].1.contains("does not decode"),
        "dead-lettered with a reason naming the conversion: {}",
        dead[0].1
    );
    let reasons = rows(&pg, "SELECT reason FROM rejected_messages").await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!(reasons[0][0].as_deref(), Some(dead[0].1.as_str()));
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM deliveries WHERE conversion_id = 'c-corrupt'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM conversions WHERE conversion_id = 'c-corrupt'
               AND history = '{\"accepted\": 7}'::jsonb"
        )
        .await,
        1,
        "the stored row is left as it was"
    );
    assert_eq!(rx.requests().len(), 1, "nothing was sent for c-corrupt");
    assert_eq!(restarts(&daemon), 0, "intake never restarted");
    daemon.stop().await;
    assert_eq!(env.ready_messages(&env.cfg.amqp.queue).await, 0, "both acked");
}

/// The rejection is loud: an ERROR line naming the conversion.
#[tokio::test]
async fn an_undecodable_history_is_logged_as_an_error_naming_the_conversion() {
    let env = Env::new().await;
    let pg = env.pg().await;
    pg.batch_execute(
        "INSERT INTO conversions (conversion_id, offer_id, affiliate_id, status, last_announced,
                                  history, updated_at)
         VALUES ('c-corrupt', '1', '2', 'approved', 'approved', '{\"accepted\": 7}', now())",
    )
    .await
    .expect("corrupt row written");
    let mut daemon = Daemon::spawn(&env, &[]);
    daemon.wait_for_line(&["consuming"]).await;
    env.publish(&[ev("c-corrupt", "approved", 0, json!({}))]).await;
    let line = daemon.wait_for_line(&["c-corrupt", "history"]).await;
    assert!(
        line.contains("ERROR") && line.contains("does not decode"),
        "{line}"
    );
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", 1).await;
    daemon.kill().await;
}

/// `urls disable` racing a batch that read the URL as enabled: the disable waits for that
/// batch to commit, then cancels the delivery it logged. Here the batch is held after its
/// reads by a row lock on the conversion it writes.
#[tokio::test]
async fn a_disable_waits_for_a_batch_that_read_the_url_enabled_and_cancels_its_delivery() {
    let mut env = Env::new().await;
    env.cfg.delivery.retry_schedule = vec![ms(60_000)];
    let rx = Receiver::start().await;
    let url_id = env.add_url("1", &rx.url("/pb?s={status_name}")).await;
    // The second delivery's attempt (if made before the disable cancels it) fails and waits
    // a minute, so it is still there to be cancelled: the test does not race the daemon.
    rx.script([Reply::status(200), Reply::status(500)]);
    let daemon = env.start().await;
    let pg = env.pg().await;
    env.publish(&[ev("c1", "pending", 0, json!({}))]).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;

    let locker = env.pg().await;
    locker
        .batch_execute("BEGIN; SELECT 1 FROM conversions WHERE conversion_id = 'c1' FOR UPDATE")
        .await
        .expect("row locked");
    env.publish(&[ev("c1", "approved", 1, json!({}))]).await;
    let waiting = "SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'";
    wait_count(&pg, waiting, 1).await;
    let mut disable = env.command();
    disable.args(["urls", "disable", &url_id.to_string()]);
    let disable = tokio::spawn(output_within_deadline(disable));
    eventually("the disable waits for the batch (or, wrongly, ends)", || async {
        (disable.is_finished() || count(&pg, waiting).await == 2).then_some(())
    })
    .await;
    assert!(
        !disable.is_finished(),
        "the disable waits for the batch that read the URL enabled, it does not end before it"
    );
    locker.batch_execute("COMMIT").await.expect("row unlocked");

    let (code, out, err) = disable.await.expect("disable ran");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("cancelled 1"),
        "the batch's delivery was cancelled: {out}"
    );
    assert_eq!(
        rows(&pg, "SELECT state FROM deliveries WHERE status = 'approved'").await,
        vec![vec![s("cancelled")]]
    );
    daemon.stop().await;
}
