//! A clean stop is quiet: after SIGTERM nothing is logged above INFO.

use serde_json::json;

use crate::harness::child::{Daemon, terminate};
use crate::harness::*;

/// The level of each JSON log line; a line that is not JSON (nothing else should be written)
/// fails the test.
fn levels(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"));
            v["level"]
                .as_str()
                .unwrap_or_else(|| panic!("no level: {l}"))
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_clean_stop_after_a_delivery_logs_nothing_above_info() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x")).await;
    let mut daemon = Daemon::spawn(&env, &[("XPB_LOG__FORMAT", "json")]);
    daemon.wait_for_line(&["consuming"]).await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    let status = terminate(&mut daemon.child).await;
    let log = daemon.kill().await;
    assert_eq!(status.code(), Some(0), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:#?}");
    let loud: Vec<&String> = log
        .iter()
        .zip(levels(&log))
        .filter(|(_, level)| level == "WARN" || level == "ERROR")
        .map(|(l, _)| l)
        .collect();
    assert!(loud.is_empty(), "lines above INFO on a clean stop: {loud:#?}");
}
