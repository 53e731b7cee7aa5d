//! The report a `gitops-status report` invocation sends: its endpoint and body, built from
//! the API's own request types, from the flags, the drift check's output and the CI's
//! variables, in that order of precedence.

use serde::Serialize;

use crate::api::body::{FilePath, GroupName, Name, StatusInput};
use crate::api::cron::CronReportBody;
use crate::api::legacy::{V1File, V1FileEntry, V1StatusBody};
use crate::api::pipeline::PipelineReportBody;
use crate::cli::ReportMode;
use crate::domain::{HostName, ServerGroup, Status};

use super::ci::CiRun;
use super::drift::Drift;

/// What the invocation says, before anything is decided.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub mode: Option<ReportMode>,
    pub server_group: Option<String>,
    pub host: Option<String>,
    pub status: Option<String>,
    pub changed_files: Vec<String>,
    pub drift: Option<Drift>,
    pub validation_status: Option<String>,
    pub validation_message: Option<String>,
    pub environment: Option<String>,
    pub server_type: Option<String>,
    pub project_name: Option<String>,
    pub repo_name: Option<String>,
    pub commit_sha: Option<String>,
    pub branch: Option<String>,
    pub updated_by: Option<String>,
    pub ci_run: Option<String>,
    /// When the check or deployment happened (RFC 3339), so a report that is retried for
    /// minutes still carries the time it describes; None: the server's arrival time.
    pub at: Option<String>,
}

/// A request ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub mode: ReportMode,
    /// The endpoint's path, e.g. `/status/pipeline`.
    pub path: &'static str,
    /// The JSON body.
    pub body: String,
}

/// Builds the request; the error is a usage problem (nothing is sent).
pub fn build(inputs: Inputs, ci: Option<&CiRun>) -> Result<Request, String> {
    let mode = inputs
        .mode
        .unwrap_or(if ci.is_some_and(|run| run.scheduled) {
            ReportMode::Cron
        } else {
            ReportMode::Pipeline
        });
    if mode != ReportMode::Pipeline {
        let pipeline_only = [
            ("--validation-status", inputs.validation_status.is_some()),
            ("--validation-message", inputs.validation_message.is_some()),
            ("--environment", inputs.environment.is_some()),
            ("--server-type", inputs.server_type.is_some()),
            ("--project-name", inputs.project_name.is_some()),
            ("--repo-name", inputs.repo_name.is_some()),
            ("--commit-sha", inputs.commit_sha.is_some()),
            ("--branch", inputs.branch.is_some()),
            ("--updated-by", inputs.updated_by.is_some()),
        ];
        let given: Vec<&str> = pipeline_only
            .iter()
            .filter(|(_, set)| *set)
            .map(|(flag, _)| *flag)
            .collect();
        if !given.is_empty() {
            return Err(format!(
                "{} only describe a deployment (report pipeline); a {} report cannot carry them",
                given.join(", "),
                mode_name(mode)
            ));
        }
    }

    let group = inputs
        .server_group
        .ok_or("--server-group (GITOPS_STATUS_SERVER_GROUP) is required")?;
    ServerGroup::parse(&group).map_err(|problem| format!("--server-group {problem}"))?;
    let host = match inputs.host {
        Some(host) => host,
        None => this_host()?,
    };
    HostName::parse(&host).map_err(|problem| format!("--host {host:?} {problem}"))?;

    // A flag wins over the drift check's output.
    let (drift_status, drift_files) = match inputs.drift {
        Some(drift) => (Some(drift.status), Some(drift.changed_files)),
        None => (None, None),
    };
    let status = inputs.status.or(drift_status);
    if let Some(status) = &status {
        Status::parse(status).map_err(|problem| format!("--status {problem}"))?;
    }
    let files = if inputs.changed_files.is_empty() {
        drift_files
    } else {
        Some(inputs.changed_files)
    };
    // With a status, no files means none drifted; files without a status are refused by
    // the server, and so here.
    let files = match (&status, files) {
        (Some(_), files) => Some(files.unwrap_or_default()),
        (None, Some(files)) if !files.is_empty() => {
            return Err(
                "--changed-file needs a status (--status or --drift-output) to go with it"
                    .to_owned(),
            )
        }
        (None, _) => None,
    };
    let ci_run = inputs
        .ci_run
        .or_else(|| ci.and_then(|run| run.run_url.clone()));

    let (path, body) = match mode {
        ReportMode::Pipeline => {
            let status = status.ok_or(
                "a deployment needs a status: --status, or --drift-output with the drift check's \
                 SYNC_STATUS= line",
            )?;
            let body = PipelineReportBody {
                project_name: inputs.project_name,
                repo_name: inputs
                    .repo_name
                    .or_else(|| ci.and_then(|run| run.repo_name.clone())),
                server_group: GroupName(group),
                server_type: inputs.server_type,
                environment: inputs.environment,
                host: Name(host),
                status: StatusInput(status),
                changed_files: files.map(file_paths),
                validation_status: inputs.validation_status,
                validation_message: inputs.validation_message,
                commit_sha: inputs
                    .commit_sha
                    .or_else(|| ci.and_then(|run| run.commit_sha.clone())),
                branch: inputs
                    .branch
                    .or_else(|| ci.and_then(|run| run.branch.clone())),
                updated_by: inputs
                    .updated_by
                    .or_else(|| ci.map(|run| run.system.name().to_owned())),
                last_pipeline_run: inputs.at,
                ci_run,
            };
            ("/status/pipeline", json(&body)?)
        }
        ReportMode::Cron => {
            let body = CronReportBody {
                server_group: GroupName(group),
                host: Name(host),
                status: status.map(StatusInput),
                changed_files: files.map(file_paths),
                last_cron_check: inputs.at,
                ci_run,
            };
            ("/status/cron", json(&body)?)
        }
        ReportMode::V1 => {
            let status = status.ok_or(
                "a v1 report needs a status: --status, or --drift-output with the drift check's \
                 SYNC_STATUS= line",
            )?;
            let files = files.unwrap_or_default();
            let body = V1StatusBody {
                repo: GroupName(group),
                server: Name(host),
                sync_status: StatusInput(status.to_ascii_uppercase()),
                drift_count: Some(u32::try_from(files.len()).unwrap_or(u32::MAX)),
                files: Some(
                    files
                        .into_iter()
                        .map(|name| V1FileEntry::Object(V1File { name }))
                        .collect(),
                ),
                last_check: inputs.at,
                ci_run,
            };
            ("/api/status", json(&body)?)
        }
    };
    Ok(Request { mode, path, body })
}

pub fn mode_name(mode: ReportMode) -> &'static str {
    match mode {
        ReportMode::Pipeline => "pipeline",
        ReportMode::Cron => "cron",
        ReportMode::V1 => "v1",
    }
}

fn file_paths(files: Vec<String>) -> Vec<FilePath> {
    files.into_iter().map(FilePath).collect()
}

fn json(body: &impl Serialize) -> Result<String, String> {
    serde_json::to_string(body).map_err(|e| format!("cannot write the report as JSON: {e}"))
}

/// This machine's host name, as `--host`'s default.
fn this_host() -> Result<String, String> {
    gethostname::gethostname()
        .into_string()
        .map_err(|name| format!("this machine's hostname {name:?} is not UTF-8; give --host"))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::client::ci::CiSystem;

    fn inputs() -> Inputs {
        Inputs {
            server_group: Some("rsyslog-prod".into()),
            host: Some("rsyslog-01".into()),
            at: Some("2026-12-01T10:00:00Z".into()),
            ..Inputs::default()
        }
    }

    fn woodpecker(scheduled: bool) -> CiRun {
        CiRun {
            system: CiSystem::Woodpecker,
            commit_sha: Some("abc123".into()),
            branch: Some("main".into()),
            repo_name: Some("rsyslog".into()),
            run_url: Some("https://ci.example/repos/1/pipeline/7".into()),
            scheduled,
        }
    }

    fn body(request: &Request) -> Value {
        serde_json::from_str(&request.body).unwrap()
    }

    #[test]
    fn a_deployment_takes_the_ci_run_and_flags_win_over_it() {
        let mut given = inputs();
        given.status = Some("synced".into());
        given.branch = Some("release".into());
        let request = build(given, Some(&woodpecker(false))).unwrap();
        assert_eq!(request.path, "/status/pipeline");
        assert_eq!(
            body(&request),
            json!({
                "repo_name": "rsyslog",
                "server_group": "rsyslog-prod",
                "host": "rsyslog-01",
                "status": "synced",
                "changed_files": [],
                "commit_sha": "abc123",
                "branch": "release",
                "updated_by": "woodpecker",
                "last_pipeline_run": "2026-12-01T10:00:00Z",
                "ci_run": "https://ci.example/repos/1/pipeline/7",
            })
        );
    }

    #[test]
    fn a_scheduled_run_sends_a_drift_check_from_the_drift_output() {
        let mut given = inputs();
        given.drift = Some(Drift {
            status: "OUT_OF_SYNC".into(),
            changed_files: vec!["/etc/rsyslog.conf".into()],
        });
        let request = build(given.clone(), Some(&woodpecker(true))).unwrap();
        assert_eq!(request.path, "/status/cron");
        assert_eq!(
            body(&request),
            json!({
                "server_group": "rsyslog-prod",
                "host": "rsyslog-01",
                "status": "OUT_OF_SYNC",
                "changed_files": ["/etc/rsyslog.conf"],
                "last_cron_check": "2026-12-01T10:00:00Z",
                "ci_run": "https://ci.example/repos/1/pipeline/7",
            })
        );
        // An explicit mode and status win over the schedule and the drift output.
        given.mode = Some(ReportMode::V1);
        given.status = Some("synced".into());
        given.changed_files = vec![];
        let v1 = build(given, Some(&woodpecker(true))).unwrap();
        assert_eq!(v1.path, "/api/status");
        assert_eq!(
            body(&v1),
            json!({
                "repo": "rsyslog-prod",
                "server": "rsyslog-01",
                "sync_status": "SYNCED",
                "drift_count": 1,
                "files": [{"name": "/etc/rsyslog.conf"}],
                "last_check": "2026-12-01T10:00:00Z",
                "ci_run": "https://ci.example/repos/1/pipeline/7",
            })
        );
    }

    #[test]
    fn usage_problems_name_the_flag() {
        let problem = build(inputs(), None).unwrap_err();
        assert!(problem.contains("needs a status"), "{problem}");
        let mut cron = inputs();
        cron.mode = Some(ReportMode::Cron);
        cron.commit_sha = Some("abc".into());
        let problem = build(cron, None).unwrap_err();
        assert!(problem.contains("--commit-sha"), "{problem}");
        let mut bad = inputs();
        bad.status = Some("green".into());
        let problem = build(bad, None).unwrap_err();
        assert!(problem.starts_with("--status"), "{problem}");
        let mut group = inputs();
        group.server_group = Some("a/b".into());
        group.status = Some("synced".into());
        let problem = build(group, None).unwrap_err();
        assert!(problem.starts_with("--server-group"), "{problem}");
        let mut files = inputs();
        files.mode = Some(ReportMode::Cron);
        files.changed_files = vec!["a".into()];
        let problem = build(files, None).unwrap_err();
        assert!(problem.contains("needs a status"), "{problem}");
    }

    #[test]
    fn a_heartbeat_cron_report_carries_no_status() {
        let mut given = inputs();
        given.mode = Some(ReportMode::Cron);
        let request = build(given, None).unwrap();
        assert_eq!(
            body(&request),
            json!({
                "server_group": "rsyslog-prod",
                "host": "rsyslog-01",
                "last_cron_check": "2026-12-01T10:00:00Z",
            })
        );
    }
}
