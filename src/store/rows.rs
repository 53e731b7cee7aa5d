//! Rows as the backends return them, and their conversion into domain types. A value that the schema
//! should have refused (a bad status, a malformed timestamp) becomes `StoreError::Corrupt`
//! instead of a panic: the file can be edited by hand with sqlite3.

use crate::domain::{
    Deployment, Head, HistoryEntry, HostName, HostState, ReportKind, ServerGroup, Status, Timestamp,
};

use super::record::ReportRecord;
use super::StoreError;

pub(crate) fn corrupt(column: &str, problem: String) -> StoreError {
    StoreError::Corrupt(format!("{column}: {problem}"))
}

pub(crate) fn timestamp(column: &str, text: &str) -> Result<Timestamp, StoreError> {
    Timestamp::parse_rfc3339(text).map_err(|p| corrupt(column, p))
}

/// A facet's head from its report's id and `observed_at`; None when the facet has no report.
pub(crate) fn head(id: Option<i64>, observed_at: Option<&str>) -> Result<Option<Head>, StoreError> {
    match (id, observed_at) {
        (Some(report_id), Some(at)) => Ok(Some(Head {
            report_id,
            observed_at: timestamp("observed_at", at)?,
        })),
        _ => Ok(None),
    }
}

fn optional_timestamp(column: &str, text: Option<&str>) -> Result<Option<Timestamp>, StoreError> {
    text.map(|t| timestamp(column, t)).transpose()
}

fn files(column: &str, json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(column, e.to_string()))
}

fn names(group: &str, host: &str) -> Result<(ServerGroup, HostName), StoreError> {
    Ok((
        ServerGroup::parse(group).map_err(|p| corrupt("server_group", p))?,
        HostName::parse(host).map_err(|p| corrupt("host", p))?,
    ))
}

/// One row of the `current_status` view.
#[derive(Debug)]
pub(crate) struct HostStateRow {
    pub project_name: Option<String>,
    pub repo_name: Option<String>,
    pub server_group: String,
    pub server_type: Option<String>,
    pub environment: Option<String>,
    pub host: String,
    pub status: String,
    pub changed_files: String,
    pub validation_status: Option<String>,
    pub validation_message: Option<String>,
    pub last_pipeline_run: Option<String>,
    pub last_cron_check: Option<String>,
    pub commit_sha: Option<String>,
    pub branch: Option<String>,
    pub updated_by: Option<String>,
    pub timestamp: String,
    pub status_observed_at: String,
    pub reported_drift_count: Option<i64>,
    pub status_since: String,
    pub drift_received_at: Option<String>,
    pub commit_since: Option<String>,
}

impl TryFrom<HostStateRow> for HostState {
    type Error = StoreError;

    fn try_from(row: HostStateRow) -> Result<Self, StoreError> {
        let (server_group, host) = names(&row.server_group, &row.host)?;
        Ok(HostState {
            server_group,
            host,
            status: Status::parse(&row.status).map_err(|p| corrupt("status", p))?,
            changed_files: files("changed_files", &row.changed_files)?,
            deployment: Deployment {
                project_name: row.project_name,
                repo_name: row.repo_name,
                server_type: row.server_type,
                environment: row.environment,
                validation_status: row.validation_status,
                validation_message: row.validation_message,
                commit_sha: row.commit_sha,
                branch: row.branch,
                updated_by: row.updated_by,
            },
            last_pipeline_run: optional_timestamp(
                "last_pipeline_run",
                row.last_pipeline_run.as_deref(),
            )?,
            last_cron_check: optional_timestamp("last_cron_check", row.last_cron_check.as_deref())?,
            timestamp: timestamp("timestamp", &row.timestamp)?,
            status_observed_at: timestamp("status_observed_at", &row.status_observed_at)?,
            reported_drift_count: row.reported_drift_count,
            status_since: timestamp("status_since", &row.status_since)?,
            drift_received_at: optional_timestamp(
                "drift_received_at",
                row.drift_received_at.as_deref(),
            )?,
            commit_since: optional_timestamp("commit_since", row.commit_since.as_deref())?,
        })
    }
}

impl TryFrom<ReportRecord> for HistoryEntry {
    type Error = StoreError;

    fn try_from(row: ReportRecord) -> Result<Self, StoreError> {
        let server_group = row
            .server_group
            .as_deref()
            .map(ServerGroup::parse)
            .transpose()
            .map_err(|p| corrupt("server_group", p))?;
        let host = row
            .host
            .as_deref()
            .map(HostName::parse)
            .transpose()
            .map_err(|p| corrupt("host", p))?;
        Ok(HistoryEntry {
            id: row.id,
            received_at: timestamp("received_at", &row.received_at)?,
            kind: ReportKind::parse(&row.kind).map_err(|p| corrupt("kind", p))?,
            server_group,
            host,
            status: row
                .status
                .as_deref()
                .map(Status::parse)
                .transpose()
                .map_err(|p| corrupt("status", p))?,
            changed_files: row
                .changed_files
                .as_deref()
                .map(|json| files("changed_files", json))
                .transpose()?,
            deployment: Deployment {
                project_name: row.project_name,
                repo_name: row.repo_name,
                server_type: row.server_type,
                environment: row.environment,
                validation_status: row.validation_status,
                validation_message: row.validation_message,
                commit_sha: row.commit_sha,
                branch: row.branch,
                updated_by: row.updated_by,
            },
            last_pipeline_run: optional_timestamp(
                "last_pipeline_run",
                row.last_pipeline_run.as_deref(),
            )?,
            last_cron_check: optional_timestamp("last_cron_check", row.last_cron_check.as_deref())?,
            drift_count: row.drift_count,
            observed_at: timestamp("observed_at", &row.observed_at)?,
            principal: row.principal,
            client_addr: row.client_addr,
            forwarded_for: row.forwarded_for,
            user_agent: row.user_agent,
            raw_body: row.raw_body,
            prev_hash: row.prev_hash,
            hash: row.hash,
            chain_format: row.chain_format,
        })
    }
}
