//! Verbose logs keep the libraries that log secrets capped, whatever the filter says: at
//! `trace`, with a filter that names them, the real binary writes no `lapin`/`amq_protocol`
//! frame (the broker login's SASL response holds the password) and no `tokio_postgres`
//! statement parameters (an attempt's insert holds the URL as sent, token and all).

use serde_json::json;

use crate::harness::child::Daemon;
use crate::harness::*;

const CAPPED: [&str; 3] = ["lapin", "amq_protocol", "tokio_postgres"];

#[tokio::test]
async fn a_filter_naming_the_libraries_cannot_lift_their_cap() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/pb?token=SECRET123&c={clickid}")).await;
    let filter = "trace,tokio_postgres=trace,tokio_postgres::query=trace,lapin=trace,amq_protocol_tcp=trace";
    let mut daemon = Daemon::spawn(
        &env,
        &[
            ("XPB_LOG__FORMAT", "json"),
            ("XPB_LOG__LEVEL", filter),
            ("RUST_LOG", filter),
        ],
    );
    daemon.wait_for_line(&["consuming"]).await;
    env.publish(&[ev("c1", "approved", 0, json!({"click_id": "k1"}))])
        .await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    let lines = daemon.kill().await;
    assert_eq!(rx.requests()[0].param("token").as_deref(), Some("SECRET123"));

    let mut trace_lines = 0;
    for line in &lines {
        assert!(!line.contains("SECRET123"), "a secret in the log: {line}");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let target = v["target"].as_str().unwrap_or_default();
        let level = v["level"].as_str().unwrap_or_default();
        if level == "TRACE" {
            trace_lines += 1;
        }
        let capped = CAPPED.iter().any(|c| target.starts_with(c));
        assert!(
            !(capped && matches!(level, "DEBUG" | "TRACE")),
            "{target} logged at {level}: {line}"
        );
    }
    assert!(trace_lines > 0, "the filter did turn trace on for the rest");
}
