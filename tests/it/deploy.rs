//! The deployment files under deploy/: each passes its own linter (systemd-analyze verify,
//! kubernetes-validate --strict, promtool), each linter is shown to catch a broken copy, and every
//! xpb_ metric the Grafana dashboard and the Prometheus rules name is one the running daemon
//! exports on /metrics. A missing linter fails the test with the command that installs it
//! (scripts/test installs them all).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A scratch directory of the test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("xpb-deploy-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fails the test, naming the install command, when `program` is not on PATH.
fn require(program: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: run scripts/test (it installs it), or {install}"
    );
}

/// Runs a linter to its end within the deadline: (succeeded, stdout and stderr together).
async fn run(program: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let (code, out, err) = output_within_deadline(cmd).await;
    (code == 0, format!("{out}{err}"))
}

fn shutdown_timeout_secs() -> u64 {
    cross_postback::config::Config::default()
        .run
        .shutdown_timeout
        .0
        .as_secs()
}

// ------------------------------------------------------------------------------------- systemd

/// The unit with ExecStart on the built binary and EnvironmentFile on a copy of the example:
/// verify checks that both exist.
fn unit_for_verify(unit: &str, binary: &Path, env_file: &Path) -> String {
    unit.lines()
        .map(|line| match line.split_once('=') {
            Some(("ExecStart", cmd)) => {
                let args = cmd.split_once(' ').map_or("", |(_, args)| args);
                format!("ExecStart={} {args}", binary.display())
            }
            Some(("EnvironmentFile", _)) => format!("EnvironmentFile={}", env_file.display()),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `systemd-analyze verify` on a unit written into `dir`; returns the lines about it.
/// verify exits 0 on a misspelt key or a value it cannot parse and only prints a line naming
/// the unit's file, so any such line is an error. Lines about other units (the targets it pulls
/// in, on a host whose own units are odd) are not this unit's fault.
async fn verify_unit(dir: &Scratch, name: &str, text: &str) -> Vec<String> {
    let path = dir.write(name, text);
    let path = path.to_str().expect("utf-8 temp path");
    // --man=no: the man page is installed separately (cross-postback manpage).
    let (ok, out) = run("systemd-analyze", &["verify", "--man=no", path]).await;
    let mut errors: Vec<String> = out
        .lines()
        .filter(|l| l.contains(name))
        .map(str::to_owned)
        .collect();
    if !ok && errors.is_empty() {
        errors.push(format!("systemd-analyze verify failed: {out}"));
    }
    errors
}

#[tokio::test]
async fn systemd_unit_passes_systemd_analyze_verify() {
    require("systemd-analyze", "apt-get install systemd");
    let unit = read("deploy/systemd/cross-postback.service");
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_else(|| panic!("{key}= missing from the unit"))
            .to_owned()
    };
    let stop: u64 = setting("TimeoutStopSec")
        .trim_end_matches('s')
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > shutdown_timeout_secs(),
        "TimeoutStopSec={stop}s is not above run.shutdown_timeout"
    );
    assert_eq!(setting("Restart"), "on-failure");
    assert_eq!(setting("KillSignal"), "SIGTERM");
    assert_eq!(setting("NoNewPrivileges"), "yes");
    assert_eq!(setting("ProtectSystem"), "strict");
    assert_eq!(setting("ExecStart"), "/usr/local/bin/cross-postback run");

    let dir = Scratch::new();
    let env_file = dir.write(
        "cross-postback.env",
        &read("deploy/systemd/cross-postback.env.example"),
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_cross-postback"));
    let good = unit_for_verify(&unit, binary, &env_file);
    let errors = verify_unit(&dir, "cross-postback.service", &good).await;
    assert!(
        errors.is_empty(),
        "systemd-analyze verify:\n{}",
        errors.join("\n")
    );

    // The check bites: a misspelt key and a bad value are reported.
    let bad = good
        .replace("NoNewPrivileges=yes", "NoNewPriviliges=yes")
        .replace("Restart=on-failure", "Restart=sometimes");
    let errors = verify_unit(&dir, "broken.service", &bad).await;
    assert_eq!(errors.len(), 2, "both faults reported: {errors:?}");
}

// ---------------------------------------------------------------------------------- Kubernetes

const MANIFESTS: [&str; 5] = [
    "configmap.yaml",
    "deployment.yaml",
    "pdb.yaml",
    "secret.yaml",
    "service.yaml",
];

async fn kubernetes_validate(files: &[PathBuf]) -> (bool, String) {
    let mut args = vec!["-m", "kubernetes_validate", "--strict", "--quiet"];
    args.extend(files.iter().map(|f| f.to_str().expect("utf-8 path")));
    run("python3", &args).await
}

/// The block under `  config.toml: |` in the ConfigMap, unindented.
fn configmap_file(yaml: &str) -> String {
    yaml.lines()
        .skip_while(|l| l.trim() != "config.toml: |")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn kubernetes_manifests_pass_kubernetes_validate_strict() {
    require("python3", "apt-get install python3");
    let (_, probe) = run("python3", &["-c", "import kubernetes_validate"]).await;
    assert!(
        probe.is_empty(),
        "kubernetes-validate is not installed: run scripts/test (it installs it), or \
         python3 -m pip install 'kubernetes-validate==1.37.0'\n{probe}"
    );
    let dir = repo().join("deploy/kubernetes");
    let files: Vec<PathBuf> = MANIFESTS.iter().map(|f| dir.join(f)).collect();
    let (ok, out) = kubernetes_validate(&files).await;
    assert!(ok, "kubernetes-validate --strict:\n{out}");

    // The check bites: an unknown field is refused.
    let deployment = read("deploy/kubernetes/deployment.yaml");
    assert!(deployment.contains("terminationGracePeriodSeconds: "));
    let scratch = Scratch::new();
    let broken = scratch.write(
        "deployment.yaml",
        &deployment.replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:"),
    );
    let (ok, out) = kubernetes_validate(&[broken]).await;
    assert!(
        !ok && out.contains("terminationGracePeriodSecond"),
        "not refused:\n{out}"
    );

    let grace: u64 = deployment
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds: "))
        .and_then(|v| v.parse().ok())
        .expect("terminationGracePeriodSeconds is a number");
    assert!(
        grace > shutdown_timeout_secs(),
        "grace {grace}s is not above run.shutdown_timeout"
    );

    // The ConfigMap's file is one the daemon accepts (an unknown key would stop it).
    let config = configmap_file(&read("deploy/kubernetes/configmap.yaml"));
    let path = scratch.write("config.toml", &config);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cross-postback"));
    cmd.env_clear()
        .arg("--config")
        .arg(&path)
        .args(["config", "show", "--format", "json"]);
    let (code, out, err) = output_within_deadline(cmd).await;
    assert_eq!(code, 0, "config show refused the ConfigMap's config.toml:\n{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("config show --format json");
    for (key, value) in [
        ("amqp.mode", "ordered"),
        ("http.listen", "0.0.0.0:9090"),
        ("web.listen", "0.0.0.0:8080"),
        ("log.format", "json"),
    ] {
        let row = rows.iter().find(|r| r["key"] == key);
        assert!(
            row.is_some_and(|r| r["value"] == value && r["source"] != "default"),
            "{key} = {value} from the file, in:\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------------- Prometheus

/// The dashboard's PromQL, with Grafana's variables filled in, as recording rules, so that
/// promtool parses every expression.
fn dashboard_as_rules(dashboard: &serde_json::Value) -> String {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs(dashboard).iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$job", "cross-postback")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:expr{i}\n        expr: {}\n",
            serde_json::json!(expr)
        ));
    }
    rules
}

/// Every `expr` in the dashboard's panels.
fn exprs(dashboard: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for target in panels.iter().filter_map(|p| p["targets"].as_array()).flatten() {
        out.push(target["expr"].as_str().expect("a target's expr").to_owned());
    }
    out
}

#[tokio::test]
async fn prometheus_rules_pass_promtool_and_their_unit_tests() {
    require(
        "promtool",
        "apt-get install prometheus (scripts/test takes only promtool out of that package)",
    );
    let rules = repo().join("deploy/prometheus/alerts.yml");
    let (ok, out) = run("promtool", &["check", "rules", rules.to_str().expect("utf-8")]).await;
    assert!(ok, "promtool check rules:\n{out}");
    let config = repo().join("deploy/prometheus/prometheus.example.yml");
    let (ok, out) = run("promtool", &["check", "config", config.to_str().expect("utf-8")]).await;
    assert!(ok, "promtool check config:\n{out}");
    let tests = repo().join("deploy/prometheus/alerts.test.yml");
    let (ok, out) = run("promtool", &["test", "rules", tests.to_str().expect("utf-8")]).await;
    assert!(ok, "promtool test rules:\n{out}");

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/cross-postback.json")).expect("the dashboard is JSON");
    assert!(exprs(&dashboard).len() >= 15, "the dashboard's queries");
    let scratch = Scratch::new();
    let file = scratch.write("dashboard.rules.yml", &dashboard_as_rules(&dashboard));
    let (ok, out) = run("promtool", &["check", "rules", file.to_str().expect("utf-8")]).await;
    assert!(ok, "the dashboard's PromQL does not parse:\n{out}");

    // The piling-up alert fires at the daemon's due-count cap, where the count stops growing.
    let cap = format!(
        "max(xpb_retries_due{{job=\"cross-postback\"}}) >= {}",
        cross_postback::store::dispatch::DUE_COUNT_CAP
    );
    assert!(
        read("deploy/prometheus/alerts.yml").contains(&cap),
        "alerts.yml has no `{cap}`"
    );

    // The check bites: an expression that does not parse is refused.
    let broken =
        read("deploy/prometheus/alerts.yml").replace("up{job=\"cross-postback\"} == 0", "up{job=} == 0");
    let file = scratch.write("broken.yml", &broken);
    let (ok, out) = run("promtool", &["check", "rules", file.to_str().expect("utf-8")]).await;
    assert!(!ok, "a broken expression passed:\n{out}");
}

// ------------------------------------------------------------------------------- metric names

/// Every `xpb_…` name in a text (PromQL, a dashboard, a rules file).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("xpb_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // A bare `xpb_` is the prefix in prose, not a name.
        if len > 4 && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    names
}

/// The metric families on /metrics (OpenMetrics text), by their `# TYPE` lines: name → type.
/// A family is listed even before it has a sample.
fn exported(metrics: &str) -> BTreeMap<String, String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// Whether a name used in a query is a series of an exported family: a counter's `_total`,
/// a histogram's `_bucket`, `_sum` or `_count`, or a gauge's own name.
fn is_exported(name: &str, families: &BTreeMap<String, String>) -> bool {
    let kind_of = |suffix: &str| {
        name.strip_suffix(suffix)
            .and_then(|base| families.get(base))
            .map(String::as_str)
    };
    families.get(name).is_some_and(|k| k == "gauge")
        || kind_of("_total") == Some("counter")
        || ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| kind_of(s) == Some("histogram"))
}

#[test]
fn metric_names_are_matched_against_families_by_type() {
    let metrics = "# TYPE xpb_a counter\n# TYPE xpb_g gauge\n# TYPE xpb_h histogram\nxpb_a_total 1\n";
    let families = exported(metrics);
    for (name, want) in [
        ("xpb_a_total", true),
        ("xpb_a", false),
        ("xpb_g", true),
        ("xpb_g_total", false),
        ("xpb_h_bucket", true),
        ("xpb_h_sum", true),
        ("xpb_h_count", true),
        ("xpb_h", false),
        ("xpb_a_count", false),
        ("xpb_missing_total", false),
    ] {
        assert_eq!(is_exported(name, &families), want, "{name}");
    }
    let found =
        metric_names("rate(xpb_a_total{x=\"xpb_not\"}[5m]) / my_xpb_b + xpb_h_bucket, every xpb_ name");
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["xpb_a_total", "xpb_h_bucket", "xpb_not"]);
}

#[tokio::test]
async fn every_metric_the_dashboard_and_rules_name_is_exported_by_the_daemon() {
    let mut used = BTreeSet::new();
    for file in [
        "deploy/grafana/cross-postback.json",
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/alerts.test.yml",
    ] {
        let names = metric_names(&read(file));
        assert!(names.len() >= 5, "{file} names only {names:?}");
        used.extend(names);
    }

    // A labelled family appears on /metrics with its first sample, so the daemon delivers one
    // event before it is scraped.
    let env = Env::new().await;
    let rx = Receiver::start().await;
    env.add_url("1", &rx.url("/x")).await;
    let daemon = env.start().await;
    env.publish(&[ev("c1", "approved", 0, serde_json::json!({}))])
        .await;
    rx.wait_for(1).await;
    let url = format!("http://{}/metrics", daemon.http());
    let metrics = eventually("the attempt is counted", || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        text.contains("xpb_attempts_total{class=\"2xx\"} 1")
            .then_some(text)
    })
    .await;
    daemon.stop().await;
    let families = exported(&metrics);
    assert!(
        families.contains_key("xpb_events_consumed"),
        "no families in:\n{metrics}"
    );

    let unknown: Vec<&String> = used.iter().filter(|n| !is_exported(n, &families)).collect();
    assert!(
        unknown.is_empty(),
        "not exported by the daemon: {unknown:?}\nits families: {families:?}"
    );
    // The comparison bites: a misspelt name is caught.
    assert!(!is_exported("xpb_retries_due_total", &families));
}
