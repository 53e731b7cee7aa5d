//! The v1 API, `POST /api/status` and `GET /api/status`, for pipelines and dashboards written
//! against the single-object status server. A v1 report is stored as a drift report with
//! server_group = repo and host = server; it creates the host when new.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{HostName, HostState, Observation, Report, ServerGroup, Status};

use super::auth::{Caller, Reader};
use super::body::{json_type, Fields, FilePath, GroupName, JsonObject, Name, StatusInput};
use super::error::{ApiError, ErrorBody, ReadAuthErrors, ReportErrors};
use super::status::outcome;
use super::{both, non_empty, record, AppContext};

/// A v1 sync status.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum V1SyncStatus {
    Synced,
    OutOfSync,
    Failed,
    Unknown,
}

impl From<Status> for V1SyncStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Synced => V1SyncStatus::Synced,
            Status::OutOfSync => V1SyncStatus::OutOfSync,
            Status::Failed => V1SyncStatus::Failed,
            Status::Unknown => V1SyncStatus::Unknown,
        }
    }
}

/// A drifted file as v1 lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct V1File {
    /// Relative path of the drifted file.
    pub name: String,
}

/// A v1 `files` entry: `{"name": "…"}` or a plain string (at most 4096 characters).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum V1FileEntry {
    Object(V1File),
    Path(FilePath),
}

/// A v1 report (seed 004). Members not listed here are accepted and kept in the history.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "repo": "rsyslog",
    "server": "rsyslog-lab",
    "sync_status": "OUT_OF_SYNC",
    "drift_count": 2,
    "files": [{"name": "rsyslog.conf"}, {"name": "rsyslog.d/30-lab.conf"}],
    "last_check": "2026-04-21T10:32:15Z"
}))]
pub struct V1StatusBody {
    /// Repository name; stored as the server_group.
    pub repo: GroupName,
    /// Server name; stored as the host.
    pub server: Name,
    /// SYNCED, OUT_OF_SYNC, UNKNOWN (or FAILED), in any case.
    pub sync_status: StatusInput,
    /// Number of drifted files as the client counted them; `GET /api/status` returns it
    /// while these files are the host's current ones.
    #[schema(minimum = 0, maximum = 4294967295_u64, format = Int64)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_count: Option<u32>,
    /// Drifted files, as objects or strings.
    #[schema(max_items = 10000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<V1FileEntry>>,
    /// When the drift check ran: RFC 3339 with a time zone. Left out, the server's time is
    /// used; a time ahead of the server clock counts as the time the report arrived.
    #[schema(format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_check: Option<String>,
    /// A link to the CI run that sent the report (`gitops-status report` fills it from the CI's
    /// variables). Kept in the history's raw body only: `json_extract(raw_body, '$.ci_run')`
    /// finds the reports of one run.
    #[schema(
        max_length = 2048,
        example = "https://ci.example.com/repos/7/pipeline/4711"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_run: Option<String>,
}

/// The v1 status object.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "repo": "rsyslog",
    "server": "rsyslog-lab",
    "sync_status": "OUT_OF_SYNC",
    "drift_count": 2,
    "files": [{"name": "rsyslog.conf"}, {"name": "rsyslog.d/30-lab.conf"}],
    "last_check": "2026-04-21T10:32:15.000Z"
}))]
pub struct V1Status {
    pub repo: String,
    pub server: String,
    /// The host's current status in v1 spelling.
    pub sync_status: V1SyncStatus,
    /// The drift_count the v1 client sent with the current files; otherwise the number of
    /// `files`.
    pub drift_count: i64,
    pub files: Vec<V1File>,
    /// When the current status was observed.
    #[schema(format = DateTime)]
    pub last_check: String,
}

impl From<HostState> for V1Status {
    fn from(s: HostState) -> Self {
        V1Status {
            repo: s.server_group.to_string(),
            server: s.host.to_string(),
            sync_status: s.status.into(),
            drift_count: s
                .reported_drift_count
                .unwrap_or_else(|| i64::try_from(s.changed_files.len()).unwrap_or(i64::MAX)),
            files: s
                .changed_files
                .into_iter()
                .map(|name| V1File { name })
                .collect(),
            last_check: s.status_observed_at.to_string(),
        }
    }
}

/// The answer to an accepted v1 report.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "success": true,
    "message": "Status updated successfully",
    "report_id": 43,
    "previous_sync_status": "SYNCED",
    "status": {
        "repo": "rsyslog",
        "server": "rsyslog-lab",
        "sync_status": "OUT_OF_SYNC",
        "drift_count": 2,
        "files": [{"name": "rsyslog.conf"}, {"name": "rsyslog.d/30-lab.conf"}],
        "last_check": "2026-04-21T10:32:15.000Z"
    }
}))]
pub struct V1Accepted {
    /// Always true.
    pub success: bool,
    pub message: String,
    /// The id of the report's row in the history.
    pub report_id: i64,
    /// The host's status before this report, in v1 spelling; null when the report created
    /// the host. The report changed the status when this differs from `status.sync_status`.
    pub previous_sync_status: Option<V1SyncStatus>,
    /// The host's state after this report, as a v1 object.
    pub status: V1Status,
}

fn file_entry(item: &Value) -> Result<String, (Option<&'static str>, String)> {
    match item {
        Value::String(s) => Ok(s.clone()),
        Value::Object(object) => match object.get("name") {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err((Some("name"), "is required".to_owned())),
            Some(other) => Err((
                Some("name"),
                format!("must be a string, got {}", json_type(other)),
            )),
        },
        other => Err((
            None,
            format!(
                "must be a string or an object with a name, got {}",
                json_type(other)
            ),
        )),
    }
}

pub(crate) fn parse(body: &JsonObject) -> Result<Report, ApiError> {
    let mut f = Fields::new(&body.fields);
    let server_group = f.required("repo", ServerGroup::parse);
    let host = f.required("server", HostName::parse);
    let status = f.required("sync_status", Status::parse);
    let drift_count = f.count("drift_count");
    let changed_files = f.files("files", file_entry);
    let reported_at = f.timestamp("last_check");
    f.ci_run();
    let (Some(server_group), Some(host), Some(status)) = (server_group, host, status) else {
        return Err(f.into_error());
    };
    f.finish()?;
    Ok(Report {
        server_group,
        host,
        reported_at,
        observation: Observation::Legacy {
            status,
            changed_files,
            drift_count,
        },
    })
}

/// Record a v1 status report (`{repo, server, sync_status, drift_count, files, last_check}`).
///
/// Stored as a drift report for host `server` in group `repo`, created when new; it appears
/// in `GET /status` like any v2 host (status lower-cased, files as changed_files, last_check
/// as last_cron_check). Always answers 200 on success, as v1 did. A 2xx means the report is
/// committed to disk.
#[utoipa::path(
    security(("bearer" = ["write:{repo}"])),
    tag = "v1",
    request_body(content = V1StatusBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted", body = V1Accepted),
        ReportErrors,
    )
)]
#[post("/api/status")]
pub async fn post_v1_status(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    caller: Caller,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    record(&ctx, &req, caller, body, parse, v1_accepted).await
}

/// The answer to an accepted v1 report (always 200, as the v1 servers answered).
fn v1_accepted(
    _: &crate::domain::StalePolicy,
    recorded: &crate::store::Recorded,
) -> Result<crate::store::StoredAnswer, ApiError> {
    let body = V1Accepted {
        success: true,
        message: outcome(recorded),
        report_id: recorded.report_id,
        previous_sync_status: recorded.previous_status.map(V1SyncStatus::from),
        status: recorded.state.clone().into(),
    };
    Ok(crate::store::StoredAnswer {
        status: 200,
        body: serde_json::to_string(&body).map_err(ApiError::internal)?,
    })
}

/// Which host `GET /api/status` shows. Empty values are the same as none.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct V1Query {
    /// The host's group (v1 repo).
    #[param(pattern = r"^$|^(?!(\.{1,2}|pipeline|cron)$)[A-Za-z0-9._-]{1,128}$")]
    repo: Option<String>,
    /// The host (v1 server).
    #[param(pattern = r"^$|^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$")]
    server: Option<String>,
}

/// The v1 status object of one host.
///
/// With `repo` and `server`: that host, whichever API reported it. Otherwise the host that
/// received the most recent v1 report (in that `repo`, or named `server`, when one is given).
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "v1",
    params(V1Query),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The host's state as a v1 object", body = V1Status),
        (status = 404, description = "No such host, or no matching v1 report yet", body = ErrorBody, example = super::error::examples::host_not_found),
        (status = 422, description = "A name is not valid", body = ErrorBody, example = super::error::examples::invalid_name),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/api/status")]
pub async fn get_v1_status(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    query: web::Query<V1Query>,
) -> Result<HttpResponse, ApiError> {
    let (group, host) = both(
        non_empty(&query.repo)
            .map(|repo| ServerGroup::parse(repo).map_err(|p| ApiError::field("repo", p)))
            .transpose(),
        non_empty(&query.server)
            .map(|server| HostName::parse(server).map_err(|p| ApiError::field("server", p)))
            .transpose(),
    )?;
    let state = match (&group, &host) {
        (Some(group), Some(host)) => ctx
            .store
            .host_state(group, host)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no host {group}/{host}")))?,
        _ => ctx
            .store
            .latest_legacy_host(group.as_ref(), host.as_ref())
            .await?
            .ok_or_else(|| {
                ApiError::NotFound("no matching v1 report has been received".to_owned())
            })?,
    };
    Ok(HttpResponse::Ok().json(V1Status::from(state)))
}
