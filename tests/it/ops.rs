//! /healthz, /readyz, /metrics on http.listen.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x")).await;
    let daemon = env.start().await;
    let base = format!("http://{}", daemon.http());
    let health = reqwest::get(format!("{base}/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = eventually("ready", || async {
        let r = reqwest::get(format!("{base}/readyz")).await.ok()?;
        (r.status() == 200).then_some(r)
    })
    .await;
    assert_eq!(ready.text().await.expect("body"), "broker: up\ndatabase: up\n");
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;
    let metrics = eventually("metrics count the attempt", || async {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains(r#"xpb_attempts_total{class="2xx"} 1"#)
            .then_some(text)
    })
    .await;
    for name in [
        "xpb_events_consumed_total{outcome=\"announced\"} 1",
        "xpb_attempt_duration_seconds_count 1",
        "xpb_retries_due",
        "xpb_rejected_messages_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    daemon.stop().await;
}
