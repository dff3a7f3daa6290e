//! The OpenAPI 3.1 document, `GET /openapi.json`. Each plugin registers its routes with
//! `utoipa_axum::routes!`, which takes the path and method from the handler's
//! `#[utoipa::path]`, so a route cannot be served without being documented (and
//! tests/openapi.rs checks the document against the routes served).
use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The document before the routes are added: title, version, the `bearer` scheme.
pub fn base() -> OpenApi {
    let bearer = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("opaque token").build());
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Atome core")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Identity by phone number, connection requests, rooms and video calls. Every error is \
                     `{\"success\": false, \"code\", \"error\"}`; every success has `\"success\": true`. \
                     The contract in prose: docs/protocol.md and docs/http.md.",
                ))
                .build(),
        )
        .components(Some(ComponentsBuilder::new().security_scheme("bearer", bearer).build()))
        .build()
}

/// The served document, rendered to JSON once at start (a request extension).
#[derive(Clone)]
pub struct Document(Arc<str>);

impl Document {
    pub fn new(doc: &OpenApi) -> Result<Document, serde_json::Error> {
        Ok(Document(doc.to_json()?.into()))
    }
}

/// `GET /openapi.json`; needs the [`Document`] as an `Extension` layer.
pub fn router() -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route this server serves (JSON)")))]
async fn openapi_json(Extension(doc): Extension<Document>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0.to_string()).into_response()
}
