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

impl Tier {
    /// The tier of a report, from what it left of the host's status and set of changed files
    /// (`after`) and what was there before it (`before`; None for a new host, or after a
    /// decommission): a change when its kind always is one, when it created the host, or when
    /// it changed the status or the set of files; routine otherwise (a late report that moved
    /// nothing, a check that found what the host already had).
    pub fn of(
        kind: ReportKind,
        before: Option<(Status, &[String])>,
        after: Option<(Status, &[String])>,
    ) -> Tier {
        let changed = match (before, after) {
            (Some((was, old)), Some((now, new))) => was != now || !same_set(old, new),
            _ => true,
        };
        if kind.is_change() || changed {
            Tier::Change
        } else {
            Tier::Routine
        }
    }

    /// As stored in `reports.is_change`.
    pub fn is_change(self) -> bool {
        self == Tier::Change
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    fn set(files: &[String]) -> Vec<&String> {
        let mut set: Vec<&String> = files.iter().collect();
        set.sort_unstable();
        set.dedup();
        set
    }
    set(a) == set(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_drift_check_is_a_change_only_when_it_changes_status_or_the_set_of_files() {
        let cron = ReportKind::Cron;
        let none: &[String] = &[];
        let ab = files(&["/a", "/b"]).unwrap();
        let ba = files(&["/b", "/a", "/a"]).unwrap();
        let b = files(&["/b"]).unwrap();
        let synced = Status::Synced;
        let drifted = Status::OutOfSync;
        let tier = Tier::of;
        assert_eq!(
            tier(cron, Some((synced, none)), Some((synced, none))),
            Tier::Routine
        );
        assert_eq!(
            tier(cron, Some((synced, none)), Some((drifted, &ab))),
            Tier::Change
        );
        assert_eq!(
            tier(cron, Some((drifted, &ab)), Some((drifted, &ba))),
            Tier::Routine
        );
        assert_eq!(
            tier(cron, Some((drifted, &ab)), Some((drifted, &b))),
            Tier::Change
        );
        assert_eq!(
            tier(ReportKind::Legacy, None, Some((synced, none))),
            Tier::Change,
            "new"
        );
        let same = Some((synced, none));
        for kind in [
            ReportKind::Pipeline,
            ReportKind::Import,
            ReportKind::Decommission,
        ] {
            assert_eq!(tier(kind, same, same), Tier::Change, "{kind}");
        }
        assert_eq!(tier(ReportKind::Decommission, same, None), Tier::Change);
        assert!(Tier::Change.is_change() && !Tier::Routine.is_change());
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
