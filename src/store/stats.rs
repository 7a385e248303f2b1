//! Attempts as `cross-postback attempts` reads them: the Statistics > Cross-postbacks columns
//! (`cross_postback_stats`) and more, typed, newest first.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{Result, StoreError};
use crate::output::Cell;

/// How a column's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Decimal,
    Time,
}

/// One column: its name, the SQL that reads it, its kind, and what it holds (for `--help`).
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
        "v.postback_url",
        Kind::Text,
        "the URL as sent, secrets masked",
    ),
    col("conversion_id", "v.conversion_id", Kind::Text, "the conversion"),
    col("affiliate", "v.affiliate", Kind::Text, "(id) name"),
    col("offer", "v.offer", Kind::Text, "(id) name"),
    col("goal", "v.goal", Kind::Text, "the conversion's goal"),
    col("status", "v.status", Kind::Text, "approved, pending, declined, …"),
    col("payouts", "v.payouts::text", Kind::Decimal, "the payout"),
    col("revenue", "v.revenue::text", Kind::Decimal, "the revenue"),
    col("currency", "v.currency", Kind::Text, "the currency"),
    col("notice", "v.notice", Kind::Text, "the event's comment"),
    col(
        "http_code",
        "v.http_code::bigint",
        Kind::Int,
        "the response's status code",
    ),
    col("error", "v.error", Kind::Text, "why the attempt failed"),
    col("date", "v.date", Kind::Time, "when it was sent (UTC)"),
    col(
        "delivery_id",
        "v.delivery_id",
        Kind::Int,
        "the delivery (see `deliveries show`)",
    ),
    col(
        "delivery_state",
        "v.delivery_state",
        Kind::Text,
        "the delivery's state now",
    ),
    col(
        "next_attempt_at",
        "d.next_attempt_at",
        Kind::Time,
        "the delivery's next attempt",
    ),
    col("url_id", "v.url_id", Kind::Int, "the URL's id"),
    col("method", "a.method", Kind::Text, "GET or POST"),
    col(
        "attempt",
        "v.attempt::bigint",
        Kind::Int,
        "1 for the first attempt",
    ),
    col(
        "duration_ms",
        "v.duration_ms::bigint",
        Kind::Int,
        "how long it took",
    ),
    col(
        "error_code",
        "v.error_code",
        Kind::Text,
        "timeout, connect, dns, tls, http, …",
    ),
    col(
        "response_excerpt",
        "xpb_mask_secrets(a.response_excerpt)",
        Kind::Text,
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

/// A response's status class, the filter of `--http-class`: `2xx`, …, or `none` (no response).
pub type HttpClass = String;

/// Filters of `cross-postback attempts`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub offer: Option<String>,
    pub affiliate: Option<String>,
    pub conversion: Option<String>,
    pub status: Option<String>,
    pub failed: bool,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Any of these classes; `None` for all.
    pub http_classes: Option<Vec<HttpClass>>,
    pub limit: i64,
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

/// Reads attempts, newest first, one typed cell per column.
pub async fn attempts(client: &impl GenericClient, columns: &[String], f: &Filter) -> Result<Vec<Vec<Cell>>> {
    let chosen = columns
        .iter()
        .map(|c| column(c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(StoreError::Invalid)?;
    let select: Vec<&str> = chosen.iter().map(|c| c.sql).collect();
    let sql = format!(
        "SELECT {} FROM xpb_attempts_view v
         JOIN attempts a ON a.id = v.id
         JOIN deliveries d ON d.id = v.delivery_id
         WHERE ($1::text IS NULL OR v.offer_id = $1)
           AND ($2::text IS NULL OR v.affiliate_id = $2)
           AND ($3::text IS NULL OR v.conversion_id = $3)
           AND ($4::text IS NULL OR v.status = $4)
           AND (NOT $5 OR v.delivery_state = 'failed')
           AND ($6::timestamptz IS NULL OR v.date >= $6)
           AND ($7::timestamptz IS NULL OR v.date < $7)
           AND ($9::text[] IS NULL OR coalesce((v.http_code / 100)::text || 'xx', 'none') = ANY($9))
         ORDER BY v.date DESC, v.id DESC
         LIMIT $8",
        select.join(", ")
    );
    let rows = client
        .query(
            &sql,
            &[
                &f.offer,
                &f.affiliate,
                &f.conversion,
                &f.status,
                &f.failed,
                &f.since,
                &f.until,
                &f.limit,
                &f.http_classes,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            chosen
                .iter()
                .enumerate()
                .map(|(i, c)| match c.kind {
                    Kind::Text => Cell::opt_text(row.get(i)),
                    Kind::Decimal => row.get::<_, Option<String>>(i).map_or(Cell::Null, Cell::Decimal),
                    Kind::Int => row.get::<_, Option<i64>>(i).map_or(Cell::Null, Cell::Int),
                    Kind::Time => Cell::opt_time(row.get(i)),
                })
                .collect()
        })
        .collect())
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
