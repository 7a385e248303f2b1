//! The Statistics > Cross-postbacks table (`cross_postback_stats`) as the CLI reads it.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{Result, StoreError};

/// The view's columns in order: the default selection.
pub const DEFAULT_COLUMNS: &[&str] = &[
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

/// Columns shown on request only.
pub const EXTRA_COLUMNS: &[&str] = &["delivery_id", "url_id", "attempt", "duration_ms", "error_code"];

/// Columns whose values are whole numbers (for JSON output).
pub const NUMERIC_COLUMNS: &[&str] = &["http_code", "delivery_id", "url_id", "attempt", "duration_ms"];

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
    pub limit: i64,
}

/// Checks a column selection against the known names.
pub fn check_columns(columns: &[String]) -> std::result::Result<(), String> {
    for c in columns {
        if !DEFAULT_COLUMNS.contains(&c.as_str()) && !EXTRA_COLUMNS.contains(&c.as_str()) {
            return Err(format!(
                "unknown column {c:?}; known: {}, {}",
                DEFAULT_COLUMNS.join(", "),
                EXTRA_COLUMNS.join(", ")
            ));
        }
    }
    Ok(())
}

/// Reads attempts, newest first, as text cells (`None` for SQL NULL).
pub async fn attempts(
    client: &impl GenericClient,
    columns: &[String],
    f: &Filter,
) -> Result<Vec<Vec<Option<String>>>> {
    check_columns(columns).map_err(StoreError::Invalid)?;
    let select: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            "date" => "to_char(date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')".to_owned(),
            other => format!("{other}::text"),
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM xpb_attempts_view
         WHERE ($1::text IS NULL OR offer_id = $1)
           AND ($2::text IS NULL OR affiliate_id = $2)
           AND ($3::text IS NULL OR conversion_id = $3)
           AND ($4::text IS NULL OR status = $4)
           AND (NOT $5 OR delivery_state = 'failed')
           AND ($6::timestamptz IS NULL OR date >= $6)
           AND ($7::timestamptz IS NULL OR date < $7)
         ORDER BY date DESC, id DESC
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
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (0..columns.len())
                .map(|i| row.get::<_, Option<String>>(i))
                .collect()
        })
        .collect())
}
