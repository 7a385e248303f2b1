use super::*;
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_err(file: Option<&str>, pairs: &[(&str, &str)]) -> String {
    let dir = std::env::temp_dir().join(format!("xpb-config-{}", uuid::Uuid::new_v4()));
    let path = file.map(|text| {
        std::fs::write(&dir, text).expect("write temp config");
        dir.clone()
    });
    let result = Config::load(path.as_deref(), env(pairs));
    if path.is_some() {
        let _ = std::fs::remove_file(&dir);
    }
    match result {
        Ok(c) => panic!("should fail, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn default_toml_documents_the_compiled_in_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let text = std::fs::read_to_string(&path).expect("config/default.toml exists");
    let from_file: Config = toml::from_str(&text).expect("config/default.toml parses as a whole config");
    assert_eq!(from_file, Config::default());
    Config::default().validate().expect("defaults are valid");
}

#[test]
fn local_toml_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/local.toml");
    let c = Config::load(Some(&path), env(&[])).expect("config/local.toml loads");
    assert!(c.delivery.allow_private_networks);
}

#[test]
fn layers_apply_highest_first() {
    let dir = std::env::temp_dir().join(format!("xpb-config-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &dir,
        "[amqp]\nprefetch = 10\nqueue = \"from-file\"\n[database]\nurl = \"postgres://file@h/db\"\n",
    )
    .expect("write");
    let c = Config::load(
        Some(&dir),
        env(&[
            ("DATABASE_URL", "postgres://shortcut@h/db"),
            ("XPB_AMQP__PREFETCH", "20"),
            ("XPB_DELIVERY__RETRY_SCHEDULE", "10ms, 1s"),
            ("XPB_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true"),
            ("XPB_CONFIG", "ignored-here"),
            ("XPB_SKIP_SERVICES", "1"),
            ("UNRELATED", "x"),
        ]),
    )
    .expect("loads");
    let _ = std::fs::remove_file(&dir);
    assert_eq!(c.amqp.prefetch, 20, "env over file");
    assert_eq!(c.amqp.queue, "from-file", "file over defaults");
    assert_eq!(
        c.database.url, "postgres://shortcut@h/db",
        "DATABASE_URL over file"
    );
    assert_eq!(c.retry_schedule().max_attempts(), 3);
    assert!(c.delivery.allow_private_networks);

    let c = Config::load(
        None,
        env(&[
            ("DATABASE_URL", "postgres://a@h/db"),
            ("XPB_DATABASE__URL", "postgres://b@h/db"),
        ]),
    )
    .expect("loads");
    assert_eq!(c.database.url, "postgres://b@h/db", "XPB_ over DATABASE_URL");
}

#[test]
fn bad_values_name_the_key_and_what_is_allowed() {
    type Case<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let table: Vec<Case> = vec![
        (
            None,
            vec![("XPB_AMQP__QUEUE_TYPE", "stream")],
            &["amqp.queue_type", "quorum", "classic"],
        ),
        (
            None,
            vec![("XPB_DELIVERY__TIMEOUT", "10x")],
            &["delivery.timeout", "ms, s, m, h or d"],
        ),
        (
            None,
            vec![("XPB_AMQP__PREFETCH", "lots")],
            &["amqp.prefetch", "whole number"],
        ),
        (None, vec![("XPB_AMQP__PREFETCH", "70000")], &["amqp.prefetch"]),
        (
            None,
            vec![("XPB_AMQP__PREFETCH", "0")],
            &["amqp.prefetch", "outside 1..=65535"],
        ),
        // Sizes that would exhaust memory, or overflow `lanes + 2`, are refused.
        (
            None,
            vec![("XPB_AMQP__LANES", "1000")],
            &["amqp.lanes", "outside 1..=64"],
        ),
        (
            None,
            vec![("XPB_AMQP__BATCH_SIZE", "100000000")],
            &["amqp.batch_size", "outside 1..=10000"],
        ),
        (
            None,
            vec![("XPB_DELIVERY__CONCURRENCY", "1000000000")],
            &["delivery.concurrency", "outside 1..=65536"],
        ),
        (
            None,
            vec![("XPB_AMQP__MODE", "sharded")],
            &["amqp.mode", "shared", "ordered"],
        ),
        (
            None,
            vec![("XPB_AMQP__SHARDS", "0")],
            &["amqp.shards", "outside 1..=1024"],
        ),
        (
            None,
            vec![("XPB_RETENTION__ATTEMPTS", "2h")],
            &["retention.attempts", "allowed from 1d"],
        ),
        (
            None,
            vec![("XPB_RETENTION__DELIVERIES", "30d")],
            &["retention.deliveries", "shorter than `retention.attempts` (90d)"],
        ),
        (
            None,
            vec![("XPB_RETENTION__ATTEMPTS", "0")],
            &["retention.deliveries", "0, forever"],
        ),
        (
            None,
            vec![("XPB_RETENTION__INTERVAL", "1s")],
            &["retention.interval", "allowed from 1m to 1d"],
        ),
        (
            None,
            vec![("XPB_WEB__PUBLIC_URL", "ftp://stats.example")],
            &["web.public_url", "http:// or https://"],
        ),
        (
            None,
            vec![("XPB_WEB__LISTEN", "8080")],
            &["web.listen", "is not an address"],
        ),
        (
            None,
            vec![("XPB_WEB__MAX_LINK_LIFETIME", "0")],
            &["web.max_link_lifetime", "allowed from 1s"],
        ),
        (
            None,
            vec![("XPB_ALERTS__WEBHOOK_URL", "hooks.slack.com/x")],
            &["alerts.webhook_url", "not a URL"],
        ),
        (
            None,
            vec![("XPB_ALERTS__FAILURE_RATIO", "1.5")],
            &["alerts.failure_ratio", "from 0 to 1"],
        ),
        (
            None,
            vec![("XPB_ALERTS__FAILURE_RATIO", "half")],
            &["alerts.failure_ratio", "must be a number"],
        ),
        (
            None,
            vec![("XPB_DELIVERY__DISABLE_AFTER", "5s")],
            &["delivery.disable_after", "allowed from 1m"],
        ),
        (
            None,
            vec![("XPB_DELIVERY__ALLOW_PRIVATE_NETWORKS", "yes")],
            &["delivery.allow_private_networks", "true or false"],
        ),
        (
            None,
            vec![("XPB_DELIVERY__NOPE", "1")],
            &["XPB_DELIVERY__NOPE", "unknown key `delivery.nope`"],
        ),
        (
            None,
            vec![("XPB_LOG__FORMAT", "xml")],
            &["log.format", "pretty", "json"],
        ),
        (None, vec![("XPB_HTTP__LISTEN", "localhost")], &["http.listen"]),
        (
            None,
            vec![("XPB_DELIVERY__ALLOW_CIDRS", "10.0.0.0/33")],
            &["delivery.allow_cidrs"],
        ),
        (None, vec![("XPB_DELIVERY__LEASE", "5s")], &["delivery.lease"]),
        (None, vec![("AMQP_URL", "http://x")], &["amqp.url"]),
        (
            Some("[amqp]\nprefetsh = 1\n"),
            vec![],
            &["unknown key `amqp.prefetsh`"],
        ),
        (Some("[nope]\na = 1\n"), vec![], &["unknown section `nope`"]),
        (Some("[amqp]\nprefetch = \"many\"\n"), vec![], &["amqp.prefetch"]),
        (
            Some("[delivery]\nretry_schedule = [\"5s\", \"soon\"]\n"),
            vec![],
            &["delivery.retry_schedule", "soon"],
        ),
        (Some("not toml ["), vec![], &["not valid TOML"]),
        (
            None,
            vec![("XPB_DELIVERY__RETRY_SCHEDULE", "5s,100000000d")],
            &[
                "`delivery.retry_schedule`",
                "from XPB_DELIVERY__RETRY_SCHEDULE",
                "100000000d is out of range",
                "30d",
            ],
        ),
        (
            Some("[delivery]\nlease = \"1000000000d\"\n"),
            vec![],
            &["`delivery.lease`", "(from ", "out of range", "1d"],
        ),
        (
            None,
            vec![("XPB_DELIVERY__TIMEOUT", "2h")],
            &["`delivery.timeout` (from XPB_DELIVERY__TIMEOUT)", "1h"],
        ),
        (
            None,
            vec![("XPB_RUN__SHUTDOWN_TIMEOUT", "99999999999999999999d")],
            &["run.shutdown_timeout", "ms, s, m, h or d"],
        ),
        (
            None,
            vec![("XPB_HTTP__LISTEN", "127.0.0.1:99999")],
            &["`http.listen` (from XPB_HTTP__LISTEN)", "127.0.0.1:9090"],
        ),
        (
            Some("[delivery]\nallow_cidrs = [\"10.0.0.0/8\", \"nope\"]\n"),
            vec![],
            &["`delivery.allow_cidrs`", "(from ", "\"nope\" is not a CIDR"],
        ),
        (
            None,
            vec![("XPB_DELIVERY__POLL_INTERVAL", "0s")],
            &["delivery.poll_interval", "from 1ms to 1h"],
        ),
    ];
    for (file, vars, wants) in table {
        let msg = load_err(file, &vars);
        assert!(!msg.contains('\n'), "one line: {msg}");
        for want in wants {
            assert!(
                msg.contains(want),
                "{file:?} {vars:?}: {msg:?} should mention {want:?}"
            );
        }
    }
}

#[test]
fn durations() {
    for (text, ms) in [
        ("250ms", 250),
        ("5s", 5_000),
        ("2m", 120_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
    ] {
        let d: Dur = text.parse().expect("valid");
        assert_eq!(d.0.as_millis(), ms, "{text}");
        assert_eq!(d.to_string(), text);
    }
    for bad in ["", "5", "s", "1.5s", "-1s", "5 sec"] {
        assert!(bad.parse::<Dur>().is_err(), "{bad:?}");
    }
}

#[test]
fn typed_values_once_loaded() {
    let c = Config::load(
        None,
        env(&[
            ("XPB_HTTP__LISTEN", "[::1]:9191"),
            ("XPB_DELIVERY__ALLOW_CIDRS", "10.1.0.0/16, fd00::/8"),
        ]),
    )
    .expect("loads");
    assert_eq!(c.http_listen(), "[::1]:9191".parse().expect("addr"));
    let cidrs: Vec<String> = c.allow_cidrs().iter().map(ToString::to_string).collect();
    assert_eq!(cidrs, ["10.1.0.0/16", "fd00::/8"]);
    // Written back as text, as the file has it.
    let tree = toml::Table::try_from(&c).expect("serialises");
    assert_eq!(tree["http"]["listen"].as_str(), Some("[::1]:9191"));
}

#[test]
fn the_longest_allowed_delays_cannot_overflow_a_time() {
    let c = Config::load(
        None,
        env(&[
            ("XPB_DELIVERY__RETRY_SCHEDULE", "30d"),
            ("XPB_DELIVERY__LEASE", "1d"),
        ]),
    )
    .expect("the maxima are allowed");
    let schedule = c.retry_schedule();
    // The largest jitter, and a Retry-After clamped to the last step.
    let delay = schedule
        .next_delay(1, 1.2, Some(Duration::from_secs(u32::MAX as u64)))
        .expect("a second attempt");
    for d in [delay, c.delivery.lease.0] {
        assert!(std::time::Instant::now().checked_add(d).is_some());
        let d = chrono::Duration::from_std(d).expect("fits chrono");
        assert!(chrono::Utc::now().checked_add_signed(d).is_some());
    }
    // A configuration built in code is clamped, not trusted.
    let mut built = Config::default();
    built.delivery.retry_schedule = vec![Dur(Duration::MAX)];
    let delay = built.retry_schedule().next_delay(1, 1.2, None).expect("a delay");
    assert!(delay <= MAX_RETRY_STEP.mul_f64(1.2), "{delay:?}");
}

#[test]
fn a_log_level_must_be_a_level_or_directives() {
    for bad in ["verbose", "inf", "info,verbose", "", "cross_postback=loud"] {
        let e = load_err(None, &[("XPB_LOG__LEVEL", bad)]);
        assert!(
            e.contains("`log.level` (from XPB_LOG__LEVEL)") && e.contains("is not a level or filter"),
            "{bad:?}: {e}"
        );
    }
    let e = load_err(Some("[log]\nlevel = \"verbose\"\n"), &[]);
    assert!(
        e.contains("`log.level` (from ") && e.contains("xpb-config-"),
        "{e}"
    );
    for good in [
        "info",
        "WARN",
        "off",
        "cross_postback=debug,info",
        "cross_postback::dispatch=trace",
    ] {
        let cfg = Config::load(None, env(&[("XPB_LOG__LEVEL", good)]));
        assert!(cfg.is_ok(), "{good}: {cfg:?}");
    }
}

#[test]
fn stray_xpb_variables_are_named_once_with_the_key_they_probably_mean() {
    let loaded = Config::load_with_origins(
        None,
        env(&[
            ("XPB_DELIVERY_TIMEOUT", "5s"),
            ("XPB_LOGLEVEL", "debug"),
            ("XPB_CONFIG", "x.toml"),
            ("XPB_TEST_AMQP_URL", "amqp://x"),
            ("XPB_CHAOS_SEED", "1"),
            ("XPB_SKIP_SERVICES", "1"),
        ]),
    )
    .expect("loads");
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains("XPB_DELIVERY_TIMEOUT")
            && loaded.warnings[0].contains("did you mean XPB_DELIVERY__TIMEOUT?"),
        "{:?}",
        loaded.warnings
    );
    assert!(
        loaded.warnings[1].contains("XPB_LOGLEVEL"),
        "{:?}",
        loaded.warnings
    );
    assert_eq!(loaded.config.delivery.timeout, Config::default().delivery.timeout);
}

#[test]
fn origins_name_the_variable_or_the_file() {
    let loaded = Config::load_with_origins(
        None,
        env(&[("XPB_AMQP__PREFETCH", "10"), ("DATABASE_URL", "postgres://h/db")]),
    )
    .expect("loads");
    assert_eq!(
        loaded.origins.get("amqp.prefetch").map(String::as_str),
        Some("XPB_AMQP__PREFETCH")
    );
    assert_eq!(
        loaded.origins.get("database.url").map(String::as_str),
        Some("DATABASE_URL")
    );
    assert!(!loaded.origins.contains_key("amqp.queue"));
}

#[test]
fn web_public_url_defaults_to_the_listen_address_and_alerts_are_off_by_default() {
    let cfg = Config::load(None, env(&[])).unwrap();
    assert_eq!(cfg.web_public_url(), "http://127.0.0.1:8080");
    assert_eq!(cfg.alerts_webhook_url(), None);
    let cfg = Config::load(
        None,
        env(&[
            ("XPB_WEB__PUBLIC_URL", "https://stats.example.com/"),
            (
                "XPB_ALERTS__WEBHOOK_URL",
                "https://hooks.example.com/services/T1/B2/secret",
            ),
            ("XPB_ALERTS__FAILURE_RATIO", "0.25"),
            ("XPB_RETENTION__ATTEMPTS", "0"),
            ("XPB_RETENTION__DELIVERIES", "0"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.web_public_url(), "https://stats.example.com");
    assert_eq!(
        cfg.alerts_webhook_url(),
        Some("https://hooks.example.com/services/T1/B2/secret")
    );
    assert_eq!(cfg.alerts.failure_ratio, 0.25);
    assert!(cfg.retention.attempts.0.is_zero());
}
