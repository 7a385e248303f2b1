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

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::ApiDoc;

    /// The parser takes an empty value as no filter (what an HTML form sends for an empty field),
    /// so the document must allow it for every query parameter of the table; schemathesis sends
    /// `url_id=` as invalid data otherwise, and the 200 it gets is reported as a fault.
    #[test]
    fn every_query_parameter_of_the_table_documents_the_empty_value() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        let params = doc["paths"]["/api/v1/attempts"]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        let mut checked = 0;
        for p in params.iter().filter(|p| p["in"] == "query") {
            let name = p["name"].as_str().unwrap_or_default();
            let schema = &p["schema"];
            // An exploded list sends each item: an empty one is an empty item.
            let schema = if schema["type"] == "array" {
                &schema["items"]
            } else {
                schema
            };
            let validator =
                jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{name}'s schema compiles: {e}"));
            // Spaces around a value are dropped (`query::parse`), so only spaces is empty too.
            for empty in ["", "  "] {
                assert!(
                    validator.is_valid(&serde_json::json!(empty)),
                    "{name} does not allow the empty value {empty:?}: {schema}"
                );
            }
            assert_ne!(p["required"], true, "{name} is optional");
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} query parameters");
    }
}
