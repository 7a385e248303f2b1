//! `/api/v1`: JSON over Bearer tokens (`admin_tokens`), errors as [`ApiError`], and the
//! OpenAPI document generated from these handlers (`/api/v1/openapi.json`, no token).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::error::ApiError;
use super::state::AppState;
use crate::store::access;

mod attempts;
mod deliveries;
mod doc;
mod links;
mod urls;

pub use doc::ApiDoc;

pub fn router(state: AppState) -> Router<AppState> {
    let guarded = Router::new()
        .route("/api/v1/attempts", get(attempts::list))
        .route("/api/v1/deliveries/{id}", get(deliveries::show))
        .route("/api/v1/deliveries/{id}/redeliver", post(deliveries::redeliver))
        .route("/api/v1/urls", get(urls::list).post(urls::create))
        .route(
            "/api/v1/urls/{id}",
            get(urls::show).patch(urls::edit).delete(urls::remove),
        )
        .route("/api/v1/links", get(links::list).post(links::create))
        .route("/api/v1/links/{id}", axum::routing::delete(links::revoke))
        .route_layer(middleware::from_fn_with_state(state, bearer));
    Router::new()
        .merge(guarded)
        .route("/api/v1/openapi.json", get(doc::openapi))
        .route("/api/v1", get(not_found))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
}

/// An address under `/api/v1` that is not one.
async fn not_found() -> ApiError {
    ApiError::not_found("no such API address; see /api/v1/openapi.json")
}

/// Lets a request through only with a valid admin token; the token's row is read on every
/// request, so a revoked token stops working at once.
async fn bearer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let raw = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(raw) = raw else {
        return ApiError::unauthorized().into_response();
    };
    let verified = async {
        let client = state.pool.get().await?;
        Ok::<_, ApiError>(access::verify_token(&client, raw).await?)
    }
    .await;
    match verified {
        Ok(Some(_)) => next.run(req).await,
        Ok(None) => ApiError::unauthorized().into_response(),
        Err(e) => e.into_response(),
    }
}

/// A path's id, or 400 naming it.
fn id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .map_err(|_| ApiError::param("id", format!("{text:?} is not an id (an integer)")))
}

/// A JSON body, or 400 naming the field that is wrong (`body` when it is not JSON at all).
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let param = if path == "." || path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        ApiError::param(&param, e.inner())
    })
}
