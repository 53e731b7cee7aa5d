//! Probes: `/health` (the process serves) and `/ready` (the database answers).

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{error_chain, ApiError, ErrorBody};
use super::AppContext;

#[derive(Debug, Serialize, ToSchema)]
pub struct Probe {
    /// `ok` for /health, `ready` for /ready.
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: 200 while the process serves HTTP. It does not touch the database.
#[utoipa::path(
    security(()),
    tag = "probes",
    responses(
        (status = 200, description = "The process is serving", body = Probe),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
    )
)]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Probe {
        status: "ok".to_owned(),
    })
}

/// Readiness: 200 when the database answers a query on the current-state view, takes writes,
/// and the background tasks run; 503 with the reason otherwise.
#[utoipa::path(
    security(()),
    tag = "probes",
    responses(
        (status = 200, description = "The database answers", body = Probe),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 503, description = "The database does not answer; `error` says why", body = ErrorBody, example = super::error::examples::not_ready),
    )
)]
#[get("/ready")]
pub async fn ready(ctx: web::Data<AppContext>) -> Result<HttpResponse, ApiError> {
    if let Some(failure) = ctx.supervisor.failure() {
        tracing::warn!(problem = %failure, "readiness check failed");
        return Err(ApiError::Unavailable(format!("not ready: {failure}")));
    }
    if let Some(failure) = ctx.auth.as_ref().and_then(|auth| auth.failure()) {
        tracing::warn!(problem = %failure, "readiness check failed");
        return Err(ApiError::Unavailable(format!(
            "not ready: {failure}; no token is accepted until it loads"
        )));
    }
    match ctx.store.check().await {
        Ok(()) => Ok(HttpResponse::Ok().json(Probe {
            status: "ready".to_owned(),
        })),
        Err(err) => {
            let reason = error_chain(&err);
            tracing::warn!(error = %reason, "readiness check failed");
            Err(ApiError::Unavailable(format!(
                "database not ready: {reason}"
            )))
        }
    }
}
