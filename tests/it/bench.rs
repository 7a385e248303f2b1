//! A smoke test of `cross-postback bench` (speed is measured by the command, never asserted).

use crate::harness::*;

#[tokio::test]
async fn bench_runs_every_phase_and_cleans_up() {
    let env = Env::new().await;
    let mut cmd = tokio::process::Command::from(env.command());
    cmd.args([
        "bench",
        "--events",
        "300",
        "--rate",
        "50",
        "--seconds",
        "1",
        "--json",
    ])
    .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), cmd.output())
        .await
        .expect("bench finishes within 3 minutes")
        .expect("binary runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).expect("JSON results");
    for key in [
        "publish_msg_per_s",
        "broker_msg_per_s",
        "http_req_per_s",
        "database_rows_per_s",
        "bound_events_per_s",
        "end_to_end_events_per_s",
        "latency_p99_ms",
        "peak_rss_mib",
    ] {
        let v = r[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {r}"));
        assert!(v > 0.0, "{key} = {v}");
    }
    assert_eq!(r["rows_per_event"], 4);
    // Not a terminal: plain lines, no carriage returns or escape sequences; each phase's last
    // count is its total, and the latency phase counts its own 50 deliveries.
    assert!(!stderr.contains(['\r', '\x1b']), "{stderr:?}");
    for (phase, total) in [
        ("broker publish", 300),
        ("broker consume", 300),
        ("http", 300),
        ("database", 300),
        ("backlog publish", 300),
        ("end to end delivered", 300),
        ("latency publish", 50),
        ("latency delivered", 50),
    ] {
        let last = stderr
            .lines()
            .rfind(|l| l.starts_with(&format!("{phase}: ")))
            .unwrap_or_else(|| panic!("no {phase} progress: {stderr}"));
        assert_eq!(last, format!("{phase}: {total}/{total}"), "{stderr}");
    }
    assert_eq!(r["latency_samples"], 50);
    // The run's own database, by name: other bench runs on the same server may come and go.
    let database = r["database"].as_str().expect("the run names its database");
    assert!(database.starts_with("xpb_bench_"), "{database}");
    let left = env
        .pg()
        .await
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("pg_database");
    assert_eq!(
        left.get::<_, i64>(0),
        0,
        "the run's database {database} is removed"
    );
}

/// The growth scenario at a small size: both runs, the exact top-level keys, the databases
/// removed afterwards.
#[tokio::test]
async fn bench_growth_reports_its_keys_and_cleans_up() {
    let env = Env::new().await;
    let pg = env.pg().await;
    // This scenario's own prefix: the pipeline bench may run meanwhile with its `xpb_bench_`.
    let leftover = "SELECT count(*) FROM pg_database WHERE datname LIKE 'xpb_growth_%'";
    let before = count(&pg, leftover).await;
    let mut cmd = tokio::process::Command::from(env.command());
    cmd.args([
        "bench",
        "--scenario",
        "growth",
        "--events",
        "200",
        "--rate",
        "50",
        "--seconds",
        "1",
        "--history",
        "2000",
        "--backlog",
        "500",
        "--json",
    ])
    .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(240), cmd.output())
        .await
        .expect("the growth bench finishes within 4 minutes")
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON results");
    for key in [
        "throughput_ratio",
        "p99_ratio",
        "claim_ms_p99",
        "table_bytes_per_event",
        "wal_bytes_per_event",
    ] {
        let v = r[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {r}"));
        assert!(v > 0.0 && v.is_finite(), "{key} = {v}");
    }
    let by_table = r["table_bytes_by_table"].as_object().expect("bytes by table");
    let tables: Vec<&str> = by_table.keys().map(String::as_str).collect();
    assert_eq!(tables, ["attempts", "conversions", "deliveries"]);
    let sum: f64 = by_table.values().filter_map(serde_json::Value::as_f64).sum();
    let total = r["table_bytes_per_event"].as_f64().unwrap_or_default();
    assert!((sum - total).abs() < 1e-6 * total.max(1.0), "{sum} vs {total}");
    assert_eq!(r["history_attempts"], 2000);
    assert_eq!(r["backlog"], 500);
    assert_eq!(
        count(&pg, leftover).await,
        before,
        "the bench databases are removed"
    );
}
