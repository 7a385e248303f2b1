//! `/api/v1/links`: partner links. `POST` answers the full address, once; `DELETE` revokes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::error::ApiError;
use super::super::links::{self, LinkError};
use super::super::scope::{LinkInput, LinkScope};
use super::super::state::AppState;
use super::{body, id};
use crate::config::Dur;
use crate::store::access;

#[derive(Serialize, ToSchema)]
pub(super) struct LinkOut {
    id: i64,
    label: Option<String>,
    affiliate_ids: Vec<String>,
    offer_ids: Vec<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// A rolling window back from each visit, like `30d`.
    last: Option<String>,
    columns: Vec<String>,
    export: bool,
    /// active, expired or revoked.
    state: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    use_count: i64,
    /// The full address: only in the answer that made the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

fn out(id: i64, label: Option<String>, scope: LinkScope, times: Times, url: Option<String>) -> LinkOut {
    LinkOut {
        id,
        label,
        affiliate_ids: scope.affiliate_ids,
        offer_ids: scope.offer_ids,
        from: scope.from,
        to: scope.to,
        last: scope.last.map(|d| Dur(d).to_string()),
        columns: scope.columns,
        export: scope.export,
        state: times.state.to_owned(),
        created_at: times.created_at,
        expires_at: times.expires_at,
        revoked_at: times.revoked_at,
        last_used_at: times.last_used_at,
        use_count: times.use_count,
        url,
    }
}

struct Times {
    state: &'static str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    use_count: i64,
}

fn listed(l: access::Link, now: DateTime<Utc>) -> LinkOut {
    let times = Times {
        state: links::state(&l, now),
        created_at: l.created_at,
        expires_at: l.expires_at,
        revoked_at: l.revoked_at,
        last_used_at: l.last_used_at,
        use_count: l.use_count,
    };
    out(l.id, l.label, l.scope, times, None)
}

#[utoipa::path(get, path = "/api/v1/links", tag = "links",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<LinkOut>, description = "Every link, newest first"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
    ))]
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Vec<LinkOut>>, ApiError> {
    let client = state.pool.get().await?;
    let now = Utc::now();
    let all = access::list_links(&client).await?;
    Ok(Json(all.into_iter().map(|l| listed(l, now)).collect()))
}

/// A new link. At least one affiliate or offer id; `from`/`to` or `last`; `expires` a span
/// like `30d` (the default) or `90s`, at most `web.max_link_lifetime`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewLinkBody {
    #[serde(default)]
    affiliate_ids: Vec<String>,
    #[serde(default)]
    offer_ids: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    last: Option<String>,
    /// Default: the statistics view's columns without revenue.
    columns: Option<Vec<String>>,
    /// Whether the partner may export CSV (default true).
    export: Option<bool>,
    expires: Option<String>,
    label: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/links", tag = "links", request_body = NewLinkBody,
    security(("bearer" = [])),
    responses(
        (status = 201, body = LinkOut, description = "Made; `url` is the full address, shown this once"),
        (status = 400, body = super::doc::ErrorBody, description = "A bad field, named"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
    ))]
pub(super) async fn create(
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<LinkOut>), ApiError> {
    let b: NewLinkBody = body(&bytes)?;
    let input = LinkInput {
        affiliate_ids: b.affiliate_ids,
        offer_ids: b.offer_ids,
        from: b.from,
        to: b.to,
        last: b.last,
        columns: b.columns,
        export: b.export,
        expires: b.expires,
        label: b.label,
    };
    let client = state.pool.get().await?;
    let made = links::create(&client, &state.cfg, input)
        .await
        .map_err(|e| match e {
            LinkError::Invalid(p) => ApiError::from(p),
            LinkError::Store(s) => ApiError::from(s),
        })?;
    let times = Times {
        state: "active",
        created_at: Utc::now(),
        expires_at: made.link.expires_at,
        revoked_at: None,
        last_used_at: None,
        use_count: 0,
    };
    let body = out(
        made.id,
        made.link.label,
        made.link.scope,
        times,
        Some(made.address),
    );
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Serialize, ToSchema)]
pub(super) struct Revoked {
    id: i64,
    revoked_at: DateTime<Utc>,
}

#[utoipa::path(delete, path = "/api/v1/links/{id}", tag = "links",
    params(("id" = i64, Path, description = "The link's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Revoked, description = "Revoked (at once; its address answers 410)"),
        (status = 400, body = super::doc::ErrorBody, description = "Not an id"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
        (status = 404, body = super::doc::ErrorBody, description = "No such link"),
    ))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    let id = id(&raw)?;
    let client = state.pool.get().await?;
    let at = access::revoke_link(&client, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no link with id {id}")))?;
    Ok(Json(Revoked { id, revoked_at: at }))
}
