//! Probes: `/health` (the process serves) and `/ready` (the database answers).

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{error_chain, ApiError, ErrorBody};
use super::AppContext;

/// How long /ready's database checks may take in all (the chart's readiness probe waits 2 s).
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

#[derive(Debug, Serialize, ToSchema)]
pub struct Probe {
    /// `ok` for /health, `ready` for /ready.
    #[schema(example = "ok")]
    pub status: String,
    /// /ready only, and only when there are some: problems that do not stop this instance
    /// from serving, e.g. a token file that could not be reloaded (then no token is accepted
    /// until it loads, while open reads go on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["the token file /etc/gitops-status/auth/tokens could not be reloaded: line 3: expected NAME SHA256_HEX SCOPES, found 2 fields; no token is accepted until it loads"]))]
    pub warnings: Vec<String>,
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
        warnings: Vec::new(),
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
    // The writer's queue closes the moment its task ends, a little before the supervisor has
    // recorded why (its cause is logged then): answer 503 in that moment too.
    if !ctx.store.writer_up() {
        tracing::warn!("readiness check failed: the writer task has stopped");
        return Err(ApiError::Unavailable(
            "not ready: the writer task has stopped".to_owned(),
        ));
    }
    // Reads go on without tokens, and a request that needs one is told why it is refused:
    // the instance stays in its Service, and the reason shows here and in /metrics.
    let warnings: Vec<String> = ctx
        .auth
        .as_ref()
        .and_then(|auth| auth.failure())
        .map(|failure| format!("{failure}; no token is accepted until it loads"))
        .into_iter()
        .collect();
    // Inside the chart's probe timeout, whatever the database does.
    let checked = tokio::time::timeout(READY_TIMEOUT, ctx.store.check())
        .await
        .unwrap_or_else(|_| {
            Err(crate::store::StoreError::ProbeUnanswered(format!(
                "the database did not answer within {} ms",
                READY_TIMEOUT.as_millis()
            )))
        });
    match checked {
        Ok(()) => Ok(HttpResponse::Ok().json(Probe {
            status: "ready".to_owned(),
            warnings,
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
