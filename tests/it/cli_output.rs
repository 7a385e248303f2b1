//! What the CLI prints is safe to print: `urls list` masks secrets unless asked, `urls add`
//! refuses what an event would refuse, CSV cells cannot run as formulas, and `receiver` escapes
//! control characters instead of handing them to the terminal.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn urls_list_masks_secrets_unless_asked_to_show_them() {
    let env = Env::new().await;
    let template = "http://partner:PASSW0RD@x.test/pb?Token=SECRET123;sig=S1G&c={clickid}";
    let (code, _, err) = env
        .cli_async(&["urls", "add", "--offer", "1", "--url", template])
        .await;
    assert_eq!(code, 0, "{err}");
    for format in ["table", "csv", "json"] {
        let (code, out, err) = env.cli_async(&["urls", "list", "--format", format]).await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("partner:***@x.test/pb?Token=***;sig=***&c={clickid}"),
            "{format}: {out}"
        );
        for secret in ["PASSW0RD", "SECRET123", "S1G"] {
            assert!(!out.contains(secret), "{format} shows {secret}: {out}");
        }
    }
    let (code, out, err) = env.cli_async(&["urls", "list", "--show-secrets"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(template), "{out}");
}

#[tokio::test]
async fn urls_add_refuses_control_characters_and_bad_offer_ids() {
    let env = Env::new().await;
    let long = "7".repeat(129);
    let url = "https://partner.test/pb?c={clickid}";
    let cases: [(&[&str], &str); 6] = [
        (
            &["--offer", "1", "--goal", "sale\r\nforged: line"],
            "goal contains control characters",
        ),
        (
            &["--offer", "1", "--goal", "\u{1b}[31mred"],
            "goal contains control characters",
        ),
        (&["--offer", "1", "--goal", ""], "goal must not be empty"),
        (&["--offer", ""], "offer id must not be empty"),
        (&["--offer", &long], "offer id is longer than 128 characters"),
        (&["--offer", "4\n2"], "offer id contains control characters"),
    ];
    for (args, want) in cases {
        let mut all = vec!["urls", "add", "--url", url];
        all.extend_from_slice(args);
        let (code, out, err) = env.cli_async(&all).await;
        assert_ne!(code, 0, "{args:?} accepted: {out}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let pg = env.pg().await;
    assert_eq!(count(&pg, "SELECT count(*) FROM cross_postback_urls").await, 0);
    let (code, _, err) = env
        .cli_async(&[
            "urls",
            "add",
            "--url",
            url,
            "--offer",
            &"7".repeat(128),
            "--goal",
            "Sale",
        ])
        .await;
    assert_eq!(code, 0, "the limits themselves are allowed: {err}");
}

#[tokio::test]
async fn csv_cells_cannot_run_as_formulas() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let (code, _, err) = env
        .cli_async(&[
            "urls",
            "add",
            "--offer=-1",
            "--url",
            &rx.url("/pb"),
            "--goal",
            "@SUM(A1)",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = env.cli_async(&["urls", "list", "--format", "csv"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(",'-1,") && out.contains(",'@SUM(A1),"), "{out}");

    let daemon = env.start().await;
    let extra = json!({
        "offer_id": "-1",
        "goal": "@SUM(A1)",
        "comment": "=HYPERLINK(\"http://evil.test\",\"x\")"
    });
    env.publish(&[ev("c1", "approved", 0, extra)]).await;
    let pg = env.pg().await;
    wait_count(&pg, "SELECT count(*) FROM attempts", 1).await;
    daemon.stop().await;
    let (code, out, err) = env
        .cli_async(&["attempts", "--format", "csv", "--columns", "offer,goal,notice"])
        .await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "offer,goal,notice",
            "(-1),'@SUM(A1),\"'=HYPERLINK(\"\"http://evil.test\"\",\"\"x\"\")\""
        ],
        "{out}"
    );
}

#[tokio::test]
async fn the_receiver_escapes_control_characters() {
    let env = Env::new().await;
    let mut cmd = env.command();
    cmd.args(["receiver", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("receiver starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = next_line(&mut lines).await;
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    let body = "hi\u{1b}]0;pwned\u{7}\u{1b}[2J\r\nforged line\u{9b}31m";
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/pb?a=1"))
        // UTF-8 of U+009B, the one-byte CSI of some terminals (a header may carry such bytes).
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(b"k\xc2\x9b1").expect("obs-text is allowed"),
        )
        .body(body)
        .send()
        .await
        .expect("the receiver answers");
    assert_eq!(answer.status(), 200);
    let request = next_line(&mut lines).await;
    let printed = next_line(&mut lines).await;
    let _ = child.kill();
    let _ = child.wait();
    for line in [&request, &printed] {
        assert!(
            !line.chars().any(char::is_control),
            "control characters printed: {line:?}"
        );
    }
    assert!(
        request.contains("POST /pb?a=1") && request.contains("k\\u{9b}1"),
        "{request}"
    );
    assert_eq!(
        printed.trim(),
        "hi\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\r\\nforged line\\u{9b}31m"
    );
}

async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(DEADLINE, lines.recv())
        .await
        .expect("a line within the deadline")
        .expect("the receiver is running")
}
