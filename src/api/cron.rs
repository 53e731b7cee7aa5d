//! `POST /status/cron`: a drift check of a host that already exists. It may change only the
//! host's status, changed_files and last_cron_check.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{HostName, Observation, Report, ServerGroup, Status};

use super::auth::Caller;
use super::body::{string_entry, Fields, FilePath, GroupName, JsonObject, Name, StatusInput};
use super::error::{ApiError, ErrorBody, ReportErrors};
use super::status::{accepted, ReportAccepted};
use super::{record, AppContext};

/// A drift report. Members not listed here are accepted and kept in the history's raw body.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "server_group": "rsyslog-prod",
    "host": "rsyslog-01",
    "status": "out_of_sync",
    "changed_files": ["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"],
    "last_cron_check": "2026-04-26T11:00:00Z"
}))]
pub struct CronReportBody {
    /// The host's group; the host must exist already.
    pub server_group: GroupName,
    pub host: Name,
    /// The drift status found: synced, out_of_sync, failed or unknown, in any case. Left out,
    /// the status is not changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusInput>,
    /// Files that drifted. Left out with a status, it means none.
    #[schema(max_items = 10000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_files: Option<Vec<FilePath>>,
    /// When the check ran: RFC 3339 with a time zone. Left out, the server's time is used; a
    /// time ahead of the server clock counts as the time the report arrived.
    #[schema(format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_cron_check: Option<String>,
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

pub(crate) fn parse(body: &JsonObject) -> Result<Report, ApiError> {
    let mut f = Fields::new(&body.fields);
    let server_group = f.required("server_group", ServerGroup::parse);
    let host = f.required("host", HostName::parse);
    let status = f.optional("status", Status::parse);
    let changed_files = f.files("changed_files", string_entry);
    let reported_at = f.timestamp("last_cron_check");
    f.ci_run();
    let (Some(server_group), Some(host)) = (server_group, host) else {
        return Err(f.into_error());
    };
    f.finish()?;
    Ok(Report {
        server_group,
        host,
        reported_at,
        observation: Observation::Cron {
            status,
            changed_files,
        },
    })
}

/// Record a drift check from a cron job.
///
/// The host must exist (created by a pipeline or v1 report): an unknown host gets 404 and
/// nothing is stored. The report never touches commit_sha, branch, validation_* or the other
/// deployment fields. Each of status, changed_files and last_cron_check moves only when the
/// check is at least as new as the observation the host holds for it; the answer's `message`
/// names the parts that kept a newer observation. A 2xx means the report is committed to disk.
#[utoipa::path(
    security(("bearer" = ["write:{server_group}"])),
    tag = "reports",
    request_body(content = CronReportBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted", body = ReportAccepted),
        ReportErrors,
        (status = 404, description = "The host does not exist; nothing was stored", body = ErrorBody, example = super::error::examples::unknown_host),
    )
)]
#[post("/status/cron")]
pub async fn post_cron(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    caller: Caller,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    record(&ctx, &req, caller, body, parse, accepted).await
}
