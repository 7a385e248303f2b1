//! The one-in-flight rule's index: it holds only leased deliveries that are not pending, so a
//! delivery sent at its first attempt never enters it, and the claim still refuses a pending
//! delivery while an older one of its conversion and URL is in flight.

use std::time::Duration;

use cross_postback::store::dispatch::claim_due;
use serde_json::json;

use crate::harness::*;

/// Bytes of an index with no entry: its metapage alone.
const EMPTY_BTREE: i64 = 8192;

#[tokio::test]
async fn deliveries_sent_at_their_first_attempt_leave_no_entry_in_the_in_flight_index() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?c={conversion_id}")).await;
    let daemon = env.start().await;
    let events: Vec<String> = (0..400)
        .map(|i| ev(&format!("c{i}"), "approved", 0, json!({})))
        .collect();
    env.publish(&events).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND lease_until IS NULL",
        400,
    )
    .await;
    daemon.stop().await;
    // Every one was leased while pending (intake leases a first attempt); 400 entries would
    // take more than the metapage.
    let size: i64 = pg
        .query_one("SELECT pg_relation_size('deliveries_in_flight')", &[])
        .await
        .expect("the index")
        .get(0);
    assert_eq!(size, EMPTY_BTREE);
}

#[tokio::test]
async fn a_pending_delivery_is_not_claimed_while_an_older_one_of_its_pair_is_in_flight() {
    let env = Env::new().await;
    let url = env.add_url("1", "http://127.0.0.1:9/pb").await;
    let pg = env.pg().await;
    let pool = env.pool();
    let mut client = pool.get().await.expect("db");
    let event = json!({"updated_at": "2026-05-01T10:00:00Z", "offer_id": "1", "affiliate_id": "2"});
    // The older: superseded while its attempt runs, under another worker's live lease.
    pg.execute(
        "INSERT INTO deliveries (conversion_id, url_id, status, event, state, lease_owner, lease_until)
         VALUES ('c1', $1, 'pending', $2, 'superseded', gen_random_uuid(), now() + interval '1 minute')",
        &[&url, &event],
    )
    .await
    .expect("the older");
    let newer: i64 = pg
        .query_one(
            "INSERT INTO deliveries (conversion_id, url_id, status, event, state, next_attempt_at)
             VALUES ('c1', $1, 'approved', $2, 'pending', now()) RETURNING id",
            &[&url, &event],
        )
        .await
        .expect("the newer")
        .get(0);
    assert_eq!(
        claim(&mut client).await,
        Vec::<i64>::new(),
        "the older is in flight"
    );
    pg.execute(
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE state = 'superseded'",
        &[],
    )
    .await
    .expect("the older ends");
    assert_eq!(claim(&mut client).await, vec![newer]);
}

/// The ids a poll claims now, in a transaction rolled back so nothing stays leased.
async fn claim(pg: &mut deadpool_postgres::Client) -> Vec<i64> {
    let tx = pg.transaction().await.expect("tx");
    let claimed = claim_due(
        &tx,
        uuid::Uuid::new_v4(),
        Duration::from_secs(60),
        10,
        10,
        &[],
        &[],
    )
    .await
    .expect("a claim");
    tx.rollback().await.expect("rollback");
    claimed.jobs.iter().map(|j| j.delivery_id).collect()
}
