//! Retention: whole partitions of `attempts` dropped, the other tables trimmed, a removed
//! conversion new again, `prune --dry-run` removing nothing, and a prune killed half-way finished
//! by the next one.

use std::process::Stdio;

use cross_postback::bench::history;
use cross_postback::config::{Dur, Retention};
use cross_postback::lifecycle::{self, Outcome};
use cross_postback::store::retention::Removed;
use serde_json::json;

use crate::harness::*;

fn days(n: u64) -> Dur {
    Dur(std::time::Duration::from_secs(n * 86_400))
}

fn policy() -> Retention {
    Retention {
        attempts: days(90),
        deliveries: days(90),
        conversions: days(400),
        rejected: days(30),
        interval: days(1),
    }
}

async fn prune(env: &Env, dry_run: bool) -> Vec<Removed> {
    match lifecycle::prune(&env.cfg.database.url, &policy(), dry_run).await {
        Ok(Outcome::Done(removed)) => removed,
        other => panic!("prune: {other:?}"),
    }
}

fn rows(removed: &[Removed], table: &str) -> i64 {
    removed.iter().find(|r| r.table == table).map_or(-1, |r| r.rows)
}

const OLD_ATTEMPTS: &str = "SELECT count(*) FROM attempts WHERE sent_at < now() - interval '91 days'";
const OLD_PARTITIONS: &str = "SELECT count(*) FROM pg_class WHERE relname ~ '^attempts_[0-9]{8}$'
    AND to_date(substr(relname, 10), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date - 91";

#[tokio::test]
async fn prune_trims_every_table_and_a_removed_conversion_is_new_again() {
    let mut env = Env::new().await;
    // The daemon's own retention keeps everything: this test applies it itself.
    for kept in [
        &mut env.cfg.retention.attempts,
        &mut env.cfg.retention.deliveries,
        &mut env.cfg.retention.conversions,
        &mut env.cfg.retention.rejected,
    ] {
        *kept = Dur(std::time::Duration::ZERO);
    }
    let rx = Receiver::start().await;
    env.add_url("o", &rx.url("/pb?c={conversion_id}")).await;
    let pool = env.pool();
    let client = pool.get().await.expect("db");
    history::fill_attempts(&client, 2_500, 180.0, 10, 3)
        .await
        .expect("history");
    let pg = env.pg().await;
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({"offer_id": "o"}))])
        .await;
    env.publish_raw(&[b"not json".to_vec()]).await;
    rx.wait_for(1).await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", 1).await;
    // c1 last changed 500 days ago; the invalid message came 40 days ago.
    pg.batch_execute(
        "UPDATE conversions SET modified_at = now() - interval '500 days' WHERE conversion_id = 'c1';
         UPDATE rejected_messages SET received_at = now() - interval '40 days'",
    )
    .await
    .expect("age the rows");
    let old_attempts = count(&pg, OLD_ATTEMPTS).await;
    assert!(old_attempts > 500, "{old_attempts}");
    let old_deliveries = count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state <> 'pending' AND updated_at < now() - interval '90 days'",
    )
    .await;
    let total = count(&pg, "SELECT count(*) FROM attempts").await;

    let dry = prune(&env, true).await;
    assert_eq!(rows(&dry, "deliveries"), old_deliveries);
    assert_eq!(rows(&dry, "conversions"), 1);
    assert_eq!(rows(&dry, "rejected_messages"), 1);
    assert!(!dry[0].partitions.is_empty(), "{dry:?}");
    assert_eq!(
        count(&pg, "SELECT count(*) FROM attempts").await,
        total,
        "a dry run removes nothing"
    );

    let done = prune(&env, false).await;
    assert_eq!(done[0].partitions, dry[0].partitions);
    assert_eq!(rows(&done, "deliveries"), old_deliveries);
    assert_eq!(rows(&done, "conversions"), 1);
    assert_eq!(rows(&done, "rejected_messages"), 1);
    assert_eq!(count(&pg, OLD_ATTEMPTS).await, 0);
    assert_eq!(count(&pg, OLD_PARTITIONS).await, 0);
    assert!(
        count(&pg, "SELECT count(*) FROM attempts").await > 0,
        "recent attempts stay"
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM rejected_messages").await, 0);
    assert!(
        count(&pg, "SELECT count(*) FROM cross_postback_stats").await > 0,
        "the view still reads"
    );
    let again = prune(&env, false).await;
    assert!(again.iter().all(|r| r.rows == 0), "{again:?}");

    // The same status again: without the conversion it is a first event, announced once more.
    env.publish(&[ev("c1", "approved", 1, json!({"offer_id": "o"}))])
        .await;
    rx.wait_for(2).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_prune_killed_while_detaching_is_finished_by_the_next() {
    let env = Env::new().await;
    let pool = env.pool();
    let client = pool.get().await.expect("db");
    history::fill_attempts(&client, 1_250, 120.0, 10, 3)
        .await
        .expect("history");
    let recent = count(
        &pg_of(&env).await,
        "SELECT count(*) FROM attempts
         WHERE sent_at >= ((now() - interval '90 days') AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC'",
    )
    .await;
    // A reader that holds a snapshot: DETACH ... CONCURRENTLY waits for it after its first step.
    let mut blocker = pg_of(&env).await;
    let tx = blocker.transaction().await.expect("tx");
    tx.query("SELECT count(*) FROM attempts", &[])
        .await
        .expect("read");

    let mut child = env
        .command()
        .arg("prune")
        .env("XPB_RETENTION__ATTEMPTS", "90d")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prune starts");
    let pg = pg_of(&env).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'attempts'::regclass AND inhdetachpending",
        1,
    )
    .await;
    child.kill().expect("kill prune");
    let _ = child.wait();
    // Its server session still waits: interrupt it, as a lost connection or a restart would.
    pg.batch_execute(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'cross-postback retention'",
    )
    .await
    .expect("cancel");
    wait_count(
        &pg,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cross-postback retention'",
        0,
    )
    .await;
    tx.commit().await.expect("end the reader");
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'attempts'::regclass AND inhdetachpending"
        )
        .await,
        1,
        "the kill left a partition half-detached"
    );

    let done = prune(&env, false).await;
    assert!(!done[0].partitions.is_empty(), "{done:?}");
    assert_eq!(count(&pg, OLD_PARTITIONS).await, 0);
    assert_eq!(count(&pg, OLD_ATTEMPTS).await, 0);
    assert_eq!(count(&pg, "SELECT count(*) FROM attempts").await, recent);
    // Another run finds nothing left to do.
    let again = prune(&env, false).await;
    assert!(again[0].partitions.is_empty(), "{again:?}");
}

async fn pg_of(env: &Env) -> tokio_postgres::Client {
    env.pg().await
}
