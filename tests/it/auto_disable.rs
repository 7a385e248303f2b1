//! Automatic disabling and alerts, run as of a given "now" over attempts written with their
//! times (so `delivery.disable_after` keeps its production bounds), against a loopback alert
//! receiver.

use chrono::{DateTime, Utc};
use cross_postback::alerts;
use cross_postback::config::Dur;
use cross_postback::ops::Metrics;

use crate::harness::*;

/// Writes one pending delivery to `url_id` and `n` attempts spread evenly from `from` to `to`
/// back from `now`, the first `ok` of them (the newest) answered 200, the rest 500.
async fn attempts(
    pg: &tokio_postgres::Client,
    url_id: i64,
    n: i32,
    ok: i32,
    span: (i64, i64),
    now: DateTime<Utc>,
) {
    let conversion = format!("c-{url_id}-{}", uuid::Uuid::new_v4().simple());
    let row = pg
        .query_one(
            "INSERT INTO deliveries (conversion_id, url_id, status, event, next_attempt_at)
             VALUES ($1, $2, 'approved', '{}', $3::timestamptz + interval '1 hour') RETURNING id",
            &[&conversion, &url_id, &now],
        )
        .await
        .expect("delivery");
    let delivery: i64 = row.get(0);
    let (from, to) = span;
    let at = now.to_rfc3339();
    attempts_partitions(pg, &at, from.max(to) as f64).await;
    pg.execute(
        "INSERT INTO attempts (delivery_id, url_id, url, method, conversion_id, affiliate_id,
                               offer_id, status, attempt, http_code, error_code, duration_ms, sent_at)
         SELECT $1, $2, 'http://127.0.0.1/x', 'GET', $3, '2', '1', 'approved', i,
                CASE WHEN i <= $5 THEN 200 ELSE 500 END,
                CASE WHEN i <= $5 THEN NULL ELSE 'http' END, 5,
                $6::timestamptz - (($7::float8 + ($8 - $7) * (i - 1) / greatest($4 - 1, 1)) * interval '1 second')
         FROM generate_series(1, $4) i",
        &[&delivery, &url_id, &conversion, &n, &ok, &now, &(to as f64), &(from as f64)],
    )
    .await
    .expect("attempts");
}

fn cfg_with(env: &Env, webhook: &str) -> cross_postback::config::Config {
    let mut cfg = env.cfg.clone();
    cfg.delivery.disable_after = Dur(std::time::Duration::from_secs(3600));
    cfg.alerts.webhook_url = webhook.to_owned();
    cfg.alerts.failure_ratio = 0.5;
    cfg
}

#[tokio::test]
async fn a_url_failing_for_disable_after_is_disabled_once_announced_once_and_enabled_again() {
    let env = Env::new().await;
    let alert_rx = Receiver::start().await;
    let cfg = cfg_with(&env, &alert_rx.url("/hook"));
    let dead = env.add_url("1", "http://127.0.0.1:9/pb?token=S3CRET").await;
    let young = env.add_url("1", "http://127.0.0.1:9/young").await;
    let pg = env.pg().await;
    let now = Utc::now();
    // 60 failures over the last 2 h: 30 in the last hour, and failing before it.
    attempts(&pg, dead, 60, 0, (7200, 60), now).await;
    // As many failures, but all within the hour: not failing for the whole span yet.
    attempts(&pg, young, 30, 0, (3000, 60), now).await;
    let pool = env.pool();
    let checked = alerts::check(&pool, &cfg, now).await.expect("check");
    assert!(checked.ran);
    assert_eq!(checked.disabled, [dead]);
    assert_eq!(checked.auto_disabled_now, 1);
    let state = rows(&pg, &format!("SELECT enabled::text, auto_disabled::text, disabled_reason FROM cross_postback_urls WHERE id = {dead}")).await;
    assert_eq!(state[0][0].as_deref(), Some("false"));
    assert_eq!(state[0][1].as_deref(), Some("true"));
    let reason = state[0][2].clone().expect("a reason");
    assert!(reason.contains("every attempt failed for 1h"), "{reason}");
    assert_eq!(
        count(
            &pg,
            &format!("SELECT count(*) FROM deliveries WHERE url_id = {dead} AND state = 'cancelled'")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pg,
            &format!("SELECT count(*) FROM deliveries WHERE url_id = {young} AND state = 'pending'")
        )
        .await,
        1
    );
    // `urls list` shows the reason.
    let (code, out, err) = env.cli_async(&["urls", "list", "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&reason), "{out}");
    // Announced once: a second run finds nothing new to say.
    let again = alerts::check(&pool, &cfg, now + chrono::Duration::seconds(30))
        .await
        .expect("check");
    assert!(again.disabled.is_empty());
    let metrics = Metrics::default();
    let http = alerts::client().expect("client");
    let webhook = cfg.alerts_webhook_url().expect("webhook");
    let (sent, failed) = alerts::send_due(&pool, &http, webhook, &metrics, now)
        .await
        .expect("send");
    // The young URL's hour is all failures too: a failure_ratio alert besides the disabling.
    assert_eq!((sent, failed), (2, 0));
    let got = alert_rx.wait_for(2).await;
    let bodies: Vec<serde_json::Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).expect("JSON"))
        .collect();
    let disabled = bodies
        .iter()
        .find(|b| b["xpb"]["kind"] == "disabled")
        .expect("a disabled alert");
    assert!(
        disabled["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("URL {dead}"))),
        "{disabled}"
    );
    assert!(
        !got.iter().any(|r| r.body.contains("S3CRET")),
        "the URL's secret is masked"
    );
    assert_eq!(
        alerts::send_due(&pool, &http, webhook, &metrics, now)
            .await
            .expect("send"),
        (0, 0)
    );
    assert!(
        metrics
            .encode()
            .contains("xpb_alerts_sent_total{kind=\"disabled\"} 1")
    );
    // `urls enable` brings it back and clears the reason.
    let (code, _, err) = env.cli_async(&["urls", "enable", &dead.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    let state = rows(&pg, &format!("SELECT enabled::text, auto_disabled::text, disabled_reason FROM cross_postback_urls WHERE id = {dead}")).await;
    assert_eq!(state[0], [Some("true".into()), Some("false".into()), None]);
}

#[tokio::test]
async fn the_hourly_share_is_announced_when_it_falls_and_when_it_recovers() {
    let env = Env::new().await;
    let alert_rx = Receiver::start().await;
    let cfg = cfg_with(&env, &alert_rx.url("/hook"));
    let url = env.add_url("1", "http://127.0.0.1:9/ratio").await;
    let pg = env.pg().await;
    let pool = env.pool();
    let now = Utc::now();
    attempts(&pg, url, 12, 3, (3000, 10), now).await;
    let first = alerts::check(&pool, &cfg, now).await.expect("check");
    assert_eq!((first.failing.clone(), first.disabled.len()), (vec![url], 0));
    let second = alerts::check(&pool, &cfg, now).await.expect("check");
    assert!(second.failing.is_empty(), "announced once, not on every run");
    // Later, the receiver answers again: 40 successes in the hour before `later`.
    let later = now + chrono::Duration::minutes(10);
    attempts(&pg, url, 40, 40, (500, 5), later).await;
    let third = alerts::check(&pool, &cfg, later).await.expect("check");
    assert_eq!(third.recovered, [url]);
    let kinds = rows(&pg, "SELECT kind FROM alert_outbox ORDER BY id").await;
    assert_eq!(
        kinds,
        [[Some("failure_ratio".to_owned())], [Some("recovered".to_owned())]]
    );
}

#[tokio::test]
async fn a_failing_alert_endpoint_is_counted_and_tried_again_later() {
    let env = Env::new().await;
    let alert_rx = Receiver::start().await;
    alert_rx.script([Reply::status(500)]);
    let cfg = cfg_with(&env, &alert_rx.url("/hook"));
    let url = env.add_url("1", "http://127.0.0.1:9/ratio").await;
    let pg = env.pg().await;
    let pool = env.pool();
    let now = Utc::now();
    attempts(&pg, url, 12, 0, (3000, 10), now).await;
    alerts::check(&pool, &cfg, now).await.expect("check");
    let (metrics, http) = (Metrics::default(), alerts::client().expect("client"));
    let webhook = cfg.alerts_webhook_url().expect("webhook");
    assert_eq!(
        alerts::send_due(&pool, &http, webhook, &metrics, now)
            .await
            .expect("send"),
        (0, 1)
    );
    assert!(metrics.encode().contains("xpb_alerts_failed_total 1"));
    assert_eq!(
        alerts::send_due(&pool, &http, webhook, &metrics, now)
            .await
            .expect("send"),
        (0, 0),
        "not before its retry time"
    );
    let later = now + chrono::Duration::minutes(1);
    assert_eq!(
        alerts::send_due(&pool, &http, webhook, &metrics, later)
            .await
            .expect("send"),
        (1, 0)
    );
    assert_eq!(alert_rx.wait_for(2).await.len(), 2);
}

#[tokio::test]
async fn one_replica_at_a_time_runs_the_checks() {
    let env = Env::new().await;
    let cfg = cfg_with(&env, "");
    let url = env.add_url("1", "http://127.0.0.1:9/dead").await;
    let pg = env.pg().await;
    let now = Utc::now();
    attempts(&pg, url, 60, 0, (7200, 60), now).await;
    // Another replica holds the checks' lock (the key of `store::alerts`).
    let mut other = env.pg().await;
    let tx = other.transaction().await.expect("tx");
    tx.execute("SELECT pg_advisory_xact_lock(8678544643738858100)", &[])
        .await
        .expect("lock");
    let pool = env.pool();
    let skipped = alerts::check(&pool, &cfg, now).await.expect("check");
    assert!(!skipped.ran && skipped.disabled.is_empty(), "{skipped:?}");
    tx.rollback().await.expect("let go");
    let ran = alerts::check(&pool, &cfg, now).await.expect("check");
    assert_eq!(
        (ran.ran, ran.disabled.clone(), ran.auto_disabled_now),
        (true, vec![url], 1)
    );
    // Without alerts.webhook_url nothing is queued.
    assert_eq!(count(&pg, "SELECT count(*) FROM alert_outbox").await, 0);
}

/// A slow endpoint: the request is cut at the client's timeout (5 s in the daemon's client,
/// 300 ms here), counted as failed and tried again later; the check itself never waits for it.
#[tokio::test]
async fn a_slow_alert_endpoint_is_cut_at_the_timeout_and_tried_again() {
    let env = Env::new().await;
    let alert_rx = Receiver::start().await;
    alert_rx.script([Reply {
        delay: std::time::Duration::from_secs(3),
        ..Reply::status(200)
    }]);
    let cfg = cfg_with(&env, &alert_rx.url("/hook"));
    let url = env.add_url("1", "http://127.0.0.1:9/ratio").await;
    let pg = env.pg().await;
    let pool = env.pool();
    let now = Utc::now();
    attempts(&pg, url, 12, 0, (3000, 10), now).await;
    alerts::check(&pool, &cfg, now).await.expect("check");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .expect("client");
    let metrics = Metrics::default();
    let webhook = cfg.alerts_webhook_url().expect("webhook");
    let started = std::time::Instant::now();
    assert_eq!(
        alerts::send_due(&pool, &http, webhook, &metrics, now)
            .await
            .expect("send"),
        (0, 1)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    let error = rows(&pg, "SELECT last_error FROM alert_outbox").await;
    assert_eq!(error[0][0].as_deref(), Some("timeout"));
    let later = now + chrono::Duration::minutes(1);
    assert_eq!(
        alerts::send_due(&pool, &http, webhook, &metrics, later)
            .await
            .expect("send"),
        (1, 0)
    );
}
