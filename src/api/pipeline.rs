//! `POST /status/pipeline`: a deployment report from CI. It may create the host and defines
//! the host's deployment fields (commit, branch, validation, …) and its sync status.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{
    Deployment, HostName, Observation, Report, ServerGroup, Status, MAX_MESSAGE_LEN,
};

use super::auth::Caller;
use super::body::{string_entry, Fields, FilePath, GroupName, JsonObject, Name, StatusInput};
use super::error::{ApiError, ReportErrors};
use super::status::{accepted, ReportAccepted};
use super::{record, AppContext};

/// A deployment report. Members not listed here are accepted and kept in the history's raw
/// body. `null` is the same as leaving a member out.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "project_name": "gitops-for-servers",
    "repo_name": "rsyslog",
    "server_group": "rsyslog-prod",
    "server_type": "rsyslog",
    "environment": "prod",
    "host": "rsyslog-01",
    "status": "synced",
    "changed_files": [],
    "validation_status": "passed",
    "validation_message": "rsyslog syntax validation passed",
    "commit_sha": "abc1234567890",
    "branch": "master",
    "updated_by": "woodpecker",
    "last_pipeline_run": "2026-04-26T10:30:00Z"
}))]
pub struct PipelineReportBody {
    /// Project identifier.
    #[schema(max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// Repository name.
    #[schema(max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_name: Option<String>,
    /// Logical group, e.g. `rsyslog-prod`: 1–128 letters, digits, `.`, `_`, `-`.
    pub server_group: GroupName,
    /// Type of server: rsyslog, splunk, nginx, …
    #[schema(max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_type: Option<String>,
    /// prod, staging, dev, …
    #[schema(max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Host name, e.g. `rsyslog-01`: 1–128 letters, digits, `.`, `_`, `-`.
    pub host: Name,
    /// The host's sync status after the deployment: synced, out_of_sync, failed or unknown, in
    /// any case.
    pub status: StatusInput,
    /// Paths that differ from Git. Left out with a status, it means none.
    #[schema(max_items = 10000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_files: Option<Vec<FilePath>>,
    /// Validation result: passed, failed, skipped, …
    #[schema(max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_status: Option<String>,
    /// Validator output.
    #[schema(max_length = 65536)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_message: Option<String>,
    /// Git commit deployed.
    #[schema(max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    /// Git branch deployed.
    #[schema(max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Who or what triggered the update: woodpecker, jenkins, …
    #[schema(max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// When the pipeline ran: RFC 3339 with a time zone. Left out, the server's time is used;
    /// a time ahead of the server clock counts as the time the report arrived.
    #[schema(format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_pipeline_run: Option<String>,
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
    let status = f.required("status", Status::parse);
    let deployment = Deployment {
        project_name: f.short_text("project_name"),
        repo_name: f.short_text("repo_name"),
        server_type: f.short_text("server_type"),
        environment: f.short_text("environment"),
        validation_status: f.short_text("validation_status"),
        validation_message: f.text("validation_message", MAX_MESSAGE_LEN),
        commit_sha: f.short_text("commit_sha"),
        branch: f.short_text("branch"),
        updated_by: f.short_text("updated_by"),
    };
    let changed_files = f.files("changed_files", string_entry);
    let reported_at = f.timestamp("last_pipeline_run");
    f.ci_run();
    let (Some(server_group), Some(host), Some(status)) = (server_group, host, status) else {
        return Err(f.into_error());
    };
    f.finish()?;
    Ok(Report {
        server_group,
        host,
        reported_at,
        observation: Observation::Pipeline {
            status,
            changed_files,
            deployment: Box::new(deployment),
        },
    })
}

/// Record a deployment report from a CI pipeline.
///
/// Creates the host when it is new. The report sets the host's deployment fields (unless the
/// host holds a newer `last_pipeline_run`) and its status and changed_files (unless the host
/// holds a newer observation of them, e.g. from a later cron check); the answer's `message`
/// names the parts that kept a newer observation. Every accepted report is in the history.
/// A 2xx means the report is committed to disk.
#[utoipa::path(
    security(("bearer" = ["write:{server_group}"])),
    tag = "reports",
    request_body(content = PipelineReportBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Accepted; the report created the host", body = ReportAccepted),
        (status = 200, description = "Accepted", body = ReportAccepted),
        ReportErrors,
    )
)]
#[post("/status/pipeline")]
pub async fn post_pipeline(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    caller: Caller,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    record(&ctx, &req, caller, body, parse, accepted).await
}
