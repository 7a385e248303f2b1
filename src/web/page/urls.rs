//! `/urls`: list, add, edit, disable, enable, remove and test URLs, all through the URL service
//! the CLI and the API call (same validation, same messages); with each URL's last 24 hours.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::url_views::{TestView, UrlForm, UrlView, health, test_view, url_view};
use super::{admin, guard_post, internal, message, render, see_other, view};
use crate::mask::mask_url;
use crate::url_spec::{ContentType, UrlSpec};
use crate::urls_service::{UrlPatch, UrlServiceError};
use crate::web::session::Session;
use crate::web::state::AppState;

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
        "test" => return test(&state, s, id).await,
        _ => return message(StatusCode::NOT_FOUND, "Not found", "There is no such action."),
    };
    match outcome {
        Ok(text) => see_other(&done(&text), None),
        Err(UrlServiceError::NotFound(_)) => not_found(id),
        Err(e) => internal(said(&e)),
    }
}

/// "Test": one request now, shown above the list.
async fn test(state: &AppState, s: Session, id: i64) -> Response {
    let blank = UrlForm {
        new: true,
        ..UrlForm::default()
    };
    match state.urls.test(id, None).await {
        Ok(t) => list_page(state, s, StatusCode::OK, None, Some(test_view(id, &t)), blank).await,
        Err(UrlServiceError::NotFound(_)) => not_found(id),
        Err(e) => {
            let n = Some((said(&e), true));
            list_page(state, s, StatusCode::UNPROCESSABLE_ENTITY, n, None, blank).await
        }
    }
}
