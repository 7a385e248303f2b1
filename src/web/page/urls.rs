//! `/urls`: list, add, edit, disable, enable, remove and test URLs, all through the URL service
//! the CLI and the API call (same validation, same messages); with each URL's last 24 hours.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use deadpool_postgres::GenericClient;

use super::{admin, guard_post, internal, message, render, see_other, view};
use crate::mask::mask_url;
use crate::store::urls::UrlRow;
use crate::url_spec::{ContentType, Method, UrlSpec};
use crate::urls_service::{UrlPatch, UrlServiceError};
use crate::web::session::Session;
use crate::web::state::AppState;

/// A URL's last 24 hours.
#[derive(Debug, Default, Clone)]
struct Health {
    attempts: i64,
    ok_share: Option<f64>,
    p95_ms: Option<f64>,
    last_error: Option<String>,
}

async fn health(client: &impl GenericClient) -> Result<HashMap<i64, Health>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT url_id, count(*), \
                    avg(CASE WHEN http_code BETWEEN 200 AND 299 THEN 1.0 ELSE 0.0 END)::float8, \
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)::float8, \
                    (array_agg(error_code || ': ' || xpb_mask_secrets(error) ORDER BY sent_at DESC) \
                       FILTER (WHERE error IS NOT NULL))[1] \
             FROM attempts WHERE sent_at > now() - interval '24 hours' GROUP BY url_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let h = Health {
                attempts: r.get(1),
                ok_share: r.get(2),
                p95_ms: r.get(3),
                last_error: r.get(4),
            };
            (r.get::<_, i64>(0), h)
        })
        .collect())
}

pub struct UrlView {
    id: i64,
    offer: String,
    url: String,
    method: String,
    goal: String,
    statuses: String,
    enabled: bool,
    attempts: i64,
    ok_share: String,
    p95: String,
    last_error: String,
    /// (path segment, button text, class)
    actions: Vec<(&'static str, &'static str, &'static str)>,
}

fn url_view(u: &UrlRow, h: Option<&Health>) -> UrlView {
    let h = h.cloned().unwrap_or_default();
    let toggle = if u.enabled {
        ("disable", "Disable", "secondary")
    } else {
        ("enable", "Enable", "secondary")
    };
    UrlView {
        id: u.id,
        offer: u.offer_id.clone(),
        url: mask_url(&u.url),
        method: u.method.clone(),
        goal: u.goal.clone().unwrap_or_default(),
        statuses: if u.statuses.is_empty() {
            "all".into()
        } else {
            u.statuses.join(",")
        },
        enabled: u.enabled,
        attempts: h.attempts,
        ok_share: h.ok_share.map_or("—".into(), |s| format!("{:.0} %", s * 100.0)),
        p95: h.p95_ms.map_or("—".into(), |p| format!("{p:.0}")),
        last_error: h.last_error.unwrap_or_default(),
        actions: vec![
            ("test", "Test", "secondary"),
            toggle,
            ("remove", "Remove", "danger"),
        ],
    }
}

/// The add/edit form's values.
#[derive(Default)]
pub struct UrlForm {
    new: bool,
    offer: String,
    url: String,
    method: String,
    goal: String,
    statuses: String,
    body: String,
}

impl UrlForm {
    fn from_pairs(p: &[(String, String)], new: bool) -> UrlForm {
        let t = |n: &str| view::value(p, n).unwrap_or("").to_owned();
        UrlForm {
            new,
            offer: t("offer"),
            url: t("url"),
            method: if t("method") == "POST" {
                "POST".into()
            } else {
                "GET".into()
            },
            goal: t("goal"),
            statuses: t("statuses"),
            body: t("body"),
        }
    }

    fn from_row(u: &UrlRow) -> UrlForm {
        UrlForm {
            new: false,
            offer: u.offer_id.clone(),
            // The stored URL is never sent to the browser whole: its secrets stay masked, and
            // a form that comes back with the masked text keeps the stored URL.
            url: mask_url(&u.url),
            method: u.method.clone(),
            goal: u.goal.clone().unwrap_or_default(),
            statuses: u.statuses.join(","),
            body: String::new(),
        }
    }

    fn method(&self) -> Method {
        if self.method == "POST" {
            Method::Post
        } else {
            Method::Get
        }
    }

    fn statuses(&self) -> Option<Vec<String>> {
        let list: Vec<String> = view::values(&[("s".into(), self.statuses.clone())], "s");
        (!list.is_empty()).then_some(list)
    }

    fn opt(s: &str) -> Option<String> {
        (!s.trim().is_empty()).then(|| s.trim().to_owned())
    }
}

pub struct TestView {
    id: i64,
    request: String,
    response: String,
    duration_ms: u128,
    excerpt: String,
}

#[derive(Template)]
#[template(path = "urls.html")]
struct ListPage {
    csrf: String,
    who: String,
    notice: Option<String>,
    notice_error: bool,
    test: Option<TestView>,
    urls: Vec<UrlView>,
    form: UrlForm,
}

#[derive(Template)]
#[template(path = "url_edit.html")]
struct EditPage {
    csrf: String,
    who: String,
    id: i64,
    notice: Option<String>,
    form: UrlForm,
}

/// The service's error as the CLI words it, on one line.
fn said(e: &UrlServiceError) -> String {
    crate::report::one_line(e)
}

async fn list_page(
    state: &AppState,
    s: Session,
    status: StatusCode,
    notice: Option<(String, bool)>,
    test: Option<TestView>,
    form: UrlForm,
) -> Response {
    let urls = match state.urls.list(None).await {
        Ok(u) => u,
        Err(e) => return internal(said(&e)),
    };
    let health = match state.pool.get().await {
        Ok(c) => match health(&c).await {
            Ok(h) => h,
            Err(e) => return internal(e),
        },
        Err(e) => return internal(e),
    };
    let (notice, notice_error) = notice.map_or((None, false), |(n, e)| (Some(n), e));
    let page = ListPage {
        csrf: s.csrf,
        who: s.token_name,
        notice,
        notice_error,
        test,
        urls: urls.iter().map(|u| url_view(u, health.get(&u.id))).collect(),
        form,
    };
    render(status, &page)
}

pub async fn list(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let s = match admin(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = view::pairs(raw.as_deref().unwrap_or(""));
    let notice = view::value(&q, "done").map(|d| (d.to_owned(), false));
    list_page(
        &state,
        s,
        StatusCode::OK,
        notice,
        None,
        UrlForm {
            new: true,
            ..UrlForm::default()
        },
    )
    .await
}

pub async fn add(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let p = view::pairs(&String::from_utf8_lossy(&body));
    let s = match guard_post(&state, &headers, &p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = UrlForm::from_pairs(&p, true);
    let mut spec = UrlSpec::get(form.offer.trim(), form.url.trim());
    spec.method = form.method();
    spec.goal = UrlForm::opt(&form.goal);
    spec.statuses = form.statuses();
    spec.body = UrlForm::opt(&form.body);
    spec.content_type = ContentType::Json;
    let allow = view::value(&p, "allow_duplicate").is_some();
    match state.urls.add(spec, allow).await {
        Ok(id) => see_other(&done(&format!("URL {id} added.")), None),
        Err(e @ (UrlServiceError::Invalid(_) | UrlServiceError::Duplicate { .. })) => {
            let n = Some((said(&e), true));
            list_page(&state, s, StatusCode::UNPROCESSABLE_ENTITY, n, None, form).await
        }
        Err(e) => internal(said(&e)),
    }
}

fn done(text: &str) -> String {
    view::address("/urls", &[], &[], &[("done", text)])
}

fn bad_id() -> Response {
    message(StatusCode::NOT_FOUND, "No such URL", "A URL id is a number.")
}

fn not_found(id: i64) -> Response {
    message(
        StatusCode::NOT_FOUND,
        "No such URL",
        format!("There is no cross-postback URL {id}."),
    )
}

pub async fn edit_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = match admin(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return bad_id();
    };
    let row = match state.urls.list(None).await {
        Ok(rows) => rows.into_iter().find(|u| u.id == id),
        Err(e) => return internal(said(&e)),
    };
    let Some(row) = row else { return not_found(id) };
    let page = EditPage {
        csrf: s.csrf,
        who: s.token_name,
        id,
        notice: None,
        form: UrlForm::from_row(&row),
    };
    render(StatusCode::OK, &page)
}

pub async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p = view::pairs(&String::from_utf8_lossy(&body));
    let s = match guard_post(&state, &headers, &p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return bad_id();
    };
    let Some(row) = state
        .urls
        .list(None)
        .await
        .ok()
        .and_then(|r| r.into_iter().find(|u| u.id == id))
    else {
        return not_found(id);
    };
    let mut form = UrlForm::from_pairs(&p, false);
    form.offer = row.offer_id.clone();
    let masked = mask_url(&row.url);
    let patch = UrlPatch {
        url: (form.url.trim() != masked).then(|| form.url.trim().to_owned()),
        method: Some(form.method()),
        goal: Some(UrlForm::opt(&form.goal)),
        statuses: Some(form.statuses()),
        body: UrlForm::opt(&form.body).map(Some),
        ..UrlPatch::default()
    };
    let allow = view::value(&p, "allow_duplicate").is_some();
    match state.urls.edit(id, patch, allow).await {
        Ok(_) => see_other(&done(&format!("URL {id} saved.")), None),
        Err(UrlServiceError::NotFound(_)) => not_found(id),
        Err(e @ (UrlServiceError::Invalid(_) | UrlServiceError::Duplicate { .. })) => {
            let page = EditPage {
                csrf: s.csrf,
                who: s.token_name,
                id,
                notice: Some(said(&e)),
                form,
            };
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => internal(said(&e)),
    }
}

/// `POST /urls/{id}/{disable|enable|remove|test}`.
pub async fn action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let p = view::pairs(&String::from_utf8_lossy(&body));
    let s = match guard_post(&state, &headers, &p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return bad_id();
    };
    let svc = &state.urls;
    let outcome = match action.as_str() {
        "disable" => svc
            .disable(id)
            .await
            .map(|n| format!("URL {id} disabled; {n} pending deliveries cancelled.")),
        "enable" => svc.enable(id).await.map(|()| format!("URL {id} enabled.")),
        "remove" => svc
            .remove(id)
            .await
            .map(|n| format!("URL {id} removed; {n} pending deliveries cancelled.")),
        "test" => {
            return match svc.test(id, None).await {
                Ok(t) => {
                    let view = test_view(id, &t);
                    list_page(
                        &state,
                        s,
                        StatusCode::OK,
                        None,
                        Some(view),
                        UrlForm {
                            new: true,
                            ..UrlForm::default()
                        },
                    )
                    .await
                }
                Err(UrlServiceError::NotFound(_)) => not_found(id),
                Err(e) => {
                    let n = Some((said(&e), true));
                    list_page(
                        &state,
                        s,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        n,
                        None,
                        UrlForm {
                            new: true,
                            ..UrlForm::default()
                        },
                    )
                    .await
                }
            };
        }
        _ => return message(StatusCode::NOT_FOUND, "Not found", "There is no such action."),
    };
    match outcome {
        Ok(text) => see_other(&done(&text), None),
        Err(UrlServiceError::NotFound(_)) => not_found(id),
        Err(e) => internal(said(&e)),
    }
}

/// What `urls test` prints, for the page: the URL masked, no header value, no body.
fn test_view(id: i64, t: &crate::urls_service::TestOutcome) -> TestView {
    let res = &t.response;
    let response = match (res.http_code, &res.error) {
        (Some(code), None) => format!("HTTP {code}"),
        (Some(code), Some((c, text))) => format!("HTTP {code} ({}: {})", c.as_str(), mask_url(text)),
        (None, Some((c, text))) => format!("no answer ({}: {})", c.as_str(), mask_url(text)),
        (None, None) => "no answer".into(),
    };
    TestView {
        id,
        request: format!("{} {}", t.request.method, mask_url(&t.request.url)),
        response,
        duration_ms: res.duration.as_millis(),
        excerpt: res.excerpt.clone().unwrap_or_default(),
    }
}
