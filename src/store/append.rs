//! A report's row on its way into the audit chain: rendered as far as the request's own thread
//! can (`NewRow`), then linked by the writer (its id, times and hashes) after the chain's tip
//! (`Tip`). The same for every backend; how rows are inserted and where the tip is kept is
//! each backend's.

use crate::domain::{chain, Observation, Report, Timestamp};

use super::record::{json_string_array, ReportRecord};
use super::RequestMeta;

/// The newest link of the audit chain, and the id the next report gets.
#[derive(Clone, Debug)]
pub(super) struct Tip {
    pub next_id: i64,
    pub hash: String,
}

/// A `reports` row about to be inserted: everything but its id, its times and its links in
/// the chain is known when the request is accepted, and the canonical text of those columns
/// is rendered then, on the request's thread, so the writer only adds what it decides and
/// hashes.
pub(super) struct NewRow {
    pub record: ReportRecord,
    runs: Vec<String>,
}

impl NewRow {
    pub(super) fn new(record: ReportRecord) -> Self {
        let runs = record.content_runs();
        NewRow { record, runs }
    }

    /// The row of an accepted report.
    pub(super) fn of_report(report: &Report, meta: RequestMeta) -> Self {
        let kind = report.kind();
        let reported_at = report.reported_at.map(|t| t.to_string());
        let (last_pipeline_run, last_cron_check) = match &report.observation {
            Observation::Pipeline { .. } => (reported_at, None),
            // The file's own times, as written there (in UTC).
            Observation::Import {
                pipeline_at,
                cron_at,
                ..
            } => (
                pipeline_at.map(|t| t.to_string()),
                cron_at.map(|t| t.to_string()),
            ),
            Observation::Decommission => (None, None),
            _ => (None, reported_at),
        };
        let d = report.deployment().cloned().unwrap_or_default();
        Self::new(ReportRecord {
            kind: kind.as_str().to_owned(),
            server_group: Some(report.server_group.as_str().to_owned()),
            host: Some(report.host.as_str().to_owned()),
            status: report.status().map(|s| s.as_str().to_owned()),
            changed_files: report
                .changed_files()
                .map(|files| json_string_array(files.as_slice())),
            project_name: d.project_name,
            repo_name: d.repo_name,
            server_type: d.server_type,
            environment: d.environment,
            validation_status: d.validation_status,
            validation_message: d.validation_message,
            commit_sha: d.commit_sha,
            branch: d.branch,
            updated_by: d.updated_by,
            last_pipeline_run,
            last_cron_check,
            drift_count: report.drift_count().map(i64::from),
            principal: meta.principal,
            client_addr: meta.client_addr,
            forwarded_for: meta.forwarded_for,
            user_agent: meta.user_agent,
            raw_body: meta.raw_body,
            ..ReportRecord::default()
        })
    }

    /// Makes the row report `id` of the chain after `prev_hash`, hashed over the canonical
    /// text of `record::CHAIN_FORMAT`, which `verify` and auditors recompute from the row.
    pub(super) fn link(
        &mut self,
        id: i64,
        received_at: Timestamp,
        observed_at: Timestamp,
        prev_hash: &str,
    ) {
        let record = &mut self.record;
        record.id = id;
        record.received_at = received_at.to_string();
        record.observed_at = observed_at.to_string();
        record.prev_hash = prev_hash.to_owned();
        record.chain_format = super::record::CHAIN_FORMAT;
        record.hash = chain::link(prev_hash, &record.canonical_with(&self.runs));
    }
}
