//! The data lifecycle: partitions of `attempts` made ahead, and retention applied every
//! `retention.interval` on one replica at a time (a session advisory lock on a connection of its
//! own, which a replica that dies takes with it), or once by `cross-postback prune`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Retention};
use crate::store::retention::{self, Removed};
use crate::store::{self, StoreError, partitions};

/// Held by the replica applying retention ("xpb_rete").
const RETENTION_LOCK: i64 = 0x7870_625f_7265_7465;

/// How long links expired or revoked are kept.
const LINKS_KEPT: Duration = Duration::from_secs(30 * 86_400);

/// What one application of retention did.
#[derive(Debug)]
pub enum Outcome {
    /// Per table, what was removed (or, on a dry run, would be).
    Done(Vec<Removed>),
    /// Another replica (or `prune`) holds the retention lock.
    Busy,
}

/// When rows older than `kept` began, or `None` when `kept` is zero (kept forever).
pub fn cutoff(now: DateTime<Utc>, kept: Duration) -> Option<DateTime<Utc>> {
    if kept.is_zero() {
        return None;
    }
    let kept = chrono::Duration::from_std(kept).ok()?;
    now.checked_sub_signed(kept)
}

/// Applies retention once. A dry run takes no lock and changes nothing.
pub async fn prune(database_url: &str, retention: &Retention, dry_run: bool) -> store::Result<Outcome> {
    let client = connect(database_url).await?;
    if !dry_run {
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&RETENTION_LOCK])
            .await?;
        if !row.get::<_, bool>(0) {
            return Ok(Outcome::Busy);
        }
    }
    // The lock goes with the connection, whatever happens below.
    apply(&client, retention, dry_run).await.map(Outcome::Done)
}

async fn apply(client: &tokio_postgres::Client, r: &Retention, dry_run: bool) -> store::Result<Vec<Removed>> {
    let now = Utc::now();
    let mut done = Vec::new();
    if let Some(at) = cutoff(now, r.attempts.0) {
        done.push(retention::attempts(client, at, dry_run).await?);
    }
    if let Some(at) = cutoff(now, r.deliveries.0) {
        done.push(retention::deliveries(client, at, dry_run).await?);
    }
    if let Some(at) = cutoff(now, r.conversions.0) {
        done.push(retention::conversions(client, at, dry_run).await?);
    }
    if let Some(at) = cutoff(now, r.rejected.0) {
        done.push(retention::rejected(client, at, dry_run).await?);
    }
    if let Some(at) = cutoff(now, LINKS_KEPT) {
        done.push(retention::share_links(client, at, dry_run).await?);
    }
    Ok(done)
}

/// A connection of its own: a session advisory lock taken on a pooled connection would outlive
/// this run if it were cancelled; this one ends with the run.
async fn connect(database_url: &str) -> store::Result<tokio_postgres::Client> {
    let mut pg: tokio_postgres::Config = database_url.parse()?;
    pg.application_name("cross-postback retention");
    pg.connect_timeout(Duration::from_secs(5));
    let (client, conn) = pg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "the retention connection ended");
        }
    });
    Ok(client)
}

/// The daemon's task: makes partitions ahead, then applies retention, every `retention.interval`
/// until `stop`. Failures are logged and tried again next time: nothing here is urgent.
pub async fn run(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let interval = cfg.retention.interval.0;
    loop {
        if let Err(e) = once(&cfg).await {
            tracing::warn!(error = %crate::report::one_line(&e), "data lifecycle: will try again");
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn once(cfg: &Config) -> Result<(), StoreError> {
    let client = connect(&cfg.database.url).await?;
    let made = partitions::ensure_ahead(&client).await?;
    if made > 0 {
        tracing::info!(partitions = made, "attempts: partitions made ahead");
    }
    drop(client);
    match prune(&cfg.database.url, &cfg.retention, false).await? {
        Outcome::Busy => tracing::debug!("retention runs on another replica"),
        Outcome::Done(removed) => {
            for r in removed.iter().filter(|r| r.rows > 0 || !r.partitions.is_empty()) {
                tracing::info!(
                    table = r.table,
                    rows = r.rows,
                    partitions = r.partitions.len(),
                    "retention removed"
                );
            }
        }
    }
    Ok(())
}

/// What `prune` prints: one line per table.
pub fn report(removed: &[Removed], dry_run: bool) -> String {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    for r in removed {
        let line = match r.table {
            "attempts" => format!(
                "attempts: {verb} {} partition(s), about {} rows{}\n",
                r.partitions.len(),
                r.rows,
                if r.partitions.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.partitions.join(", "))
                }
            ),
            table => format!("{table}: {verb} {} rows\n", r.rows),
        };
        out.push_str(&line);
    }
    if out.is_empty() {
        out.push_str("nothing to do: every retention is 0 (kept forever)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::{Removed, cutoff, report};

    #[test]
    fn zero_keeps_forever_and_a_span_cuts_that_far_back() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .single()
            .expect("a time");
        assert_eq!(cutoff(now, Duration::ZERO), None);
        let day = Duration::from_secs(86_400);
        assert_eq!(
            cutoff(now, day * 90),
            Utc.with_ymd_and_hms(2026, 9, 2, 12, 0, 0).single()
        );
    }

    #[test]
    fn the_report_says_per_table_what_was_or_would_be_removed() {
        let removed = vec![
            Removed {
                table: "attempts",
                rows: 12,
                partitions: vec!["attempts_20260101".into()],
            },
            Removed {
                table: "deliveries",
                rows: 3,
                partitions: vec![],
            },
        ];
        assert_eq!(
            report(&removed, true),
            "attempts: would remove 1 partition(s), about 12 rows (attempts_20260101)\ndeliveries: would remove 3 rows\n"
        );
        assert!(report(&removed, false).starts_with("attempts: removed 1 partition(s)"));
        assert!(report(&[], false).starts_with("nothing to do"));
    }
}
