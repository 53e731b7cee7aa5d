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

use super::{HostState, Observation, Report, ReportKind, Timestamp, Transition};

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

/// Which facets a report moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facets {
    pub status: bool,
    pub files: bool,
    pub pipeline: bool,
    pub cron_check: bool,
}

/// The facets a report carries, each with the time it observed it (None: not carried).
/// Reports through the API observe everything at one time; an imported entry keeps the old
/// file's separate times for its deployment and its last drift check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FacetTimes {
    pub status: Option<Timestamp>,
    pub files: Option<Timestamp>,
    pub pipeline: Option<Timestamp>,
    pub cron_check: Option<Timestamp>,
}

impl Report {
    /// The facets this report carries and when it observed each, given when it arrived. A
    /// time ahead of the server clock counts as the arrival (see `Report::observed_at`).
    pub fn facet_times(&self, received_at: Timestamp) -> FacetTimes {
        let at = self.observed_at(received_at);
        let status = self.status().is_some();
        let files = status || self.changed_files().is_some();
        let not_ahead = |t: Timestamp| t.min(received_at);
        match &self.observation {
            Observation::Import {
                deployment,
                pipeline_at,
                cron_at,
                ..
            } => FacetTimes {
                status: Some(at),
                files: Some(at),
                pipeline: deployment
                    .is_some()
                    .then(|| pipeline_at.map_or(at, not_ahead)),
                cron_check: cron_at.map(not_ahead),
            },
            Observation::Decommission => FacetTimes::default(),
            _ => FacetTimes {
                status: status.then_some(at),
                files: files.then_some(at),
                pipeline: (self.kind() == ReportKind::Pipeline).then_some(at),
                cron_check: matches!(self.kind(), ReportKind::Cron | ReportKind::Legacy)
                    .then_some(at),
            },
        }
    }
}

impl Heads {
    /// The heads after accepting report `report_id`, which carries the facets in `times`.
    pub fn advance(self, times: FacetTimes, report_id: i64) -> Heads {
        let step = |current: Option<Head>, carried: Option<Timestamp>| match (current, carried) {
            (current, None) => current,
            (Some(head), Some(at)) if head.observed_at > at => Some(head),
            (_, Some(observed_at)) => Some(Head {
                report_id,
                observed_at,
            }),
        };
        Heads {
            status: step(self.status, times.status),
            files: step(self.files, times.files),
            pipeline: step(self.pipeline, times.pipeline),
            cron_check: step(self.cron_check, times.cron_check),
        }
    }

    /// The parts of the state (by field name) that report `report_id`, carrying `times`,
    /// carried but did not move because a newer observation was already there.
    pub fn kept_newer(self, times: FacetTimes, report_id: i64) -> Vec<&'static str> {
        [
            ("status", times.status, self.status),
            ("changed_files", times.files, self.files),
            ("deployment", times.pipeline, self.pipeline),
            ("last_cron_check", times.cron_check, self.cron_check),
        ]
        .into_iter()
        .filter(|(_, carried, head)| {
            carried.is_some() && head.map(|h| h.report_id) != Some(report_id)
        })
        .map(|(name, _, _)| name)
        .collect()
    }

    /// The facets that point at report `report_id`: the ones it moved.
    pub fn moved_to(self, report_id: i64) -> Facets {
        let at = |head: Option<Head>| head.is_some_and(|h| h.report_id == report_id);
        Facets {
            status: at(self.status),
            files: at(self.files),
            pipeline: at(self.pipeline),
            cron_check: at(self.cron_check),
        }
    }
}

impl HostState {
    /// The host's state after `report`, received at `received_at`, moved the facets in
    /// `moved` (see `Heads::moved_to`), each observed at its time in `times`; `before` is the
    /// state it replaced, None for a new host. It is what the `current_status` view derives
    /// from the stored reports, computed without reading them back: each moved facet takes
    /// its fields from the report, the others keep theirs. None when a new host would be
    /// left without a status (only a report with a status may create a host).
    pub fn after(
        before: Option<&HostState>,
        report: &Report,
        moved: Facets,
        received_at: Timestamp,
        times: FacetTimes,
    ) -> Option<HostState> {
        let (status, status_observed_at) =
            match (moved.status, report.status(), times.status, before) {
                (true, Some(status), Some(at), _) => (status, at),
                (_, _, _, Some(b)) => (b.status, b.status_observed_at),
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
                times.pipeline,
            ),
            (false, Some(b)) => (b.deployment.clone(), b.last_pipeline_run),
            (false, None) => (Default::default(), None),
        };
        let last_cron_check = match (moved.cron_check, before) {
            (true, _) => times.cron_check,
            (false, before) => before.and_then(|b| b.last_cron_check),
        };
        let status_since = match before {
            Some(b) if b.status == status => b.status_since,
            _ => status_observed_at,
        };
        // Staleness runs on the server's clock: a drift check counts when it arrived, whatever
        // time it carried (an import's counts at the old server's time, never later).
        let drift_now = match report.kind() {
            ReportKind::Cron | ReportKind::Legacy => Some(received_at),
            ReportKind::Import => times.cron_check,
            _ => None,
        };
        let drift_received_at = before.and_then(|b| b.drift_received_at).max(drift_now);
        let commit_since = match before {
            Some(b) if !moved.pipeline || b.deployment.commit_sha == deployment.commit_sha => {
                b.commit_since
            }
            _ => last_pipeline_run,
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
            status_since,
            drift_received_at,
            commit_since,
        })
    }

    /// The change of status `report` (id `report_id`) made, going from `before` to `self`;
    /// None when the status stayed (or the report did not move it).
    pub fn transition_from(
        &self,
        before: Option<&HostState>,
        moved: Facets,
        report_id: i64,
        kind: ReportKind,
    ) -> Option<Transition> {
        if !moved.status || before.is_some_and(|b| b.status == self.status) {
            return None;
        }
        Some(Transition {
            report_id,
            server_group: self.server_group.clone(),
            host: self.host.clone(),
            from_status: before.map(|b| b.status),
            to_status: self.status,
            at: self.status_since,
            kind,
            previous_duration_ms: before
                .map(|b| self.status_since.epoch_millis() - b.status_since.epoch_millis()),
            commit_sha: self.deployment.commit_sha.clone(),
            changed_files_count: self.changed_files.len() as u64,
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

    /// What a pipeline, cron or heartbeat (cron without status) report observed at `time`.
    fn pipeline(time: &str) -> FacetTimes {
        let t = Some(at(time));
        FacetTimes {
            status: t,
            files: t,
            pipeline: t,
            cron_check: None,
        }
    }

    fn cron(time: &str) -> FacetTimes {
        let t = Some(at(time));
        FacetTimes {
            status: t,
            files: t,
            pipeline: None,
            cron_check: t,
        }
    }

    fn heartbeat(time: &str) -> FacetTimes {
        FacetTimes {
            cron_check: Some(at(time)),
            ..FacetTimes::default()
        }
    }

    #[test]
    fn first_report_defines_every_facet_it_carries() {
        let heads = Heads::default().advance(pipeline("2026-04-26T10:30:00Z"), 1);
        assert_eq!(heads.status, Some(head(1, "2026-04-26T10:30:00Z")));
        assert_eq!(heads.pipeline, Some(head(1, "2026-04-26T10:30:00Z")));
        assert_eq!(heads.cron_check, None);
    }

    #[test]
    fn newer_cron_moves_drift_facets_but_not_the_pipeline() {
        let heads = Heads::default()
            .advance(pipeline("2026-04-26T10:30:00Z"), 1)
            .advance(cron("2026-04-26T11:00:00Z"), 2);
        assert_eq!(heads.status.unwrap().report_id, 2);
        assert_eq!(heads.files.unwrap().report_id, 2);
        assert_eq!(heads.pipeline.unwrap().report_id, 1);
        assert_eq!(heads.cron_check.unwrap().report_id, 2);
    }

    #[test]
    fn older_report_moves_nothing() {
        let before = Heads::default()
            .advance(pipeline("2026-04-26T10:30:00Z"), 1)
            .advance(cron("2026-04-26T11:00:00Z"), 2);
        let after = before.advance(cron("2026-04-26T10:45:00Z"), 3);
        assert_eq!(before, after);
    }

    #[test]
    fn late_pipeline_still_updates_its_own_facet_when_newer_there() {
        let heads = Heads::default()
            .advance(pipeline("2026-04-26T10:00:00Z"), 1)
            .advance(cron("2026-04-26T11:00:00Z"), 2)
            .advance(pipeline("2026-04-26T10:30:00Z"), 3);
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
            .advance(cron("2026-04-26T11:00:00Z"), 1)
            .advance(cron("2026-04-26T11:00:00Z"), 2);
        assert_eq!(heads.status.unwrap().report_id, 2);
    }

    #[test]
    fn kept_newer_names_the_parts_a_late_report_could_not_move() {
        let before = Heads::default()
            .advance(pipeline("2026-04-26T10:00:00Z"), 1)
            .advance(cron("2026-04-26T11:00:00Z"), 2);
        let late_pipeline = pipeline("2026-04-26T10:30:00Z");
        let after = before.advance(late_pipeline, 3);
        assert_eq!(
            after.kept_newer(late_pipeline, 3),
            ["status", "changed_files"]
        );
        let fresh = cron("2026-04-26T12:00:00Z");
        assert!(after.advance(fresh, 4).kept_newer(fresh, 4).is_empty());
    }

    #[test]
    fn heartbeat_moves_only_the_cron_check() {
        let heads = Heads::default()
            .advance(pipeline("2026-04-26T10:00:00Z"), 1)
            .advance(heartbeat("2026-04-26T11:00:00Z"), 2);
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
        let moved = |heads: Heads, id| heads.moved_to(id);
        let first = HostState::after(
            None,
            &deploy,
            moved(
                Heads::default().advance(pipeline("2026-04-26T10:00:00Z"), 1),
                1,
            ),
            t1,
            deploy.facet_times(t1),
        )
        .unwrap();
        assert_eq!(first.changed_files, Vec::<String>::new());
        assert_eq!(first.deployment.commit_sha.as_deref(), Some("abc"));
        assert_eq!(first.last_pipeline_run, Some(t1));
        assert_eq!(first.last_cron_check, None);

        // A drift check moves status and files; the deployment stays.
        let drift = report("cron", Some("out_of_sync"), Some(&["/etc/a"]));
        let (t2, observed) = (at("2026-04-26T11:00:05Z"), at("2026-04-26T11:00:00Z"));
        let drift = Report {
            reported_at: Some(observed),
            ..drift
        };
        let all = Facets {
            status: true,
            files: true,
            pipeline: true,
            cron_check: true,
        };
        let only_drift = Facets {
            pipeline: false,
            ..all
        };
        let second =
            HostState::after(Some(&first), &drift, only_drift, t2, drift.facet_times(t2)).unwrap();
        assert_eq!(second.status, crate::domain::Status::OutOfSync);
        assert_eq!(second.status_observed_at, observed);
        assert_eq!(second.changed_files, ["/etc/a"]);
        assert_eq!(second.deployment, first.deployment);
        assert_eq!(second.last_cron_check, Some(observed));
        assert_eq!(second.timestamp, t2);

        // A heartbeat (no status, no files) moves only the check time.
        let beat = report("cron", None, None);
        let t3 = at("2026-04-26T12:00:00Z");
        let beat_moves = Facets {
            status: false,
            files: false,
            ..only_drift
        };
        let third =
            HostState::after(Some(&second), &beat, beat_moves, t3, beat.facet_times(t3)).unwrap();
        assert_eq!(third.status, second.status);
        assert_eq!(third.changed_files, second.changed_files);
        assert_eq!(third.last_cron_check, Some(t3));
    }

    #[test]
    fn status_since_and_transitions_follow_runs_of_one_status() {
        let all = Facets {
            status: true,
            files: true,
            pipeline: false,
            cron_check: true,
        };
        let step = |before: Option<&HostState>, status: Option<&str>, t: &str, id: i64| {
            let r = report("cron", status, None);
            let received = at(t);
            let moved = Facets {
                status: status.is_some(),
                files: status.is_some(),
                ..all
            };
            let after =
                HostState::after(before, &r, moved, received, r.facet_times(received)).unwrap();
            let transition = after.transition_from(before, moved, id, ReportKind::Cron);
            (after, transition)
        };
        let (first, t1) = step(None, Some("synced"), "2026-04-26T10:00:00Z", 1);
        let t1 = t1.unwrap();
        assert_eq!((t1.from_status, t1.previous_duration_ms), (None, None));
        assert_eq!(first.drift_received_at, Some(at("2026-04-26T10:00:00Z")));
        let (same, none) = step(Some(&first), Some("synced"), "2026-04-26T10:02:00Z", 2);
        assert!(none.is_none());
        assert_eq!(same.status_since, at("2026-04-26T10:00:00Z"));
        let (beat, none) = step(Some(&same), None, "2026-04-26T10:04:00Z", 3);
        assert!(none.is_none(), "a heartbeat changes no status");
        assert_eq!(beat.drift_received_at, Some(at("2026-04-26T10:04:00Z")));
        let (drifted, t4) = step(Some(&beat), Some("out_of_sync"), "2026-04-26T11:00:00Z", 4);
        let t4 = t4.unwrap();
        assert_eq!(drifted.status_since, at("2026-04-26T11:00:00Z"));
        assert_eq!(t4.from_status, Some(crate::domain::Status::Synced));
        assert_eq!(t4.previous_duration_ms, Some(3_600_000));
        assert_eq!((t4.report_id, t4.at), (4, at("2026-04-26T11:00:00Z")));
    }

    #[test]
    fn only_a_report_with_a_status_creates_a_host() {
        let beat = report("cron", None, None);
        let t = at("2026-04-26T12:00:00Z");
        let moved = Heads::default().advance(beat.facet_times(t), 1).moved_to(1);
        assert_eq!(
            HostState::after(None, &beat, moved, t, beat.facet_times(t)),
            None
        );
    }

    #[test]
    fn an_import_keeps_the_files_separate_times() {
        use crate::domain::{Deployment, HostName, ServerGroup, Status};
        let (status_at, pipeline_at, cron_at) = (
            at("2026-04-26T11:00:00Z"),
            at("2026-04-26T10:30:00Z"),
            at("2026-04-26T11:00:00Z"),
        );
        let received = at("2026-05-01T00:00:00Z");
        let import = Report {
            server_group: ServerGroup::parse("g").unwrap(),
            host: HostName::parse("h").unwrap(),
            reported_at: Some(status_at),
            observation: Observation::Import {
                status: Status::Synced,
                changed_files: None,
                drift_count: None,
                deployment: Some(Box::new(Deployment::default())),
                pipeline_at: Some(pipeline_at),
                cron_at: Some(cron_at),
            },
        };
        let times = import.facet_times(received);
        assert_eq!(times.status, Some(status_at));
        assert_eq!(times.pipeline, Some(pipeline_at));
        assert_eq!(times.cron_check, Some(cron_at));
        // A live deployment newer than the file's keeps its facet; the import moves the rest.
        let live = Heads::default().advance(pipeline("2026-04-26T10:45:00Z"), 1);
        let heads = live.advance(times, 2);
        assert_eq!(heads.pipeline.unwrap().report_id, 1);
        assert_eq!(heads.status.unwrap().report_id, 2);
        assert_eq!(heads.kept_newer(times, 2), ["deployment"]);
        // A file time ahead of the import's arrival counts as the arrival.
        let early = import.facet_times(at("2026-04-26T10:50:00Z"));
        assert_eq!(early.cron_check, Some(at("2026-04-26T10:50:00Z")));
        assert_eq!(early.pipeline, Some(pipeline_at));
    }
}
