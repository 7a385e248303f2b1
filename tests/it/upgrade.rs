//! Upgrading in place: a database at the previous schema (migrations 1 to 4), filled through the
//! real pipeline (events published, the daemon delivering to a loopback receiver, retries, an
//! invalid message), migrated by the current binary with every row kept and queryable.

use cross_postback::store;
use serde_json::json;

use crate::harness::*;

/// The previous release's last migration.
const PREVIOUS: i32 = 4;

const TABLES: [&str; 5] = [
    "cross_postback_urls",
    "conversions",
    "deliveries",
    "attempts",
    "rejected_messages",
];

/// Migration 8 (automatic disabling, alerts, rate limits), which the daemon of this build reads.
const SCALE: &str = include_str!("../../migrations/0008_scale.sql");

/// What [`SCALE`] and the fill's unique index added, removed again.
const SCALE_UNDONE: &str = "
    DROP TABLE url_rate_slots, url_rate_buckets, alert_outbox, url_alert_state;
    DROP INDEX attempts_url, fill_attempts_once;
    ALTER TABLE cross_postback_urls DROP COLUMN disabled_reason, DROP COLUMN disabled_at,
        DROP COLUMN auto_disabled, DROP COLUMN rate_count, DROP COLUMN rate_unit,
        DROP COLUMN rate_burst";

/// The schema's tables, columns, constraints and indexes, to compare two states of it.
async fn schema(pg: &tokio_postgres::Client) -> Vec<Vec<Option<String>>> {
    rows(
        pg,
        "SELECT table_name::text, column_name::text, data_type::text, column_default::text, is_nullable::text
         FROM information_schema.columns WHERE table_schema = 'public'
         UNION ALL
         SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid), NULL, NULL
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace
         UNION ALL
         SELECT tablename::text, indexname::text, indexdef, NULL, NULL
         FROM pg_indexes WHERE schemaname = 'public'
         ORDER BY 1, 2, 3",
    )
    .await
}

async fn snapshot(pg: &tokio_postgres::Client) -> (Vec<i64>, Vec<Vec<Option<String>>>) {
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push(count(pg, &format!("SELECT count(*) FROM {table}")).await);
    }
    let view = rows(
        pg,
        "SELECT s.*, v.id, v.delivery_id, v.attempt, v.delivery_state FROM cross_postback_stats s
         JOIN xpb_attempts_view v USING (postback_url, conversion_id, date)
         ORDER BY v.id",
    )
    .await;
    (counts, view)
}

#[tokio::test]
async fn a_database_filled_at_the_previous_schema_migrates_with_every_row_kept() {
    let mut env = Env::empty().await;
    let pool = env.pool();
    store::migrate_up_to(&pool, PREVIOUS)
        .await
        .expect("the previous schema");
    let pg = env.pg().await;
    assert_eq!(
        count(&pg, "SELECT count(*) FROM pg_partitioned_table").await,
        0,
        "the previous schema has no partitions"
    );
    // The daemon of this build runs on that schema as the previous one did: the migrations it
    // would apply are marked done, so it writes into the previous tables. It also reads what
    // migration 8 adds (URL columns, alert and rate tables, none of them about the rows kept
    // here) and a unique index of attempts, so those are made for the fill and taken back
    // before the upgrade.
    let previous = schema(&pg).await;
    pg.batch_execute(SCALE).await.expect("migration 8 for the fill");
    // Its recorder also names migration 7's unique key of attempts (`ON CONFLICT`).
    pg.batch_execute("CREATE UNIQUE INDEX fill_attempts_once ON attempts (delivery_id, attempt, sent_at)")
        .await
        .expect("the recorder's key for the fill");
    pg.execute(
        "INSERT INTO xpb_schema_migrations (version) SELECT unnest($1::int4[])",
        &[&store::migration_versions()
            .into_iter()
            .filter(|v| *v > PREVIOUS)
            .collect::<Vec<i32>>()],
    )
    .await
    .expect("mark the newer migrations");
    env.cfg.delivery.retry_schedule = vec![ms(50)];
    let rx = Receiver::start().await;
    let mut replies = vec![Reply::status(503); 3];
    replies.push(Reply::status(404));
    rx.script(replies);
    env.add_url("o1", &rx.url("/a?c={conversion_id}&token=s3cret"))
        .await;
    env.add_url("o2", &rx.url("/b?c={conversion_id}&s={status}"))
        .await;
    let daemon = env.start().await;
    let mut events = Vec::new();
    for i in 0..20 {
        let offer = if i % 2 == 0 { "o1" } else { "o2" };
        events.push(ev(
            &format!("u{i}"),
            "pending",
            0,
            json!({"offer_id": offer, "payout": "1.25"}),
        ));
        events.push(ev(
            &format!("u{i}"),
            "approved",
            1,
            json!({"offer_id": offer, "payout": "1.25"}),
        ));
    }
    env.publish(&events).await;
    env.publish_raw(&[b"{\"broken\": true}".to_vec()]).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state IN ('pending') OR lease_until IS NOT NULL",
        0,
    )
    .await;
    wait_count(&pg, "SELECT count(*) FROM rejected_messages", 1).await;
    daemon.stop().await;
    let before = snapshot(&pg).await;
    assert!(before.0[3] >= 40, "attempts written: {:?}", before.0);
    assert!(
        count(&pg, "SELECT count(*) FROM attempts WHERE http_code = 503").await > 0,
        "some were retried"
    );

    pg.batch_execute(SCALE_UNDONE)
        .await
        .expect("migration 8 taken back");
    assert_eq!(schema(&pg).await, previous, "the fill leaves the previous schema");
    pg.execute(
        "DELETE FROM xpb_schema_migrations WHERE version > $1",
        &[&PREVIOUS],
    )
    .await
    .expect("unmark");
    let applied = store::migrate(&pool).await.expect("the upgrade applies");
    assert!(!applied.is_empty());
    let after = snapshot(&pg).await;
    assert_eq!(after.0, before.0, "rows per table ({TABLES:?})");
    assert_eq!(after.1, before.1, "the statistics view reads the same rows");
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'attempts'::regclass"
        )
        .await,
        1
    );
    // The upgraded database takes new work: ids go on after the old ones.
    let max_before = count(&pg, "SELECT max(id) FROM attempts").await;
    let daemon = env.start().await;
    env.publish(&[ev("after", "approved", 0, json!({"offer_id": "o1"}))])
        .await;
    wait_count(
        &pg,
        &format!("SELECT count(*) FROM attempts WHERE conversion_id = 'after' AND id > {max_before}"),
        1,
    )
    .await;
    daemon.stop().await;
}
