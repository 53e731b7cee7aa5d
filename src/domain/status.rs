//! The sync status of a host and the kind of report that carried it.

use std::fmt;

/// Whether a host matches Git. v2 sends lower case, v1 sends `SYNCED`/`OUT_OF_SYNC`/`UNKNOWN`;
/// both are accepted in any case and stored in lower case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Synced,
    OutOfSync,
    Failed,
    Unknown,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Synced,
        Status::OutOfSync,
        Status::Failed,
        Status::Unknown,
    ];

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value))
            .ok_or_else(|| {
                format!(
                    "must be one of synced, out_of_sync, failed, unknown (any case); got {value:?}"
                )
            })
    }

    /// The v2 spelling, as stored in SQLite.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Synced => "synced",
            Status::OutOfSync => "out_of_sync",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
        }
    }

    /// In words, for people (badges, the status page): `out of sync` rather than `out_of_sync`.
    pub fn words(self) -> &'static str {
        match self {
            Status::Synced => "synced",
            Status::OutOfSync => "out of sync",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
        }
    }

    /// The v1 spelling (`SYNCED`, `OUT_OF_SYNC`, …).
    pub fn as_v1(self) -> &'static str {
        match self {
            Status::Synced => "SYNCED",
            Status::OutOfSync => "OUT_OF_SYNC",
            Status::Failed => "FAILED",
            Status::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a row of the history is: a report through one of the endpoints, or an event the
/// service recorded itself. The kind decides which parts of a host's state it may move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// `POST /status/pipeline`: a deployment; may create the host.
    Pipeline,
    /// `POST /status/cron`: a drift check of a known host.
    Cron,
    /// `POST /api/status`: the v1 drift report; may create the host.
    Legacy,
    /// `DELETE /status/{server_group}/{host}`: the host left the fleet.
    Decommission,
    /// `gitops-status import`: a host's last state from the old servers' files.
    Import,
    /// A pruning pass: which rows retention removed (belongs to no host).
    Retention,
}

impl ReportKind {
    pub const ALL: [ReportKind; 6] = [
        ReportKind::Pipeline,
        ReportKind::Cron,
        ReportKind::Legacy,
        ReportKind::Decommission,
        ReportKind::Import,
        ReportKind::Retention,
    ];

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == value)
            .ok_or_else(|| {
                format!(
                    "must be one of pipeline, cron, legacy, decommission, import, retention; \
                     got {value:?}"
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Pipeline => "pipeline",
            ReportKind::Cron => "cron",
            ReportKind::Legacy => "legacy",
            ReportKind::Decommission => "decommission",
            ReportKind::Import => "import",
            ReportKind::Retention => "retention",
        }
    }

    /// Pipeline, v1 and imported reports create the host they name; a drift check or a
    /// decommission needs it to exist.
    pub fn may_create_host(self) -> bool {
        matches!(
            self,
            ReportKind::Pipeline | ReportKind::Legacy | ReportKind::Import
        )
    }

    /// Rows that are a change by their kind alone, kept for `--retain-changes`: deployments
    /// and the service's own events. Drift checks are changes only when they changed a
    /// host's status or files.
    pub fn is_change(self) -> bool {
        !matches!(self, ReportKind::Cron | ReportKind::Legacy)
    }
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_accepts_v1_and_v2_spellings_in_any_case() {
        assert_eq!(Status::parse("synced").unwrap(), Status::Synced);
        assert_eq!(Status::parse("SYNCED").unwrap(), Status::Synced);
        assert_eq!(Status::parse("Out_Of_Sync").unwrap(), Status::OutOfSync);
        assert_eq!(Status::parse("UNKNOWN").unwrap(), Status::Unknown);
        assert_eq!(Status::parse("failed").unwrap(), Status::Failed);
        assert!(Status::parse("in_sync").unwrap_err().contains("in_sync"));
        assert!(Status::parse("").is_err());
        assert!(Status::parse(" synced").is_err());
    }

    #[test]
    fn status_round_trips_through_both_spellings() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()).unwrap(), s);
            assert_eq!(Status::parse(s.as_v1()).unwrap(), s);
        }
    }

    #[test]
    fn kind_is_exact_and_only_reports_that_describe_a_host_create_it() {
        assert_eq!(ReportKind::parse("cron").unwrap(), ReportKind::Cron);
        assert!(ReportKind::parse("CRON").is_err());
        assert!(ReportKind::Pipeline.may_create_host());
        assert!(ReportKind::Legacy.may_create_host());
        assert!(!ReportKind::Cron.may_create_host());
        assert!(ReportKind::Import.may_create_host());
        assert!(!ReportKind::Decommission.may_create_host());
        for kind in ReportKind::ALL {
            assert_eq!(ReportKind::parse(kind.as_str()).unwrap(), kind);
        }
    }
}
