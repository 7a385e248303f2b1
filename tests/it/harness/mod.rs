//! Test harness: each test owns a fresh database and its own exchange and queue names on the
//! real servers, a recording HTTP receiver on loopback, and waits for conditions with deadlines.

use std::future::Future;
use std::time::{Duration, Instant};

use cross_postback::config::{Config, Dur};
use cross_postback::daemon::{self, Daemon};
use cross_postback::{amqp, store};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio_util::sync::CancellationToken;

pub mod broker;
pub mod browser;
pub mod child;
pub mod proxy;
pub mod raw;
pub mod receiver;

pub use receiver::{Receiver, Reply};

/// How long a condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn admin_url() -> String {
    std::env::var("XPB_TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn amqp_url() -> String {
    std::env::var("XPB_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn init_logs() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// Waits until `check` returns `Some`, polling; panics with `what` after the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One test's world.
pub struct Env {
    pub cfg: Config,
    db_name: String,
}

impl Env {
    /// A fresh, migrated database and names of its own.
    pub async fn new() -> Env {
        let env = Env::empty().await;
        store::migrate(&env.pool()).await.expect("migrations apply");
        env
    }

    /// A fresh database with no schema yet.
    pub async fn empty() -> Env {
        init_logs();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let db_name = format!("xpb_test_{id}");
        let (admin, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
            .await
            .expect("the test Postgres answers (XPB_TEST_ADMIN_DATABASE_URL)");
        tokio::spawn(conn);
        admin
            .batch_execute(&format!("CREATE DATABASE {db_name}"))
            .await
            .expect("create test database");
        let mut cfg = Config::default();
        let mut db_url = url::Url::parse(&admin_url()).expect("admin URL parses");
        db_url.set_path(&db_name);
        cfg.database.url = db_url.to_string();
        cfg.database.pool_size = 8;
        cfg.amqp.url = amqp_url();
        cfg.amqp.exchange = format!("xpb-test-{id}");
        cfg.amqp.queue = format!("xpb-test-{id}");
        cfg.amqp.dead_letter_exchange = format!("xpb-test-{id}.dlx");
        cfg.amqp.dead_letter_queue = format!("xpb-test-{id}.dead");
        cfg.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        cfg.web.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        cfg.delivery.allow_private_networks = true;
        cfg.delivery.retry_schedule = vec![ms(100), ms(200), ms(300)];
        cfg.delivery.poll_interval = ms(50);
        cfg.delivery.connect_timeout = ms(1000);
        cfg.delivery.timeout = ms(2000);
        cfg.delivery.lease = ms(6000);
        cfg.run.shutdown_timeout = ms(5000);
        Env { cfg, db_name }
    }

    pub fn pool(&self) -> deadpool_postgres::Pool {
        store::pool(&self.cfg.database.url, 4).expect("pool")
    }

    pub async fn pg(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.cfg.database.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }

    /// Starts the daemon in-process with this env's configuration.
    pub async fn start(&self) -> Running {
        self.start_with(self.cfg.clone()).await
    }

    pub async fn start_with(&self, cfg: Config) -> Running {
        let stop = CancellationToken::new();
        let daemon = daemon::start(cfg, stop.clone()).await.expect("daemon starts");
        Running {
            daemon: Some(daemon),
            stop,
        }
    }

    /// Adds a URL the way `urls add` does (validated).
    pub async fn add_url(&self, offer: &str, url: &str) -> i64 {
        self.add_url_with(offer, url, |_| {}).await
    }

    pub async fn add_url_with(
        &self,
        offer: &str,
        url: &str,
        edit: impl FnOnce(&mut cross_postback::cli::AddUrl),
    ) -> i64 {
        let mut add = cross_postback::cli::AddUrl {
            offer: offer.into(),
            url: url.into(),
            method: cross_postback::cli::HttpMethod::Get,
            goal: None,
            statuses: None,
            body: None,
            content_type: cross_postback::cli::ContentType::Json,
            follow_redirects: false,
            headers: vec![],
            timeout: None,
            allow_duplicate: false,
            rate: None,
            burst: None,
        };
        edit(&mut add);
        let new = cross_postback::cli::validate_url(add, self.cfg.delivery.timeout.0).expect("valid URL");
        let pool = self.pool();
        let client = pool.get().await.expect("db");
        store::urls::add(&client, &new).await.expect("url added")
    }

    /// Publishes each body with confirms, routing key `conversion.<status>`.
    pub async fn publish(&self, bodies: &[String]) {
        self.publish_keyed(
            bodies
                .iter()
                .map(|b| (cross_postback::cli::routing_key(b), b.as_bytes())),
        )
        .await;
    }

    /// Publishes raw bytes (invalid messages too) with confirms, key `conversion.unknown`.
    pub async fn publish_raw(&self, bodies: &[Vec<u8>]) {
        self.publish_keyed(
            bodies
                .iter()
                .map(|b| ("conversion.unknown".to_owned(), b.as_slice())),
        )
        .await;
    }

    async fn publish_keyed<'a>(&self, messages: impl IntoIterator<Item = (String, &'a [u8])>) {
        let conn = amqp::connect(&self.cfg.amqp.url, "xpb-test publisher")
            .await
            .expect("broker");
        let channel = amqp::confirm_channel(&conn).await.expect("channel");
        amqp::declare_topology(&channel, &self.cfg.amqp)
            .await
            .expect("topology");
        for (key, body) in messages {
            amqp::publish_confirmed(
                &channel,
                &self.cfg.amqp.exchange,
                &key,
                body,
                amqp::properties(FieldTable::default()),
            )
            .await
            .expect("published and confirmed");
        }
        let _ = conn.close(200, "bye".into()).await;
    }

    /// Takes exactly `n` messages from the dead-letter queue (then checks it is empty):
    /// (body, x-xpb-reason).
    pub async fn dead_letters(&self, n: usize) -> Vec<(Vec<u8>, String)> {
        let conn = cross_postback::amqp::connect(&self.cfg.amqp.url, "xpb-test dlq")
            .await
            .expect("broker");
        let ch = conn.create_channel().await.expect("channel");
        let queue = self.cfg.amqp.dead_letter_queue.as_str();
        let mut dead = Vec::new();
        for _ in 0..n {
            let msg = eventually("a dead-lettered message", || async {
                ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })
                    .await
                    .ok()
                    .flatten()
            })
            .await;
            let headers = msg.delivery.properties.headers().clone().unwrap_or_default();
            let reason = match headers.inner().get("x-xpb-reason") {
                Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                other => panic!("x-xpb-reason header missing: {other:?}"),
            };
            dead.push((msg.delivery.data.clone(), reason));
        }
        let extra = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get");
        assert!(extra.is_none(), "more dead letters than invalid messages");
        let _ = conn.close(200, "bye".into()).await;
        dead
    }

    /// Messages ready in a queue (not counting unacked ones).
    pub async fn ready_messages(&self, queue: &str) -> u32 {
        self.queue_state(queue).await.0
    }

    /// A queue's (ready messages, consumers).
    pub async fn queue_state(&self, queue: &str) -> (u32, u32) {
        let conn = amqp::connect(&self.cfg.amqp.url, "xpb-test probe")
            .await
            .expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        let q = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue exists");
        let _ = conn.close(200, "bye".into()).await;
        (q.message_count(), q.consumer_count())
    }

    /// Environment variables that point the real binary at this env.
    pub fn vars(&self) -> Vec<(String, String)> {
        let c = &self.cfg;
        let schedule: Vec<String> = c.delivery.retry_schedule.iter().map(|d| d.to_string()).collect();
        [
            ("DATABASE_URL", c.database.url.clone()),
            ("AMQP_URL", c.amqp.url.clone()),
            ("XPB_AMQP__EXCHANGE", c.amqp.exchange.clone()),
            ("XPB_AMQP__QUEUE", c.amqp.queue.clone()),
            (
                "XPB_AMQP__DEAD_LETTER_EXCHANGE",
                c.amqp.dead_letter_exchange.clone(),
            ),
            ("XPB_AMQP__DEAD_LETTER_QUEUE", c.amqp.dead_letter_queue.clone()),
            ("XPB_HTTP__LISTEN", c.http.listen.to_string()),
            ("XPB_WEB__LISTEN", c.web.listen.to_string()),
            ("XPB_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true".into()),
            ("XPB_DELIVERY__RETRY_SCHEDULE", schedule.join(",")),
            (
                "XPB_DELIVERY__POLL_INTERVAL",
                c.delivery.poll_interval.to_string(),
            ),
            (
                "XPB_DELIVERY__CONNECT_TIMEOUT",
                c.delivery.connect_timeout.to_string(),
            ),
            ("XPB_DELIVERY__TIMEOUT", c.delivery.timeout.to_string()),
            ("XPB_DELIVERY__LEASE", c.delivery.lease.to_string()),
            ("XPB_RUN__SHUTDOWN_TIMEOUT", c.run.shutdown_timeout.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A command for the real binary with this env's variables.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cross-postback"));
        cmd.env_clear();
        for kept in ["PATH", "RUST_LOG"] {
            if let Ok(value) = std::env::var(kept) {
                cmd.env(kept, value);
            }
        }
        cmd.envs(self.vars());
        cmd
    }

    /// Runs a CLI command to the end; returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command().args(args).output().expect("binary runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Like [`Env::cli`], but awaited, with a deadline: a daemon running in-process keeps
    /// working (and lets go of its row locks) while the command runs.
    pub async fn cli_async(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = self.command();
        cmd.args(args);
        output_within_deadline(cmd).await
    }
}

/// Runs a command to the end, awaited, failing the test if it outlives [`DEADLINE`]; returns
/// (exit code, stdout, stderr).
pub async fn output_within_deadline(cmd: std::process::Command) -> (i32, String, String) {
    let what = format!("{cmd:?}");
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not end within {DEADLINE:?}"))
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Drop for Env {
    fn drop(&mut self) {
        let cfg = self.cfg.clone();
        let db = self.db_name.clone();
        // Clean up on a thread of its own: Drop cannot await, and may run inside a runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(conn) = amqp::connect(&cfg.amqp.url, "xpb-test cleanup").await {
                    // A test's daemons may run with another count of shards than the env's own
                    // (a changed copy of its configuration); none uses more than the default 8.
                    let widest = cross_postback::config::Amqp {
                        shards: cfg.amqp.shards.max(8),
                        ..cfg.amqp.clone()
                    };
                    let (queues, exchanges) = amqp::declared_names(&widest);
                    amqp::delete_all(&conn, &queues, &exchanges).await;
                    let _ = conn.close(200, "bye".into()).await;
                }
                if let Ok((admin, conn)) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A text cell, as [`rows`] returns it.
pub fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Whether the daemon listening on `addr` answers `/readyz` with 200.
pub async fn ready(addr: std::net::SocketAddr) -> bool {
    matches!(reqwest::get(format!("http://{addr}/readyz")).await, Ok(r) if r.status() == 200)
}

pub fn ms(n: u64) -> Dur {
    Dur(Duration::from_millis(n))
}

/// A daemon running in-process.
pub struct Running {
    pub daemon: Option<Daemon>,
    stop: CancellationToken,
}

impl Running {
    pub fn http(&self) -> std::net::SocketAddr {
        self.daemon.as_ref().expect("running").http_addr
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(d) = self.daemon.take() {
            tokio::time::timeout(Duration::from_secs(20), d.wait())
                .await
                .expect("daemon stops within 20 s")
                .expect("daemon stops cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A conversion event as the platform publishes it; `order` seconds after a fixed start
/// orders the events of one conversion.
pub fn ev(conversion: &str, status: &str, order: i64, extra: serde_json::Value) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z").expect("base time");
    let mut v = serde_json::json!({
        "conversion_id": conversion,
        "status": status,
        "updated_at": (base + chrono::Duration::seconds(order)).to_rfc3339(),
        "offer_id": 1,
        "affiliate_id": 2,
    });
    if let (Some(map), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
        map.extend(more);
    }
    v.to_string()
}

/// Rows of a query as text cells.
pub async fn rows(pg: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    pg.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// Waits until a counting query returns `want`.
pub async fn wait_count(pg: &tokio_postgres::Client, sql: &str, want: i64) {
    eventually(&format!("{sql} to return {want}"), || async {
        (count(pg, sql).await == want).then_some(())
    })
    .await;
}

/// Makes the partitions of `attempts` for every UTC day between `at` (text Postgres reads as a
/// timestamptz, `now` included) and `span_s` seconds before it (after it when negative). The
/// daemon makes only yesterday's to a week ahead, and there is no default partition, so a test
/// that writes attempts at fixed past times makes their days first.
pub async fn attempts_partitions(pg: &tokio_postgres::Client, at: &str, span_s: f64) {
    pg.execute(
        "WITH t AS (SELECT $1::text::timestamptz AS a,
                           $1::text::timestamptz - $2::float8 * interval '1 second' AS b)
         SELECT xpb_attempts_partition(d::date)
         FROM t, generate_series((least(a, b) AT TIME ZONE 'UTC')::date,
                                 (greatest(a, b) AT TIME ZONE 'UTC')::date, interval '1 day') d",
        &[&at, &span_s],
    )
    .await
    .expect("attempts' partitions");
}

/// One number from a query.
pub async fn count(pg: &tokio_postgres::Client, sql: &str) -> i64 {
    rows(pg, sql)
        .await
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

/// A daemon whose first attempt (conversion `c1`, offer 1) got a 500 and whose retry now waits
/// `schedule`.
pub struct RetryWaiting {
    pub env: Env,
    pub rx: Receiver,
    pub url_id: i64,
    pub daemon: Running,
    pub pg: tokio_postgres::Client,
}

pub async fn retry_waiting(schedule: Dur, path: &str, status: &str) -> RetryWaiting {
    let mut env = Env::new().await;
    env.cfg.delivery.retry_schedule = vec![schedule];
    let rx = Receiver::start().await;
    let url_id = env.add_url("1", &rx.url(path)).await;
    rx.script([Reply::status(500)]);
    let daemon = env.start().await;
    env.publish(&[ev("c1", status, 0, serde_json::json!({}))]).await;
    rx.wait_for(1).await;
    let pg = env.pg().await;
    wait_count(
        &pg,
        "SELECT count(*) FROM deliveries WHERE state = 'pending' AND attempts = 1",
        1,
    )
    .await;
    RetryWaiting {
        env,
        rx,
        url_id,
        daemon,
        pg,
    }
}

/// A loopback port bound but never listened on: connections are refused. Keep the socket (do
/// not drop it) for as long as the port must stay closed, so no test running beside this one
/// can take the port meanwhile.
pub fn closed_port() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let addr = socket.local_addr().expect("address");
    (socket, addr)
}
