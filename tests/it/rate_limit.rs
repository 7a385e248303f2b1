//! Per-URL rate limits: deliveries over the rate wait (no attempt, no failure) and are sent as
//! the rate allows; another URL is not held up.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn two_hundred_deliveries_at_twenty_a_second_take_nine_seconds_and_none_fails() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let limited = env.add_url("1", &rx.url("/limited?c={conversion_id}")).await;
    env.add_url("2", &rx.url("/free?c={conversion_id}")).await;
    let (code, _, err) = env
        .cli_async(&[
            "urls",
            "edit",
            &limited.to_string(),
            "--rate",
            "20/s",
            "--burst",
            "10",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let daemon = env.start().await;
    let mut events: Vec<String> = (0..200)
        .map(|c| ev(&format!("l-{c}"), "approved", 0, json!({})))
        .collect();
    events.extend((0..20).map(|c| ev(&format!("f-{c}"), "approved", 0, json!({"offer_id": 2}))));
    let started = Instant::now();
    env.publish(&events).await;
    // Within the harness's 30 s deadline; the rate needs about 9.5 s.
    let all = rx.wait_for(220).await;
    let (limited_at, free_at): (Vec<_>, Vec<_>) = all.iter().partition(|r| r.target.starts_with("/limited"));
    assert_eq!(limited_at.len(), 200);
    let first = limited_at.iter().map(|r| r.at).min().expect("requests");
    let last = limited_at.iter().map(|r| r.at).max().expect("requests");
    let span = last - first;
    // 10 at once, then 190 at 50 ms apart: 9.5 s.
    assert!(span >= Duration::from_secs(9), "200 at 20/s took only {span:?}");
    let free_last = free_at.iter().map(|r| r.at).max().expect("free requests");
    assert!(
        free_last - started < Duration::from_secs(4),
        "the other URL waited: {:?}",
        free_last - started
    );
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        220,
    )
    .await;
    assert_eq!(
        count(
            &pg,
            &format!("SELECT count(*) FROM attempts WHERE url_id = {limited}")
        )
        .await,
        200,
        "waiting made no attempt"
    );
    assert_eq!(
        count(&pg, "SELECT count(*) FROM deliveries WHERE attempts <> 1").await,
        0
    );
    let metrics = daemon.daemon.as_ref().expect("running").metrics.encode();
    let limited_n: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("xpb_rate_limited_total "))
        .and_then(|n| n.parse().ok())
        .expect("xpb_rate_limited_total");
    // Each one over the burst is put back once and keeps its slot (a few more fit as time
    // passes while the first are sent): never put back twice.
    assert!(
        (150..=190).contains(&limited_n),
        "put back once each over the burst: {limited_n}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn rates_are_set_shown_and_cleared_from_the_command_line() {
    let env = Env::new().await;
    let (code, out, err) = env
        .cli_async(&[
            "urls",
            "add",
            "--offer",
            "1",
            "--url",
            "http://127.0.0.1:9/x",
            "--rate",
            "90/m",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let id = out.trim().to_owned();
    let (_, list, _) = env.cli_async(&["urls", "list", "--format", "json"]).await;
    assert!(list.contains("90/m burst 2"), "{list}");
    let (code, _, err) = env.cli_async(&["urls", "edit", &id, "--no-rate"]).await;
    assert_eq!(code, 0, "{err}");
    let (_, list, _) = env.cli_async(&["urls", "list", "--format", "json"]).await;
    assert!(!list.contains("burst"), "{list}");
    for (args, needle) in [
        (vec!["--rate", "0/s"], "--rate: rate \"0/s\""),
        (vec!["--rate", "5/h"], "expected N/s or N/m"),
        (vec!["--rate", "5/s", "--burst", "0"], "burst 0"),
    ] {
        let mut all = vec!["urls", "edit", id.as_str()];
        all.extend(args);
        let (code, _, err) = env.cli_async(&all).await;
        assert_ne!(code, 0);
        assert!(err.contains(needle) && err.lines().count() == 1, "{err}");
    }
}
