//! `GET /`: what this service is and where to go next (the seeds' smoke test curls `/`).

use actix_web::{get, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "service": "gitops-status",
    "version": "0.1.0",
    "status": "/status",
    "history": "/history",
    "swagger_ui": "/swagger-ui/",
    "openapi": "/api-docs/openapi.json"
}))]
pub struct Index {
    pub service: &'static str,
    pub version: &'static str,
    /// Every host's current state.
    pub status: &'static str,
    /// The audit trail.
    pub history: &'static str,
    pub swagger_ui: &'static str,
    pub openapi: &'static str,
}

/// The service's name, version and main addresses.
#[utoipa::path(
    tag = "probes",
    responses((status = 200, description = "Name, version and links", body = Index))
)]
#[get("/")]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok().json(Index {
        service: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        status: "/status",
        history: "/history",
        swagger_ui: "/swagger-ui/",
        openapi: "/api-docs/openapi.json",
    })
}
