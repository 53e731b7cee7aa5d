//! Counts for stat panels: `GET /summary` (the fleet, or the hosts a filter selects) and
//! `GET /groups` (the same per server_group: the bar gauge and the variable query).

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FleetSummary;

use super::auth::Reader;
use super::error::{ApiError, ErrorBody, ReadAuthErrors};
use super::status::FleetQuery;
use super::AppContext;

/// How many hosts are in each status, stale, and drifted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "hosts": 120, "synced": 112, "out_of_sync": 6, "failed": 1, "unknown": 1, "stale": 2,
    "drifted_files": 9, "oldest_drift_since": "2026-04-25T08:14:00.000Z"
}))]
pub struct Summary {
    pub hosts: u64,
    pub synced: u64,
    pub out_of_sync: u64,
    pub failed: u64,
    pub unknown: u64,
    /// Hosts whose drift checks stopped arriving (counted in their status as well).
    pub stale: u64,
    /// The sum of the hosts' changed_files_count.
    pub drifted_files: u64,
    /// The earliest `status_since` among hosts not synced; null when every host is synced.
    #[schema(required = true, format = DateTime)]
    pub oldest_drift_since: Option<String>,
}

impl From<FleetSummary> for Summary {
    fn from(s: FleetSummary) -> Self {
        Summary {
            hosts: s.hosts,
            synced: s.synced,
            out_of_sync: s.out_of_sync,
            failed: s.failed,
            unknown: s.unknown,
            stale: s.stale,
            drifted_files: s.drifted_files,
            oldest_drift_since: s.oldest_drift_since.map(|t| t.to_string()),
        }
    }
}

/// One server group's counts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "server_group": "rsyslog-prod", "hosts": 12, "synced": 11, "out_of_sync": 1, "failed": 0,
    "unknown": 0, "stale": 0, "drifted_files": 2, "oldest_drift_since": "2026-04-25T08:14:00.000Z"
}))]
pub struct GroupSummary {
    pub server_group: String,
    #[serde(flatten)]
    pub counts: Summary,
}

/// Counts of the hosts the filters select (the same filters as `GET /status`), for stat
/// panels: one object.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "fleet",
    params(FleetQuery),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The counts (all zero before the first report)", body = Summary),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 422, description = "A filter value is not valid; `details` names each", body = ErrorBody, example = super::error::examples::invalid_filter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/summary")]
pub async fn summary(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter()?;
    let summary = ctx.store.summary(&filter, ctx.clock.now()).await?;
    Ok(HttpResponse::Ok().json(Summary::from(summary)))
}

/// The same counts per server_group, ordered by group: one row per group that has hosts
/// the filters select.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "fleet",
    params(FleetQuery),
    responses(
        ReadAuthErrors,
        (status = 200, description = "One row per server group; [] before the first report", body = Vec<GroupSummary>),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 422, description = "A filter value is not valid; `details` names each", body = ErrorBody, example = super::error::examples::invalid_filter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/groups")]
pub async fn groups(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter()?;
    let groups = ctx.store.groups(&filter, ctx.clock.now()).await?;
    let rows: Vec<GroupSummary> = groups
        .into_iter()
        .map(|(group, counts)| GroupSummary {
            server_group: group.to_string(),
            counts: counts.into(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}
