//! The URL service through the real binary: `urls edit` (pending retries go where the edited
//! row says), duplicates refused, per-URL headers (header-safe, masked) and timeouts, and
//! `urls test` (one request now, nothing recorded).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// Runs the binary, awaited; returns (exit code, stdout, stderr).
async fn run(env: &Env, args: &[&str]) -> (i32, String, String) {
    env.cli_async(args).await
}

async fn add(env: &Env, args: &[&str]) -> i64 {
    let mut all = vec!["urls", "add"];
    all.extend_from_slice(args);
    let (code, out, err) = run(env, &all).await;
    assert_eq!(code, 0, "{all:?}: {err}");
    out.trim().parse().expect("an id")
}

#[tokio::test]
async fn a_pending_retry_goes_where_the_edited_url_points() {
    // The retry is due only once the edit is done (it is made due below), however slow the
    // machine: a timed race between the edit and the retry would decide nothing.
    let w = retry_waiting(ms(600_000), "/a?c={conversion_id}", "approved").await;
    let b = Receiver::start().await;
    let id = w.url_id.to_string();
    let (code, out, err) = run(
        &w.env,
        &["urls", "edit", &id, "--url", &b.url("/b?c={conversion_id}")],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("edited {id}")), "{out}");
    w.pg.execute("UPDATE deliveries SET next_attempt_at = now()", &[])
        .await
        .expect("make the retry due");
    let got = b.wait_for(1).await;
    assert_eq!(got[0].target, "/b?c=c1");
    assert_eq!(w.rx.requests().len(), 1, "A got only the first attempt");
    wait_count(
        &w.pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    w.daemon.stop().await;
}

#[tokio::test]
async fn edit_validates_as_add_does_and_clears_with_no_options() {
    let env = Env::new().await;
    let id = add(
        &env,
        &[
            "--offer",
            "1",
            "--url",
            "http://x.test/p",
            "--goal",
            "sale",
            "--timeout",
            "1s",
        ],
    )
    .await;
    let id = id.to_string();
    let (code, _, err) = run(&env, &["urls", "edit", &id, "--url", "http://x.test/{clikid}"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("did you mean `{clickid}`"), "{err}");
    let (code, _, err) = run(&env, &["urls", "edit", &id, "--body", "{}"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("a body needs the POST method"), "{err}");
    let (code, _, err) = run(&env, &["urls", "edit", "999999", "--no-goal"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no cross-postback URL with id 999999"), "{err}");
    let (code, _, err) = run(
        &env,
        &[
            "urls",
            "edit",
            &id,
            "--no-goal",
            "--no-timeout",
            "--method",
            "post",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&env, &["urls", "list", "--format", "json"]).await;
    let rows: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(rows[0]["goal"], Value::Null, "{rows}");
    assert_eq!(rows[0]["timeout_ms"], Value::Null, "{rows}");
    assert_eq!(rows[0]["method"], "POST", "{rows}");
    assert_eq!(rows[0]["url"], "http://x.test/p", "unchanged: {rows}");
}

#[tokio::test]
async fn an_exact_duplicate_of_an_enabled_url_is_refused_unless_allowed() {
    let env = Env::new().await;
    let args = [
        "--offer",
        "1",
        "--url",
        "http://x.test/p?t={clickid}",
        "--statuses",
        "approved,pending",
    ];
    let first = add(&env, &args).await;
    let mut again = vec!["urls", "add"];
    again.extend_from_slice(&args);
    let (code, _, err) = run(&env, &again).await;
    assert_ne!(code, 0, "a duplicate was added");
    assert!(
        err.contains(&format!("URL {first} of offer 1 is the same")) && err.contains("--allow-duplicate"),
        "{err}"
    );
    // Another offer, or other statuses, is not a duplicate; --allow-duplicate adds one.
    add(&env, &["--offer", "2", "--url", "http://x.test/p?t={clickid}"]).await;
    add(
        &env,
        &[
            "--offer",
            "1",
            "--url",
            "http://x.test/p?t={clickid}",
            "--statuses",
            "approved",
        ],
    )
    .await;
    let mut allowed = again.clone();
    allowed.push("--allow-duplicate");
    add(&env, &allowed[2..]).await;
    // A disabled URL does not block its copy.
    let (code, _, _) = run(&env, &["urls", "disable", &first.to_string()]).await;
    assert_eq!(code, 0);
    let (code, _, _) = run(&env, &["urls", "remove", &(first + 3).to_string()]).await;
    assert_eq!(code, 0);
    add(&env, &args).await;
}

#[tokio::test]
async fn headers_arrive_header_safe_and_their_values_are_never_shown() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let id = add(
        &env,
        &[
            "--offer",
            "1",
            "--url",
            &rx.url("/h"),
            "--header",
            "Authorization: Bearer s3cr3t-{sub1}",
            "--header",
            "X-Note: {comment}",
        ],
    )
    .await;
    let daemon = env.start().await;
    env.publish(&[ev(
        "c1",
        "approved",
        0,
        json!({"sub1": "abc", "comment": "a\r\nX-Evil: 1"}),
    )])
    .await;
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer s3cr3t-abc"));
    assert_eq!(got[0].header("x-note"), Some("a%0D%0AX-Evil: 1"));
    assert_eq!(got[0].header("x-evil"), None, "no header injected");
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    daemon.stop().await;
    let delivery = count(&pg, "SELECT id FROM deliveries").await.to_string();
    for args in [
        vec!["deliveries", "show", &delivery],
        vec!["urls", "list"],
        vec!["urls", "list", "--format", "json"],
        vec!["attempts", "--wide"],
        vec!["deliveries", "list"],
    ] {
        let (code, out, err) = run(&env, &args).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            !out.contains("s3cr3t") && !err.contains("s3cr3t"),
            "{args:?} shows a header value: {out}"
        );
    }
    let (_, out, _) = run(&env, &["urls", "list"]).await;
    assert!(out.contains("Authorization: ***"), "{out}");
    let (_, out, _) = run(&env, &["urls", "list", "--show-secrets", "--format", "json"]).await;
    assert!(out.contains("Authorization: Bearer s3cr3t-{sub1}"), "{out}");
    // Refused at validation, the value never quoted.
    for (header, want) in [
        ("Host: s3cr3t", "header Host is set by cross-postback"),
        ("X-A: s3cr3t\u{1}", "control characters"),
        ("X-A: s3cr3t\r\nX-B: 1", "control characters"),
        ("Bad Name: s3cr3t", "not an HTTP token"),
        ("Authorization s3cr3t", "write it as `Name: value`"),
    ] {
        let (code, out, err) = run(&env, &["urls", "edit", &id.to_string(), "--header", header]).await;
        assert_ne!(code, 0, "{header:?} accepted: {out}");
        assert!(err.contains(want), "{header:?}: {err}");
        assert!(
            !err.contains("s3cr3t"),
            "{header:?}: the error shows the value: {err}"
        );
    }
}

#[tokio::test]
async fn a_url_timeout_above_the_global_one_is_refused_and_its_own_applies() {
    let env = Env::new().await; // delivery.timeout is 2s here
    let (code, _, err) = run(
        &env,
        &[
            "urls",
            "add",
            "--offer",
            "1",
            "--url",
            "http://x.test/",
            "--timeout",
            "3s",
        ],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("timeout 3000 ms is above the global delivery.timeout (2000 ms)"),
        "{err}"
    );
    let rx = Receiver::start().await;
    let id = add(
        &env,
        &["--offer", "1", "--url", &rx.url("/slow"), "--timeout", "200ms"],
    )
    .await;
    rx.script([Reply {
        delay: Duration::from_millis(1500),
        ..Reply::status(200)
    }]);
    let (code, out, _) = run(&env, &["urls", "test", &id.to_string()]).await;
    assert_ne!(code, 0, "a timeout is not 2xx: {out}");
    assert!(out.contains("no complete answer within 200 ms"), "{out}");
    let ms: u64 = out
        .split("no answer after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the time is printed");
    assert!(ms < 1000, "the URL's 200 ms, not the global 2 s: {ms} ms");
}

#[tokio::test]
async fn urls_test_sends_one_request_prints_it_masked_and_records_nothing() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let id = add(
        &env,
        &[
            "--offer",
            "7",
            "--url",
            &rx.url("/t?c={clickid}&token=s3cr3t"),
            "--method",
            "POST",
            "--body",
            r#"{"sum": "{sum}"}"#,
            "--header",
            "X-Key: k3y-{sub1}",
            "--goal",
            "Sale",
        ],
    )
    .await
    .to_string();
    rx.script([Reply::status(200)]);
    let (code, out, err) = run(&env, &["urls", "test", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("x-key"), Some("k3y-test-sub1"));
    assert!(
        got[0].target.starts_with("/t?c=test-click_id"),
        "{}",
        got[0].target
    );
    for want in [
        "POST http://",
        "token=***",
        "X-Key: ***",
        "HTTP 200 in",
        "body (first KiB):",
    ] {
        assert!(out.contains(want), "{out} should say {want}");
    }
    assert!(!out.contains("s3cr3t") && !out.contains("k3y"), "{out}");
    let (_, shown, _) = run(&env, &["urls", "test", &id, "--show-secrets"]).await;
    assert!(
        shown.contains("token=s3cr3t") && shown.contains("X-Key: k3y-test-sub1"),
        "{shown}"
    );
    // A 500 is printed and exits non-zero; an event file renders the request.
    rx.script([Reply::status(500)]);
    let dir = std::env::temp_dir().join(format!("xpb-urls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("event.json");
    std::fs::write(
        &file,
        ev("c9", "approved", 0, json!({"offer_id": 7, "sub1": "mine"})),
    )
    .expect("write");
    let (code, out, err) = run(
        &env,
        &["urls", "test", &id, "--event", file.to_str().expect("path")],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        out.contains("HTTP 500") && err.contains("HTTP 500, not 2xx"),
        "{out}{err}"
    );
    assert_eq!(rx.wait_for(3).await[2].header("x-key"), Some("k3y-mine"));
    std::fs::write(&file, r#"{"conversion_id": 5}"#).expect("write");
    let (code, _, err) = run(
        &env,
        &["urls", "test", &id, "--event", file.to_str().expect("path")],
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("the event file is not a valid event"), "{err}");
    assert_eq!(rx.requests().len(), 3, "an invalid event sends nothing");
    let pg = env.pg().await;
    assert_eq!(count(&pg, "SELECT count(*) FROM deliveries").await, 0);
    assert_eq!(count(&pg, "SELECT count(*) FROM attempts").await, 0);
}

#[tokio::test]
async fn urls_test_goes_through_the_network_guard() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let id = add(&env, &["--offer", "1", "--url", &rx.url("/guarded")]).await;
    let mut cmd = env.command();
    cmd.args(["urls", "test", &id.to_string()])
        .env("XPB_DELIVERY__ALLOW_PRIVATE_NETWORKS", "false");
    let (code, out, _) = output_within_deadline(cmd).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("error: blocked"), "{out}");
    assert!(rx.requests().is_empty(), "nothing reached the loopback receiver");
}

#[tokio::test]
async fn header_values_never_reach_the_daemon_log_even_at_trace() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    add(
        &env,
        &[
            "--offer",
            "1",
            "--url",
            &rx.url("/log"),
            "--header",
            "Authorization: Bearer s3cr3t",
        ],
    )
    .await;
    rx.script([Reply::status(500)]);
    let mut daemon = child::Daemon::spawn(&env, &[("XPB_LOG__LEVEL", "trace")]);
    daemon.wait_for_line(&["consuming"]).await;
    env.publish(&[ev("c1", "approved", 0, json!({}))]).await;
    daemon.wait_for_line(&["attempt failed"]).await;
    daemon.wait_for_line(&["delivered"]).await;
    assert_eq!(rx.requests()[0].header("authorization"), Some("Bearer s3cr3t"));
    let lines = daemon.kill().await;
    let leaked: Vec<&String> = lines.iter().filter(|l| l.contains("s3cr3t")).collect();
    assert!(leaked.is_empty(), "a header value in the log: {leaked:?}");
}

#[test]
fn urls_test_help_says_how_it_exits() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cross-postback"))
        .args(["urls", "test", "--help"])
        .output()
        .expect("binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Exits 0 when the answer is 2xx, 1 otherwise"),
        "{text}"
    );
}
