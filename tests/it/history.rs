//! The history generator of the growth bench: rows the schema accepts, with the outcome mix and
//! time spread it promises, events that decode, and a backlog that is due.

use cross_postback::bench::history;
use cross_postback::event::Event;

use crate::harness::*;

#[tokio::test]
async fn generated_history_is_what_the_daemon_would_have_written() {
    let env = Env::new().await;
    let pool = env.pool();
    let client = pool.get().await.expect("db");
    let filled = history::fill_attempts(&client, 2_500, 30.0, 50, 5)
        .await
        .expect("history fills");
    assert_eq!(filled.attempts, 2_500);
    assert_eq!(filled.deliveries, 2_000);
    let pg = env.pg().await;
    assert_eq!(count(&pg, "SELECT count(*) FROM attempts").await, 2_500);
    assert_eq!(
        count(&pg, "SELECT count(*) FROM cross_postback_stats").await,
        2_500
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM conversions").await, 2_000);
    assert_eq!(
        count(&pg, "SELECT count(DISTINCT offer_id) FROM attempts").await,
        5
    );
    assert_eq!(
        count(&pg, "SELECT count(DISTINCT affiliate_id) FROM attempts").await,
        50
    );
    // The mix: 75 + 15 of 100 delivered, the rest failed; every delivery's attempt count matches.
    assert_eq!(
        count(&pg, "SELECT count(*) FROM deliveries WHERE state = 'delivered'").await,
        1_800
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM deliveries d WHERE attempts <> (SELECT count(*) FROM attempts a WHERE a.delivery_id = d.id)"
        )
        .await,
        0
    );
    assert_eq!(
        count(&pg, "SELECT count(*) FROM attempts WHERE http_code = 200").await,
        1_800
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM attempts WHERE error_code IS NOT NULL AND error IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM attempts WHERE sent_at > now() OR sent_at < now() - interval '30 days 2 minutes'"
        )
        .await,
        0
    );
    // Spread over the days, not bunched: some in each third of the range.
    for third in 0..3 {
        let sql = format!(
            "SELECT count(*) FROM attempts WHERE sent_at BETWEEN now() - interval '{} days' AND now() - interval '{} days'",
            30 - third * 10,
            20 - third * 10
        );
        assert!(count(&pg, &sql).await > 500, "{sql}");
    }
    let events = pg
        .query("SELECT event FROM deliveries LIMIT 20", &[])
        .await
        .expect("events");
    for row in events {
        let event: serde_json::Value = row.get(0);
        serde_json::from_value::<Event>(event.clone()).unwrap_or_else(|e| panic!("{event}: {e}"));
    }

    let url = env
        .add_url("dead", "http://127.0.0.1:9/pb?c={conversion_id}")
        .await;
    let backlog = history::fill_backlog(&client, 1_234, url)
        .await
        .expect("backlog fills");
    assert_eq!(backlog, 1_234);
    assert_eq!(
        count(
            &pg,
            &format!("SELECT count(*) FROM deliveries WHERE url_id = {url} AND state = 'pending' AND next_attempt_at <= now()")
        )
        .await,
        1_234
    );
    let event: serde_json::Value = pg
        .query_one(
            &format!("SELECT event FROM deliveries WHERE url_id = {url} LIMIT 1"),
            &[],
        )
        .await
        .expect("a backlog row")
        .get(0);
    serde_json::from_value::<Event>(event).expect("the backlog's events decode");
}
