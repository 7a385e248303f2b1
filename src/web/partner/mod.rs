//! The partner pages: `/s/<token>` (the table under the link's scope) and
//! `/s/<token>/attempts.csv`. A partner may narrow the view (time, status, goal, conversion id,
//! the allowed columns) and nothing else: only those parameters are read from the request at
//! all, and the result then goes through `web::scope::apply`, so no other affiliate, offer,
//! time or column can come in. No delivery detail, URL list, "Send again" or admin link here.
//!
//! An unknown or altered token is a 404 that says nothing; an expired or revoked one a 410
//! that says which and since when; failed look-ups are limited per client address. Every
//! answer here is `no-store`, `no-referrer` and `noindex`.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

use super::page::table::{self, ColumnsForm, FilterForm, TableView};
use super::page::{internal, message, render, view};
use super::state::AppState;
use crate::store::{access, stats};
use crate::web::{query, scope};

/// The only parameters a partner's request is read for.
const NARROWING: &[&str] = &[
    "from",
    "to",
    "status",
    "goal",
    "conversion_id",
    "columns",
    "limit",
    "cursor",
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/s/{token}", get(show).fallback(not_allowed))
        .route("/s/{token}/attempts.csv", get(export).fallback(not_allowed))
        .route("/s/{token}/columns", get(columns).fallback(not_allowed))
        .route("/s/{token}/{*rest}", axum::routing::any(not_found))
        .layer(map_response(private))
}

/// Every partner answer: not cached, no referrer sent on, not indexed.
async fn private(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    r
}

async fn not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "").into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found\n",
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "partner_gone.html")]
struct Gone {
    which: &'static str,
    since: String,
}

fn gone(which: &'static str, at: DateTime<Utc>) -> Response {
    let since = at.format("%Y-%m-%d %H:%M:%S").to_string();
    render(StatusCode::GONE, &Gone { which, since })
}

/// The client's address (all clients count as one when the server was not told addresses).
struct ClientIp(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(ClientIp(ip))
    }
}

/// The live link of `token`, or the answer instead (429, 404 or 410).
async fn resolve(state: &AppState, ip: IpAddr, token: &str) -> Result<access::Link, Response> {
    let now = Instant::now();
    if let Err(wait) = state.failed_lookups.check(ip, now) {
        let secs = wait.as_secs().max(1).to_string();
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs)],
            "Too many requests\n",
        )
            .into_response());
    }
    let client = state.pool.get().await.map_err(internal)?;
    match access::lookup_link(&client, token).await.map_err(internal)? {
        access::Lookup::Found(link) => {
            access::record_use(&client, link.id).await.map_err(internal)?;
            Ok(link)
        }
        access::Lookup::Expired(at) => Err(gone("expired", at)),
        access::Lookup::Revoked(at) => Err(gone("revoked", at)),
        access::Lookup::Unknown => {
            state.failed_lookups.record_failure(ip, now);
            Err(not_found().await)
        }
    }
}

/// The partner's request: only the narrowing parameters, parsed as the API parses them, then
/// bounded by the link's scope.
fn narrowed(link: &access::Link, raw: Option<&str>) -> Result<(view::Pairs, query::Request), String> {
    let pairs: view::Pairs = view::pairs(raw.unwrap_or(""))
        .into_iter()
        .filter(|(k, v)| NARROWING.contains(&k.as_str()) && !v.trim().is_empty())
        .collect();
    let q = view::address("", &pairs, &[], &[]);
    let now = Utc::now();
    let req = query::parse(q.trim_start_matches('?'), now).map_err(|e| e.to_string())?;
    let req = scope::apply(&link.scope, req, now).map_err(|e| e.to_string())?;
    // The view's address keeps only the columns the scope let through.
    let mut pairs: view::Pairs = pairs.into_iter().filter(|(k, _)| k != "columns").collect();
    if let Some(c) = &req.columns {
        pairs.push(("columns".into(), c.join(",")));
    }
    Ok((pairs, req))
}

#[derive(Template)]
#[template(path = "partner.html")]
struct Page {
    label: String,
    scope_text: String,
    expires: String,
    error: Option<String>,
    base: String,
    f: FilterForm,
    cols: ColumnsForm,
    export: Option<String>,
    table: TableView,
}

async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(raw): RawQuery,
    ClientIp(ip): ClientIp,
) -> Response {
    let link = match resolve(&state, ip, &token).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let (pairs, parsed, error) = match narrowed(&link, raw.as_deref()) {
        Ok((p, r)) => (p, r, None),
        Err(e) => match narrowed(&link, None) {
            Ok((p, r)) => (p, r, Some(e)),
            Err(e) => return message(StatusCode::BAD_REQUEST, "Bad request", e),
        },
    };
    let base = format!("/s/{token}");
    let columns = parsed
        .columns
        .clone()
        .unwrap_or_else(|| link.scope.columns.clone());
    let limit = parsed.limit.unwrap_or(table::DEFAULT_PAGE).min(table::MAX_PAGE);
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let page = match stats::page(&client, &parsed.filter, &columns, limit, parsed.cursor.as_ref()).await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let known: Vec<&str> = link.scope.columns.iter().map(String::as_str).collect();
    let page = Page {
        label: link.label.clone().unwrap_or_else(|| "Cross-postbacks".into()),
        scope_text: super::page::links::scope_text(&link.scope),
        expires: link.expires_at.format("%Y-%m-%d %H:%M").to_string(),
        error: error.clone(),
        f: FilterForm::new(&pairs, false, &columns, limit, &base),
        cols: table::columns_form(&format!("{base}/columns"), &pairs, &columns, &known),
        export: link
            .scope
            .export
            .then(|| view::address(&format!("{base}/attempts.csv"), &pairs, &["cursor", "limit"], &[])),
        table: table::table_view(&columns, page, &base, &pairs, |_| None),
        base,
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(status, &page)
}

async fn export(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(raw): RawQuery,
    ClientIp(ip): ClientIp,
) -> Response {
    let link = match resolve(&state, ip, &token).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    if !link.scope.export {
        return message(
            StatusCode::FORBIDDEN,
            "No export",
            "This link does not allow exports.",
        );
    }
    let parsed = match narrowed(&link, raw.as_deref()) {
        Ok((_, r)) => r,
        Err(e) => return message(StatusCode::BAD_REQUEST, "Bad request", e),
    };
    let columns = parsed.columns.unwrap_or_else(|| link.scope.columns.clone());
    crate::web::csv::response(&state, &parsed.filter, &columns, "attempts.csv")
        .await
        .into_response()
}

/// The "Edit columns" form of a partner page, turned into `columns` (the page then keeps only
/// the link's allowed ones).
async fn columns(Path(token): Path<String>, RawQuery(raw): RawQuery) -> Response {
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return not_found().await;
    }
    let pairs: view::Pairs = view::pairs(raw.as_deref().unwrap_or(""))
        .into_iter()
        .filter(|(k, _)| NARROWING.contains(&k.as_str()) || k == "show" || k.starts_with("pos_"))
        .collect();
    let known: Vec<&str> = stats::names().collect();
    table::to_table(&format!("/s/{token}"), &pairs, &known)
}
