//! The current state: `GET /status`, `/status.json`, `/status/{server_group}` and
//! `/status/{server_group}/{host}`, flat rows for Grafana's Infinity datasource. Also the
//! answer every accepted v2 report gets.

use std::io::Write as _;

use actix_web::http::header::{self, AcceptEncoding, ContentEncoding, Encoding, Header as _};
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{
    is_stale, FleetFilter, HostName, HostState, ServerGroup, StalePolicy, Status, Timestamp,
};
use crate::store::{Recorded, StoredAnswer};

use super::auth::Reader;
use super::body::{GroupName, Name};
use super::error::{ApiError, ErrorBody, ReadAuthErrors};
use super::params::{names_schema, statuses_schema, text_schema, Problems};
use super::AppContext;

/// A sync status as v2 spells it.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Synced,
    OutOfSync,
    Failed,
    Unknown,
}

impl From<Status> for SyncStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Synced => SyncStatus::Synced,
            Status::OutOfSync => SyncStatus::OutOfSync,
            Status::Failed => SyncStatus::Failed,
            Status::Unknown => SyncStatus::Unknown,
        }
    }
}

/// One host's current state as stored (`hosts.status_row`): the seed's 17 fields and
/// `status_since`. Every field is present in every row; a field nobody reported is null.
/// Timestamps are RFC 3339 UTC with millisecond precision.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "project_name": "gitops-for-servers",
    "repo_name": "rsyslog",
    "server_group": "rsyslog-prod",
    "server_type": "rsyslog",
    "environment": "prod",
    "host": "rsyslog-01",
    "status": "synced",
    "changed_files_count": 0,
    "changed_files": [],
    "validation_status": "passed",
    "validation_message": "rsyslog syntax validation passed",
    "last_pipeline_run": "2026-04-26T10:30:00.000Z",
    "last_cron_check": "2026-04-26T11:00:00.000Z",
    "commit_sha": "abc1234567890",
    "branch": "master",
    "updated_by": "woodpecker",
    "timestamp": "2026-04-26T11:00:00.412Z",
    "status_since": "2026-04-25T08:14:00.000Z"
}))]
pub struct StoredStatus {
    #[schema(required = true)]
    pub project_name: Option<String>,
    #[schema(required = true)]
    pub repo_name: Option<String>,
    pub server_group: String,
    #[schema(required = true)]
    pub server_type: Option<String>,
    #[schema(required = true)]
    pub environment: Option<String>,
    pub host: String,
    /// The newest observed status (from a pipeline, cron or v1 report).
    pub status: SyncStatus,
    /// The length of `changed_files`.
    pub changed_files_count: usize,
    /// Files that differ from Git, from the newest report that carried a status or a file
    /// list (a status without a list means none).
    pub changed_files: Vec<String>,
    #[schema(required = true)]
    pub validation_status: Option<String>,
    #[schema(required = true)]
    pub validation_message: Option<String>,
    /// The time of the newest pipeline report (stamped by the server when the client sent none).
    #[schema(required = true, format = DateTime)]
    pub last_pipeline_run: Option<String>,
    /// The time of the newest cron or v1 drift check.
    #[schema(required = true, format = DateTime)]
    pub last_cron_check: Option<String>,
    #[schema(required = true)]
    pub commit_sha: Option<String>,
    #[schema(required = true)]
    pub branch: Option<String>,
    #[schema(required = true)]
    pub updated_by: Option<String>,
    /// When the server last accepted a report for this host (its own clock).
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// When the current status began: the observation time of the first report of the
    /// current run of that status.
    #[schema(format = DateTime)]
    pub status_since: String,
}

/// One host's current state: the stored fields, then whether it has gone silent. Every field
/// is present in every row and keeps one JSON type.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "project_name": "gitops-for-servers",
    "repo_name": "rsyslog",
    "server_group": "rsyslog-prod",
    "server_type": "rsyslog",
    "environment": "prod",
    "host": "rsyslog-01",
    "status": "synced",
    "changed_files_count": 0,
    "changed_files": [],
    "validation_status": "passed",
    "validation_message": "rsyslog syntax validation passed",
    "last_pipeline_run": "2026-04-26T10:30:00.000Z",
    "last_cron_check": "2026-04-26T11:00:00.000Z",
    "commit_sha": "abc1234567890",
    "branch": "master",
    "updated_by": "woodpecker",
    "timestamp": "2026-04-26T11:00:00.412Z",
    "status_since": "2026-04-25T08:14:00.000Z",
    "stale": false,
    "report_due_by": "2026-04-26T12:00:00.412Z"
}))]
pub struct HostStatus {
    #[serde(flatten)]
    pub stored: StoredStatus,
    /// The host had a drift check (cron or v1) and the server has received none for longer
    /// than `--stale-after` allows its group.
    pub stale: bool,
    /// When the host turns stale without another drift check (the server's receive time of
    /// the last one plus the group's allowance); null for a host that is never stale (no
    /// drift check yet, or its group's allowance is off).
    #[schema(required = true, format = DateTime)]
    pub report_due_by: Option<String>,
}

impl HostStatus {
    /// The row of `state` as of `now` under `policy`.
    pub fn of(state: HostState, policy: &StalePolicy, now: Timestamp) -> Self {
        let due = policy.due_by(state.server_group.as_str(), state.drift_received_at);
        HostStatus {
            stored: StoredStatus::from(state),
            stale: is_stale(due, now),
            report_due_by: due.map(|t| t.to_string()),
        }
    }
}

impl From<HostState> for StoredStatus {
    fn from(s: HostState) -> Self {
        let d = s.deployment;
        StoredStatus {
            project_name: d.project_name,
            repo_name: d.repo_name,
            server_group: s.server_group.to_string(),
            server_type: d.server_type,
            environment: d.environment,
            host: s.host.to_string(),
            status: s.status.into(),
            changed_files_count: s.changed_files.len(),
            changed_files: s.changed_files,
            validation_status: d.validation_status,
            validation_message: d.validation_message,
            last_pipeline_run: s.last_pipeline_run.map(|t| t.to_string()),
            last_cron_check: s.last_cron_check.map(|t| t.to_string()),
            commit_sha: d.commit_sha,
            branch: d.branch,
            updated_by: d.updated_by,
            timestamp: s.timestamp.to_string(),
            status_since: s.status_since.to_string(),
        }
    }
}

/// The answer to an accepted v2 report.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "success": true,
    "message": "Status updated successfully",
    "report_id": 42,
    "previous_status": "synced",
    "status": {
        "project_name": "gitops-for-servers",
        "repo_name": "rsyslog",
        "server_group": "rsyslog-prod",
        "server_type": "rsyslog",
        "environment": "prod",
        "host": "rsyslog-01",
        "status": "out_of_sync",
        "changed_files_count": 2,
        "changed_files": ["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"],
        "validation_status": "passed",
        "validation_message": "rsyslog syntax validation passed",
        "last_pipeline_run": "2026-04-26T10:30:00.000Z",
        "last_cron_check": "2026-04-26T11:00:00.000Z",
        "commit_sha": "abc1234567890",
        "branch": "master",
        "updated_by": "woodpecker",
        "timestamp": "2026-04-26T11:00:00.412Z",
        "status_since": "2026-04-26T11:00:00.000Z",
        "stale": false,
        "report_due_by": "2026-04-26T12:00:00.412Z"
    }
}))]
pub struct ReportAccepted {
    /// Always true.
    pub success: bool,
    /// `Status updated successfully`, or which parts of the state already held newer
    /// observations (then the report is in the history but did not move those parts).
    pub message: String,
    /// The id of the report's row in the history (`GET /history`, table `reports`).
    pub report_id: i64,
    /// The host's status before this report; null when the report created the host. The
    /// report changed the status when this differs from `status.status`.
    pub previous_status: Option<SyncStatus>,
    /// The host's current state after this report.
    pub status: HostStatus,
}

/// A host's `GET /status` row, as the store keeps it (`hosts.status_row`): the read-time
/// fields (`stale`, `report_due_by`) are appended when it is read.
pub fn render_row(state: &HostState) -> Result<String, serde_json::Error> {
    serde_json::to_string(&StoredStatus::from(state.clone()))
}

/// What an accepted report did, for the `message` of the answer.
pub(super) fn outcome(recorded: &Recorded) -> String {
    let message = outcome_of_merge(recorded);
    if recorded.ahead_of_clock {
        format!(
            "{message} (its time lies ahead of the server clock, so it counts as the time it \
             arrived; check the client's clock)"
        )
    } else {
        message
    }
}

fn outcome_of_merge(recorded: &Recorded) -> String {
    if !recorded.changed {
        "Report recorded in history; the host already holds newer observations, so its \
         state was not changed"
            .to_owned()
    } else if recorded.kept_newer.is_empty() {
        "Status updated successfully".to_owned()
    } else {
        format!(
            "Status updated; newer observations were kept for: {}",
            recorded.kept_newer.join(", ")
        )
    }
}

/// The answer to an accepted v2 report: 201 when it created the host, 200 otherwise.
pub(super) fn accepted(
    policy: &StalePolicy,
    recorded: &Recorded,
) -> Result<StoredAnswer, ApiError> {
    let state = recorded.state.clone();
    let now = state.timestamp;
    let body = ReportAccepted {
        success: true,
        message: outcome(recorded),
        report_id: recorded.report_id,
        previous_status: recorded.previous_status.map(SyncStatus::from),
        status: HostStatus::of(state, policy, now),
    };
    Ok(StoredAnswer {
        status: if recorded.created { 201 } else { 200 },
        body: serde_json::to_string(&body).map_err(ApiError::internal)?,
    })
}

pub(super) fn parse_group(text: &str) -> Result<ServerGroup, ApiError> {
    ServerGroup::parse(text).map_err(|p| ApiError::field("server_group", p))
}

pub(super) fn parse_host(text: &str) -> Result<HostName, ApiError> {
    HostName::parse(text).map_err(|p| ApiError::field("host", p))
}

/// The last unfiltered `GET /status` body rendered, kept until the database changes or the
/// first host it shows as not stale passes its `report_due_by`: one JSON array of every
/// host's row, and its gzip encoding once a client asked for it. A request finding it current
/// costs a clone of the bytes; one finding it out of date renders it again, once, while
/// requests arriving meanwhile wait for that rendering instead of repeating it.
#[derive(Debug, Default)]
pub struct StatusCache(tokio::sync::Mutex<Option<CachedStatus>>);

#[derive(Debug)]
struct CachedStatus {
    /// `Store::version` when it was rendered: it holds at least every report committed by then.
    version: i64,
    /// The rendering is right until this time (None: no host turns stale without a report).
    valid_until: Option<Timestamp>,
    identity: web::Bytes,
    gzip: Option<web::Bytes>,
}

impl CachedStatus {
    fn current(&self, version: i64, now: Timestamp) -> bool {
        self.version >= version && self.valid_until.is_none_or(|until| now <= until)
    }
}

impl StatusCache {
    /// The body, gzip-encoded when `gzip`, as of at least the store's current version and now.
    async fn get(&self, ctx: &AppContext, gzip: bool) -> Result<web::Bytes, ApiError> {
        let version = ctx.store.version().await?;
        let now = ctx.clock.now();
        let mut slot = self.0.lock().await;
        let cached = match slot.take() {
            Some(cached) if cached.current(version, now) => cached,
            _ => {
                let rows = ctx
                    .store
                    .status_rows(&FleetFilter::default(), None, now)
                    .await?;
                CachedStatus {
                    version,
                    valid_until: rows.valid_until,
                    identity: web::Bytes::from(rows.body),
                    gzip: None,
                }
            }
        };
        let cached = slot.insert(cached);
        if !gzip {
            return Ok(cached.identity.clone());
        }
        if cached.gzip.is_none() {
            let identity = cached.identity.clone();
            let encoded = web::block(move || gzip_encode(&identity))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
            cached.gzip = Some(encoded);
        }
        Ok(cached.gzip.clone().unwrap_or_default())
    }
}

fn gzip_encode(body: &[u8]) -> std::io::Result<web::Bytes> {
    // Fast compression, as actix's own Compress middleware uses: these rows repeat the same
    // names and values, so even level 1 shrinks them to a small fraction.
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    Ok(web::Bytes::from(encoder.finish()?))
}

/// Whether the client takes gzip (Grafana does) rather than the plain body.
fn wants_gzip(req: &HttpRequest) -> bool {
    AcceptEncoding::parse(req).is_ok_and(|accept| {
        accept.negotiate([Encoding::gzip(), Encoding::identity()].iter()) == Some(Encoding::gzip())
    })
}

/// A JSON array already rendered by the store.
fn json_rows(rows: impl Into<web::Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(rows.into())
}

/// The filters of `GET /status`, `/status.json`, `/status/{server_group}`, `/summary` and
/// `/groups`. Each takes comma-separated values (any of them matches); names and values take
/// `*` globs; an empty value or `*` alone means all.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FleetQuery {
    /// Only hosts with one of these statuses: synced, out_of_sync, failed, unknown (v1
    /// spellings and any case accepted), e.g. `out_of_sync,failed`.
    #[param(schema_with = statuses_schema, example = "out_of_sync,failed")]
    status: Option<String>,
    /// Only hosts whose environment matches, e.g. `prod`.
    #[param(schema_with = text_schema, example = "prod")]
    environment: Option<String>,
    /// e.g. `rsyslog,nginx`.
    #[param(schema_with = text_schema, example = "rsyslog")]
    server_type: Option<String>,
    /// Server group names or globs, e.g. `rsyslog-*`.
    #[param(schema_with = names_schema, example = "rsyslog-*")]
    server_group: Option<String>,
    /// Host names or globs, e.g. `rsyslog-01,rsyslog-02`.
    #[param(schema_with = names_schema, example = "rsyslog-0*")]
    host: Option<String>,
    #[param(schema_with = text_schema, example = "rsyslog")]
    repo_name: Option<String>,
    #[param(schema_with = text_schema, example = "gitops-for-servers")]
    project_name: Option<String>,
    #[param(schema_with = text_schema, example = "master")]
    branch: Option<String>,
    /// The deployed commit, e.g. `abc123*`.
    #[param(schema_with = text_schema, example = "abc1234567890")]
    commit_sha: Option<String>,
    #[param(schema_with = text_schema, example = "passed")]
    validation_status: Option<String>,
    /// `true`: only stale hosts; `false`: only hosts that are not stale.
    #[param(value_type = Option<String>, pattern = "^(true|false|\\*)?$", example = "true")]
    stale: Option<String>,
}

impl FleetQuery {
    /// The filter, or a 422 naming every bad parameter.
    pub fn filter(&self) -> Result<FleetFilter, ApiError> {
        let mut p = Problems::default();
        let filter = FleetFilter {
            status: p.statuses("status", &self.status),
            environment: p.patterns("environment", &self.environment),
            server_type: p.patterns("server_type", &self.server_type),
            server_group: p.names("server_group", &self.server_group),
            host: p.names("host", &self.host),
            repo_name: p.patterns("repo_name", &self.repo_name),
            project_name: p.patterns("project_name", &self.project_name),
            branch: p.patterns("branch", &self.branch),
            commit_sha: p.patterns("commit_sha", &self.commit_sha),
            validation_status: p.patterns("validation_status", &self.validation_status),
            stale: p.boolean("stale", &self.stale),
        };
        p.finish()?;
        Ok(filter)
    }
}

async fn all_hosts(
    ctx: &AppContext,
    req: &HttpRequest,
    query: &FleetQuery,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter()?;
    if !filter.is_everything() {
        let rows = ctx
            .store
            .status_rows(&filter, None, ctx.clock.now())
            .await?;
        return Ok(json_rows(rows.body));
    }
    let gzip = wants_gzip(req);
    let body = ctx.status_cache.get(ctx, gzip).await?;
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/json")
        .insert_header((header::VARY, "accept-encoding"));
    if gzip {
        response.insert_header(ContentEncoding::Gzip);
    }
    Ok(response.body(body))
}

/// Every host's current state, one flat row per host, ordered by server_group and host.
///
/// Point Grafana's Infinity datasource here (parser JSON or Backend, no root selector).
/// Filters narrow the rows; an unknown parameter is a 400, never ignored.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "status",
    params(FleetQuery),
    responses(
        ReadAuthErrors,
        (status = 200, description = "One row per host; [] before the first report", body = Vec<HostStatus>),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 422, description = "A filter value is not valid; `details` names each", body = ErrorBody, example = super::error::examples::invalid_filter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/status")]
pub async fn list_status(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    _reader: Reader,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, ApiError> {
    all_hosts(&ctx, &req, &query).await
}

/// The same rows as `GET /status`, at the address v1 dashboards read.
///
/// Note for v1 dashboards: this is the v2 array, not the v1 object; `GET /api/status` gives
/// the v1 object (README, Migrating from v1).
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "status",
    params(FleetQuery),
    responses(
        ReadAuthErrors,
        (status = 200, description = "One row per host; [] before the first report", body = Vec<HostStatus>),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 422, description = "A filter value is not valid; `details` names each", body = ErrorBody, example = super::error::examples::invalid_filter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/status.json")]
pub async fn list_status_json(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    _reader: Reader,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, ApiError> {
    all_hosts(&ctx, &req, &query).await
}

/// `/status/pipeline` and `/status/cron` are endpoints, not groups: a GET there is not routed
/// to the group listing (it gets 405 with `Allow: POST`).
fn not_an_endpoint(ctx: &actix_web::guard::GuardContext) -> bool {
    let path = ctx.head().uri.path();
    !crate::domain::RESERVED_GROUPS
        .iter()
        .any(|name| path.strip_prefix("/status/") == Some(name))
}

/// The current state of every host in one server group.
///
/// A group nobody has reported is not an error: the answer is 200 with an empty array, so a
/// dashboard variable pointing at a new group shows an empty table rather than a failure.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "status",
    params(
        ("server_group" = GroupName, Path, description = "e.g. rsyslog-prod", example = "rsyslog-prod"),
        FleetQuery,
    ),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The group's hosts; [] for an unknown group", body = Vec<HostStatus>),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 422, description = "The group name or a filter value is not valid", body = ErrorBody, example = super::error::examples::invalid_name),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/status/{server_group}", guard = "not_an_endpoint")]
pub async fn group_status(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    path: web::Path<String>,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, filter) = super::both(parse_group(&path), query.filter())?;
    let rows = ctx
        .store
        .status_rows(&filter, Some(&group), ctx.clock.now())
        .await?;
    Ok(json_rows(rows.body))
}

/// The current state of one host.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "status",
    params(
        ("server_group" = GroupName, Path, description = "e.g. rsyslog-prod", example = "rsyslog-prod"),
        ("host" = Name, Path, description = "e.g. rsyslog-01", example = "rsyslog-01"),
    ),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The host's current state", body = HostStatus),
        (status = 404, description = "No report was ever accepted for this host", body = ErrorBody, example = super::error::examples::host_not_found),
        (status = 422, description = "A name is not valid", body = ErrorBody, example = super::error::examples::invalid_name),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/status/{server_group}/{host}")]
pub async fn host_status(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (group, host) = path.into_inner();
    let (group, host) = super::both(parse_group(&group), parse_host(&host))?;
    match ctx.store.status_row(&group, &host, ctx.clock.now()).await? {
        Some(row) => Ok(json_rows(row)),
        None => Err(ApiError::NotFound(format!("no host {group}/{host}"))),
    }
}
