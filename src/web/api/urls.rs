//! `/api/v1/urls`: the URL service (the CLI's `urls` commands) over HTTP. Answers never hold
//! a secret: the URL is masked, a body template and header values are shown as `***`.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::super::error::ApiError;
use super::super::state::AppState;
use super::{body, id};
use crate::store::urls::{self, UrlRow};
use crate::url_spec::{ContentType, Header, Method, UrlSpec};
use crate::urls_service::UrlPatch;

#[derive(Serialize, ToSchema)]
pub(super) struct UrlOut {
    id: i64,
    offer_id: String,
    /// As stored, secrets masked.
    url: String,
    method: String,
    goal: Option<String>,
    statuses: Vec<String>,
    /// `***` when the URL has a body template (it may hold a key), else null.
    body: Option<String>,
    content_type: String,
    follow_redirects: bool,
    enabled: bool,
    /// Header names, each with the value `***`.
    headers: Vec<HeaderIn>,
    timeout_ms: Option<i32>,
}

impl From<UrlRow> for UrlOut {
    fn from(r: UrlRow) -> UrlOut {
        UrlOut {
            id: r.id,
            offer_id: r.offer_id,
            url: crate::mask::mask_url(&r.url),
            method: r.method,
            goal: r.goal,
            statuses: r.statuses,
            body: r.body.map(|_| "***".to_owned()),
            content_type: r.content_type,
            follow_redirects: r.follow_redirects,
            enabled: r.enabled,
            headers: r
                .headers
                .into_iter()
                .map(|h| HeaderIn {
                    name: h.name,
                    value: "***".into(),
                })
                .collect(),
            timeout_ms: r.timeout_ms,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderIn {
    name: String,
    value: String,
}

/// A new URL, as `urls add` takes it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUrlBody {
    offer_id: String,
    /// The URL template (see the macros).
    url: String,
    /// GET (default) or POST.
    method: Option<String>,
    goal: Option<String>,
    /// Statuses it fires on (default all).
    statuses: Option<Vec<String>>,
    body: Option<String>,
    /// json (default) or form.
    content_type: Option<String>,
    follow_redirects: Option<bool>,
    headers: Option<Vec<HeaderIn>>,
    timeout_ms: Option<u64>,
    /// Add it even when an enabled URL of the offer is the same.
    allow_duplicate: Option<bool>,
}

/// What to change, as `urls edit` takes it; `enabled` disables or enables. A field given as
/// null clears an optional setting.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct UrlPatchBody {
    url: Option<String>,
    method: Option<String>,
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    goal: Option<Option<String>>,
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<Vec<String>>)]
    statuses: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    body: Option<Option<String>>,
    content_type: Option<String>,
    follow_redirects: Option<bool>,
    headers: Option<Vec<HeaderIn>>,
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<u64>)]
    timeout_ms: Option<Option<u64>>,
    enabled: Option<bool>,
    allow_duplicate: Option<bool>,
}

/// A field that is present (even as null) is `Some`.
fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn method(text: &str) -> Result<Method, ApiError> {
    match text.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::Get),
        "POST" => Ok(Method::Post),
        _ => Err(ApiError::param("method", "use GET or POST")),
    }
}

fn content_type(text: &str) -> Result<ContentType, ApiError> {
    match text {
        "json" => Ok(ContentType::Json),
        "form" => Ok(ContentType::Form),
        _ => Err(ApiError::param("content_type", "use json or form")),
    }
}

fn headers(given: Vec<HeaderIn>) -> Vec<Header> {
    given
        .into_iter()
        .map(|h| Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/urls", tag = "urls",
    params(("offer_id" = Option<String>, Query, description = "Only this offer's URLs")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<UrlOut>, description = "The URLs (removed ones are not listed)"),
        (status = 400, body = super::doc::ErrorBody, description = "A bad parameter"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
    ))]
pub(super) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<UrlOut>>, ApiError> {
    let mut offer = None;
    for (name, value) in url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "offer_id" if offer.is_some() => return Err(ApiError::param("offer_id", "given more than once")),
            "offer_id" => offer = offer_filter(&value)?,
            other => return Err(ApiError::param(other, "unknown parameter")),
        }
    }
    let rows = state.urls.list(offer.as_deref()).await?;
    Ok(Json(rows.into_iter().map(UrlOut::from).collect()))
}

/// The `offer_id` of a listing: none when empty; refused before it reaches Postgres (whose
/// text cannot hold NUL) when it could not be an offer id.
fn offer_filter(value: &str) -> Result<Option<String>, ApiError> {
    if value.chars().any(char::is_control) {
        return Err(ApiError::param("offer_id", "contains control characters"));
    }
    if value.chars().count() > crate::url_spec::MAX_ID_CHARS {
        let max = crate::url_spec::MAX_ID_CHARS;
        return Err(ApiError::param(
            "offer_id",
            format!("longer than {max} characters"),
        ));
    }
    Ok(Some(value.to_owned()).filter(|v| !v.is_empty()))
}

#[utoipa::path(post, path = "/api/v1/urls", tag = "urls", request_body = NewUrlBody,
    security(("bearer" = [])),
    responses(
        (status = 201, body = UrlOut, description = "Added"),
        (status = 400, body = super::doc::ErrorBody, description = "A bad field, named"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
        (status = 409, body = super::doc::ErrorBody, description = "The same URL is enabled"),
        (status = 422, body = super::doc::ErrorBody, description = "The URL is not valid (the CLI's message)"),
    ))]
pub(super) async fn create(
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<UrlOut>), ApiError> {
    let b: NewUrlBody = body(&bytes)?;
    let spec = UrlSpec {
        offer_id: b.offer_id,
        url: b.url,
        method: b
            .method
            .as_deref()
            .map(method)
            .transpose()?
            .unwrap_or(Method::Get),
        goal: b.goal,
        statuses: b.statuses,
        body: b.body,
        content_type: b
            .content_type
            .as_deref()
            .map(content_type)
            .transpose()?
            .unwrap_or(ContentType::Json),
        follow_redirects: b.follow_redirects.unwrap_or(false),
        headers: headers(b.headers.unwrap_or_default()),
        timeout: b.timeout_ms.map(Duration::from_millis),
    };
    let id = state.urls.add(spec, b.allow_duplicate.unwrap_or(false)).await?;
    Ok((StatusCode::CREATED, Json(get(&state, id).await?.into())))
}

async fn get(state: &AppState, id: i64) -> Result<UrlRow, ApiError> {
    let client = state.pool.get().await?;
    urls::get(&client, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no cross-postback URL with id {id}")))
}

#[utoipa::path(get, path = "/api/v1/urls/{id}", tag = "urls",
    params(("id" = i64, Path, description = "The URL's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UrlOut, description = "The URL"),
        (status = 400, body = super::doc::ErrorBody, description = "Not an id"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
        (status = 404, body = super::doc::ErrorBody, description = "No such URL"),
    ))]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<UrlOut>, ApiError> {
    Ok(Json(get(&state, id(&raw)?).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/urls/{id}", tag = "urls", request_body = UrlPatchBody,
    params(("id" = i64, Path, description = "The URL's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UrlOut, description = "The URL as edited"),
        (status = 400, body = super::doc::ErrorBody, description = "A bad field, named"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
        (status = 404, body = super::doc::ErrorBody, description = "No such URL"),
        (status = 409, body = super::doc::ErrorBody, description = "The same URL is enabled"),
        (status = 422, body = super::doc::ErrorBody, description = "The URL is not valid"),
    ))]
pub(super) async fn edit(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    bytes: Bytes,
) -> Result<Json<UrlOut>, ApiError> {
    let id = id(&raw)?;
    let b: UrlPatchBody = body(&bytes)?;
    let patch = UrlPatch {
        url: b.url,
        method: b.method.as_deref().map(method).transpose()?,
        goal: b.goal,
        statuses: b.statuses,
        body: b.body,
        content_type: b.content_type.as_deref().map(content_type).transpose()?,
        follow_redirects: b.follow_redirects,
        headers: b.headers.map(headers),
        timeout: b.timeout_ms.map(|t| t.map(Duration::from_millis)),
    };
    let changes = patch.url.is_some()
        || patch.method.is_some()
        || patch.goal.is_some()
        || patch.statuses.is_some()
        || patch.body.is_some()
        || patch.content_type.is_some()
        || patch.follow_redirects.is_some()
        || patch.headers.is_some()
        || patch.timeout.is_some();
    if changes {
        state
            .urls
            .edit(id, patch, b.allow_duplicate.unwrap_or(false))
            .await?;
    }
    match b.enabled {
        Some(false) => drop(state.urls.disable(id).await?),
        Some(true) => state.urls.enable(id).await?,
        None if !changes => drop(get(&state, id).await?),
        None => {}
    }
    Ok(Json(get(&state, id).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub(super) struct Removed {
    id: i64,
    /// Pending deliveries cancelled with it.
    cancelled: u64,
}

#[utoipa::path(delete, path = "/api/v1/urls/{id}", tag = "urls",
    params(("id" = i64, Path, description = "The URL's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Removed, description = "Removed (`urls remove`)"),
        (status = 400, body = super::doc::ErrorBody, description = "Not an id"),
        (status = 401, body = super::doc::ErrorBody, description = "No valid token"),
        (status = 404, body = super::doc::ErrorBody, description = "No such URL"),
    ))]
pub(super) async fn remove(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let id = id(&raw)?;
    let cancelled = state.urls.remove(id).await?;
    Ok(Json(Removed { id, cancelled }))
}
