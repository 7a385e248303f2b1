//! `GET /api/v1/attempts`: the table's rows by keyset pages, or every matching row as CSV.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::{IntoParams, ToSchema};

use super::super::error::ApiError;
use super::super::query::{self, Format, MAX_LIMIT};
use super::super::state::AppState;
use crate::output::Cell;
use crate::store::stats;

/// The query parameters, as documented (the handler parses the raw query itself, so every
/// spelling and every error is handled by [`query::parse`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct AttemptsParams {
    /// From this time, inclusive: RFC 3339, `YYYY-MM-DD` (UTC) or a span back from now (`24h`).
    from: Option<String>,
    /// Before this time (same forms as `from`).
    to: Option<String>,
    /// Only these offers (repeatable, or a comma list).
    #[param(explode = true, style = Form)]
    offer_id: Option<Vec<String>>,
    /// Only these affiliates (repeatable, or a comma list).
    #[param(explode = true, style = Form)]
    affiliate_id: Option<Vec<String>>,
    /// Only this conversion.
    conversion_id: Option<String>,
    /// Only this goal.
    goal: Option<String>,
    /// Only this conversion status.
    #[param(pattern = "^ *(approved|pending|declined|hold|not_found|1|2|3)? *$")]
    status: Option<String>,
    /// Only these response classes (`2xx`, `3xx`, `4xx`, `5xx`, `none`: no response).
    #[param(explode = true, style = Form)]
    http_class: Option<Vec<String>>,
    /// Only this error code (timeout, connect, dns, tls, http, blocked, render, redirects).
    error_code: Option<String>,
    /// Only deliveries now in this state (pending, delivered, failed, superseded, cancelled).
    state: Option<String>,
    /// Only this URL.
    #[param(schema_with = url_id_schema)]
    url_id: Option<i64>,
    /// The columns, comma-separated, in order (default: the statistics view's).
    columns: Option<String>,
    /// Rows per page, 1 to 1000 (default 100).
    #[param(schema_with = limit_schema)]
    limit: Option<i64>,
    /// `next_cursor` or `prev_cursor` of a previous page.
    cursor: Option<String>,
    /// `csv` streams every matching row as CSV (as does `Accept: text/csv`).
    #[param(pattern = "^ *(json|csv)? *$")]
    format: Option<String>,
}

/// An integer parameter as the parser takes it: an integer in `min..=max`, or empty, which is no
/// filter (what an HTML form sends for an empty field; the page's addresses work in the API).
/// Spaces around a value are dropped, so the text form allows them.
fn integer_or_empty(min: Option<i64>, max: Option<i64>) -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(min)
                    .maximum(max),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^ *(-?[0-9]+)? *$")),
            )
            .build(),
    )
}

fn url_id_schema() -> Schema {
    integer_or_empty(None, None)
}

fn limit_schema() -> Schema {
    integer_or_empty(Some(1), Some(MAX_LIMIT as i64))
}

/// One page of rows, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct AttemptsPage {
    /// One object per attempt: column name → value (numbers for ids, codes and money; RFC 3339
    /// for times; null when empty).
    #[schema(value_type = Vec<Object>)]
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The next (older) page, or null on the last.
    next_cursor: Option<String>,
    /// The previous (newer) page, or null on the first.
    prev_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/attempts",
    tag = "attempts",
    params(AttemptsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of rows (or, with format=csv, every row as CSV)",
         content(
             (AttemptsPage = "application/json"),
             (String = "text/csv")
         )),
        (status = 400, description = "A bad parameter, named", body = super::doc::ErrorBody),
        (status = 401, description = "No valid token", body = super::doc::ErrorBody),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let req = query::parse(raw.as_deref().unwrap_or(""), Utc::now())?;
    let columns = req
        .columns
        .clone()
        .unwrap_or_else(|| stats::STATS_COLUMNS.iter().map(|c| (*c).to_owned()).collect());
    if wants_csv(req.format, &headers) {
        return super::super::csv::response(&state, &req.filter, &columns, "attempts.csv").await;
    }
    let client = state.pool.get().await?;
    let limit = req.limit_or_default(MAX_LIMIT);
    let page = stats::page(&client, &req.filter, &columns, limit, req.cursor.as_ref()).await?;
    Ok(Json(AttemptsPage {
        rows: page.rows.iter().map(|r| object(&columns, r)).collect(),
        next_cursor: page.next_cursor,
        prev_cursor: page.prev_cursor,
    })
    .into_response())
}

/// `format=csv`, or no `format` and an `Accept` that names `text/csv`.
fn wants_csv(format: Option<Format>, headers: &HeaderMap) -> bool {
    match format {
        Some(f) => f == Format::Csv,
        None => headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().starts_with("text/csv"))),
    }
}

/// A row as a JSON object.
pub(crate) fn object(columns: &[String], row: &[Cell]) -> serde_json::Map<String, serde_json::Value> {
    columns
        .iter()
        .zip(row)
        .map(|(c, v)| (c.clone(), v.to_json()))
        .collect()
}
