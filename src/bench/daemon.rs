//! End to end with the real daemon as a child process: a backlog of N events drained (first
//! consume to last delivery recorded), then a fixed offered rate for latency (publish → first
//! attempt), then the daemon's peak resident set (VmHWM) before it is stopped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;

use super::parts::{Receiver, event_body};
use super::{World, progress};
use crate::amqp;
use crate::store;
use crate::url_spec::{self, UrlSpec};

const E2E_OFFER: &str = "42";
const LATENCY_OFFER: &str = "43";
/// Longest wait for the daemon to drain what was published.
const DRAIN_DEADLINE: Duration = Duration::from_secs(900);

pub struct EndToEnd<'a> {
    pub world: &'a World,
    pub receiver: &'a Receiver,
    pub config_file: Option<&'a Path>,
    pub urls: u32,
}

impl EndToEnd<'_> {
    /// Returns (events/s end to end, sorted latencies in ms, peak RSS in MiB).
    pub async fn measure(
        &self,
        n: u64,
        rate: u64,
        seconds: Duration,
    ) -> anyhow::Result<(f64, Vec<f64>, f64)> {
        self.add_urls().await?;
        let conn = amqp::connect(&self.world.cfg.amqp.url, "cross-postback bench publisher").await?;
        let ch = amqp::confirm_channel(&conn).await?;
        amqp::declare_topology(&ch, &self.world.cfg.amqp).await?;
        self.publish_backlog(&ch, n).await?;
        let mut daemon = Daemon::spawn(self.world, self.config_file)?;
        let result = self.run_phases(&ch, &mut daemon, n, rate, seconds).await;
        daemon.stop();
        amqp::close(&conn, &[&ch]).await;
        result.map_err(|e| {
            let cause = crate::report::one_line(e.as_ref());
            anyhow::anyhow!("{cause}{}", daemon.last_lines())
        })
    }

    async fn run_phases(
        &self,
        ch: &lapin::Channel,
        daemon: &mut Daemon,
        n: u64,
        rate: u64,
        seconds: Duration,
    ) -> anyhow::Result<(f64, Vec<f64>, f64)> {
        let wanted = n * u64::from(self.urls);
        let (first, last) = daemon.wait_delivered(0, wanted, "end to end").await?;
        let e2e = n as f64 / (last - first).as_secs_f64().max(f64::MIN_POSITIVE);
        if let Some(mean) = daemon.mean_batch().await {
            eprintln!("end to end: {mean:.1} messages per intake transaction on average");
        }
        let latency = self.latency(ch, daemon, wanted, rate, seconds).await?;
        let rss = daemon.peak_rss_mib()?;
        Ok((e2e, latency, rss))
    }

    async fn add_urls(&self) -> anyhow::Result<()> {
        let pool = store::pool(&self.world.cfg.database.url, 2)?;
        let client = pool.get().await?;
        for j in 0..self.urls {
            for (offer, path) in [
                (E2E_OFFER, format!("/e2e/{j}?c={{conversion_id}}")),
                (LATENCY_OFFER, format!("/lat/{{sub1}}?u={j}")),
            ] {
                let url = format!("http://{}{path}", self.receiver.addr);
                let new = url_spec::validate(UrlSpec::get(offer, &url), self.world.cfg.delivery.timeout.0)?;
                store::urls::add(&client, &new).await?;
            }
        }
        pool.close();
        Ok(())
    }

    async fn publish_backlog(&self, ch: &lapin::Channel, n: u64) -> anyhow::Result<()> {
        let mut pending = Vec::new();
        for i in 0..n {
            let body = event_body(&format!("e2e-{i}"), E2E_OFFER);
            pending.push(self.publish(ch, &body).await?);
            if pending.len() == 2_000 || i + 1 == n {
                for c in pending.drain(..) {
                    amqp::check_confirm(c.await?)?;
                }
                progress("backlog publish", i + 1, n);
            }
        }
        Ok(())
    }

    async fn publish(&self, ch: &lapin::Channel, body: &[u8]) -> anyhow::Result<lapin::PublisherConfirm> {
        Ok(ch
            .basic_publish(
                self.world.cfg.amqp.exchange.as_str().into(),
                "conversion.approved".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                amqp::properties(FieldTable::default()),
            )
            .await?)
    }

    /// Offers `rate` events/s for `seconds`; returns publish → first attempt, sorted, in ms.
    async fn latency(
        &self,
        ch: &lapin::Channel,
        daemon: &mut Daemon,
        delivered_before: u64,
        rate: u64,
        seconds: Duration,
    ) -> anyhow::Result<Vec<f64>> {
        let total = rate * seconds.as_secs();
        let mut sent_at = Vec::with_capacity(total as usize);
        let mut confirms = Vec::with_capacity(total as usize);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        for i in 0..total {
            tick.tick().await;
            let mut body: serde_json::Value =
                serde_json::from_slice(&event_body(&format!("lat-{i}"), LATENCY_OFFER))?;
            body["sub1"] = i.to_string().into();
            sent_at.push(Instant::now());
            confirms.push(self.publish(ch, body.to_string().as_bytes()).await?);
            if (i + 1).is_multiple_of(rate) || i + 1 == total {
                progress("latency publish", i + 1, total);
            }
        }
        for c in confirms {
            amqp::check_confirm(c.await?)?;
        }
        daemon
            .wait_delivered(delivered_before, total * u64::from(self.urls), "latency")
            .await?;
        let mut latencies = Vec::with_capacity(total as usize);
        for (i, sent) in sent_at.iter().enumerate() {
            let arrived = self
                .receiver
                .arrival(i as u64)
                .with_context(|| format!("latency sample {i} never arrived"))?;
            latencies.push(arrived.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
        }
        latencies.sort_by(f64::total_cmp);
        Ok(latencies)
    }
}

/// The sum of the samples whose line starts with `prefix` in Prometheus text.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// The daemon under test, as a child process.
struct Daemon {
    child: Child,
    metrics_url: String,
    client: reqwest::Client,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn spawn(world: &World, config_file: Option<&Path>) -> anyhow::Result<Daemon> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let cfg = &world.cfg;
        let mut cmd = Command::new(std::env::current_exe().context("finding this binary")?);
        if let Some(path) = config_file {
            cmd.arg("--config").arg(path);
        }
        cmd.arg("run")
            .env("DATABASE_URL", &cfg.database.url)
            .env("AMQP_URL", &cfg.amqp.url)
            .env("XPB_AMQP__EXCHANGE", &cfg.amqp.exchange)
            .env("XPB_AMQP__QUEUE", &cfg.amqp.queue)
            .env("XPB_AMQP__QUEUE_TYPE", cfg.amqp.queue_type.as_str())
            .env("XPB_AMQP__DEAD_LETTER_EXCHANGE", &cfg.amqp.dead_letter_exchange)
            .env("XPB_AMQP__DEAD_LETTER_QUEUE", &cfg.amqp.dead_letter_queue)
            .env("XPB_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true")
            .env("XPB_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("XPB_LOG__LEVEL", "warn")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting the daemon")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let keep = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut l) = keep.lock() {
                        l.push(line);
                        let excess = l.len().saturating_sub(20);
                        l.drain(..excess);
                    }
                }
            });
        }
        Ok(Daemon {
            child,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
            client: reqwest::Client::builder().no_proxy().build()?,
            lines,
        })
    }

    async fn scrape(&self) -> Option<String> {
        self.client
            .get(&self.metrics_url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// Scrapes the daemon's counters: (events consumed, deliveries delivered).
    async fn counters(&self) -> Option<(u64, u64)> {
        let text = self.scrape().await?;
        let consumed = metric(&text, "xpb_events_consumed_total{");
        let delivered = metric(&text, "xpb_deliveries_total{outcome=\"delivered\"}");
        Some((consumed as u64, delivered as u64))
    }

    /// Mean messages per intake transaction so far.
    async fn mean_batch(&self) -> Option<f64> {
        let text = self.scrape().await?;
        let count = metric(&text, "xpb_intake_batch_messages_count");
        (count > 0.0).then(|| metric(&text, "xpb_intake_batch_messages_sum") / count)
    }

    /// Waits until `wanted` deliveries more than `before` are recorded delivered; returns when
    /// the first event was seen consumed and when the last delivery was seen recorded. The
    /// progress counts this phase's deliveries only, and ends at `wanted`.
    async fn wait_delivered(
        &mut self,
        before: u64,
        wanted: u64,
        phase: &str,
    ) -> anyhow::Result<(Instant, Instant)> {
        let deadline = Instant::now() + DRAIN_DEADLINE;
        let mut first = None;
        let mut shown = 0;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the daemon exited ({status}) during the {phase} phase");
            }
            if let Some((consumed, delivered)) = self.counters().await {
                let now = Instant::now();
                if consumed > 0 {
                    first.get_or_insert(now);
                }
                let delivered = delivered.saturating_sub(before);
                if delivered >= wanted {
                    progress(&format!("{phase} delivered"), wanted, wanted);
                    return Ok((first.unwrap_or(now), now));
                }
                if delivered >= shown + wanted / 20 {
                    shown = delivered;
                    progress(&format!("{phase} delivered"), delivered, wanted);
                }
            }
            if Instant::now() > deadline {
                bail!("the daemon did not deliver {wanted} postbacks within {DRAIN_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The child's peak resident set so far (Linux `VmHWM`).
    fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("reading the daemon's /proc status (Linux only)")?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .context("no VmHWM in /proc status")?;
        Ok(kib / 1024.0)
    }

    /// SIGTERM, then wait (SIGKILL after 30 s).
    fn stop(&mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn last_lines(&self) -> String {
        let lines = self.lines.lock().map(|l| l.join("\n")).unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            format!("\ndaemon log:\n{lines}")
        }
    }
}
