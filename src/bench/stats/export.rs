//! The export phase: the newest N rows as CSV, read by [`stats::stream`] and written by the
//! API's CSV writer ([`crate::web::csv::chunks`]) into a sink that counts bytes. It runs in a
//! child process (this binary with a hidden flag) so that its peak resident set (`VmHWM`)
//! is the export's own, not the parent's.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::StatsArgs;
use crate::config::Config;
use crate::output::csv_record;
use crate::store::{self, stats};

/// What the export did, in its own process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportResult {
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// The process's peak resident set when the export began (start-up, one connection).
    pub start_rss_mib: f64,
    /// The process's peak resident set after the export.
    pub peak_rss_mib: f64,
}

/// Starts this binary on the bench's database with `--export-child`; reads its JSON.
pub async fn spawn(
    args: &StatsArgs,
    cfg: &Config,
    config_file: Option<&Path>,
) -> anyhow::Result<ExportResult> {
    let mut cmd = tokio::process::Command::new(std::env::current_exe().context("finding this binary")?);
    if let Some(path) = config_file {
        cmd.arg("--config").arg(path);
    }
    cmd.args(["bench", "--scenario", "stats", "--export-child", "--export-rows"])
        .arg(args.export_rows.to_string())
        // The highest-ranked source, so nothing in the environment overrides it.
        .env("XPB_DATABASE__URL", &cfg.database.url)
        .env("XPB_LOG__LEVEL", "warn")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let out = cmd.output().await.context("running the export process")?;
    anyhow::ensure!(out.status.success(), "the export process failed ({})", out.status);
    serde_json::from_slice(&out.stdout).context("reading the export process's figures")
}

/// The child's side: exports, prints its figures as JSON.
pub async fn child(args: &StatsArgs, cfg: &Config) -> anyhow::Result<()> {
    let pool = store::pool(&cfg.database.url, 1)?;
    let n = i64::try_from(args.export_rows.max(1)).unwrap_or(i64::MAX);
    // The filter: from the n-th newest row on, so the export is (at least) n rows.
    let from: Option<DateTime<Utc>> = pool
        .get()
        .await?
        .query_opt(
            "SELECT sent_at FROM attempts ORDER BY sent_at DESC, id DESC OFFSET $1 LIMIT 1",
            &[&(n - 1)],
        )
        .await?
        .map(|r| r.get(0));
    let filter = stats::Filter {
        from,
        ..stats::Filter::default()
    };
    let columns: Vec<String> = stats::STATS_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    let start_rss_mib = peak_rss_mib()?;
    let rows = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let counted = Arc::clone(&rows);
    let stream = stats::stream(pool.get().await?, &filter, &columns)
        .await?
        .inspect(move |r| {
            if r.is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
    let header = csv_record(columns.iter().map(String::as_str));
    let mut body = Box::pin(crate::web::csv::chunks(header, stream));
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        bytes += chunk.context("the export")?.len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rows = rows.load(Ordering::Relaxed);
    let result = ExportResult {
        rows,
        bytes,
        seconds,
        rows_per_s: rows as f64 / seconds.max(1e-9),
        start_rss_mib,
        peak_rss_mib: peak_rss_mib()?,
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// This process's peak resident set (Linux `VmHWM`), MiB.
fn peak_rss_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kib / 1024.0)
}
