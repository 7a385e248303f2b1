//! The binary: bad configuration and arguments stop it with one line; SIGTERM stops it cleanly.

use serde_json::json;

use crate::harness::child::Daemon;
use crate::harness::*;

#[tokio::test]
async fn a_bad_config_value_stops_start_up_naming_the_key() {
    let env = Env::new().await;
    let cases = [
        ("XPB_AMQP__QUEUE_TYPE", "stream", "amqp.queue_type"),
        ("XPB_DELIVERY__TIMEOUT", "soon", "delivery.timeout"),
        ("XPB_DELIVERY__NOPE", "1", "unknown key `delivery.nope`"),
        (
            "XPB_DELIVERY__RETRY_SCHEDULE",
            "5s,100000000d",
            "`delivery.retry_schedule` (from XPB_DELIVERY__RETRY_SCHEDULE): 100000000d is out of range: allowed from 0ms to 30d",
        ),
        (
            "XPB_DELIVERY__LEASE",
            "1000000000d",
            "`delivery.lease` (from XPB_DELIVERY__LEASE): 1000000000d is out of range",
        ),
        (
            "XPB_HTTP__LISTEN",
            "localhost",
            "`http.listen` (from XPB_HTTP__LISTEN)",
        ),
        (
            "XPB_DELIVERY__ALLOW_CIDRS",
            "10.0.0.0/33",
            "`delivery.allow_cidrs`",
        ),
    ];
    for (var, value, want) in cases {
        let mut run = env.command();
        run.arg("run").env(var, value);
        let (code, _, err) = output_within_deadline(run).await;
        assert_eq!(code, 1, "{var}={value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(want), "{err} should name {want}");
    }
}

#[tokio::test]
async fn a_bad_argument_prints_one_line_and_fails() {
    let env = Env::new().await;
    for args in [
        vec!["nope"],
        vec!["urls", "add", "--offer"],
        vec!["attempts", "--format", "xml"],
        vec!["attempts", "--since", "last week"],
    ] {
        let (code, _, err) = env.cli(&args);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let (_, _, err) = env.cli(&["urls", "add", "--url", "https://example.com/"]);
    assert!(err.contains("--offer"), "names what is missing: {err}");
    let (code, out, _) = env.cli(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("receiver") && out.contains("attempts"), "{out}");
}

#[tokio::test]
async fn sigterm_stops_consuming_and_exits_zero() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x")).await;
    let mut daemon = Daemon::spawn(&env, &[]);
    daemon.wait_for_line(&["consuming"]).await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    rx.wait_for(1).await;
    assert_eq!(daemon.terminate().await.code(), Some(0));
    assert_eq!(env.ready_messages(&env.cfg.amqp.queue).await, 0);
}
