//! Questions about the whole fleet: which hosts match a filter, how many are in each status,
//! when each host's status changed, and how far a commit has rolled out.

use super::{AnyOf, HostName, Pattern, ReportKind, ServerGroup, Status, Timestamp};

/// The filters of `GET /status`, `/summary` and `/groups`: a host is listed when every
/// non-empty filter accepts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetFilter {
    pub status: AnyOf<Status>,
    pub environment: AnyOf<Pattern>,
    pub server_type: AnyOf<Pattern>,
    pub server_group: AnyOf<Pattern>,
    pub host: AnyOf<Pattern>,
    pub repo_name: AnyOf<Pattern>,
    pub project_name: AnyOf<Pattern>,
    pub branch: AnyOf<Pattern>,
    pub commit_sha: AnyOf<Pattern>,
    pub validation_status: AnyOf<Pattern>,
    pub stale: Option<bool>,
}

impl FleetFilter {
    /// No filter at all: every host.
    pub fn is_everything(&self) -> bool {
        *self == FleetFilter::default()
    }

    /// The text filters by the column they filter, for the store.
    pub fn text_filters(&self) -> [(&'static str, &AnyOf<Pattern>); 9] {
        [
            ("environment", &self.environment),
            ("server_type", &self.server_type),
            ("server_group", &self.server_group),
            ("host", &self.host),
            ("repo_name", &self.repo_name),
            ("project_name", &self.project_name),
            ("branch", &self.branch),
            ("commit_sha", &self.commit_sha),
            ("validation_status", &self.validation_status),
        ]
    }
}

/// Hosts by status, for stat panels (`GET /summary`, and per group in `GET /groups`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetSummary {
    pub hosts: u64,
    pub synced: u64,
    pub out_of_sync: u64,
    pub failed: u64,
    pub unknown: u64,
    pub stale: u64,
    /// The sum of the hosts' changed_files_count.
    pub drifted_files: u64,
    /// The earliest `status_since` among hosts not synced.
    pub oldest_drift_since: Option<Timestamp>,
}

/// A column the status page sorts its hosts by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Group,
    Host,
    Status,
    Since,
    LastReport,
    Changed,
    Commit,
}

impl SortKey {
    pub const ALL: [SortKey; 7] = [
        SortKey::Group,
        SortKey::Host,
        SortKey::Status,
        SortKey::Since,
        SortKey::LastReport,
        SortKey::Changed,
        SortKey::Commit,
    ];

    /// Its name in a query string (`sort=`).
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Group => "server_group",
            SortKey::Host => "host",
            SortKey::Status => "status",
            SortKey::Since => "status_since",
            SortKey::LastReport => "last_report",
            SortKey::Changed => "changed_files",
            SortKey::Commit => "commit_sha",
        }
    }

    pub fn parse(text: &str) -> Option<SortKey> {
        SortKey::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The expression the store orders by (a fixed list: never text from a request).
    pub fn column(self) -> &'static str {
        match self {
            SortKey::Group => "server_group",
            SortKey::Host => "host",
            // Worst first when descending.
            SortKey::Status => {
                "CASE status WHEN 'failed' THEN 3 WHEN 'out_of_sync' THEN 2 \
                 WHEN 'unknown' THEN 1 ELSE 0 END"
            }
            SortKey::Since => "status_since",
            SortKey::LastReport => "last_report_at",
            SortKey::Changed => "changed_files_count",
            SortKey::Commit => "commit_sha",
        }
    }
}

/// How the status page orders its hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetOrder {
    pub key: SortKey,
    pub descending: bool,
}

/// One host as the status page's table shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetRow {
    pub server_group: ServerGroup,
    pub host: HostName,
    pub status: Status,
    pub stale: bool,
    pub status_since: Option<Timestamp>,
    pub commit_sha: Option<String>,
    pub branch: Option<String>,
    pub changed_files_count: u64,
    pub last_report_at: Timestamp,
}

/// A page of hosts and how many the filters select in all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetPage {
    pub total: u64,
    pub hosts: Vec<FleetRow>,
}

/// What `/metrics` tells of one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostGauge {
    pub server_group: ServerGroup,
    pub host: HostName,
    pub status: Status,
    pub stale: bool,
    /// When its newest report arrived.
    pub last_report_at: Timestamp,
}

/// The history's size, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Rows in the history (reports and the chain's retention records).
    pub rows: u64,
    /// When the oldest report still kept arrived.
    pub oldest_report_at: Option<Timestamp>,
}

/// One change of a host's status, written with the report that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub report_id: i64,
    pub server_group: ServerGroup,
    pub host: HostName,
    /// None for a host's first report (or its first after it was decommissioned).
    pub from_status: Option<Status>,
    pub to_status: Status,
    /// The report's observation time.
    pub at: Timestamp,
    pub kind: ReportKind,
    /// How long the previous status lasted (None with no previous status).
    pub previous_duration_ms: Option<i64>,
    /// The host's deployed commit and drifted file count right after the report.
    pub commit_sha: Option<String>,
    pub changed_files_count: u64,
}

/// The filters and page of `GET /transitions`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransitionFilter {
    pub server_group: AnyOf<Pattern>,
    pub host: AnyOf<Pattern>,
    pub from_status: AnyOf<Status>,
    pub to_status: AnyOf<Status>,
    /// Inclusive bounds on `at`.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Only transitions of reports with an id below this one.
    pub before: Option<i64>,
    pub limit: u32,
}

/// A commit as a group's pipelines reported it, and how far it has rolled out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub server_group: ServerGroup,
    pub commit_sha: String,
    /// The branch of its newest pipeline report.
    pub branch: Option<String>,
    /// When the server received its first and its newest pipeline report in the group.
    pub first_reported: Timestamp,
    pub last_reported: Timestamp,
    pub hosts_on_commit: u64,
    pub hosts_in_group: u64,
    pub hosts_failed: u64,
}

impl Rollout {
    /// Every host of the group runs it.
    pub fn converged(&self) -> bool {
        self.hosts_in_group > 0 && self.hosts_on_commit == self.hosts_in_group
    }
}

/// The filters and page of `GET /commits`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutFilter {
    pub server_group: AnyOf<Pattern>,
    pub commit_sha: AnyOf<Pattern>,
    /// Inclusive bounds on `last_reported`.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: u32,
}

/// A host of a group that reported a commit: whether it runs it yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutHost {
    pub server_group: ServerGroup,
    pub host: HostName,
    pub current_commit_sha: Option<String>,
    pub status: Status,
    /// When its current commit was first reported deployed on it.
    pub since: Option<Timestamp>,
}
