//! `cross-postback bench --scenario stats`: the statistics table at size. In a scratch
//! database of its own (dropped afterwards, also on error or Ctrl-C) it generates attempts
//! over 90 days, 1,000 affiliates and 500 offers ([`super::history`]), analyses them, then
//! measures server side what the API runs: the first and the 1,000th page of the table under
//! each filter ([`store::stats::page`], timed around the call), the `EXPLAIN (ANALYZE,
//! BUFFERS)` of the slowest, and the CSV export ([`store::stats::stream`] through the API's
//! CSV writer) in a child process of its own, so the peak resident set is the export's.
//!
//! [`store::stats::page`]: crate::store::stats::page
//! [`store::stats::stream`]: crate::store::stats::stream

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::{World, history, progress};
use crate::config::Config;
use crate::store;

mod export;
mod pages;

/// The spread of the generated history.
pub const DAYS: f64 = 90.0;
pub const AFFILIATES: i64 = 1_000;
pub const OFFERS: i64 = 500;

/// Attempts written per call of the generator, between two progress lines.
const FILL_STEP: i64 = 250_000;

/// The options of the stats scenario (ignored by the others).
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Stats scenario: attempts to generate.
    #[arg(long, default_value_t = 10_000_000)]
    pub attempts: u64,
    /// Stats scenario: timed calls of each page.
    #[arg(long, default_value_t = 50)]
    pub repetitions: u32,
    /// Stats scenario: rows of the CSV export (the newest ones).
    #[arg(long, default_value_t = 1_000_000)]
    pub export_rows: u64,
    /// Runs only the export against the configured database and prints its figures as JSON
    /// (the stats scenario starts itself with it, so the export's peak memory is its own).
    #[arg(long, hide = true)]
    pub export_child: bool,
}

/// Everything one stats run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatsResults {
    pub scenario: String,
    /// The scratch database (dropped when the run ends).
    pub database: String,
    pub attempts: i64,
    pub deliveries: i64,
    pub days: f64,
    pub affiliates: i64,
    pub offers: i64,
    pub database_mib: f64,
    pub fill_seconds: f64,
    pub analyze_seconds: f64,
    pub repetitions: u32,
    pub page_rows: usize,
    pub pages: Vec<pages::PageTiming>,
    pub slowest: pages::Slowest,
    pub export: export::ExportResult,
}

pub async fn run(
    args: &StatsArgs,
    json: bool,
    cfg: &Config,
    config_file: Option<&Path>,
) -> anyhow::Result<()> {
    if args.export_child {
        return export::child(args, cfg).await;
    }
    anyhow::ensure!(args.attempts > 0, "--attempts must be at least 1");
    anyhow::ensure!(args.repetitions > 0, "--repetitions must be at least 1");
    anyhow::ensure!(args.export_rows > 0, "--export-rows must be at least 1");
    let world = World::create_named(cfg, "xpb_stats")
        .await
        .context("preparing the bench database")?;
    let result = tokio::select! {
        r = measure(args, &world, config_file) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    world.drop_database().await;
    let results = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", table(&results));
    }
    Ok(())
}

async fn measure(
    args: &StatsArgs,
    world: &World,
    config_file: Option<&Path>,
) -> anyhow::Result<StatsResults> {
    let pool = store::pool(&world.cfg.database.url, 2)?;
    let client = pool.get().await.context("connecting to the bench database")?;
    let mut r = StatsResults {
        scenario: "stats".into(),
        database: database_name(&world.cfg.database.url),
        days: DAYS,
        affiliates: AFFILIATES,
        offers: OFFERS,
        repetitions: args.repetitions,
        page_rows: pages::LIMIT,
        ..StatsResults::default()
    };
    let started = Instant::now();
    let total = i64::try_from(args.attempts).unwrap_or(i64::MAX);
    while r.attempts < total {
        let step = FILL_STEP.min(total - r.attempts);
        let filled = history::fill_attempts(&client, step, DAYS, AFFILIATES, OFFERS)
            .await
            .context("generating attempts")?;
        r.attempts += filled.attempts;
        r.deliveries += filled.deliveries;
        progress("fill attempts", r.attempts.min(total) as u64, total as u64);
    }
    r.fill_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    // VACUUM as well: a table that has been in use has its visibility map and hint bits set;
    // a freshly written one would set them during the first timed reads.
    for statement in ["VACUUM (ANALYZE) attempts", "ANALYZE"] {
        client.batch_execute(statement).await.context("analysing")?;
    }
    r.analyze_seconds = started.elapsed().as_secs_f64();
    let size: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0);
    r.database_mib = size as f64 / 1_048_576.0;
    // The export first, in a fresh process, before this one has read anything.
    r.export = export::spawn(args, &world.cfg, config_file)
        .await
        .context("export phase")?;
    (r.pages, r.slowest) = pages::measure(&client, args.repetitions)
        .await
        .context("pages phase")?;
    Ok(r)
}

/// The database a URL names (its path).
fn database_name(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.path().trim_start_matches('/').to_owned())
        .unwrap_or_default()
}

/// The results for people.
pub fn table(r: &StatsResults) -> String {
    let mut out = format!(
        "stats bench: {} attempts ({} deliveries) over {} days, {} affiliates, {} offers; \
         database {:.0} MiB; fill {:.0} s, vacuum+analyze {:.0} s\n\n",
        r.attempts,
        r.deliveries,
        r.days,
        r.affiliates,
        r.offers,
        r.database_mib,
        r.fill_seconds,
        r.analyze_seconds
    );
    out.push_str(&format!(
        "pages of {} rows, server side, {} calls each (ms):\n",
        r.page_rows, r.repetitions
    ));
    out.push_str(&format!(
        "{:<14} {:>6} {:>6} {:>9} {:>9} {:>9}\n",
        "filter", "page", "rows", "p50", "p99", "max"
    ));
    for p in &r.pages {
        out.push_str(&format!(
            "{:<14} {:>6} {:>6} {:>9.2} {:>9.2} {:>9.2}\n",
            p.filter, p.page, p.rows, p.p50_ms, p.p99_ms, p.max_ms
        ));
    }
    let e = &r.export;
    out.push_str(&format!(
        "\nCSV export: {} rows, {:.1} MiB in {:.2} s = {:.0} rows/s; peak RSS {:.1} MiB \
         (the export's own process; {:.1} MiB at its start)\n",
        e.rows,
        e.bytes as f64 / 1_048_576.0,
        e.seconds,
        e.rows_per_s,
        e.peak_rss_mib,
        e.start_rss_mib
    ));
    let s = &r.slowest;
    out.push_str(&format!(
        "\nslowest page: {} page {} (p99 {:.2} ms)\n{}\n\n{}\n",
        s.filter, s.page, s.p99_ms, s.sql, s.plan
    ));
    out
}
