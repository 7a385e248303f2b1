//! A smoke test of `cross-postback bench --scenario stats` at a small size: every figure is
//! there and plausible, and the scratch database is gone afterwards (speed is never asserted).

use crate::harness::*;

#[tokio::test]
async fn stats_bench_reports_every_page_and_the_export_and_drops_its_database() {
    let env = Env::new().await;
    let mut cmd = tokio::process::Command::from(env.command());
    cmd.args([
        "bench",
        "--scenario",
        "stats",
        "--attempts",
        "20000",
        "--repetitions",
        "3",
        "--export-rows",
        "5000",
        "--json",
    ])
    .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(240), cmd.output())
        .await
        .expect("the stats bench finishes within 4 minutes")
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON results");
    assert_eq!(r["scenario"], "stats");
    assert_eq!(r["attempts"], 20_000);
    assert_eq!(r["deliveries"], 16_000);
    for key in ["database_mib", "fill_seconds", "analyze_seconds"] {
        positive(&r, key);
    }
    let pages = r["pages"].as_array().expect("pages");
    let filters = [
        "last 24 h",
        "all",
        "offer",
        "affiliate",
        "conversion",
        "1-day window",
        "state failed",
    ];
    assert_eq!(pages.len(), 2 * filters.len(), "{r}");
    for (pair, filter) in pages.chunks(2).zip(filters) {
        for p in pair {
            assert_eq!(p["filter"], filter, "{p}");
            for key in ["rows", "p50_ms", "p99_ms", "max_ms"] {
                positive(p, key);
            }
            let (p50, p99, max) = (f(p, "p50_ms"), f(p, "p99_ms"), f(p, "max_ms"));
            assert!(p50 <= p99 && p99 <= max, "{p}");
        }
        assert_eq!(pair[0]["page"], 1, "{}", pair[0]);
    }
    // 20,000 attempts: 200 full pages in all, so the walk to page 1,000 stops at the last one.
    assert_eq!(pages[3]["page"], 200, "{}", pages[3]);
    assert_eq!(pages[3]["rows"], 100, "{}", pages[3]);
    // One conversion is one to three attempts, one page.
    assert!(f(&pages[8], "rows") <= 3.0, "{}", pages[8]);
    let e = &r["export"];
    for key in [
        "rows",
        "bytes",
        "seconds",
        "rows_per_s",
        "start_rss_mib",
        "peak_rss_mib",
    ] {
        positive(e, key);
    }
    assert!((5_000.0..5_010.0).contains(&f(e, "rows")), "{e}");
    // A CSV row of the statistics columns is well over 100 bytes.
    assert!(f(e, "bytes") > 5_000.0 * 100.0, "{e}");
    assert!(f(e, "peak_rss_mib") >= f(e, "start_rss_mib"), "{e}");
    let slowest = &r["slowest"];
    positive(slowest, "p99_ms");
    let plan = slowest["plan"].as_str().expect("plan");
    assert!(
        plan.contains("Execution Time") && plan.contains("Buffers"),
        "{plan}"
    );
    assert!(
        slowest["sql"].as_str().is_some_and(|s| s.starts_with("SELECT ")),
        "{slowest}"
    );
    let database = r["database"].as_str().expect("database");
    // Not xpb_bench_: the pipeline bench's test counts those while this one runs.
    assert!(database.starts_with("xpb_stats_"), "{database}");
    let left = count(
        &env.pg().await,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{database}'"),
    )
    .await;
    assert_eq!(left, 0, "the scratch database is dropped");
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {v}"))
}

fn positive(v: &serde_json::Value, key: &str) {
    let x = f(v, key);
    assert!(x > 0.0, "{key} = {x}: {v}");
}
