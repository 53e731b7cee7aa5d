//! `GET /transitions`: every change of a host's status, newest first, written with the report
//! that made it (so reading it never walks the history).

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Transition, TransitionFilter};

use super::auth::Reader;
use super::error::{ApiError, ErrorBody, ReadAuthErrors};
use super::history::{envelope, Kind};
use super::params::{names_schema, statuses_schema, Problems};
use super::status::SyncStatus;
use super::AppContext;

/// One change of status.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "server_group": "rsyslog-prod", "host": "rsyslog-01", "from_status": "synced",
    "to_status": "out_of_sync", "at": "2026-04-26T11:00:00.000Z", "report_id": 42,
    "kind": "cron", "previous_duration_seconds": 86400.0, "commit_sha": "abc1234567890",
    "changed_files_count": 2
}))]
pub struct TransitionRow {
    pub server_group: String,
    pub host: String,
    /// Null for a host's first report (or its first after a decommission).
    #[schema(required = true)]
    pub from_status: Option<SyncStatus>,
    pub to_status: SyncStatus,
    /// The observation time of the report that changed it.
    #[schema(format = DateTime)]
    pub at: String,
    /// The report that changed it (`GET /history`).
    pub report_id: i64,
    pub kind: Kind,
    /// How long the previous status lasted, in seconds (millisecond precision); null with no
    /// previous status.
    #[schema(required = true)]
    pub previous_duration_seconds: Option<f64>,
    /// The host's deployed commit right after the change.
    #[schema(required = true)]
    pub commit_sha: Option<String>,
    /// Its changed files right after the change.
    pub changed_files_count: u64,
}

impl From<Transition> for TransitionRow {
    fn from(t: Transition) -> Self {
        TransitionRow {
            server_group: t.server_group.to_string(),
            host: t.host.to_string(),
            from_status: t.from_status.map(SyncStatus::from),
            to_status: t.to_status.into(),
            at: t.at.to_string(),
            report_id: t.report_id,
            kind: t.kind.into(),
            previous_duration_seconds: t.previous_duration_ms.map(|ms| ms as f64 / 1000.0),
            commit_sha: t.commit_sha,
            changed_files_count: t.changed_files_count,
        }
    }
}

/// The plain array, or the page with its cursor when `envelope=true`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TransitionsAnswer {
    Rows(Vec<TransitionRow>),
    Page(TransitionPage),
}

/// A page of transitions and the cursor of the next one (Grafana Infinity's cursor mode:
/// size parameter `limit`, cursor parameter `before`, extraction path `next_before`, root
/// selector `rows`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionPage {
    pub rows: Vec<TransitionRow>,
    /// The `before` of the next page; null on the last page.
    #[schema(required = true)]
    pub next_before: Option<i64>,
}

/// The filters and paging of `GET /transitions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransitionsQuery {
    /// Server group names or `*` globs, comma-separated.
    #[param(schema_with = names_schema, example = "rsyslog-*")]
    server_group: Option<String>,
    /// Host names or `*` globs, comma-separated.
    #[param(schema_with = names_schema, example = "rsyslog-01")]
    host: Option<String>,
    /// Only changes to one of these statuses.
    #[param(schema_with = statuses_schema, example = "out_of_sync,failed")]
    to_status: Option<String>,
    /// Only changes from one of these statuses.
    #[param(schema_with = statuses_schema, example = "synced")]
    from_status: Option<String>,
    /// Only changes at or after this instant (RFC 3339 or epoch milliseconds, as Grafana's
    /// `${__from}`).
    #[param(schema_with = super::history::instant_schema, example = "2026-04-26T00:00:00Z")]
    from: Option<String>,
    /// Only changes at or before this instant.
    #[param(schema_with = super::history::instant_schema, example = "1777248000000")]
    to: Option<String>,
    /// Rows per page, 1–1000 (default 100).
    #[param(schema_with = super::history::limit_schema)]
    limit: Option<String>,
    /// Only changes made by reports with an id below this one (`next_before` of the page
    /// before).
    #[param(schema_with = super::history::before_schema)]
    before: Option<String>,
    /// `true`: answer `{"rows": [...], "next_before": id or null}`.
    #[param(value_type = Option<String>, pattern = "^(true|false)?$", example = "true")]
    envelope: Option<String>,
}

/// Every change of a host's status, newest report first.
///
/// A host's first report is a change from null. Page with `limit` and `before` (or
/// `envelope=true` for the cursor form).
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "fleet",
    params(TransitionsQuery),
    responses(
        ReadAuthErrors,
        (status = 200, description = "Matching changes, newest first", body = TransitionsAnswer),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 422, description = "Invalid parameters; `details` names each", body = ErrorBody, example = super::error::examples::invalid_query),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/transitions")]
pub async fn transitions(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    query: web::Query<TransitionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut p = Problems::default();
    let mut filter = TransitionFilter {
        server_group: p.names("server_group", &query.server_group),
        host: p.names("host", &query.host),
        to_status: p.statuses("to_status", &query.to_status),
        from_status: p.statuses("from_status", &query.from_status),
        from: p.instant("from", &query.from),
        to: p.instant("to", &query.to),
        before: p.before(&query.before),
        limit: p.limit(&query.limit),
    };
    let envelope = envelope(&mut p, &query.envelope);
    p.finish()?;
    let limit = filter.limit as usize;
    if envelope {
        filter.limit += 1;
    }
    let mut found = ctx.store.transitions(&filter).await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let rows: Vec<TransitionRow> = found.into_iter().map(TransitionRow::from).collect();
    let answer = if envelope {
        let next_before = if more {
            rows.last().map(|r| r.report_id)
        } else {
            None
        };
        TransitionsAnswer::Page(TransitionPage { rows, next_before })
    } else {
        TransitionsAnswer::Rows(rows)
    };
    Ok(HttpResponse::Ok().json(answer))
}
