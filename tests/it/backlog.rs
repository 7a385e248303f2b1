//! A huge backlog to one dead URL: the claim's work follows what it claims, not the backlog,
//! and another URL's retries keep their schedule.

use cross_postback::bench::history;
use cross_postback::store::dispatch::CLAIM_DUE;
use serde_json::json;

use crate::harness::*;

const BACKLOG: i64 = 10_000;

/// Buffers (shared hit + read) the claim statement touched, from EXPLAIN (ANALYZE, BUFFERS),
/// in a transaction rolled back so nothing is leased.
async fn claim_buffers(pg: &mut tokio_postgres::Client) -> i64 {
    let tx = pg.transaction().await.expect("tx");
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}", *CLAIM_DUE);
    let owner = uuid::Uuid::new_v4();
    let none: Vec<i64> = vec![];
    let row = tx
        .query_one(&sql, &[&owner, &60_000.0_f64, &512_i64, &32_i64, &none, &none])
        .await
        .expect("explain the claim");
    let plan: serde_json::Value = row.get(0);
    tx.rollback().await.expect("rollback");
    let top = &plan[0]["Plan"];
    let n = |k: &str| top[k].as_i64().unwrap_or(0);
    n("Shared Hit Blocks") + n("Shared Read Blocks")
}

/// `n` deliveries to `url_id` due now, as an outage leaves them (written in SQL, not sent).
async fn due_backlog(env: &Env, n: i64, url_id: i64) {
    let pool = env.pool();
    let client = pool.get().await.expect("db");
    history::fill_backlog(&client, n, url_id).await.expect("backlog");
}

#[tokio::test]
async fn a_huge_backlog_to_one_url_does_not_delay_another_urls_retries() {
    let mut env = Env::new().await;
    env.cfg.delivery.retry_schedule = vec![ms(100), ms(100)];
    env.cfg.delivery.per_host_concurrency = 4;
    // Nothing listens there: every attempt to it fails at once and is scheduled again.
    let dead = env
        .add_url("dead", "http://127.0.0.1:9/dead?c={conversion_id}")
        .await;
    let healthy = Receiver::start().await;
    healthy.script(std::iter::repeat_n(Reply::status(500), 5));
    env.add_url("live", &healthy.url("/live?c={conversion_id}")).await;
    due_backlog(&env, BACKLOG, dead).await;
    let mut pg = env.pg().await;
    pg.batch_execute("ANALYZE deliveries").await.expect("analyze");

    // The claim reads about what it may claim: tens of pages, not one per due row.
    let buffers = claim_buffers(&mut pg).await;
    assert!(
        buffers < 2_000,
        "the claim touched {buffers} buffers with {BACKLOG} due deliveries to one URL"
    );

    let daemon = env.start().await;
    let events: Vec<String> = (0..5)
        .map(|i| ev(&format!("live{i}"), "approved", 0, json!({"offer_id": "live"})))
        .collect();
    env.publish(&events).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries d JOIN cross_postback_urls u ON u.id = d.url_id
         WHERE u.offer_id = 'live' AND d.state = 'delivered' AND d.attempts = 2",
        5,
    )
    .await;
    // Each retry came on schedule (100 ms, jitter up to 120 ms), not behind the backlog.
    let gap = count(
        &pg,
        "SELECT (max(extract(epoch FROM b.sent_at - a.sent_at)) * 1000)::int8
         FROM attempts a JOIN attempts b ON b.delivery_id = a.delivery_id AND b.attempt = 2
         WHERE a.attempt = 1 AND a.offer_id = 'live'",
    )
    .await;
    assert!(
        (100..1_500).contains(&gap),
        "a healthy URL's retry came {gap} ms after its first attempt"
    );
    // Meanwhile the dead URL was tried too, within its per-host bound.
    let tried = count(
        &pg,
        &format!("SELECT count(*) FROM attempts WHERE url_id = {dead} AND attempt = 2"),
    )
    .await;
    assert!(tried > 0, "the dead URL's backlog was claimed as well");
    daemon.stop().await;
}

/// A receiver that was down comes back to a backlog of due deliveries: the backlog drains
/// with the host's bound in flight and never more, each delivery sent once, and another
/// receiver's new events are sent while it drains, not after it.
#[tokio::test]
async fn a_returning_receivers_backlog_drains_at_its_bound_without_starving_others() {
    const DRAIN: i64 = 300;
    const PER_HOST: usize = 3;
    let mut env = Env::new().await;
    env.cfg.delivery.per_host_concurrency = PER_HOST;
    env.cfg.delivery.concurrency = 8;
    let returned = Receiver::start().await;
    // 40 ms an answer: at 3 in flight the backlog takes at least 4 s to drain.
    let mut slow = Reply::status(200);
    slow.delay = std::time::Duration::from_millis(40);
    returned.script(std::iter::repeat_n(slow, DRAIN as usize));
    let back = env
        .add_url("back", &returned.url("/back?c={conversion_id}"))
        .await;
    let other = Receiver::start().await;
    env.add_url("other", &other.url("/other?c={conversion_id}")).await;
    due_backlog(&env, DRAIN, back).await;
    let pg = env.pg().await;
    let daemon = env.start().await;

    returned.wait_for(1).await;
    let events: Vec<String> = (0..5)
        .map(|i| ev(&format!("other{i}"), "approved", 0, json!({"offer_id": "other"})))
        .collect();
    env.publish(&events).await;
    other.wait_for(5).await;
    let waiting = count(
        &pg,
        &format!("SELECT count(*) FROM deliveries WHERE url_id = {back} AND state = 'pending'"),
    )
    .await;
    assert!(
        waiting > 0,
        "the other receiver's events were sent only after the whole backlog"
    );

    wait_count(
        &pg,
        &format!("SELECT count(*) FROM deliveries WHERE url_id = {back} AND state = 'delivered'"),
        DRAIN,
    )
    .await;
    assert_eq!(
        returned.requests().len(),
        DRAIN as usize,
        "each delivery sent once"
    );
    assert_eq!(
        returned.max_in_flight(),
        PER_HOST,
        "the backlog drains with the host's bound in flight, never more"
    );
    daemon.stop().await;
}
