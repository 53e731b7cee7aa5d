//! How long history is kept. Two tiers, as the peers keep them: routine reports (a drift
//! check that found what the one before it found) for `--retain-reports`, reports that changed
//! something for `--retain-changes`; the newest reports of every host and every report a host's
//! current state rests on are kept whatever their age.

use std::fmt;

use super::{Period, ReportKind, Status, Timestamp};

/// The retention policy the server runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Reports older than this are removed unless another rule keeps them; None: never.
    pub reports: Option<Period>,
    /// Reports that changed something are kept at least this long; None: forever.
    pub changes: Option<Period>,
    /// The newest this many reports of every host are always kept.
    pub per_host: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            reports: Period::from_secs(30 * 86_400),
            changes: Period::from_secs(400 * 86_400),
            per_host: 100,
        }
    }
}

/// The receive times below which each tier is removed (None: that tier is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoffs {
    pub routine: Option<Timestamp>,
    pub changes: Option<Timestamp>,
}

impl RetentionPolicy {
    /// A change is a report too: it goes only when both limits have passed, so it is never
    /// removed before a routine report of its age would be.
    pub fn cutoffs(&self, now: Timestamp) -> Cutoffs {
        let before = |period: Period| now.checked_sub(period);
        let changes = match (self.reports, self.changes) {
            (Some(reports), Some(changes)) => before(reports.max(changes)),
            _ => None,
        };
        Cutoffs {
            routine: self.reports.and_then(before),
            changes,
        }
    }

    /// True when this policy never removes anything.
    pub fn keeps_everything(&self) -> bool {
        self.reports.is_none()
    }
}

fn or_off(period: Option<Period>) -> String {
    period.map_or_else(|| "off".to_owned(), |p| p.to_string())
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reports {}, changes {}, newest {} per host",
            or_off(self.reports),
            or_off(self.changes),
            self.per_host
        )
    }
}

impl RetentionPolicy {
    /// `30d`, or `off`.
    pub fn reports_text(&self) -> String {
        or_off(self.reports)
    }

    pub fn changes_text(&self) -> String {
        or_off(self.changes)
    }
}

/// Which tier a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Routine,
    Change,
}

/// What a host's reports said so far, in arrival order: the yardstick that tells a drift
/// check that changed the host's status or set of changed files from a routine one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostTrail {
    status: Option<Status>,
    /// Sorted and without duplicates: the set, not the order the client listed it in.
    files: Option<Vec<String>>,
}

impl HostTrail {
    /// The trail as of a report that said `status` and `files` (None: not carried).
    pub fn from_last(status: Option<Status>, files: Option<Vec<String>>) -> Self {
        HostTrail {
            status,
            files: files.map(as_set),
        }
    }

    /// Classifies the host's next row (by id) and remembers what it said. A status without
    /// `changed_files` says "none", as in the merge rules.
    pub fn next(
        &mut self,
        kind: ReportKind,
        status: Option<Status>,
        changed_files: Option<Vec<String>>,
    ) -> Tier {
        if kind == ReportKind::Decommission {
            // The host starts again from nothing: its next report is a change.
            *self = HostTrail::default();
            return Tier::Change;
        }
        let files = (status.is_some() || changed_files.is_some())
            .then(|| as_set(changed_files.unwrap_or_default()));
        let status_changed = status.is_some() && status != self.status;
        let files_changed = files.is_some() && files != self.files;
        if status.is_some() {
            self.status = status;
        }
        if files.is_some() {
            self.files = files;
        }
        if kind.is_change() || status_changed || files_changed {
            Tier::Change
        } else {
            Tier::Routine
        }
    }
}

fn as_set(mut files: Vec<String>) -> Vec<String> {
    files.sort_unstable();
    files.dedup();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_drift_check_is_a_change_only_when_it_changes_status_or_files() {
        let mut trail = HostTrail::default();
        let cron = ReportKind::Cron;
        let synced = Some(Status::Synced);
        let drifted = Some(Status::OutOfSync);
        assert_eq!(trail.next(ReportKind::Pipeline, synced, None), Tier::Change);
        assert_eq!(trail.next(cron, synced, files(&[])), Tier::Routine);
        assert_eq!(
            trail.next(cron, synced, None),
            Tier::Routine,
            "no list: none"
        );
        assert_eq!(trail.next(cron, None, None), Tier::Routine, "a heartbeat");
        assert_eq!(
            trail.next(cron, drifted, files(&["/a", "/b"])),
            Tier::Change
        );
        assert_eq!(
            trail.next(cron, drifted, files(&["/b", "/a", "/a"])),
            Tier::Routine
        );
        assert_eq!(
            trail.next(cron, drifted, files(&["/b"])),
            Tier::Change,
            "files"
        );
        assert_eq!(trail.next(cron, None, files(&["/b"])), Tier::Routine);
        assert_eq!(trail.next(ReportKind::Legacy, synced, None), Tier::Change);
        assert_eq!(trail.next(ReportKind::Pipeline, synced, None), Tier::Change);
        assert_eq!(
            trail.next(ReportKind::Decommission, None, None),
            Tier::Change
        );
        assert_eq!(
            trail.next(ReportKind::Legacy, synced, None),
            Tier::Change,
            "anew"
        );
    }

    #[test]
    fn changes_go_only_after_both_limits() {
        let now = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        let days = |d: u64| Period::from_secs(d * 86_400);
        let policy = RetentionPolicy::default();
        let cutoffs = policy.cutoffs(now);
        assert_eq!(
            cutoffs.routine.unwrap().to_string(),
            "2026-11-01T00:00:00.000Z"
        );
        assert_eq!(
            cutoffs.changes.unwrap().to_string(),
            "2025-10-27T00:00:00.000Z"
        );
        let short_changes = RetentionPolicy {
            changes: days(7),
            ..policy
        };
        assert_eq!(short_changes.cutoffs(now).changes, cutoffs.routine);
        let forever = RetentionPolicy {
            changes: None,
            ..policy
        };
        assert_eq!(forever.cutoffs(now).changes, None);
        let nothing = RetentionPolicy {
            reports: None,
            ..policy
        };
        assert!(nothing.keeps_everything());
        assert_eq!(
            nothing.cutoffs(now),
            Cutoffs {
                routine: None,
                changes: None
            }
        );
        assert_eq!(
            policy.to_string(),
            "reports 30d, changes 400d, newest 100 per host"
        );
    }
}
