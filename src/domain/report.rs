//! A validated report as accepted from a client, and the read models built from stored reports.

use super::{AnyOf, HostName, Pattern, ReportKind, ServerGroup, Status, Timestamp};

/// The most entries `changed_files` (or v1 `files`) may hold.
pub const MAX_CHANGED_FILES: usize = 10_000;
/// The longest single `changed_files` entry, in characters (Linux's PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;
/// The longest short text field (names, commit, branch, …), in characters.
pub const MAX_TEXT_LEN: usize = 256;
/// The longest `validation_message`, in characters (validators print whole outputs).
pub const MAX_MESSAGE_LEN: usize = 65_536;

/// A list of file paths that differ from Git. Entries are kept exactly as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangedFiles(Vec<String>);

impl ChangedFiles {
    /// Checks the documented limits; the error names the offending index when there is one.
    pub fn new(files: Vec<String>) -> Result<Self, (Option<usize>, String)> {
        if files.len() > MAX_CHANGED_FILES {
            return Err((
                None,
                format!(
                    "has {} entries; at most {MAX_CHANGED_FILES} are accepted",
                    files.len()
                ),
            ));
        }
        if let Some(index) = files.iter().position(|f| f.chars().count() > MAX_PATH_LEN) {
            return Err((
                Some(index),
                format!("must be at most {MAX_PATH_LEN} characters"),
            ));
        }
        Ok(Self(files))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// What a deployment pipeline says about the rollout besides the sync status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployment {
    pub project_name: Option<String>,
    pub repo_name: Option<String>,
    pub server_type: Option<String>,
    pub environment: Option<String>,
    pub validation_status: Option<String>,
    pub validation_message: Option<String>,
    pub commit_sha: Option<String>,
    pub branch: Option<String>,
    pub updated_by: Option<String>,
}

/// What a report observed; the variant is the endpoint it came through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    Pipeline {
        status: Status,
        changed_files: Option<ChangedFiles>,
        deployment: Box<Deployment>,
    },
    Cron {
        status: Option<Status>,
        changed_files: Option<ChangedFiles>,
    },
    Legacy {
        status: Status,
        changed_files: Option<ChangedFiles>,
        drift_count: Option<u32>,
    },
    /// The host leaves the fleet: it is gone from the current state, its history stays.
    Decommission,
    /// A host's last state from an old server's file. Each part carries the file's own time:
    /// the report's `reported_at` for the status and files, `pipeline_at` for the
    /// deployment, `cron_at` for the last drift check.
    Import {
        status: Status,
        changed_files: Option<ChangedFiles>,
        drift_count: Option<u32>,
        /// None when the entry says nothing about a deployment.
        deployment: Option<Box<Deployment>>,
        pipeline_at: Option<Timestamp>,
        cron_at: Option<Timestamp>,
    },
}

/// One accepted report: which host, when the client observed it (if it said), and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub server_group: ServerGroup,
    pub host: HostName,
    /// The report's own time: `last_pipeline_run`, `last_cron_check` or v1 `last_check`.
    pub reported_at: Option<Timestamp>,
    pub observation: Observation,
}

impl Report {
    pub fn kind(&self) -> ReportKind {
        match self.observation {
            Observation::Pipeline { .. } => ReportKind::Pipeline,
            Observation::Cron { .. } => ReportKind::Cron,
            Observation::Legacy { .. } => ReportKind::Legacy,
            Observation::Decommission => ReportKind::Decommission,
            Observation::Import { .. } => ReportKind::Import,
        }
    }

    pub fn status(&self) -> Option<Status> {
        match &self.observation {
            Observation::Pipeline { status, .. }
            | Observation::Legacy { status, .. }
            | Observation::Import { status, .. } => Some(*status),
            Observation::Cron { status, .. } => *status,
            Observation::Decommission => None,
        }
    }

    pub fn changed_files(&self) -> Option<&ChangedFiles> {
        match &self.observation {
            Observation::Pipeline { changed_files, .. }
            | Observation::Cron { changed_files, .. }
            | Observation::Legacy { changed_files, .. }
            | Observation::Import { changed_files, .. } => changed_files.as_ref(),
            Observation::Decommission => None,
        }
    }

    pub fn deployment(&self) -> Option<&Deployment> {
        match &self.observation {
            Observation::Pipeline { deployment, .. } => Some(deployment),
            Observation::Import { deployment, .. } => deployment.as_deref(),
            _ => None,
        }
    }

    /// The time the report is ordered by, given when it arrived: its own time, or its
    /// arrival when it sent none or its time lies ahead of the server clock (a skewed client
    /// cannot pin a host's state). The client's time stays in its column and in raw_body.
    pub fn observed_at(&self, received_at: Timestamp) -> Timestamp {
        match self.reported_at {
            Some(at) if at <= received_at => at,
            _ => received_at,
        }
    }

    pub fn drift_count(&self) -> Option<u32> {
        match &self.observation {
            Observation::Legacy { drift_count, .. } | Observation::Import { drift_count, .. } => {
                *drift_count
            }
            _ => None,
        }
    }
}

/// A host's current state as the `current_status` view derives it from `reports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostState {
    pub server_group: ServerGroup,
    pub host: HostName,
    pub status: Status,
    pub changed_files: Vec<String>,
    pub deployment: Deployment,
    pub last_pipeline_run: Option<Timestamp>,
    pub last_cron_check: Option<Timestamp>,
    /// When the server last accepted a report for this host.
    pub timestamp: Timestamp,
    /// The observation time of the report the current `status` comes from.
    pub status_observed_at: Timestamp,
    /// The v1 `drift_count` of the report the current `changed_files` come from, if it sent one.
    pub reported_drift_count: Option<i64>,
    /// When the current status began: the observation time of the first report of the
    /// current run of that status.
    pub status_since: Timestamp,
    /// When the server received the host's newest drift check (cron or v1; an import's
    /// drift check counts at its own time); None: it never had one, so it is never stale.
    pub drift_received_at: Option<Timestamp>,
    /// When the current commit was first reported deployed (the pipeline report's time).
    pub commit_since: Option<Timestamp>,
}

/// One row of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub id: i64,
    pub received_at: Timestamp,
    pub kind: ReportKind,
    /// None for the rows that belong to no host (retention).
    pub server_group: Option<ServerGroup>,
    pub host: Option<HostName>,
    pub status: Option<Status>,
    pub changed_files: Option<Vec<String>>,
    pub deployment: Deployment,
    pub last_pipeline_run: Option<Timestamp>,
    pub last_cron_check: Option<Timestamp>,
    pub drift_count: Option<i64>,
    /// The report's own time, or `received_at` when the client sent none.
    pub observed_at: Timestamp,
    /// The name of the token that authorised the write; None without tokens.
    pub principal: Option<String>,
    pub client_addr: Option<String>,
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    /// The request body exactly as the client sent it (valid JSON).
    pub raw_body: String,
    /// The audit chain: the previous row's hash and this row's, and which canonical text
    /// of the row `hash` covers.
    pub prev_hash: String,
    pub hash: String,
    pub chain_format: i64,
}

/// Which reports `GET /history` returns, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub server_group: AnyOf<Pattern>,
    pub host: AnyOf<Pattern>,
    pub kind: AnyOf<ReportKind>,
    pub status: AnyOf<Status>,
    /// Inclusive bounds on `received_at`.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Only rows with an id below this one (keyset paging for scripts).
    pub before: Option<i64>,
    pub limit: u32,
    pub offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_files_limits_name_the_entry() {
        assert!(ChangedFiles::new(vec!["/etc/rsyslog.conf".into()]).is_ok());
        let (index, problem) =
            ChangedFiles::new(vec!["ok".into(), "x".repeat(MAX_PATH_LEN + 1)]).unwrap_err();
        assert_eq!(index, Some(1));
        assert!(problem.contains("4096"));
        let (index, _) = ChangedFiles::new(vec![String::new(); MAX_CHANGED_FILES + 1]).unwrap_err();
        assert_eq!(index, None);
    }
}
