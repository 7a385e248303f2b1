//! An attempt is recorded once: the recorder writes a batch again when the answer to its commit
//! was lost though the commit was done (a cut connection), and that second write adds nothing.

use std::sync::Arc;

use cross_postback::event;
use cross_postback::store::dispatch::{self, AttemptRecord, DeliveryState, Method};

use crate::harness::*;

#[tokio::test]
async fn a_batch_recorded_twice_leaves_one_attempt_each() {
    let (env, pg, owner, record) = leased_delivery().await;
    let mut client = env.pool().get().await.expect("a pooled connection");
    for _ in 0..2 {
        dispatch::record(&mut client, owner, std::slice::from_ref(&record))
            .await
            .expect("recorded");
    }
    recorded_once(&pg).await;
    // Another attempt of the same delivery is a new row.
    let next = AttemptRecord {
        attempt: 2,
        sent_at: chrono::Utc::now(),
        ..record
    };
    dispatch::record(&mut client, owner, &[next])
        .await
        .expect("recorded");
    assert_eq!(count(&pg, "SELECT count(*) FROM attempts").await, 2);
}

/// The answer to a commit can be lost while that commit is still running (a slow fsync or
/// standby); the recorder then writes the batch again on another connection. That second write
/// waits for the first to end and adds nothing (`ON CONFLICT` waits on `attempts_once`): a check
/// that could not see the first write's rows yet would insert the attempt again, or fail.
#[tokio::test]
async fn a_batch_written_again_while_its_first_write_commits_adds_nothing() {
    let (env, pg, owner, record) = leased_delivery().await;
    // Holds the delivery's row, so the first write inserts its attempt and then waits, open.
    let blocker = env.pg().await;
    blocker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM deliveries WHERE id = {} FOR UPDATE",
            record.delivery_id
        ))
        .await
        .expect("the delivery's row held");
    let waiting = "SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let pool = env.pool();
    let write = |record: AttemptRecord| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut client = pool.get().await.expect("a pooled connection");
            dispatch::record(&mut client, owner, &[record]).await
        })
    };
    let first = write(record.clone());
    wait_count(&pg, waiting, 1).await;
    let second = write(record);
    // The second write waits too, in `attempts_once` behind the first write's uncommitted row.
    wait_count(&pg, waiting, 2).await;
    blocker.batch_execute("COMMIT").await.expect("the row released");
    first.await.expect("joined").expect("the first write");
    second.await.expect("joined").expect("the second write");
    recorded_once(&pg).await;
}

/// A test database with one delivery leased by a new owner, and the record of its first attempt
/// (a 200), not yet written.
async fn leased_delivery() -> (Env, tokio_postgres::Client, uuid::Uuid, AttemptRecord) {
    let env = Env::new().await;
    let url_id = env.add_url("1", "http://127.0.0.1:9/pb?c={conversion_id}").await;
    let pg = env.pg().await;
    let owner = uuid::Uuid::new_v4();
    let delivery_id: i64 = pg
        .query_one(
            "INSERT INTO deliveries (conversion_id, url_id, status, event, lease_owner, lease_until)
             VALUES ('c1', $1, 'approved', '{}', $2, now() + interval '1 minute') RETURNING id",
            &[&url_id, &owner],
        )
        .await
        .expect("a leased delivery")
        .get(0);
    let event = event::parse(ev("c1", "approved", 0, serde_json::json!({})).as_bytes()).expect("an event");
    let record = AttemptRecord {
        delivery_id,
        url_id,
        url: "http://127.0.0.1:9/pb?c=c1".into(),
        method: Method::Get,
        event: Arc::new(event),
        attempt: 1,
        http_code: Some(200),
        error_code: None,
        error: None,
        response_excerpt: None,
        duration_ms: 4,
        sent_at: chrono::Utc::now(),
        state: DeliveryState::Delivered,
        next_attempt_at: None,
    };
    (env, pg, owner, record)
}

/// One attempt row, and the delivery delivered after one attempt with its lease given back.
async fn recorded_once(pg: &tokio_postgres::Client) {
    assert_eq!(count(pg, "SELECT count(*) FROM attempts").await, 1);
    assert_eq!(
        rows(
            pg,
            "SELECT state, attempts::text, lease_owner::text FROM deliveries"
        )
        .await,
        vec![vec![s("delivered"), s("1"), None]]
    );
}
