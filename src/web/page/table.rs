//! `/`: the table of attempts, newest first, with filters, "Edit columns", keyset paging,
//! "Export CSV" and "Get link". The whole view is in the address, with the API's parameter
//! names, so a bookmark is a saved view.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::view::{self, CellView, ColumnChoice, Pairs};
use super::{admin, internal, render};
use crate::event::Status;
use crate::output::Cell;
use crate::store::stats;
use crate::web::query;
use crate::web::state::AppState;

/// The most rows a page shows.
pub const MAX_PAGE: usize = 500;
/// Rows a page shows unless the address says otherwise.
pub const DEFAULT_PAGE: usize = 50;
/// The time range of a view that names none.
pub const DEFAULT_FROM: &str = "24h";

/// The filter form's values, as given, so the form shows what was typed.
pub struct FilterForm {
    pub ids: bool,
    pub from: String,
    pub to: String,
    pub offer_id: String,
    pub affiliate_id: String,
    pub conversion_id: String,
    pub goal: String,
    pub status_options: Vec<(String, bool)>,
    pub class_options: Vec<(String, bool)>,
    pub error_options: Vec<(String, bool)>,
    pub state_options: Vec<(String, bool)>,
    pub url_id: String,
    pub limit: String,
    pub columns: String,
    pub reset: String,
}

const CLASSES: &[&str] = &["", "2xx", "3xx", "4xx", "5xx", "none"];
const STATES: &[&str] = &["", "pending", "delivered", "failed", "superseded", "cancelled"];

/// The status filter's choices: "any", then the event's statuses, so the form offers exactly
/// what the parser takes.
fn statuses() -> Vec<&'static str> {
    std::iter::once("")
        .chain(Status::ALL.iter().map(|s| s.as_str()))
        .collect()
}

/// The error filter's choices: "any", then the stored error codes.
fn errors() -> Vec<&'static str> {
    std::iter::once("")
        .chain(query::ERROR_CODES.iter().copied())
        .collect()
}

fn options(list: &[&str], chosen: Option<&str>) -> Vec<(String, bool)> {
    list.iter()
        .map(|o| ((*o).to_owned(), chosen.unwrap_or("") == *o))
        .collect()
}

impl FilterForm {
    /// The form of a view; `ids` shows the id, class, error, state and URL filters (the admin
    /// page; a partner's scope fixes the ids).
    pub fn new(
        q: &[(String, String)],
        ids: bool,
        columns: &[String],
        limit: usize,
        reset: &str,
    ) -> FilterForm {
        let text = |n: &str| view::value(q, n).unwrap_or("").to_owned();
        FilterForm {
            ids,
            from: text("from"),
            to: text("to"),
            offer_id: view::values(q, "offer_id").join(", "),
            affiliate_id: view::values(q, "affiliate_id").join(", "),
            conversion_id: text("conversion_id"),
            goal: text("goal"),
            status_options: options(&statuses(), view::value(q, "status")),
            class_options: options(CLASSES, view::value(q, "http_class")),
            error_options: options(&errors(), view::value(q, "error_code")),
            state_options: options(STATES, view::value(q, "state")),
            url_id: text("url_id"),
            limit: limit.to_string(),
            columns: columns.join(","),
            reset: reset.to_owned(),
        }
    }
}

/// The "Edit columns" form: the hidden fields that keep the view, and one row per column.
pub struct ColumnsForm {
    pub open: bool,
    pub action: String,
    pub keep: Vec<(String, String)>,
    pub all: Vec<ColumnChoice>,
}

pub struct RowView {
    pub cells: Vec<CellView>,
    pub class: &'static str,
    pub link: Option<String>,
}

pub struct ColumnHead {
    pub label: String,
}

/// The rows and the pager of a view.
pub struct TableView {
    pub columns: Vec<ColumnHead>,
    pub rows: Vec<RowView>,
    pub next: Option<String>,
    pub prev: Option<String>,
}

#[derive(Template)]
#[template(path = "table.html")]
struct Page {
    csrf: String,
    who: String,
    error: Option<String>,
    f: FilterForm,
    cols: ColumnsForm,
    table: TableView,
    export: String,
    get_link: String,
}

/// The view's pairs with the page's defaults filled in: the last 24 hours when no time is
/// given, id lists split into repeated parameters.
pub fn normalised(raw: Option<&str>) -> Pairs {
    let given = view::pairs(raw.unwrap_or(""));
    let mut out: Pairs = Vec::new();
    for (k, v) in given {
        if matches!(k.as_str(), "offer_id" | "affiliate_id") {
            out.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| (k.clone(), s.to_owned())),
            );
        } else if !v.trim().is_empty() {
            out.push((k, v.trim().to_owned()));
        }
    }
    if view::value(&out, "from").is_none() && view::value(&out, "to").is_none() {
        out.insert(0, ("from".into(), DEFAULT_FROM.into()));
    }
    out
}

/// The page's request: the API's parse of the view, the page's own bounds and defaults.
pub struct Parsed {
    pub filter: stats::Filter,
    pub columns: Vec<String>,
    pub limit: usize,
    pub cursor: Option<stats::Cursor>,
}

pub fn parse(pairs: &[(String, String)]) -> Result<Parsed, String> {
    let q = view::address("", pairs, &[], &[]);
    let req = query::parse(q.trim_start_matches('?'), chrono::Utc::now()).map_err(|e| e.to_string())?;
    let columns = req
        .columns
        .unwrap_or_else(|| stats::STATS_COLUMNS.iter().map(|c| (*c).to_owned()).collect());
    Ok(Parsed {
        filter: req.filter,
        columns,
        limit: req.limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE),
        cursor: req.cursor,
    })
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let s = match admin(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let pairs = normalised(raw.as_deref());
    let (parsed, error) = match parse(&pairs) {
        Ok(p) => (p, None),
        Err(e) => match parse(&normalised(None)) {
            Ok(p) => (p, Some(e)),
            Err(e) => return internal(e),
        },
    };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    // The delivery id rides along (not shown unless chosen) so that each row can open its
    // delivery.
    let mut read = parsed.columns.clone();
    read.push("delivery_id".into());
    let page = match stats::page(
        &client,
        &parsed.filter,
        &read,
        parsed.limit,
        parsed.cursor.as_ref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let table = table_view(&parsed.columns, page, "/", &pairs, |cells| match cells.last() {
        Some(Cell::Int(id)) => Some(format!("/deliveries/{id}")),
        _ => None,
    });
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let known: Vec<&str> = stats::names().collect();
    let page = Page {
        csrf: s.csrf,
        who: s.token_name,
        error,
        f: FilterForm::new(&pairs, true, &parsed.columns, parsed.limit, "/"),
        cols: columns_form("/columns", &pairs, &parsed.columns, &known),
        table,
        export: view::address("/export.csv", &pairs, &["cursor", "limit"], &[]),
        get_link: view::address("/links/new", &pairs, &["cursor", "limit"], &[]),
    };
    render(status, &page)
}

/// The rows of a page as the template shows them, with next/previous links that keep the
/// view (`path` and `pairs`) and change only the cursor.
pub fn table_view(
    columns: &[String],
    page: stats::Page,
    path: &str,
    pairs: &[(String, String)],
    link: impl Fn(&[Cell]) -> Option<String>,
) -> TableView {
    let code_at = columns.iter().position(|c| c == "http_code");
    let rows = page
        .rows
        .iter()
        .map(|cells| RowView {
            cells: columns
                .iter()
                .zip(cells)
                .map(|(c, v)| view::cell_view(c, v))
                .collect(),
            class: view::row_class(code_at.and_then(|i| cells.get(i))),
            link: link(cells),
        })
        .collect();
    let at = |c: &String| view::address(path, pairs, &[], &[("cursor", c)]);
    TableView {
        columns: columns.iter().map(|c| ColumnHead { label: c.clone() }).collect(),
        rows,
        next: page.next_cursor.as_ref().map(at),
        prev: page.prev_cursor.as_ref().map(at),
    }
}

pub fn columns_form(
    action: &str,
    pairs: &[(String, String)],
    shown: &[String],
    known: &[&str],
) -> ColumnsForm {
    ColumnsForm {
        open: false,
        action: action.to_owned(),
        keep: pairs
            .iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "columns" | "cursor" | "show" | "csrf") && !k.starts_with("pos_")
            })
            .cloned()
            .collect(),
        all: view::column_choices(shown, known),
    }
}

/// `/columns`: the "Edit columns" form's answer, turned into the view's `columns` and sent
/// back to the table (a GET, so it works without a script and changes nothing stored).
pub async fn edit_columns(RawQuery(raw): RawQuery) -> Response {
    let pairs = view::pairs(raw.as_deref().unwrap_or(""));
    let known: Vec<&str> = stats::names().collect();
    to_table("/", &pairs, &known)
}

/// A redirect to `path` with the edited columns (the defaults when none is ticked).
pub fn to_table(path: &str, pairs: &[(String, String)], known: &[&str]) -> Response {
    let columns = view::edited_columns(pairs, known).join(",");
    let keep: Pairs = pairs
        .iter()
        .filter(|(k, _)| k != "show" && !k.starts_with("pos_"))
        .cloned()
        .collect();
    let set: Vec<(&str, &str)> = if columns.is_empty() {
        vec![]
    } else {
        vec![("columns", &columns)]
    };
    super::see_other(&view::address(path, &keep, &["columns", "cursor"], &set), None)
}

/// `/export.csv`: every row the view matches, in its columns, streamed.
pub async fn export(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    if let Err(r) = admin(&state, &headers).await {
        return r;
    }
    let pairs = normalised(raw.as_deref());
    match parse(&pairs) {
        Ok(p) => crate::web::csv::response(&state, &p.filter, &p.columns, "attempts.csv")
            .await
            .into_response(),
        Err(e) => super::message(StatusCode::BAD_REQUEST, "Bad filter", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_defaults_to_the_last_day_and_splits_id_lists() {
        let cases: &[(Option<&str>, &str)] = &[
            (None, "?from=24h"),
            (Some("goal=&limit=5"), "?from=24h&limit=5"),
            (Some("to=2026-01-02"), "?to=2026-01-02"),
            (
                Some("from=2d&affiliate_id=7,%208&affiliate_id=9"),
                "?from=2d&affiliate_id=7&affiliate_id=8&affiliate_id=9",
            ),
            (Some("offer_id=1,,2"), "?from=24h&offer_id=1&offer_id=2"),
        ];
        for (raw, want) in cases {
            assert_eq!(view::address("", &normalised(*raw), &[], &[]), *want, "{raw:?}");
        }
    }

    #[test]
    fn the_page_caps_its_size_and_names_a_bad_parameter() {
        let p = parse(&normalised(Some("limit=1000"))).unwrap();
        assert_eq!(p.limit, MAX_PAGE);
        assert_eq!(parse(&normalised(None)).unwrap().limit, DEFAULT_PAGE);
        let e = parse(&normalised(Some("http_class=7xx"))).err().unwrap();
        assert!(e.contains("http_class"), "{e}");
    }

    /// Every choice the filter form offers is one the parser takes, and every status is
    /// offered (the form once offered `rejected`/`trash` and lacked `not_found`).
    #[test]
    fn the_filter_form_offers_what_the_parser_takes() {
        let f = FilterForm::new(&[], true, &[], 10, "");
        for (param, options) in [
            ("status", &f.status_options),
            ("http_class", &f.class_options),
            ("error_code", &f.error_options),
            ("state", &f.state_options),
        ] {
            for (value, _) in options.iter().filter(|(v, _)| !v.is_empty()) {
                let q = format!("{param}={value}");
                assert!(parse(&normalised(Some(q.as_str()))).is_ok(), "{q} refused");
            }
        }
        let offered: Vec<&str> = f.status_options.iter().map(|(v, _)| v.as_str()).collect();
        for s in Status::ALL {
            assert!(offered.contains(&s.as_str()), "{s:?} not offered");
        }
        assert_eq!(offered.len(), Status::ALL.len() + 1, "{offered:?}");
    }
}
