//! `GET /api/v1/deliveries/{id}` and `POST /api/v1/deliveries/{id}/redeliver`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::error::ApiError;
use super::super::state::AppState;
use super::{body, id};
use crate::store::{StoreError, deliveries, redeliver};

/// A delivery with its attempts (oldest first); URLs, errors and excerpts masked.
#[derive(Serialize, ToSchema)]
pub(super) struct DeliveryOut {
    id: i64,
    conversion_id: String,
    url_id: i64,
    offer_id: String,
    /// The conversion status it announces.
    status: String,
    /// pending, delivered, failed, superseded or cancelled.
    state: String,
    attempt_count: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The newer delivery that superseded it.
    superseded_by: Option<i64>,
    attempts: Vec<AttemptOut>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct AttemptOut {
    attempt: i32,
    sent_at: DateTime<Utc>,
    method: String,
    url: String,
    http_code: Option<i32>,
    error_code: Option<String>,
    error: Option<String>,
    duration_ms: i32,
    response_excerpt: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/deliveries/{id}",
    tag = "deliveries",
    params(("id" = i64, Path, description = "The delivery's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = DeliveryOut, description = "The delivery"),
        (status = 400, body = super::doc::ErrorBody, description = "Not an id"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
        (status = 404, body = super::doc::ErrorBody, description = "No such delivery"),
    )
)]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<DeliveryOut>, ApiError> {
    let id = id(&raw)?;
    let client = state.pool.get().await?;
    let shown = deliveries::show(&client, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery with id {id}")))?;
    let d = shown.delivery;
    Ok(Json(DeliveryOut {
        id: d.id,
        conversion_id: d.conversion_id,
        url_id: d.url_id,
        offer_id: d.offer_id,
        status: d.status,
        state: d.state,
        attempt_count: d.attempts,
        next_attempt_at: d.next_attempt_at,
        created_at: d.created_at,
        updated_at: d.updated_at,
        superseded_by: shown.superseded_by,
        attempts: shown
            .attempts
            .into_iter()
            .map(|a| AttemptOut {
                attempt: a.attempt,
                sent_at: a.sent_at,
                method: a.method,
                url: a.url,
                http_code: a.http_code,
                error_code: a.error_code,
                error: a.error,
                duration_ms: a.duration_ms,
                response_excerpt: a.response_excerpt,
            })
            .collect(),
    }))
}

/// `{"force": true}` sends a superseded delivery anyway.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RedeliverBody {
    #[serde(default)]
    force: bool,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Redelivered {
    id: i64,
    /// The number of the attempt that will be made.
    next_attempt: i32,
}

#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/redeliver",
    tag = "deliveries",
    params(("id" = i64, Path, description = "The delivery's id")),
    request_body(content = Option<RedeliverBody>, description = "Optional; `force` overrides the superseded refusal"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Redelivered, description = "Queued again, due now"),
        (status = 400, body = super::doc::ErrorBody, description = "A bad id or body"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
        (status = 404, body = super::doc::ErrorBody, description = "No such delivery"),
        (status = 409, body = super::doc::ErrorBody, description = "Refused, with the reason"),
    )
)]
pub(super) async fn redeliver(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    bytes: Bytes,
) -> Result<Json<Redelivered>, ApiError> {
    let id = id(&raw)?;
    let given: RedeliverBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        RedeliverBody::default()
    } else {
        body(&bytes)?
    };
    let mut client = state.pool.get().await?;
    match redeliver::one(&mut client, id, given.force).await {
        Ok(Ok(q)) => Ok(Json(Redelivered {
            id: q.id,
            next_attempt: q.next_attempt,
        })),
        Ok(Err(refusal)) => Err(ApiError::conflict(format!("not sent again: {refusal}"))),
        // The only refusal the store words itself: there is no such delivery.
        Err(StoreError::Invalid(message)) => Err(ApiError::not_found(message)),
        Err(e) => Err(e.into()),
    }
}
