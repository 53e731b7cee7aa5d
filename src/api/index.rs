//! `GET /`: what this service is, how much history it keeps, and where to go next (the
//! seeds' smoke test curls `/`).

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::RetentionPolicyView;
use super::error::{ApiError, ErrorBody};
use super::AppContext;

/// Whether the client is a browser: its Accept names text/html before any JSON type (curl
/// sends `*/*`, Grafana and scripts JSON: they keep the JSON index).
fn wants_html(req: &actix_web::HttpRequest) -> bool {
    let Some(accept) = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    for item in accept.split(',') {
        let media = item.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/html") {
            return true;
        }
        if media.eq_ignore_ascii_case("application/json") || media.ends_with("+json") {
            return false;
        }
    }
    false
}

/// How much history the server keeps.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "policy": {"retain_reports": "30d", "retain_changes": "400d", "retain_per_host": 100,
               "prune_interval": "10m"},
    "oldest_report": "2026-10-31T12:00:00.000Z",
    "last_prune": {"started_at": "2026-11-30T12:00:00.000Z", "removed": 14400, "error": null}
}))]
pub struct Retention {
    pub policy: RetentionPolicyView,
    /// When the oldest row still in the history was received; null while it is empty.
    #[schema(required = true, format = DateTime)]
    pub oldest_report: Option<String>,
    /// The last retention pass since the server started; null before the first.
    #[schema(required = true)]
    pub last_prune: Option<LastPrune>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LastPrune {
    #[schema(format = DateTime)]
    pub started_at: String,
    /// Rows it removed.
    pub removed: u64,
    /// Why it failed, when it did (the next pass retries).
    #[schema(required = true)]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "service": "gitops-status",
    "version": "0.1.0",
    "status": "/status",
    "history": "/history",
    "summary": "/summary",
    "groups": "/groups",
    "transitions": "/transitions",
    "commits": "/commits",
    "stale_after": "*=1h",
    "swagger_ui": "/swagger-ui/",
    "openapi": "/api-docs/openapi.json",
    "retention": {
        "policy": {"retain_reports": "30d", "retain_changes": "400d", "retain_per_host": 100,
                   "prune_interval": "10m"},
        "oldest_report": "2026-10-31T12:00:00.000Z",
        "last_prune": null
    }
}))]
pub struct Index {
    pub service: &'static str,
    pub version: &'static str,
    /// Every host's current state.
    pub status: &'static str,
    /// The audit trail.
    pub history: &'static str,
    /// Counts by status, for the fleet and per group.
    pub summary: &'static str,
    pub groups: &'static str,
    /// Every change of a host's status.
    pub transitions: &'static str,
    /// Rollouts: which hosts run which commit.
    pub commits: &'static str,
    /// `--stale-after`: how long hosts of each group may go without a drift check.
    pub stale_after: String,
    pub swagger_ui: &'static str,
    pub openapi: &'static str,
    pub retention: Retention,
}

/// The service's name, version, main addresses and how much history it keeps.
#[utoipa::path(
    security(()),
    tag = "probes",
    responses(
        (status = 200, description = "Name, version, links and retention", body = Index),
        (status = 303, description = "A browser (its Accept prefers text/html to JSON) is sent to the status page, /ui/", headers(("Location" = String, description = "/ui/"))),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/")]
pub async fn index(
    ctx: web::Data<AppContext>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if wants_html(&req) {
        return Ok(HttpResponse::SeeOther()
            .insert_header((actix_web::http::header::LOCATION, "/ui/"))
            .finish());
    }
    let oldest = ctx.store.oldest_report().await?;
    let last_prune = ctx.pruner.last_pass().map(|pass| LastPrune {
        started_at: pass.started_at.to_string(),
        removed: pass.summary.removed,
        error: pass.error,
    });
    Ok(HttpResponse::Ok().json(Index {
        service: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        status: "/status",
        history: "/history",
        summary: "/summary",
        groups: "/groups",
        transitions: "/transitions",
        commits: "/commits",
        stale_after: ctx.store.stale_policy().to_string(),
        swagger_ui: "/swagger-ui/",
        openapi: "/api-docs/openapi.json",
        retention: Retention {
            policy: RetentionPolicyView::of(&ctx),
            oldest_report: oldest.map(|t| t.to_string()),
            last_prune,
        },
    }))
}
