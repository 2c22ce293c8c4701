//! `GET /api/v1/openapi.json` of stats-service: the OpenAPI 3 document of the stats
//! API, generated from the handler's annotation so it cannot drift from the code.

use actix_web::HttpResponse;
use common::openapi::ApiKeyAuth;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Shortener stats API", description = "Click statistics of short links."),
    paths(crate::api::link_stats),
    components(schemas(common::problem::FieldError)),
    modifiers(&ApiKeyAuth),
    tags((name = "stats", description = "Click statistics"))
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_the_stats_endpoint_and_both_formats() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let op = &doc["paths"]["/api/v1/links/{code}/stats"]["get"];
        let content = &op["responses"]["200"]["content"];
        assert!(content["application/json"].is_object());
        assert!(content["text/csv"].is_object());
        for status in ["400", "401", "404", "503"] {
            assert!(
                op["responses"][status]["content"]["application/problem+json"].is_object(),
                "{status}"
            );
        }
        let query: Vec<_> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(query, ["from", "to", "granularity", "domain"]);
        assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    }
}
