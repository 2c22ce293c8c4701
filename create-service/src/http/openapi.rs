//! `GET /api/v1/openapi.json`: the OpenAPI 3 document generated from the handlers'
//! annotations, so it cannot drift from the code.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_…")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Shortener link API", description = "Create and manage short links."),
    paths(
        super::create::create_link,
        super::bulk::create_bulk,
        super::get::get_link,
        super::update::update_link,
        super::delete::delete_link,
        super::list::list_links,
        super::qr::link_qr,
    ),
    components(schemas(common::problem::FieldError)),
    modifiers(&ApiKeyAuth),
    tags((name = "links", description = "Short links"))
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
