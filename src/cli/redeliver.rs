//! `cross-postback redeliver`: send deliveries again, as new attempts with the same
//! idempotency key. The running daemon's poller sends them (within `delivery.poll_interval`).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{ArgGroup, Args};

use crate::config::Config;
use crate::store::{self, redeliver};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["delivery", "failed"])))]
pub struct RedeliverArgs {
    /// The delivery to send again (delivered, failed or cancelled; not pending).
    #[arg(long, value_name = "ID")]
    pub delivery: Option<i64>,
    /// Send it even though a newer status to the same URL superseded it.
    #[arg(long, conflicts_with = "failed")]
    pub force: bool,
    /// Every delivery in state `failed`, skipping those that would be refused.
    #[arg(long)]
    pub failed: bool,
    /// With --failed: only this offer's deliveries.
    #[arg(long, value_name = "ID", conflicts_with = "delivery")]
    pub offer: Option<String>,
    /// With --failed: only deliveries that failed since T (RFC 3339, YYYY-MM-DD or a span like 2h).
    #[arg(long, value_name = "T", conflicts_with = "delivery")]
    pub since: Option<String>,
}

pub async fn run(args: RedeliverArgs, cfg: &Config) -> anyhow::Result<()> {
    let since = args
        .since
        .as_deref()
        .map(|t| super::parse_time(t, Utc::now()))
        .transpose()
        .context("--since")?;
    let pool = store::pool(&cfg.database.url, 2)?;
    let mut client = pool.get().await.context("connecting to the database")?;
    let Some(id) = args.delivery else {
        let batch = redeliver::failed(&mut client, args.offer.as_deref(), since).await?;
        println!("{}", summary(&batch));
        return Ok(());
    };
    match redeliver::one(&mut client, id, args.force).await? {
        Ok(queued) => println!(
            "delivery {id} queued to be sent again as attempt {}",
            queued.next_attempt
        ),
        Err(refusal) => bail!("delivery {id} not sent again: {refusal}"),
    }
    Ok(())
}

/// One line: how many were queued, how many skipped and why.
fn summary(batch: &redeliver::Batch) -> String {
    let n = batch.queued.len();
    let mut line = format!(
        "queued {n} failed {} to be sent again",
        if n == 1 { "delivery" } else { "deliveries" }
    );
    if !batch.skipped.is_empty() {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, refusal) in &batch.skipped {
            *kinds.entry(refusal.kind()).or_default() += 1;
        }
        let why: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        line += &format!("; skipped {} ({})", batch.skipped.len(), why.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redeliver::{Batch, Queued, Refusal};

    #[test]
    fn summaries() {
        let queued = |id| Queued { id, next_attempt: 2 };
        assert_eq!(
            summary(&Batch::default()),
            "queued 0 failed deliveries to be sent again"
        );
        let batch = Batch {
            queued: vec![queued(1)],
            skipped: vec![
                (2, Refusal::Superseded(Some(5))),
                (3, Refusal::UrlDisabled(1)),
                (4, Refusal::Superseded(Some(6))),
            ],
        };
        assert_eq!(
            summary(&batch),
            "queued 1 failed delivery to be sent again; skipped 3 (1 URL disabled, 2 superseded)"
        );
    }
}
