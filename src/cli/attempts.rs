//! `cross-postback attempts`: attempts as a table (fits 120 characters unless `--wide`), CSV or
//! JSON.

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, ValueEnum};

use super::{Format, table};
use crate::config::{Config, Dur};
use crate::event::Status;
use crate::store::{self, stats};

/// The column list shown by `attempts --help`.
const COLUMNS_HELP: &str = "Columns (--columns): postback_url, conversion_id, affiliate, offer, goal, status, \
payouts, revenue, currency, notice, http_code, error, date (the statistics view's, the default of CSV and \
JSON), delivery_id, delivery_state, next_attempt_at, url_id, method, attempt, duration_ms, error_code, \
response_excerpt. The table shows date, conversion_id, status, http_code, error_code, postback_url \
by default; --wide shows every column, uncut. Times are UTC.";

#[derive(Debug, Args)]
#[command(after_help = COLUMNS_HELP)]
pub struct AttemptsArgs {
    /// Only this offer.
    #[arg(long, value_name = "ID")]
    pub offer: Option<String>,
    /// Only this affiliate.
    #[arg(long, value_name = "ID")]
    pub affiliate: Option<String>,
    /// Only this conversion.
    #[arg(long, value_name = "ID")]
    pub conversion: Option<String>,
    /// Only this conversion status: approved, pending, declined, hold or not_found.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<Status>,
    /// Only deliveries in state `failed`.
    #[arg(long)]
    pub failed: bool,
    /// Only responses of these classes, comma-separated (no response at all is `none`).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "CLASSES")]
    pub http_class: Option<Vec<HttpClass>>,
    /// From this time: RFC 3339, YYYY-MM-DD (UTC) or a span back from now like 2h.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Columns to show, comma-separated, in this order (the list is below).
    #[arg(long, value_delimiter = ',', value_name = "NAMES", conflicts_with = "wide")]
    pub columns: Option<Vec<String>>,
    /// Every column, cells uncut.
    #[arg(long)]
    pub wide: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Most attempts shown, newest first.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: i64,
}

/// A response's status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HttpClass {
    #[value(name = "2xx", help = "2xx: success")]
    Success,
    #[value(name = "3xx", help = "3xx: a redirect not followed")]
    Redirect,
    #[value(name = "4xx", help = "4xx: the receiver refused")]
    Client,
    #[value(name = "5xx", help = "5xx: the receiver failed")]
    Server,
    #[value(
        name = "none",
        help = "no response (timeout, connect, DNS, TLS, blocked, render)"
    )]
    None,
}

impl HttpClass {
    fn as_str(self) -> &'static str {
        match self {
            HttpClass::Success => "2xx",
            HttpClass::Redirect => "3xx",
            HttpClass::Client => "4xx",
            HttpClass::Server => "5xx",
            HttpClass::None => "none",
        }
    }
}

/// A conversion status as `--status` takes it (the words events use, or their codes).
pub fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(text)
        .ok_or_else(|| "not a status: use approved, pending, declined, hold or not_found".to_owned())
}

pub async fn run(args: AttemptsArgs, cfg: &Config) -> anyhow::Result<()> {
    let columns: Vec<String> = match (&args.columns, args.wide, args.format) {
        (Some(c), _, _) => c.clone(),
        (None, true, _) => stats::names().map(str::to_owned).collect(),
        (None, false, Format::Table) => own(stats::TABLE_COLUMNS),
        (None, false, _) => own(stats::STATS_COLUMNS),
    };
    stats::check_columns(&columns).map_err(|e| anyhow::anyhow!("--columns: {e}"))?;
    let now = Utc::now();
    let time = |t: &Option<String>, flag: &str| {
        t.as_deref()
            .map(|t| parse_time(t, now))
            .transpose()
            .context(flag.to_owned())
    };
    let filter = stats::Filter {
        offer_ids: args.offer.map(|o| vec![o]),
        affiliate_ids: args.affiliate.map(|a| vec![a]),
        conversion_id: args.conversion,
        status: args.status.map(|s| s.as_str().to_owned()),
        state: args.failed.then(|| "failed".to_owned()),
        from: time(&args.since, "--since")?,
        to: time(&args.until, "--until")?,
        http_classes: args.http_class.map(|classes| {
            classes
                .iter()
                .filter_map(|c| stats::HttpClass::parse(c.as_str()))
                .collect()
        }),
        ..stats::Filter::default()
    };
    let pool = store::pool(&cfg.database.url, 2)?;
    let client = pool.get().await.context("connecting to the database")?;
    let rows = stats::attempts(&client, &columns, &filter, args.limit).await?;
    let header: Vec<&str> = columns.iter().map(String::as_str).collect();
    if args.wide {
        table::print(args.format, &header, &rows);
    } else {
        table::print_narrow(args.format, &header, &rows, &stats::table_width);
    }
    Ok(())
}

fn own(names: &[&str]) -> Vec<String> {
    names.iter().map(|c| (*c).to_owned()).collect()
}

/// RFC 3339, `YYYY-MM-DD` (UTC midnight), or a span back from `now` like `2h`.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = crate::event::parse_timestamp(text) {
        return Ok(t);
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if let Ok(span) = text.parse::<Dur>() {
        // A span longer than the calendar reaches back before any time: not a time either.
        if let Some(t) = chrono::Duration::from_std(span.0)
            .ok()
            .and_then(|s| now.checked_sub_signed(s))
        {
            return Ok(t);
        }
    }
    bail!("{text:?} is not a time: use RFC 3339, YYYY-MM-DD or a span like 2h")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help's list of columns is the store's list, in order.
    #[test]
    fn the_help_lists_every_column() {
        let mut at = 0;
        for name in stats::names() {
            let found = COLUMNS_HELP[at..]
                .find(name)
                .unwrap_or_else(|| panic!("{name} missing from the help, or out of order"));
            at += found + name.len();
        }
    }
}
