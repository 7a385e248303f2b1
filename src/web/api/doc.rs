//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ErrorDetail {
    /// invalid_parameter, unauthorized, not_found, conflict, invalid, not_in_scope, …
    code: String,
    /// What is wrong, in words; a bad parameter is named.
    message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cross-postback",
        description = "Statistics of cross-postback attempts, deliveries, URLs and partner links. \
                       Every call but this document takes `Authorization: Bearer <token>` \
                       (`cross-postback tokens create --name NAME`)."
    ),
    paths(
        super::attempts::list,
        super::deliveries::show,
        super::deliveries::redeliver,
        super::urls::list,
        super::urls::create,
        super::urls::show,
        super::urls::edit,
        super::urls::remove,
        super::links::list,
        super::links::create,
        super::links::revoke,
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
