//! What one group commit writes, decided without the database: given the hosts the group names
//! as stored, the Idempotency-Keys it names as stored, and the chain's tip, `plan` links each
//! report into the chain, moves its host's facet pointers (`domain::merge`) and state, and
//! collects the transitions, commits and keys to store. Every backend loads the same inputs and
//! stores the same plan in one transaction, so the rules live once.

use std::collections::HashMap;

use crate::domain::{Clock, Heads, HostState, Period, ReportKind, Tier, Timestamp, Transition};

use super::append::Tip;
use super::record::ReportRecord;
use super::rows::{head, HostStateRow};
use super::writer::{OnceKey, Pending, Recorded, StoredAnswer, Written};
use super::{RenderRow, StoreError};

/// A host by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct HostKey {
    pub server_group: String,
    pub host: String,
}

impl HostKey {
    pub(super) fn of(report: &crate::domain::Report) -> Self {
        HostKey {
            server_group: report.server_group.as_str().to_owned(),
            host: report.host.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.server_group, self.host)
    }
}

/// A host as the group found it, then as the group left it.
pub(super) struct Touched {
    entry: HostEntry,
    /// A report of this group moved it: its row in `hosts` is to be written (or deleted).
    touched: bool,
}

enum HostEntry {
    Present(Box<PresentHost>),
    /// Decommissioned by a report of this group.
    Removed,
}

struct PresentHost {
    heads: Heads,
    last_report_id: i64,
    state: HostState,
}

impl Touched {
    fn present(&self) -> Option<&PresentHost> {
        match &self.entry {
            HostEntry::Present(host) => Some(host),
            HostEntry::Removed => None,
        }
    }
}

/// Pairs of names: (server_group, host) or (principal, key).
pub(super) type Names<'a> = Vec<(&'a str, &'a str)>;

/// The hosts and keys a group names, in a stable order: what a backend loads before `plan`.
pub(super) fn names(group: &[Pending]) -> (Names<'_>, Names<'_>) {
    let mut hosts: Vec<(&str, &str)> = group
        .iter()
        .map(|p| (p.report.server_group.as_str(), p.report.host.as_str()))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    let mut keys: Vec<(&str, &str)> = group
        .iter()
        .filter_map(|p| p.once.as_ref())
        .map(|once| (once.principal.as_str(), once.key.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    (hosts, keys)
}

/// A stored host as a backend loads it: its current state as the `current_status` view
/// derives it, and the facet heads the merge needs (the view carries every head's time but
/// the files report's).
pub(super) struct LoadedHost {
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
    pub last_report_id: i64,
    pub status_id: i64,
    pub files_id: i64,
    pub files_at: String,
    pub pipeline_id: Option<i64>,
    pub cron_id: Option<i64>,
}

impl LoadedHost {
    /// The host's key and its entry for `plan`.
    pub(super) fn into_entry(self) -> Result<(HostKey, Touched), StoreError> {
        let key = HostKey {
            server_group: self.server_group.clone(),
            host: self.host.clone(),
        };
        // The view's pipeline and cron times are their reports' observed_at.
        let heads = Heads {
            status: head(Some(self.status_id), Some(&self.status_observed_at))?,
            files: head(Some(self.files_id), Some(&self.files_at))?,
            pipeline: head(self.pipeline_id, self.last_pipeline_run.as_deref())?,
            cron_check: head(self.cron_id, self.last_cron_check.as_deref())?,
        };
        let state = HostState::try_from(HostStateRow {
            project_name: self.project_name,
            repo_name: self.repo_name,
            server_group: self.server_group,
            server_type: self.server_type,
            environment: self.environment,
            host: self.host,
            status: self.status,
            changed_files: self.changed_files,
            validation_status: self.validation_status,
            validation_message: self.validation_message,
            last_pipeline_run: self.last_pipeline_run,
            last_cron_check: self.last_cron_check,
            commit_sha: self.commit_sha,
            branch: self.branch,
            updated_by: self.updated_by,
            timestamp: self.timestamp,
            status_observed_at: self.status_observed_at,
            reported_drift_count: self.reported_drift_count,
            status_since: self.status_since,
            drift_received_at: self.drift_received_at,
            commit_since: self.commit_since,
        })?;
        Ok((
            key,
            Touched {
                entry: HostEntry::Present(Box::new(PresentHost {
                    heads,
                    last_report_id: self.last_report_id,
                    state,
                })),
                touched: false,
            },
        ))
    }
}

/// A key's fingerprint and the answer stored with it.
pub(super) type KnownKey = (String, StoredAnswer);

/// A key to store with its report: principal, key, fingerprint, report id, answer, when.
pub(super) type NewKey = (String, String, String, i64, StoredAnswer, String);

/// A commit the group's pipeline reports named: group, sha, branch, first and last arrival.
pub(super) type CommitSeen<'a> = (&'a str, &'a str, Option<&'a str>, Timestamp, Timestamp);

/// A host's new pointers, and its rendered `GET /status` row (None: rendered at the next
/// start, as the bulk loader leaves it).
pub(super) struct HostPointers<'a> {
    pub key: &'a HostKey,
    pub heads: Heads,
    pub last_report_id: i64,
    pub status_row: Option<String>,
    /// The state the row was rendered from, for the columns filters read (None: derived at
    /// the next start, as the bulk loader leaves it).
    pub state: Option<&'a HostState>,
}

/// What a group writes, in one transaction.
pub(super) struct Plan {
    /// Each report's outcome, in the group's order.
    pub results: Vec<Result<Written, StoreError>>,
    /// The indexes of the reports that became rows, in chain order.
    pub linked: Vec<usize>,
    hosts: HashMap<HostKey, Touched>,
    /// The hosts the group moved, in the order it first moved them.
    touched: Vec<HostKey>,
    pub transitions: Vec<Transition>,
    commits: Vec<(HostKey, String, Option<String>, Timestamp)>,
    pub keys: Vec<NewKey>,
    /// The chain's tip after the group.
    pub tip: Tip,
}

/// How a group is planned.
pub(super) struct Context<'a> {
    pub clock: &'a Clock,
    /// A report that cannot be written fails the whole group (an import run).
    pub atomic: bool,
    /// No report is received before this: the newest row's `received_at`, when another
    /// process (a PostgreSQL replica, whose clock may run ahead of ours) may have written it.
    /// The chain's times then never go backwards, and a report is never ordered before one
    /// that another replica committed earlier.
    pub received_after: Option<Timestamp>,
}

/// Links the group's reports after `tip` and works out everything they change. `hosts` and
/// `keys` are what the database holds for the names `names` lists, read inside the
/// transaction that will store the plan. An error fails the whole group (nothing is stored);
/// a report refused alone has its error in `results`.
pub(super) fn plan(
    group: &mut [Pending],
    mut hosts: HashMap<HostKey, Touched>,
    keys: &HashMap<(String, String), KnownKey>,
    mut tip: Tip,
    context: &Context<'_>,
) -> Result<Plan, StoreError> {
    let clock = context.clock;
    let mut linked: Vec<usize> = Vec::with_capacity(group.len());
    let mut results = Vec::with_capacity(group.len());
    let mut touched: Vec<HostKey> = Vec::new();
    let mut transitions: Vec<Transition> = Vec::new();
    let mut commits: Vec<(HostKey, String, Option<String>, Timestamp)> = Vec::new();
    let mut keys_seen: HashMap<(String, String), KnownKey> = HashMap::new();
    let mut keys_new: Vec<NewKey> = Vec::new();

    for (index, pending) in group.iter_mut().enumerate() {
        if let Some(once) = &pending.once {
            let name = (once.principal.clone(), once.key.clone());
            let known = keys_seen.get(&name).or_else(|| keys.get(&name));
            match known {
                Some((fingerprint, answer)) if *fingerprint == once.fingerprint => {
                    results.push(Ok(Written::Replayed(answer.clone())));
                    continue;
                }
                Some(_) => {
                    let refused = StoreError::KeyReused(once.key.clone());
                    if context.atomic {
                        return Err(refused);
                    }
                    results.push(Err(refused));
                    continue;
                }
                None => {}
            }
        }
        let report = &pending.report;
        let key = HostKey::of(report);
        let before = hosts.get(&key).and_then(|entry| entry.present());
        if before.is_none() && !report.kind().may_create_host() {
            let refused = StoreError::UnknownHost {
                server_group: report.server_group.clone(),
                host: report.host.clone(),
            };
            if context.atomic {
                return Err(refused);
            }
            results.push(Err(refused));
            continue;
        }
        let received_at = match context.received_after {
            Some(floor) => clock.now().max(floor),
            None => clock.now(),
        };
        let observed_at = report.observed_at(received_at);
        let ahead_of_clock = report.reported_at.is_some_and(|at| at > received_at);
        if ahead_of_clock {
            pending.span.in_scope(|| {
                tracing::warn!(client = ?pending.row.record.client_addr, request_id = pending.request_id.as_deref(), "a report's own time lies ahead of the server clock; ordered by its arrival");
            });
        }

        let id = tip.next_id;
        pending.row.link(id, received_at, observed_at, &tip.hash);
        tip.next_id += 1;
        tip.hash.clone_from(&pending.row.record.hash);

        let entry = if report.kind() == ReportKind::Decommission {
            // The host leaves the current state; its history stays.
            let Some(before) = before else {
                return Err(StoreError::Corrupt(format!("host {key} is not there")));
            };
            pending.row.record.is_change = 1;
            let recorded = Recorded {
                report_id: id,
                created: false,
                previous_status: Some(before.state.status),
                changed: true,
                kept_newer: Vec::new(),
                ahead_of_clock: false,
                state: before.state.clone(),
            };
            results.push(Ok(remember(
                pending.once.as_ref(),
                recorded,
                received_at,
                &mut keys_seen,
                &mut keys_new,
            )?));
            HostEntry::Removed
        } else {
            let times = report.facet_times(received_at);
            let heads_before = before.map(|b| b.heads).unwrap_or_default();
            let heads = heads_before.advance(times, id);
            let state = HostState::after(
                before.map(|b| &b.state),
                report,
                heads.moved_to(id),
                received_at,
                times,
            )
            .ok_or_else(|| StoreError::Corrupt(format!("host {key} would have no status")))?;
            let tier = Tier::of(
                report.kind(),
                before.map(|b| (b.state.status, b.state.changed_files.as_slice())),
                Some((state.status, state.changed_files.as_slice())),
            );
            pending.row.record.is_change = i64::from(tier.is_change());
            if let Some(transition) = state.transition_from(
                before.map(|b| &b.state),
                heads.moved_to(id),
                id,
                report.kind(),
            ) {
                transitions.push(transition);
            }
            if report.kind() == ReportKind::Pipeline {
                if let Some(deployment) = report.deployment() {
                    if let Some(sha) = &deployment.commit_sha {
                        commits.push((
                            key.clone(),
                            sha.clone(),
                            deployment.branch.clone(),
                            received_at,
                        ));
                    }
                }
            }
            let recorded = Recorded {
                report_id: id,
                created: before.is_none(),
                previous_status: before.map(|b| b.state.status),
                changed: heads != heads_before,
                kept_newer: heads.kept_newer(times, id),
                ahead_of_clock,
                state: state.clone(),
            };
            results.push(Ok(remember(
                pending.once.as_ref(),
                recorded,
                received_at,
                &mut keys_seen,
                &mut keys_new,
            )?));
            HostEntry::Present(Box::new(PresentHost {
                heads,
                last_report_id: id,
                state,
            }))
        };
        if !hosts.get(&key).is_some_and(|e| e.touched) {
            touched.push(key.clone());
        }
        hosts.insert(
            key,
            Touched {
                entry,
                touched: true,
            },
        );
        linked.push(index);
    }
    Ok(Plan {
        results,
        linked,
        hosts,
        touched,
        transitions,
        commits,
        keys: keys_new,
        tip,
    })
}

impl Plan {
    /// The rows to insert, in chain order.
    pub(super) fn rows<'g>(&self, group: &'g [Pending]) -> Vec<&'g ReportRecord> {
        self.linked
            .iter()
            .filter_map(|index| group.get(*index).map(|pending| &pending.row.record))
            .collect()
    }

    /// The hosts to write (each once, with its `GET /status` row rendered from the state the
    /// group left it in) and the hosts to delete (decommissioned).
    pub(super) fn hosts(
        &self,
        render: RenderRow,
    ) -> Result<(Vec<HostPointers<'_>>, Vec<&HostKey>), StoreError> {
        let mut pointers = Vec::with_capacity(self.touched.len());
        let mut removed = Vec::new();
        for key in &self.touched {
            match self.hosts.get(key).map(|t| &t.entry) {
                Some(HostEntry::Present(host)) => {
                    let row =
                        render(&host.state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    pointers.push(HostPointers {
                        key,
                        heads: host.heads,
                        last_report_id: host.last_report_id,
                        status_row: Some(row),
                        state: Some(&host.state),
                    });
                }
                Some(HostEntry::Removed) => removed.push(key),
                None => {}
            }
        }
        Ok((pointers, removed))
    }

    /// Each commit the group's pipeline reports named, with when the first and the last of
    /// them arrived (in arrival order) and the last one's branch: one row per commit.
    pub(super) fn commits(&self) -> Vec<CommitSeen<'_>> {
        let mut seen: Vec<CommitSeen<'_>> = Vec::new();
        for (key, sha, branch, at) in &self.commits {
            match seen
                .iter_mut()
                .find(|(g, s, ..)| *g == key.server_group && *s == sha.as_str())
            {
                Some(entry) => {
                    entry.2 = branch.as_deref();
                    entry.4 = *at;
                }
                None => seen.push((&key.server_group, sha, branch.as_deref(), *at, *at)),
            }
        }
        seen
    }

    /// The entries of an old server's file that the group imports, with their report ids.
    pub(super) fn imports<'g>(
        &self,
        group: &'g [Pending],
    ) -> Vec<(&'g str, &'g str, &'g str, i64)> {
        self.linked
            .iter()
            .filter_map(|index| group.get(*index))
            .filter_map(|pending| {
                pending.import_entry.as_deref().map(|entry| {
                    (
                        pending.report.server_group.as_str(),
                        pending.report.host.as_str(),
                        entry,
                        pending.row.record.id,
                    )
                })
            })
            .collect()
    }
}

/// Keys used before this instant are forgotten: a reuse after it writes a new report.
pub(super) fn forget_before(now: Timestamp, window: Period) -> String {
    now.checked_sub(window).unwrap_or(now).to_string()
}

/// The written outcome of a report; with a key, its answer is rendered now and kept to be
/// stored in this transaction (and to answer a repeat later in the same group).
fn remember(
    once: Option<&OnceKey>,
    recorded: Recorded,
    received_at: Timestamp,
    seen: &mut HashMap<(String, String), KnownKey>,
    new: &mut Vec<NewKey>,
) -> Result<Written, StoreError> {
    let Some(once) = once else {
        return Ok(Written::Fresh(Box::new(recorded), None));
    };
    let answer = (once.render)(&recorded).map_err(StoreError::Corrupt)?;
    seen.insert(
        (once.principal.clone(), once.key.clone()),
        (once.fingerprint.clone(), answer.clone()),
    );
    new.push((
        once.principal.clone(),
        once.key.clone(),
        once.fingerprint.clone(),
        recorded.report_id,
        answer.clone(),
        received_at.to_string(),
    ));
    Ok(Written::Fresh(Box::new(recorded), Some(answer)))
}
