//! Attempts as `cross-postback attempts` reads them: the Statistics > Cross-postbacks columns
//! (`cross_postback_stats`) and more, typed, newest first.

use deadpool_postgres::GenericClient;
use futures_util::{Stream, StreamExt};
use tokio_postgres::Row;

use super::{Result, StoreError};
use crate::output::Cell;

mod filter;

pub use filter::{Cursor, Direction, Filter, HttpClass, YEARS, storable};
use filter::{Sql, where_clause};

/// How a column's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Text read raw and masked here by [`crate::mask::mask_url`]: the rule of the view's
    /// `xpb_mask_secrets`, held to the same table of cases, but about a hundred times faster
    /// than the regular expressions in SQL (which capped the CSV export near 10,000 rows/s).
    Masked,
    Int,
    Decimal,
    Time,
}

/// One column: its name, the SQL that reads it (from `attempts a`, and `deliveries d` when it
/// names `d.`), its kind, and what it holds (for `--help`). Each reads as the
/// `cross_postback_stats` view does, secrets masked by the same rule ([`Kind::Masked`]).
pub struct Column {
    pub name: &'static str,
    sql: &'static str,
    pub kind: Kind,
    pub about: &'static str,
}

const fn col(name: &'static str, sql: &'static str, kind: Kind, about: &'static str) -> Column {
    Column {
        name,
        sql,
        kind,
        about,
    }
}

/// Every column, in the order `--wide` shows them: the statistics view's first.
pub const COLUMNS: &[Column] = &[
    col(
        "postback_url",
        "a.url",
        Kind::Masked,
        "the URL as sent, secrets masked",
    ),
    col("conversion_id", "a.conversion_id", Kind::Text, "the conversion"),
    col(
        "affiliate",
        "'(' || a.affiliate_id || ')' || coalesce(' ' || nullif(a.affiliate_name, ''), '')",
        Kind::Text,
        "(id) name",
    ),
    col(
        "offer",
        "'(' || a.offer_id || ')' || coalesce(' ' || nullif(a.offer_name, ''), '')",
        Kind::Text,
        "(id) name",
    ),
    col("goal", "a.goal", Kind::Text, "the conversion's goal"),
    col("status", "a.status", Kind::Text, "approved, pending, declined, …"),
    col("payouts", "a.payout::text", Kind::Decimal, "the payout"),
    col("revenue", "a.revenue::text", Kind::Decimal, "the revenue"),
    col("currency", "a.currency", Kind::Text, "the currency"),
    col("notice", "a.comment", Kind::Text, "the event's comment"),
    col(
        "http_code",
        "a.http_code::bigint",
        Kind::Int,
        "the response's status code",
    ),
    col("error", "a.error", Kind::Masked, "why the attempt failed"),
    col("date", "a.sent_at", Kind::Time, "when it was sent (UTC)"),
    col(
        "delivery_id",
        "a.delivery_id",
        Kind::Int,
        "the delivery (see `deliveries show`)",
    ),
    col(
        "delivery_state",
        "d.state",
        Kind::Text,
        "the delivery's state now",
    ),
    col(
        "next_attempt_at",
        "d.next_attempt_at",
        Kind::Time,
        "the delivery's next attempt",
    ),
    col("url_id", "a.url_id", Kind::Int, "the URL's id"),
    col("method", "a.method", Kind::Text, "GET or POST"),
    col(
        "attempt",
        "a.attempt::bigint",
        Kind::Int,
        "1 for the first attempt",
    ),
    col(
        "duration_ms",
        "a.duration_ms::bigint",
        Kind::Int,
        "how long it took",
    ),
    col(
        "error_code",
        "a.error_code",
        Kind::Text,
        "timeout, connect, dns, tls, http, …",
    ),
    col(
        "response_excerpt",
        "a.response_excerpt",
        Kind::Masked,
        "the response's first KiB",
    ),
];

/// The statistics view's columns: the default of CSV and JSON.
pub const STATS_COLUMNS: &[&str] = &[
    "postback_url",
    "conversion_id",
    "affiliate",
    "offer",
    "goal",
    "status",
    "payouts",
    "revenue",
    "currency",
    "notice",
    "http_code",
    "error",
    "date",
];

/// The table's default: what fits 120 characters (see [`table_width`]).
pub const TABLE_COLUMNS: &[&str] = &[
    "date",
    "conversion_id",
    "status",
    "http_code",
    "error_code",
    "postback_url",
];

/// The widest a table cell of a column may be, unless `--wide`.
pub fn table_width(column: &str) -> Option<usize> {
    match column {
        "postback_url" => Some(40),
        "conversion_id" | "affiliate" | "offer" | "goal" | "notice" => Some(16),
        "error" | "response_excerpt" => Some(32),
        _ => None,
    }
}

/// The names of every column.
pub fn names() -> impl Iterator<Item = &'static str> {
    COLUMNS.iter().map(|c| c.name)
}

fn column(name: &str) -> std::result::Result<&'static Column, String> {
    COLUMNS.iter().find(|c| c.name == name).ok_or_else(|| {
        format!(
            "unknown column {name:?}; known: {}",
            names().collect::<Vec<_>>().join(", ")
        )
    })
}

/// Checks a column selection against the known names.
pub fn check_columns(columns: &[String]) -> std::result::Result<(), String> {
    columns.iter().try_for_each(|c| column(c).map(|_| ()))
}

/// The `SELECT` of the chosen columns, then `a.sent_at, a.id` (the keyset position), with
/// the delivery joined only when a column or the filter reads it.
fn select(chosen: &[&Column], f: &Filter, cursor: Option<&Cursor>, sql: &mut Sql) -> String {
    let list: Vec<&str> = chosen.iter().map(|c| c.sql).collect();
    let join = if f.needs_delivery() || chosen.iter().any(|c| c.sql.contains("d.")) {
        "JOIN deliveries d ON d.id = a.delivery_id"
    } else {
        ""
    };
    let (order, _) = order(cursor);
    format!(
        "SELECT {}, a.sent_at, a.id FROM attempts a {join} WHERE {} ORDER BY {order}",
        list.join(", "),
        where_clause(f, cursor, sql)
    )
}

/// Newest first, or oldest first to walk back from a `Newer` cursor (the page is then
/// reversed); the second value says whether it was reversed.
fn order(cursor: Option<&Cursor>) -> (&'static str, bool) {
    match cursor.map(|c| c.direction) {
        Some(Direction::Newer) => ("a.sent_at ASC, a.id ASC", true),
        _ => ("a.sent_at DESC, a.id DESC", false),
    }
}

fn chosen(columns: &[String]) -> Result<Vec<&'static Column>> {
    columns
        .iter()
        .map(|c| column(c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(StoreError::Invalid)
}

fn cells(row: &Row, chosen: &[&Column]) -> Vec<Cell> {
    chosen
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            Kind::Text => Cell::opt_text(row.get(i)),
            Kind::Masked => {
                Cell::opt_text(row.get::<_, Option<String>>(i).map(|t| crate::mask::mask_url(&t)))
            }
            Kind::Decimal => row.get::<_, Option<String>>(i).map_or(Cell::Null, Cell::Decimal),
            Kind::Int => row.get::<_, Option<i64>>(i).map_or(Cell::Null, Cell::Int),
            Kind::Time => Cell::opt_time(row.get(i)),
        })
        .collect()
}

/// The keyset position of a row read by [`select`].
fn position(row: &Row, chosen: usize, direction: Direction) -> Cursor {
    Cursor {
        direction,
        sent_at: row.get(chosen),
        id: row.get(chosen + 1),
    }
}

/// Reads up to `limit` attempts, newest first, one typed cell per column (the CLI's read).
pub async fn attempts(
    client: &impl GenericClient,
    columns: &[String],
    f: &Filter,
    limit: i64,
) -> Result<Vec<Vec<Cell>>> {
    let chosen = chosen(columns)?;
    let mut sql = Sql::default();
    let text = format!("{} LIMIT {}", select(&chosen, f, None, &mut sql), limit.max(0));
    let rows = client.query(&text, &sql.refs()).await?;
    Ok(rows.iter().map(|r| cells(r, &chosen)).collect())
}

/// One page of the table, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub rows: Vec<Vec<Cell>>,
    /// Where the older rows go on, if there are any.
    pub next_cursor: Option<String>,
    /// Where the newer rows are, when this page is not the first.
    pub prev_cursor: Option<String>,
}

/// A page of at most `limit` rows from `cursor` (the newest rows without one), by keyset:
/// `(sent_at, id) < (…)` on an index that yields rows in that order, never OFFSET. Rows
/// inserted meanwhile never shift a page: a walk with `next_cursor` sees each older row once.
pub async fn page(
    client: &impl GenericClient,
    f: &Filter,
    columns: &[String],
    limit: usize,
    cursor: Option<&Cursor>,
) -> Result<Page> {
    let chosen = chosen(columns)?;
    let mut sql = Sql::default();
    let text = format!("{} LIMIT {}", select(&chosen, f, cursor, &mut sql), limit + 1);
    let mut rows = client.query(&text, &sql.refs()).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let (_, reversed) = order(cursor);
    if reversed {
        rows.reverse();
    }
    let n = chosen.len();
    let first = rows.first().map(|r| position(r, n, Direction::Newer).encode());
    let last = rows.last().map(|r| position(r, n, Direction::Older).encode());
    let (next_cursor, prev_cursor) = match cursor {
        None => (last.filter(|_| more), None),
        // Came from newer rows: there are newer ones, and older ones beyond if more were read.
        Some(c) if c.direction == Direction::Older => (last.filter(|_| more), first),
        // Walked back: the older rows are where we came from; newer ones if more were read.
        Some(_) => (last, first.filter(|_| more)),
    };
    Ok(Page {
        rows: rows.iter().map(|r| cells(r, &chosen)).collect(),
        next_cursor,
        prev_cursor,
    })
}

/// The statement [`page`] runs and Postgres's `EXPLAIN (ANALYZE, BUFFERS)` of it, run with
/// the same parameters (the stats bench shows the plan of its slowest page).
pub async fn explain_page(
    client: &impl GenericClient,
    f: &Filter,
    columns: &[String],
    limit: usize,
    cursor: Option<&Cursor>,
) -> Result<(String, String)> {
    let chosen = chosen(columns)?;
    let mut sql = Sql::default();
    let text = format!("{} LIMIT {}", select(&chosen, f, cursor, &mut sql), limit + 1);
    let explain = format!("EXPLAIN (ANALYZE, BUFFERS) {text}");
    let rows = client.query(&explain, &sql.refs()).await?;
    let plan: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok((text, plan.join("\n")))
}

/// Every matching attempt, newest first, as a stream that owns its connection: the driver
/// reads the server's rows only as fast as the stream is polled, so memory stays flat
/// however many rows match (the CSV export).
pub async fn stream(
    client: deadpool_postgres::Object,
    f: &Filter,
    columns: &[String],
) -> Result<impl Stream<Item = Result<Vec<Cell>>> + Send + 'static> {
    let chosen = chosen(columns)?;
    let mut sql = Sql::default();
    let text = select(&chosen, f, None, &mut sql);
    let rows = client.query_raw(&text, sql.refs()).await?;
    let rows = Box::pin(rows);
    Ok(futures_util::stream::unfold(
        (client, rows, chosen),
        |(client, mut rows, chosen)| async move {
            let next = rows.next().await?;
            let item = next.map(|r| cells(&r, &chosen)).map_err(StoreError::from);
            Some((item, (client, rows, chosen)))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_a_known_column_and_names_are_unique() {
        for name in STATS_COLUMNS.iter().chain(TABLE_COLUMNS) {
            assert!(column(name).is_ok(), "{name}");
        }
        let mut all: Vec<&str> = names().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), COLUMNS.len());
        assert!(check_columns(&["nope".to_owned()]).is_err());
    }

    /// Secrets are masked in Rust, by the rule the view's SQL masker follows: every column that
    /// reads a URL, an error or a response does so raw and masks it (never unmasked, never with
    /// the slow SQL regular expressions).
    #[test]
    fn raw_texts_that_may_hold_secrets_are_masked_here() {
        for name in ["postback_url", "error", "response_excerpt"] {
            let c = column(name).expect("known");
            assert_eq!(c.kind, Kind::Masked, "{name}");
            assert!(!c.sql.contains("xpb_mask_secrets"), "{name}");
        }
        let others = COLUMNS.iter().filter(|c| c.kind != Kind::Masked);
        for c in others {
            for raw in ["a.url", "a.error", "a.response_excerpt"] {
                let mut words = c
                    .sql
                    .split(|ch: char| !(ch.is_alphanumeric() || "_.".contains(ch)));
                assert!(!words.any(|w| w == raw), "{} reads {raw} unmasked", c.name);
            }
        }
    }

    /// The default table's widest line: each column at its limit (or its widest value).
    #[test]
    fn the_default_table_fits_120_characters() {
        let widest = |name: &str| match name {
            "date" => "2026-12-01 16:30:05 UTC".len(),
            "status" => "not_found".len(),
            "http_code" => "http_code".len(),
            "error_code" => "error_code".len(),
            other => table_width(other).unwrap_or(usize::MAX),
        };
        let total: usize =
            TABLE_COLUMNS.iter().map(|c| widest(c)).sum::<usize>() + 2 * (TABLE_COLUMNS.len() - 1);
        assert!(total <= 120, "{total}");
    }
}
