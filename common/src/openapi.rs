//! OpenAPI pieces the create and stats APIs share: how a caller authenticates.

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Adds the `api_key` scheme (`Authorization: Bearer sk_…`) that operations name in
/// their `security`; one definition so both documents describe the same key.
pub struct ApiKeyAuth;

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
