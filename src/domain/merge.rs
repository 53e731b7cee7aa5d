//! How reports move a host's current state. The state is split into facets; each facet points
//! at the report that currently defines it. A report moves a facet it carries only when its
//! observation time is at least the facet's current one, so late and out-of-order reports are
//! kept in history without rolling the state back. Equal times go to the later report.
//!
//! | facet       | fields                                   | carried by                      |
//! |-------------|------------------------------------------|---------------------------------|
//! | status      | status                                   | any report with a status        |
//! | files       | changed_files                            | any report with status or files |
//! | pipeline    | deployment fields, last_pipeline_run     | pipeline reports                |
//! | cron_check  | last_cron_check                          | cron and v1 reports             |
//!
//! A report that carries a status without `changed_files` says "no changed files".

use super::{HostState, Report, ReportKind, Timestamp};

/// A facet's defining report and the time that report observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub report_id: i64,
    pub observed_at: Timestamp,
}

/// Where each facet of one host points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heads {
    pub status: Option<Head>,
    pub files: Option<Head>,
    pub pipeline: Option<Head>,
    pub cron_check: Option<Head>,
}

/// Which facets a report carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facets {
    pub status: bool,
    pub files: bool,
    pub pipeline: bool,
    pub cron_check: bool,
}

impl Report {
    pub fn facets(&self) -> Facets {
        let status = self.status().is_some();
        Facets {
            status,
            files: status || self.changed_files().is_some(),
            pipeline: self.kind() == ReportKind::Pipeline,
            cron_check: matches!(self.kind(), ReportKind::Cron | ReportKind::Legacy),
        }
    }
}

impl Heads {
    /// The heads after accepting a report with these facets, stored as `new`.
    pub fn advance(self, facets: Facets, new: Head) -> Heads {
        let step = |current: Option<Head>, carried: bool| match current {
            Some(head) if !carried || head.observed_at > new.observed_at => Some(head),
            None if !carried => None,
            _ => Some(new),
        };
        Heads {
            status: step(self.status, facets.status),
            files: step(self.files, facets.files),
            pipeline: step(self.pipeline, facets.pipeline),
            cron_check: step(self.cron_check, facets.cron_check),
        }
    }
}

impl Heads {
    /// The parts of the state (by field name) that a report with these facets, stored as
    /// `new`, carried but did not move because a newer observation was already there.
    pub fn kept_newer(self, facets: Facets, new: Head) -> Vec<&'static str> {
        [
            ("status", facets.status, self.status),
            ("changed_files", facets.files, self.files),
            ("deployment", facets.pipeline, self.pipeline),
            ("last_cron_check", facets.cron_check, self.cron_check),
        ]
        .into_iter()
        .filter(|(_, carried, head)| *carried && *head != Some(new))
        .map(|(name, _, _)| name)
        .collect()
    }
}

impl Heads {
    /// The facets that point at `new`: the ones a report stored as `new` moved.
    pub fn moved_to(self, new: Head) -> Facets {
        Facets {
            status: self.status == Some(new),
            files: self.files == Some(new),
            pipeline: self.pipeline == Some(new),
            cron_check: self.cron_check == Some(new),
        }
    }
}

impl HostState {
    /// The host's state after `report`, received at `received_at` and ordered as observed at
    /// `observed_at`, moved the facets in `moved` (see `Heads::moved_to`); `before` is the
    /// state it replaced, None for a new host. It is what the `current_status` view derives
    /// from the stored reports, computed without reading them back: each moved facet takes
    /// its fields from the report, the others keep theirs. None when a new host would be
    /// left without a status (only a report with a status may create a host).
    pub fn after(
        before: Option<&HostState>,
        report: &Report,
        moved: Facets,
        received_at: Timestamp,
        observed_at: Timestamp,
    ) -> Option<HostState> {
        let (status, status_observed_at) = match (moved.status, report.status(), before) {
            (true, Some(status), _) => (status, observed_at),
            (_, _, Some(b)) => (b.status, b.status_observed_at),
            _ => return None,
        };
        let (changed_files, reported_drift_count) = match (moved.files, before) {
            (true, _) => (
                report
                    .changed_files()
                    .map(|files| files.as_slice().to_vec())
                    .unwrap_or_default(),
                report.drift_count().map(i64::from),
            ),
            (false, Some(b)) => (b.changed_files.clone(), b.reported_drift_count),
            (false, None) => return None,
        };
        let (deployment, last_pipeline_run) = match (moved.pipeline, before) {
            (true, _) => (
                report.deployment().cloned().unwrap_or_default(),
                Some(observed_at),
            ),
            (false, Some(b)) => (b.deployment.clone(), b.last_pipeline_run),
            (false, None) => (Default::default(), None),
        };
        let last_cron_check = match (moved.cron_check, before) {
            (true, _) => Some(observed_at),
            (false, before) => before.and_then(|b| b.last_cron_check),
        };
        Some(HostState {
            server_group: report.server_group.clone(),
            host: report.host.clone(),
            status,
            changed_files,
            deployment,
            last_pipeline_run,
            last_cron_check,
            timestamp: received_at,
            status_observed_at,
            reported_drift_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn head(id: i64, time: &str) -> Head {
        Head {
            report_id: id,
            observed_at: at(time),
        }
    }

    const PIPELINE: Facets = Facets {
        status: true,
        files: true,
        pipeline: true,
        cron_check: false,
    };
    const CRON: Facets = Facets {
        status: true,
        files: true,
        pipeline: false,
        cron_check: true,
    };
    const HEARTBEAT: Facets = Facets {
        status: false,
        files: false,
        pipeline: false,
        cron_check: true,
    };

    #[test]
    fn first_report_defines_every_facet_it_carries() {
        let heads = Heads::default().advance(PIPELINE, head(1, "2026-04-26T10:30:00Z"));
        assert_eq!(heads.status, Some(head(1, "2026-04-26T10:30:00Z")));
        assert_eq!(heads.pipeline, Some(head(1, "2026-04-26T10:30:00Z")));
        assert_eq!(heads.cron_check, None);
    }

    #[test]
    fn newer_cron_moves_drift_facets_but_not_the_pipeline() {
        let heads = Heads::default()
            .advance(PIPELINE, head(1, "2026-04-26T10:30:00Z"))
            .advance(CRON, head(2, "2026-04-26T11:00:00Z"));
        assert_eq!(heads.status.unwrap().report_id, 2);
        assert_eq!(heads.files.unwrap().report_id, 2);
        assert_eq!(heads.pipeline.unwrap().report_id, 1);
        assert_eq!(heads.cron_check.unwrap().report_id, 2);
    }

    #[test]
    fn older_report_moves_nothing() {
        let before = Heads::default()
            .advance(PIPELINE, head(1, "2026-04-26T10:30:00Z"))
            .advance(CRON, head(2, "2026-04-26T11:00:00Z"));
        let after = before.advance(CRON, head(3, "2026-04-26T10:45:00Z"));
        assert_eq!(before, after);
    }

    #[test]
    fn late_pipeline_still_updates_its_own_facet_when_newer_there() {
        let heads = Heads::default()
            .advance(PIPELINE, head(1, "2026-04-26T10:00:00Z"))
            .advance(CRON, head(2, "2026-04-26T11:00:00Z"))
            .advance(PIPELINE, head(3, "2026-04-26T10:30:00Z"));
        assert_eq!(heads.pipeline.unwrap().report_id, 3, "newer deployment");
        assert_eq!(
            heads.status.unwrap().report_id,
            2,
            "cron is the newer drift view"
        );
    }

    #[test]
    fn equal_times_go_to_the_later_report() {
        let heads = Heads::default()
            .advance(CRON, head(1, "2026-04-26T11:00:00Z"))
            .advance(CRON, head(2, "2026-04-26T11:00:00Z"));
        assert_eq!(heads.status.unwrap().report_id, 2);
    }

    #[test]
    fn kept_newer_names_the_parts_a_late_report_could_not_move() {
        let before = Heads::default()
            .advance(PIPELINE, head(1, "2026-04-26T10:00:00Z"))
            .advance(CRON, head(2, "2026-04-26T11:00:00Z"));
        let late_pipeline = head(3, "2026-04-26T10:30:00Z");
        let after = before.advance(PIPELINE, late_pipeline);
        assert_eq!(
            after.kept_newer(PIPELINE, late_pipeline),
            ["status", "changed_files"]
        );
        let fresh = head(4, "2026-04-26T12:00:00Z");
        assert!(after
            .advance(CRON, fresh)
            .kept_newer(CRON, fresh)
            .is_empty());
    }

    #[test]
    fn heartbeat_moves_only_the_cron_check() {
        let heads = Heads::default()
            .advance(PIPELINE, head(1, "2026-04-26T10:00:00Z"))
            .advance(HEARTBEAT, head(2, "2026-04-26T11:00:00Z"));
        assert_eq!(heads.status.unwrap().report_id, 1);
        assert_eq!(heads.cron_check.unwrap().report_id, 2);
    }

    fn report(kind: &str, status: Option<&str>, files: Option<&[&str]>) -> Report {
        use crate::domain::{ChangedFiles, Deployment, HostName, Observation, ServerGroup, Status};
        let status = status.map(|s| Status::parse(s).unwrap());
        let changed_files =
            files.map(|f| ChangedFiles::new(f.iter().map(|s| s.to_string()).collect()).unwrap());
        Report {
            server_group: ServerGroup::parse("g").unwrap(),
            host: HostName::parse("h").unwrap(),
            reported_at: None,
            observation: match kind {
                "pipeline" => Observation::Pipeline {
                    status: status.unwrap(),
                    changed_files,
                    deployment: Box::new(Deployment {
                        commit_sha: Some("abc".into()),
                        ..Default::default()
                    }),
                },
                _ => Observation::Cron {
                    status,
                    changed_files,
                },
            },
        }
    }

    #[test]
    fn state_after_a_report_takes_the_moved_parts_from_it() {
        let deploy = report("pipeline", Some("synced"), None);
        let t1 = at("2026-04-26T10:00:00Z");
        let first = HostState::after(None, &deploy, PIPELINE, t1, t1).unwrap();
        assert_eq!(first.changed_files, Vec::<String>::new());
        assert_eq!(first.deployment.commit_sha.as_deref(), Some("abc"));
        assert_eq!(first.last_pipeline_run, Some(t1));
        assert_eq!(first.last_cron_check, None);

        // A drift check moves status and files; the deployment stays.
        let drift = report("cron", Some("out_of_sync"), Some(&["/etc/a"]));
        let (t2, observed) = (at("2026-04-26T11:00:05Z"), at("2026-04-26T11:00:00Z"));
        let second = HostState::after(Some(&first), &drift, CRON, t2, observed).unwrap();
        assert_eq!(second.status, crate::domain::Status::OutOfSync);
        assert_eq!(second.status_observed_at, observed);
        assert_eq!(second.changed_files, ["/etc/a"]);
        assert_eq!(second.deployment, first.deployment);
        assert_eq!(second.last_cron_check, Some(observed));
        assert_eq!(second.timestamp, t2);

        // A heartbeat (no status, no files) moves only the check time.
        let beat = report("cron", None, None);
        let t3 = at("2026-04-26T12:00:00Z");
        let third = HostState::after(Some(&second), &beat, HEARTBEAT, t3, t3).unwrap();
        assert_eq!(third.status, second.status);
        assert_eq!(third.changed_files, second.changed_files);
        assert_eq!(third.last_cron_check, Some(t3));
    }

    #[test]
    fn only_a_report_with_a_status_creates_a_host() {
        let beat = report("cron", None, None);
        let t = at("2026-04-26T12:00:00Z");
        assert_eq!(HostState::after(None, &beat, HEARTBEAT, t, t), None);
    }
}
