//! `/deliveries/{id}`: a delivery with every attempt, and "Send again" (`redeliver`).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{admin, guard_post, internal, message, render, see_other, view};
use crate::store::{StoreError, deliveries, redeliver};
use crate::web::state::AppState;

pub struct DeliveryView {
    pub id: i64,
    pub state: String,
    pub conversion_id: String,
    pub status: String,
    pub offer_id: String,
    pub url_id: i64,
    pub attempts: i32,
    pub next_attempt: String,
    pub superseded_by: String,
    pub created: String,
}

pub struct AttemptView {
    pub attempt: i32,
    pub sent_at: String,
    pub method: String,
    pub url: String,
    pub http_code: String,
    pub error_code: String,
    pub error: String,
    pub duration_ms: i32,
    pub excerpt: String,
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct Page {
    csrf: String,
    who: String,
    notice: Option<String>,
    notice_error: bool,
    d: DeliveryView,
    attempts: Vec<AttemptView>,
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn views(shown: deliveries::Shown) -> (DeliveryView, Vec<AttemptView>) {
    let d = shown.delivery;
    let view = DeliveryView {
        id: d.id,
        state: d.state,
        conversion_id: d.conversion_id,
        status: d.status,
        offer_id: d.offer_id,
        url_id: d.url_id,
        attempts: d.attempts,
        next_attempt: d
            .next_attempt_at
            .map_or("—".into(), |t| format!("{} UTC", time(t))),
        superseded_by: shown.superseded_by.map_or("—".into(), |id| id.to_string()),
        created: time(d.created_at),
    };
    let attempts = shown
        .attempts
        .into_iter()
        .map(|a| AttemptView {
            attempt: a.attempt,
            sent_at: time(a.sent_at),
            method: a.method,
            url: a.url,
            http_code: a.http_code.map_or(String::new(), |c| c.to_string()),
            error_code: a.error_code.unwrap_or_default(),
            error: a.error.unwrap_or_default(),
            duration_ms: a.duration_ms,
            excerpt: a.response_excerpt.unwrap_or_default(),
        })
        .collect();
    (view, attempts)
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let s = match admin(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return message(
            StatusCode::NOT_FOUND,
            "No such delivery",
            "A delivery id is a number.",
        );
    };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let shown = match deliveries::show(&client, id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "No such delivery",
                format!("There is no delivery {id}."),
            );
        }
        Err(e) => return internal(e),
    };
    // The outcome of "Send again" comes back in the address (POST, then redirect, then GET).
    let q = view::pairs(raw.as_deref().unwrap_or(""));
    let (notice, notice_error) = match (view::value(&q, "queued"), view::value(&q, "refused")) {
        (Some(n), _) => (Some(format!("Queued to be sent again as attempt {n}.")), false),
        (_, Some(why)) => (Some(format!("Not sent again: {why}")), true),
        _ => (None, false),
    };
    let (d, attempts) = views(shown);
    render(
        StatusCode::OK,
        &Page {
            csrf: s.csrf,
            who: s.token_name,
            notice,
            notice_error,
            d,
            attempts,
        },
    )
}

pub async fn send_again(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = view::pairs(&String::from_utf8_lossy(&body));
    if let Err(r) = guard_post(&state, &headers, &form).await {
        return r;
    }
    let Ok(id) = id.parse::<i64>() else {
        return message(
            StatusCode::NOT_FOUND,
            "No such delivery",
            "A delivery id is a number.",
        );
    };
    let force = view::value(&form, "force").is_some();
    let mut client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let back = |k: &str, v: &str| view::address(&format!("/deliveries/{id}"), &[], &[], &[(k, v)]);
    match redeliver::one(&mut client, id, force).await {
        Ok(Ok(q)) => see_other(&back("queued", &q.next_attempt.to_string()), None),
        Ok(Err(refusal)) => see_other(&back("refused", &refusal.to_string()), None),
        Err(StoreError::Invalid(m)) => message(StatusCode::NOT_FOUND, "No such delivery", m),
        Err(e) => internal(e),
    }
}
