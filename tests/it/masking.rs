//! Secrets in a cross-postback URL stay out of the logs and the statistics (SPEC §6: the view's
//! `postback_url` is "as sent, secrets masked"; README: "Logged URLs have secret query values
//! and any user:password masked"). The real binary runs with verbose logs, against a receiver
//! that answers 500, so every attempt is logged as a failure.

use serde_json::json;

use crate::harness::child::Daemon;
use crate::harness::*;

const SECRETS: [&str; 3] = ["SECRET123", "K3Y456", "PASSW0RD"];

async fn secrets_stay_out_of_logs(format: &str, level: &str) {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    rx.script(std::iter::repeat_n(Reply::status(500), 10));
    let template = format!(
        "http://partner:PASSW0RD@{}/pb?token=SECRET123&api_key=K3Y456&clickid={{clickid}}",
        rx.addr
    );
    env.add_url("1", &template).await;
    let mut daemon = Daemon::spawn(&env, &[("XPB_LOG__FORMAT", format), ("XPB_LOG__LEVEL", level)]);
    daemon.wait_for_line(&["consuming"]).await;
    env.publish(&[ev("c1", "approved", 0, json!({"click_id": "k1"}))])
        .await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'failed' AND attempts = 4",
        1,
    )
    .await;
    // The last attempt's line is written before its record; wait for it, then stop.
    let next_failed = if format == "json" {
        "\"next\":\"failed\""
    } else {
        "next=\"failed\""
    };
    daemon.wait_for_line(&["attempt failed", next_failed]).await;
    let lines = daemon.kill().await;

    // The secrets did go out, to the receiver: the test would notice if they were not there.
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[0].param("token").as_deref(), Some("SECRET123"));
    assert!(
        reqs[0].header("authorization").is_some(),
        "user:password sent as basic auth"
    );

    let failures: Vec<&String> = lines.iter().filter(|l| l.contains("attempt failed")).collect();
    assert_eq!(failures.len(), 4, "one line per attempt: {failures:#?}");
    for line in &failures {
        assert!(
            line.contains("token=***") && line.contains("api_key=***") && line.contains("clickid=k1"),
            "the URL is logged, masked: {line}"
        );
        assert!(line.contains("partner:***@"), "the password is masked: {line}");
    }
    if format == "json" {
        for line in &lines {
            let _: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        }
    }
    let leaks: Vec<&String> = lines
        .iter()
        .filter(|l| SECRETS.iter().any(|s| l.contains(s)))
        .collect();
    assert!(
        leaks.is_empty(),
        "{} of {} log lines carry a secret, e.g.: {:#?}",
        leaks.len(),
        lines.len(),
        &leaks[..leaks.len().min(3)]
    );

    // The statistics show the URL as sent, masked.
    let shown = rows(&pg, "SELECT postback_url FROM cross_postback_stats").await;
    assert_eq!(shown.len(), 4);
    for row in &shown {
        let url = row[0].clone().unwrap_or_default();
        assert!(url.contains("token=***") && url.contains("clickid=k1"), "{url}");
        assert!(!SECRETS.iter().any(|s| url.contains(s)), "{url}");
    }
    let (code, out, err) = env.cli_async(&["attempts", "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("token=***"), "{out}");
    assert!(!SECRETS.iter().any(|s| out.contains(s)), "{out}");
}

#[tokio::test]
async fn secrets_are_masked_in_pretty_debug_logs_and_the_statistics() {
    secrets_stay_out_of_logs("pretty", "debug").await;
}

#[tokio::test]
async fn secrets_are_masked_in_json_trace_logs() {
    secrets_stay_out_of_logs("json", "trace").await;
}
