//! `cross-postback bench`: the throughput instrument. Against the configured broker and
//! database, each run with its own fresh database and queue names (removed afterwards), it
//! measures the parts bare (broker, HTTP, database), derives the bound the machine could run
//! the pipeline at, then runs the real daemon (a child process) end to end on a backlog, and at
//! a fixed rate for latency, and reads its peak resident set.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::config::{Config, QueueType};

mod daemon;
mod growth;
pub mod history;
mod parts;
mod report;
pub mod stats;
mod world;

pub use world::World;

/// What a bench run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The parts and the pipeline end to end (the default).
    Pipeline,
    /// The statistics table and its CSV export over generated history.
    Stats,
    /// End to end and latency on an empty and on a loaded database; claim time; bytes per event.
    Growth,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Pipeline)]
    pub scenario: Scenario,
    /// Events in each throughput phase (broker, http, database, end to end).
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Offered rate of the latency phase, events per second.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Length of the latency phase, seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Cross-postback URLs per offer in the end-to-end phases.
    #[arg(long, default_value_t = 1)]
    pub urls_per_offer: u32,
    /// Queue type, quorum or classic (default: amqp.queue_type).
    #[arg(long, value_name = "TYPE")]
    pub queue_type: Option<QueueType>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stats: stats::StatsArgs,
    /// Growth: attempts of history written before the loaded run (over 90 days).
    #[arg(long, default_value_t = 10_000_000)]
    pub history: i64,
    /// Growth: due deliveries to a dead host written before the loaded run.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: i64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Results {
    /// The scratch database the run used (dropped at its end).
    pub database: String,
    pub events: u64,
    pub urls_per_offer: u32,
    pub queue_type: String,
    pub concurrency: usize,
    pub publish_msg_per_s: f64,
    pub broker_msg_per_s: f64,
    pub http_req_per_s: f64,
    pub database_rows_per_s: f64,
    /// Rows the daemon writes per event.
    pub rows_per_event: u32,
    pub bound_events_per_s: f64,
    pub end_to_end_events_per_s: f64,
    pub end_to_end_of_bound: f64,
    pub latency_rate: u64,
    pub latency_seconds: u64,
    pub latency_samples: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub peak_rss_mib: f64,
}

/// Rows the daemon writes per announced event with `urls` matching URLs: the conversion's
/// state, and per URL the delivery, its attempt, and the delivery's update after it.
pub fn rows_per_event(urls: u32) -> u32 {
    1 + 3 * urls
}

/// The rate the pipeline could run at if nothing but its irreducible work cost anything.
pub fn bound(broker: f64, http: f64, database: f64, rows_per_event: u32, urls: u32) -> f64 {
    let per_event = 1.0 / broker + f64::from(urls) / http + f64::from(rows_per_event) / database;
    1.0 / per_event
}

pub async fn run(args: BenchArgs, cfg: &Config, config_file: Option<&Path>) -> anyhow::Result<()> {
    if args.scenario == Scenario::Stats {
        return stats::run(&args.stats, args.json, cfg, config_file).await;
    }
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    anyhow::ensure!(
        args.rate > 0 && args.seconds > 0,
        "--rate and --seconds must be at least 1"
    );
    anyhow::ensure!(args.urls_per_offer > 0, "--urls-per-offer must be at least 1");
    anyhow::ensure!(
        args.history >= 0 && args.backlog >= 0,
        "--history and --backlog must be 0 or more"
    );
    let mut cfg = cfg.clone();
    if let Some(q) = args.queue_type {
        cfg.amqp.queue_type = q;
    }
    if args.scenario == Scenario::Growth {
        return growth::run(&args, &cfg, config_file).await;
    }
    let world = World::create(&cfg)
        .await
        .context("preparing the bench database and queues")?;
    let result = measure(&args, &world, config_file).await;
    let database = world.db_name().to_owned();
    world.remove().await;
    let results = Results { database, ..result? };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", report::table(&results));
    }
    Ok(())
}

async fn measure(args: &BenchArgs, world: &World, config_file: Option<&Path>) -> anyhow::Result<Results> {
    let n = args.events;
    let cfg = &world.cfg;
    let mut r = Results {
        events: n,
        urls_per_offer: args.urls_per_offer,
        queue_type: cfg.amqp.queue_type.as_str().to_owned(),
        concurrency: cfg.delivery.concurrency,
        rows_per_event: rows_per_event(args.urls_per_offer),
        latency_rate: args.rate,
        latency_seconds: args.seconds,
        ..Results::default()
    };
    let receiver = parts::Receiver::start().await?;
    (r.publish_msg_per_s, r.broker_msg_per_s) = parts::broker(world, n).await.context("broker phase")?;
    r.http_req_per_s = parts::http(&receiver, n, cfg.delivery.concurrency)
        .await
        .context("http phase")?;
    r.database_rows_per_s = parts::database(world, n).await.context("database phase")?;
    r.bound_events_per_s = bound(
        r.broker_msg_per_s,
        r.http_req_per_s,
        r.database_rows_per_s,
        r.rows_per_event,
        args.urls_per_offer,
    );
    let run = daemon::EndToEnd {
        world,
        receiver: &receiver,
        config_file,
        urls: args.urls_per_offer,
    };
    let (e2e, latency, rss) = run
        .measure(n, args.rate, Duration::from_secs(args.seconds))
        .await?;
    r.end_to_end_events_per_s = e2e;
    r.end_to_end_of_bound = e2e / r.bound_events_per_s;
    r.latency_samples = latency.len();
    r.latency_p50_ms = percentile(&latency, 0.50);
    r.latency_p99_ms = percentile(&latency, 0.99);
    r.latency_max_ms = latency.last().copied().unwrap_or(0.0);
    r.peak_rss_mib = rss;
    Ok(r)
}

/// The `q` quantile of sorted samples (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Progress on stderr: on a terminal one line rewritten in place, elsewhere (a file, a pipe,
/// a CI log) plain lines, without the control sequences.
pub(crate) fn progress(phase: &str, done: u64, total: u64) {
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(progress_text(err.is_terminal(), phase, done, total).as_bytes());
    let _ = err.flush();
}

fn progress_text(terminal: bool, phase: &str, done: u64, total: u64) -> String {
    if !terminal {
        return format!("{phase}: {done}/{total}\n");
    }
    let end = if done >= total { "\n" } else { "" };
    format!("\r\x1b[2K{phase}: {done}/{total}{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_adds_the_costs_per_event() {
        // 1/1000 + 1/1000 + 4/4000 = 3/1000 s per event.
        let b = bound(1000.0, 1000.0, 4000.0, 4, 1);
        assert!((b - 333.333).abs() < 0.01, "{b}");
        assert_eq!(rows_per_event(1), 4);
        assert_eq!(rows_per_event(3), 10);
        // Two URLs cost two requests per event.
        assert!((bound(1e9, 1000.0, 1e9, 7, 2) - 500.0).abs() < 0.01);
    }

    #[test]
    fn progress_rewrites_a_line_on_a_terminal_only() {
        assert_eq!(progress_text(false, "http", 5, 10), "http: 5/10\n");
        assert_eq!(progress_text(true, "http", 5, 10), "\r\x1b[2Khttp: 5/10");
        assert_eq!(progress_text(true, "http", 10, 10), "\r\x1b[2Khttp: 10/10\n");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }
}
