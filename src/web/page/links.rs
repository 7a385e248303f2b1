//! "Get link": a form filled from the table's view that makes a partner link (checked by the
//! same `web::links` path as the CLI and the API) and shows its address once; `/links` lists
//! them with their use and revokes.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::{admin, guard_post, internal, message, render, see_other, view};
use crate::store::access;
use crate::web::links::{self, LinkError};
use crate::web::scope::{LinkInput, LinkScope};
use crate::web::state::AppState;

/// The form's values as given (or as taken from the table's view).
#[derive(Default)]
pub struct LinkForm {
    affiliate_id: String,
    offer_id: String,
    last: String,
    from: String,
    to: String,
    columns: String,
    export: bool,
    expires: String,
    label: String,
}

impl LinkForm {
    /// From the table's view (`from` given as a span is taken as the rolling window) or from
    /// the submitted form.
    fn from_pairs(p: &[(String, String)], submitted: bool) -> LinkForm {
        let t = |n: &str| view::value(p, n).unwrap_or("").to_owned();
        let (mut last, mut from) = (t("last"), t("from"));
        if !submitted && from.ends_with(|c: char| c.is_ascii_alphabetic()) && !from.contains('-') {
            last = std::mem::take(&mut from);
        }
        let columns = t("columns");
        LinkForm {
            affiliate_id: view::values(p, "affiliate_id").join(", "),
            offer_id: view::values(p, "offer_id").join(", "),
            last,
            from,
            to: t("to"),
            columns: if columns.is_empty() {
                crate::web::scope::default_columns().join(",")
            } else {
                columns
            },
            export: if submitted {
                view::value(p, "export").is_some()
            } else {
                true
            },
            expires: if submitted { t("expires") } else { "30d".into() },
            label: t("label"),
        }
    }

    fn input(&self) -> LinkInput {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let list = |s: &str| view::values(&[("v".into(), s.to_owned())], "v");
        LinkInput {
            affiliate_ids: list(&self.affiliate_id),
            offer_ids: list(&self.offer_id),
            from: opt(&self.from),
            to: opt(&self.to),
            last: opt(&self.last),
            columns: opt(&self.columns).map(|c| list(&c)),
            export: Some(self.export),
            expires: opt(&self.expires),
            label: opt(&self.label),
        }
    }
}

#[derive(Template)]
#[template(path = "link_new.html")]
struct NewPage {
    csrf: String,
    who: String,
    error: Option<String>,
    address: Option<String>,
    form: LinkForm,
}

pub async fn new_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let s = match admin(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = view::pairs(raw.as_deref().unwrap_or(""));
    let page = NewPage {
        csrf: s.csrf,
        who: s.token_name,
        error: None,
        address: None,
        form: LinkForm::from_pairs(&p, false),
    };
    render(StatusCode::OK, &page)
}

pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let p = view::pairs(&String::from_utf8_lossy(&body));
    let s = match guard_post(&state, &headers, &p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = LinkForm::from_pairs(&p, true);
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let (status, error, address) = match links::create(&client, &state.cfg, form.input()).await {
        // Shown this once; the page is never cached (Cache-Control: no-store).
        Ok(made) => (StatusCode::CREATED, None, Some(made.address)),
        Err(LinkError::Invalid(e)) => (StatusCode::UNPROCESSABLE_ENTITY, Some(e.to_string()), None),
        Err(e) => return internal(e),
    };
    render(
        status,
        &NewPage {
            csrf: s.csrf,
            who: s.token_name,
            error,
            address,
            form,
        },
    )
}

pub struct LinkRow {
    id: i64,
    label: String,
    scope: String,
    created: String,
    expires: String,
    state: &'static str,
    live: bool,
    last_used: String,
    uses: i64,
}

#[derive(Template)]
#[template(path = "links.html")]
struct ListPage {
    csrf: String,
    who: String,
    notice: Option<String>,
    links: Vec<LinkRow>,
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// A scope in words, for the list and the partner page's heading.
pub fn scope_text(s: &LinkScope) -> String {
    let mut parts = Vec::new();
    if !s.affiliate_ids.is_empty() {
        parts.push(format!("affiliate {}", s.affiliate_ids.join(", ")));
    }
    if !s.offer_ids.is_empty() {
        parts.push(format!("offer {}", s.offer_ids.join(", ")));
    }
    match (s.last, s.from, s.to) {
        (Some(last), _, _) => parts.push(format!("the last {}", span(last))),
        (None, Some(f), Some(t)) => parts.push(format!("{} to {} UTC", time(f), time(t))),
        (None, Some(f), None) => parts.push(format!("since {} UTC", time(f))),
        (None, None, Some(t)) => parts.push(format!("until {} UTC", time(t))),
        (None, None, None) => {}
    }
    parts.join(" · ")
}

fn span(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    match n {
        1 => unit.to_owned(),
        n => format!("{n} {unit}s"),
    }
}

pub async fn list(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let s = match admin(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let all = match access::list_links(&client).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let now = Utc::now();
    let rows = all
        .iter()
        .map(|l| {
            let state = links::state(l, now);
            LinkRow {
                id: l.id,
                label: l.label.clone().unwrap_or_default(),
                scope: scope_text(&l.scope),
                created: time(l.created_at),
                expires: time(l.expires_at),
                state,
                live: state == "active",
                last_used: l.last_used_at.map_or("never".into(), time),
                uses: l.use_count,
            }
        })
        .collect();
    let q = view::pairs(raw.as_deref().unwrap_or(""));
    let notice = view::value(&q, "revoked").map(|id| format!("Link {id} revoked."));
    render(
        StatusCode::OK,
        &ListPage {
            csrf: s.csrf,
            who: s.token_name,
            notice,
            links: rows,
        },
    )
}

pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p = view::pairs(&String::from_utf8_lossy(&body));
    if let Err(r) = guard_post(&state, &headers, &p).await {
        return r;
    }
    let Ok(id) = id.parse::<i64>() else {
        return message(StatusCode::NOT_FOUND, "No such link", "A link id is a number.");
    };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    match access::revoke_link(&client, id).await {
        Ok(Some(_)) => see_other(&format!("/links?revoked={id}"), None),
        Ok(None) => message(
            StatusCode::NOT_FOUND,
            "No such link",
            format!("There is no live link {id}."),
        ),
        Err(e) => internal(e),
    }
}
