//! The day-one operator's CLI with the real binary: enumerated options refused with what is
//! allowed, configuration words checked and stray variables named, `migrate` in words, typed
//! JSON, `attempts` that fits a terminal, `deliveries`, `config show`, completions and the man
//! page.

use serde_json::{Value, json};

use crate::harness::*;

/// Runs the binary; asserts it failed with one line that holds every one of `want`.
fn refused(env: &Env, args: &[&str], want: &[&str]) {
    let (code, out, err) = env.cli(args);
    assert_ne!(code, 0, "{args:?} accepted: {out}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
    for w in want {
        assert!(err.contains(w), "{args:?}: {err} should say {w}");
    }
}

#[tokio::test]
async fn every_enumerated_option_refuses_other_words_naming_what_is_allowed() {
    let env = Env::new().await;
    refused(
        &env,
        &["attempts", "--status", "foo"],
        &["--status", "foo", "approved, pending, declined"],
    );
    refused(
        &env,
        &["attempts", "--http-class", "2xx,6xx"],
        &["--http-class", "6xx", "2xx", "4xx", "5xx", "none"],
    );
    refused(
        &env,
        &["deliveries", "list", "--state", "sent"],
        &["--state", "pending", "delivered", "superseded"],
    );
    refused(
        &env,
        &[
            "urls",
            "add",
            "--offer",
            "1",
            "--url",
            "http://x.test/",
            "--method",
            "PUT",
        ],
        &["--method", "GET", "POST"],
    );
    refused(
        &env,
        &["urls", "list", "--format", "xml"],
        &["--format", "table", "csv", "json"],
    );
    refused(&env, &["completions", "tcsh"], &["bash", "zsh", "fish"]);
    refused(
        &env,
        &[
            "urls",
            "add",
            "--offer",
            "1",
            "--url",
            "http://x.test/",
            "--statuses",
            "foo",
        ],
        &["statuses", "approved, declined, pending"],
    );
    let (code, _, err) = env.cli(&["attempts", "--status", "APPROVED", "--http-class", "2xx,none"]);
    assert_eq!(code, 0, "the real words are taken: {err}");
}

#[tokio::test]
async fn a_log_level_that_is_not_a_level_stops_start_up_and_stray_variables_are_named() {
    let env = Env::new().await;
    for (value, ok) in [
        ("verbose", false),
        ("inf", false),
        ("cross_postback=debug,info", true),
        ("DEBUG", true),
    ] {
        let mut cmd = env.command();
        cmd.args(["config", "show"]).env("XPB_LOG__LEVEL", value);
        let (code, _, err) = output_within_deadline(cmd).await;
        if ok {
            assert_eq!(code, 0, "{value}: {err}");
            continue;
        }
        assert_eq!(code, 1, "{value} accepted");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("`log.level` (from XPB_LOG__LEVEL)") && err.contains(value),
            "{err}"
        );
    }
    let mut cmd = env.command();
    cmd.args(["config", "show"])
        .env("XPB_DELIVERY_TIMEOUT", "5s")
        .env("XPB_NOPE", "1");
    let (code, _, err) = output_within_deadline(cmd).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("XPB_DELIVERY_TIMEOUT") && err.contains("did you mean XPB_DELIVERY__TIMEOUT"),
        "{err}"
    );
    assert!(err.contains("XPB_NOPE"), "{err}");
    assert_eq!(err.matches("XPB_DELIVERY_TIMEOUT").count(), 1, "once: {err}");
}

#[tokio::test]
async fn migrate_says_what_it_did_without_a_server_notice() {
    let env = Env::empty().await;
    let (code, out, err) = env.cli_async(&["migrate"]).await;
    assert_eq!(code, 0, "{err}");
    let last = cross_postback::store::migration_versions();
    let version = last.last().copied().unwrap_or_default();
    let list: Vec<String> = last.iter().map(ToString::to_string).collect();
    assert_eq!(
        out.trim(),
        format!(
            "applied migrations {}; schema at version {version}",
            list.join(", ")
        )
    );
    let (code, out, err) = env.cli_async(&["migrate"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("schema up to date (version {version})"));
    assert!(
        !err.contains("NOTICE") && !err.contains("already exists"),
        "{err}"
    );
}

#[tokio::test]
async fn json_output_has_real_types_in_column_order_and_tables_say_utc() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    let (code, _, err) = env
        .cli_async(&[
            "urls",
            "add",
            "--offer",
            "1",
            "--url",
            &rx.url("/pb?c={clickid}"),
            "--statuses",
            "approved,pending",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = env.cli_async(&["urls", "list", "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let urls: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(urls[0]["enabled"], json!(true), "{out}");
    assert_eq!(urls[0]["statuses"], json!(["approved", "pending"]), "{out}");
    assert!(urls[0]["id"].is_i64(), "{out}");

    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, json!({"payout": "1.50"}))])
        .await;
    wait_count(&env.pg().await, "SELECT count(*) FROM attempts", 1).await;
    daemon.stop().await;
    let columns = "http_code,date,conversion_id,payouts,delivery_state";
    let (code, out, err) = env
        .cli_async(&["attempts", "--format", "json", "--columns", columns])
        .await;
    assert_eq!(code, 0, "{err}");
    let keys: Vec<usize> = columns
        .split(',')
        .map(|c| out.find(&format!("\"{c}\"")).unwrap_or(usize::MAX))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "keys in --columns order: {out}"
    );
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[0]["http_code"], json!(200), "{out}");
    assert_eq!(v[0]["payouts"], json!(1.5), "{out}");
    let date = v[0]["date"].as_str().unwrap_or_default();
    assert!(
        date.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(date).is_ok(),
        "{date}"
    );
    for format in ["table", "csv"] {
        let (code, out, err) = env
            .cli_async(&["attempts", "--format", format, "--columns", "date"])
            .await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.lines().nth(1).is_some_and(|l| l.ends_with(" UTC")),
            "{format}: {out}"
        );
    }
}

#[tokio::test]
async fn attempts_fit_120_characters_unless_wide_and_filter_by_http_class() {
    let env = Env::new().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(503)]);
    let long = format!("/pb/{}?c={{clickid}}", "x".repeat(150));
    env.add_url("1", &rx.url(&long)).await;
    let daemon = env.start().await;
    env.publish(&[ev(&"c".repeat(60), "approved", 0, json!({}))])
        .await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    daemon.stop().await;
    let (code, out, err) = env.cli_async(&["attempts"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    for line in out.lines() {
        assert!(
            line.chars().count() <= 120,
            "{} wide: {line}",
            line.chars().count()
        );
    }
    let (code, wide, err) = env.cli_async(&["attempts", "--wide"]).await;
    assert_eq!(code, 0, "{err}");
    for column in [
        "DELIVERY_ID",
        "DELIVERY_STATE",
        "NEXT_ATTEMPT_AT",
        "RESPONSE_EXCERPT",
        "METHOD",
        "ERROR_CODE",
    ] {
        assert!(wide.contains(column), "{column}: {wide}");
    }
    assert!(wide.contains(&"x".repeat(150)), "uncut: {wide}");
    let classes = |class: &'static str| {
        let env = &env;
        async move {
            let (code, out, err) = env
                .cli_async(&[
                    "attempts",
                    "--http-class",
                    class,
                    "--format",
                    "json",
                    "--columns",
                    "http_code",
                ])
                .await;
            assert_eq!(code, 0, "{err}");
            serde_json::from_str::<Value>(&out).expect("JSON")
        }
    };
    assert_eq!(classes("5xx").await, json!([{"http_code": 503}]));
    assert_eq!(classes("2xx,4xx").await, json!([{"http_code": 200}]));
    assert_eq!(classes("none").await, json!([]));
    let (code, help, _) = env.cli_async(&["attempts", "--help"]).await;
    assert_eq!(code, 0);
    for name in cross_postback::store::stats::names() {
        assert!(help.contains(name), "{name} not in the help: {help}");
    }
}

#[tokio::test]
async fn deliveries_show_the_state_the_superseder_and_every_attempt_masked() {
    let mut env = Env::new().await;
    env.cfg.delivery.retry_schedule = vec![ms(60_000)];
    let rx = Receiver::start().await;
    rx.script([Reply::status(500)]);
    env.add_url("1", &rx.url("/pb?token=SECRET9&s={status_name}"))
        .await;
    let daemon = env.start().await;
    let pg = env.pg().await;
    env.publish(&[ev("c1", "pending", 0, json!({}))]).await;
    wait_count(&pg, "SELECT count(*) FROM attempts", 1).await;
    env.publish(&[ev("c1", "approved", 1, json!({}))]).await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        1,
    )
    .await;
    daemon.stop().await;

    let (code, out, err) = env
        .cli_async(&["deliveries", "list", "--conversion", "c1", "--format", "json"])
        .await;
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).expect("JSON");
    let (newer, older) = (&list[0], &list[1]);
    assert_eq!(newer["state"], json!("delivered"), "{out}");
    assert_eq!(older["state"], json!("superseded"), "{out}");
    assert_eq!(older["attempts"], json!(1), "{out}");
    let older_id = older["id"].as_i64().unwrap_or_default().to_string();
    let (code, out, err) = env
        .cli_async(&["deliveries", "list", "--state", "superseded", "--format", "json"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .expect("JSON")
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let (code, out, err) = env
        .cli_async(&["deliveries", "show", &older_id, "--format", "json"])
        .await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(shown["superseded_by"], newer["id"], "{out}");
    assert_eq!(shown["attempts"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(shown["attempts"][0]["http_code"], json!(500), "{out}");
    assert!(shown["attempts"][0].get("response_excerpt").is_some(), "{out}");
    let (code, text, err) = env.cli_async(&["deliveries", "show", &older_id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("superseded_by") && text.contains("HTTP_CODE"),
        "{text}"
    );
    for printed in [&out, &text] {
        assert!(!printed.contains("SECRET9"), "{printed}");
    }
    let (code, _, err) = env.cli_async(&["deliveries", "show", "999999"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no delivery with id 999999"), "{err}");
}

#[tokio::test]
async fn config_show_names_each_source_and_masks_secrets() {
    let env = Env::new().await;
    let mut cmd = env.command();
    cmd.args(["config", "show", "--format", "json"])
        .env("DATABASE_URL", "postgres://app:S3CRET@db.test:5432/xpb")
        .env("XPB_DELIVERY__TIMEOUT", "1500ms");
    let (code, out, err) = output_within_deadline(cmd).await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("S3CRET"), "{out}");
    let rows: Value = serde_json::from_str(&out).expect("JSON");
    let row = |key: &str| {
        rows.as_array()
            .and_then(|r| r.iter().find(|r| r["key"] == json!(key)))
            .cloned()
            .unwrap_or_else(|| panic!("{key} missing: {out}"))
    };
    assert_eq!(
        row("delivery.timeout"),
        json!({"key": "delivery.timeout", "value": "1500ms", "source": "XPB_DELIVERY__TIMEOUT"})
    );
    assert_eq!(row("database.url")["source"], json!("DATABASE_URL"));
    assert_eq!(
        row("database.url")["value"],
        json!("postgres://app:***@db.test:5432/xpb")
    );
    assert_eq!(
        row("amqp.prefetch"),
        json!({"key": "amqp.prefetch", "value": 256, "source": "default"})
    );
}

#[tokio::test]
async fn completions_man_page_and_version_come_from_the_definitions() {
    let env = Env::new().await;
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = env.cli_async(&["completions", shell]).await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("deliveries") && out.contains("http-class"),
            "{shell}: {out}"
        );
    }
    let (code, out, err) = env.cli_async(&["manpage"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(".ie") || out.contains(".TH cross-postback"),
        "{out}"
    );
    assert!(out.contains("deliveries"), "{out}");
    let (code, out, _) = env.cli_async(&["--version"]).await;
    assert_eq!(code, 0);
    // The commit the build script found (the binary and this test are built together; HEAD
    // may have moved since): it is printed, and git knows it as a commit.
    let want = env!("XPB_COMMIT");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    if git(&["rev-parse", "--git-dir"]).is_some() {
        assert!(
            git(&["rev-parse", "--verify", "--quiet", &format!("{want}^{{commit}}")]).is_some(),
            "{want} is not a commit"
        );
    } else {
        assert_eq!(want, "unknown");
    }
    assert!(out.contains(&format!("({want})")), "{out} should name {want}");
}
