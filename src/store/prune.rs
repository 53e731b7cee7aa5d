//! Retention, for every backend: a pruning pass finds the rows the policy lets go (reading through the read pool,
//! oldest first; each row's tier is `reports.is_change`, which the writer set when it wrote
//! the row), and the writer removes them in small transactions. Each transaction first
//! appends a `retention` row to the chain that lists exactly what it removes: the runs of
//! consecutive ids, with the `prev_hash` of each run's first row and the `hash` of its last,
//! so `verify` can link the chain across every gap retention made and name any other missing
//! row. The DELETE trigger lets through only the ids listed in `prune_permit`, which holds
//! this transaction's runs until its commit.
//!
//! A retention row is itself kept for `--retain-changes`. When a later pass removes one, its
//! runs are restated in the new row (merged with neighbouring ones), so the evidence for
//! every gap stays in the chain.

use std::collections::{HashMap, HashSet};

use crate::domain::{Cutoffs, ReportKind, RetentionPolicy, Timestamp};

use super::append::{NewRow, Tip};
use super::record::ReportRecord;
use super::removed::{CutoffText, PolicyText, RemovedRun, RetentionRecord};
use super::writer::{PruneBatch, PruneOutcome};
use super::StoreError;

/// Rows read per query while a pass looks for what to remove.
const SCAN_BATCH: i64 = 2_000;
/// Rows removed per transaction: small, so a report waits for at most one such transaction
/// (milliseconds) while a large backlog is pruned.
pub(super) const REMOVE_BATCH: usize = 250;
/// After each transaction a pass waits this many times as long as the transaction took, so
/// it takes at most a quarter of the writer's time and ingest keeps the rest.
const PACE: u32 = 3;
/// The longest such wait (a shutdown waits for it).
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);
/// The principal of retention rows.
pub const PRINCIPAL: &str = "retention";

/// One row of the history as a pass sees it.
#[derive(sqlx::FromRow)]
pub(super) struct Candidate {
    pub id: i64,
    pub received_at: String,
    pub server_group: Option<String>,
    pub host: Option<String>,
    pub is_change: i64,
}

/// What a pruning pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneSummary {
    /// Rows read.
    pub scanned: u64,
    /// Rows removed.
    pub removed: u64,
    /// Retention rows appended (one per transaction).
    pub records: u64,
    /// The pass stopped early because the server is shutting down.
    pub interrupted: bool,
}

/// The ids a host's current state rests on, and the hosts of the fleet.
struct Fleet {
    protected: HashSet<i64>,
    hosts: HashSet<(String, String)>,
}

/// A host's pointers: group, host, and the reports its state rests on (last, status,
/// files, pipeline, cron).
pub(super) type HostPointerRow = (String, String, i64, i64, i64, Option<i64>, Option<i64>);

/// What a pass reads from a backend (through its read pool), and the writer's half.
pub(super) trait PruneSource {
    /// The id of the newest row received before `cutoff`.
    async fn last_received_before(&self, cutoff: &str) -> Result<Option<i64>, StoreError>;
    /// Rows with ids in `after + 1 ..= last`, oldest first, at most `limit`.
    async fn candidates(
        &self,
        after: i64,
        last: i64,
        limit: i64,
    ) -> Result<Vec<Candidate>, StoreError>;
    /// Every host's pointers.
    async fn host_pointers(&self) -> Result<Vec<HostPointerRow>, StoreError>;
    /// The id of a host's report `offset` places from its newest.
    async fn nth_newest(
        &self,
        group: &str,
        host: &str,
        offset: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Has the writer remove the rows of `batch` (see `describe`).
    async fn remove(&self, batch: PruneBatch) -> Result<PruneOutcome, StoreError>;
}

/// Runs one pruning pass with `policy` as of `now`: reads the history oldest first and
/// has the writer remove, in transactions of at most `REMOVE_BATCH` rows, every row the
/// policy lets go. `stopping` is asked between transactions; when it says yes, the pass
/// ends early (what it removed so far is committed and recorded).
pub(super) async fn run_pass(
    source: &impl PruneSource,
    policy: RetentionPolicy,
    now: Timestamp,
    stopping: impl Fn() -> bool,
) -> Result<PruneSummary, StoreError> {
    let mut summary = PruneSummary::default();
    let cutoffs = policy.cutoffs(now);
    let Some(routine_cutoff) = cutoffs.routine else {
        return Ok(summary);
    };
    let routine_cutoff = routine_cutoff.to_string();
    let changes_cutoff = cutoffs.changes.map(|c| c.to_string());
    // Rows received before the cutoff end about here (the clock only moves forward, or
    // nearly); later ids are newer than every limit.
    let last = source.last_received_before(&routine_cutoff).await?;
    let Some(last) = last else {
        return Ok(summary);
    };
    let fleet = fleet(source).await?;
    // Per host: its rows with an id at or above this are among its newest N, and kept.
    let mut newest_from: HashMap<(String, String), i64> = HashMap::new();
    let mut doomed: Vec<i64> = Vec::with_capacity(REMOVE_BATCH);
    let mut after = 0i64;
    loop {
        let batch = source.candidates(after, last, SCAN_BATCH).await?;
        let Some(end) = batch.last().map(|c| c.id) else {
            break;
        };
        after = end;
        summary.scanned += batch.len() as u64;
        for row in batch {
            if fleet.protected.contains(&row.id) {
                continue;
            }
            if let (Some(group), Some(host)) = (row.server_group, row.host) {
                let key = (group, host);
                let from = match newest_from.get(&key) {
                    Some(from) => *from,
                    None => {
                        let from = newest_kept_from(source, &fleet, &key, policy).await?;
                        *newest_from.entry(key).or_insert(from)
                    }
                };
                if row.id >= from {
                    continue;
                }
            }
            let removable = if row.is_change == 0 {
                row.received_at < routine_cutoff
            } else {
                changes_cutoff
                    .as_ref()
                    .is_some_and(|cutoff| row.received_at < *cutoff)
            };
            if removable {
                doomed.push(row.id);
            }
            if doomed.len() >= REMOVE_BATCH {
                remove(source, &mut doomed, policy, cutoffs, &mut summary).await?;
                if stopping() {
                    summary.interrupted = true;
                    return Ok(summary);
                }
            }
        }
        if stopping() {
            remove(source, &mut doomed, policy, cutoffs, &mut summary).await?;
            summary.interrupted = true;
            return Ok(summary);
        }
    }
    remove(source, &mut doomed, policy, cutoffs, &mut summary).await?;
    Ok(summary)
}

async fn remove(
    source: &impl PruneSource,
    doomed: &mut Vec<i64>,
    policy: RetentionPolicy,
    cutoffs: Cutoffs,
    summary: &mut PruneSummary,
) -> Result<(), StoreError> {
    if doomed.is_empty() {
        return Ok(());
    }
    let batch = PruneBatch {
        ids: std::mem::take(doomed),
        policy,
        cutoffs,
    };
    let started = std::time::Instant::now();
    let outcome = source.remove(batch).await?;
    summary.removed += outcome.removed;
    summary.records += u64::from(outcome.record_id.is_some());
    tokio::time::sleep((started.elapsed() * PACE).min(MAX_PAUSE)).await;
    Ok(())
}

async fn fleet(source: &impl PruneSource) -> Result<Fleet, StoreError> {
    let rows = source.host_pointers().await?;
    let mut fleet = Fleet {
        protected: HashSet::with_capacity(rows.len() * 5),
        hosts: HashSet::with_capacity(rows.len()),
    };
    for (group, host, last, status, files, pipeline, cron) in rows {
        fleet.protected.extend([last, status, files]);
        fleet.protected.extend(pipeline.into_iter().chain(cron));
        fleet.hosts.insert((group, host));
    }
    Ok(fleet)
}

/// Where the newest `per_host` reports of a host begin: the id of its N-th newest (rows
/// from it on are kept); `i64::MIN` when it has fewer; `i64::MAX` when none are kept that
/// way (a host no longer in the fleet, or `--retain-per-host 0`).
async fn newest_kept_from(
    source: &impl PruneSource,
    fleet: &Fleet,
    key: &(String, String),
    policy: RetentionPolicy,
) -> Result<i64, StoreError> {
    if !fleet.hosts.contains(key) || policy.per_host == 0 {
        return Ok(i64::MAX);
    }
    let nth = source
        .nth_newest(&key.0, &key.1, i64::from(policy.per_host) - 1)
        .await?;
    Ok(nth.unwrap_or(i64::MIN))
}

/// What one pruning transaction records, given the rows of its batch still there (id, kind,
/// prev_hash, hash, and a retention row's body): the retention row's description, and the
/// id ranges it removes (for `prune_permit`).
pub(super) fn describe(
    rows: &[(i64, String, String, String, Option<String>)],
    batch: &PruneBatch,
) -> Result<(RetentionRecord, Vec<(i64, i64)>), StoreError> {
    let mut fresh: Vec<RemovedRun> = Vec::new();
    let mut restated: Vec<RemovedRun> = Vec::new();
    let mut restates = Vec::new();
    for (id, kind, prev_hash, hash, body) in rows {
        match fresh.last_mut() {
            Some(run) if run.last_id + 1 == *id => {
                run.last_id = *id;
                run.last_hash.clone_from(hash);
            }
            _ => fresh.push(RemovedRun {
                first_id: *id,
                last_id: *id,
                prev_hash: prev_hash.clone(),
                last_hash: hash.clone(),
            }),
        }
        if kind == ReportKind::Retention.as_str() {
            let runs = RetentionRecord::runs_of(body.as_deref().unwrap_or_default())
                .map_err(|p| StoreError::Corrupt(format!("retention row {id}: {p}")))?;
            restated.extend(runs);
            restates.push(*id);
        }
    }
    let permits = fresh
        .iter()
        .map(|run| (run.first_id, run.last_id))
        .collect();
    let description = RetentionRecord {
        removed: rows.len() as u64,
        restates,
        policy: PolicyText {
            retain_reports: batch.policy.reports_text(),
            retain_changes: batch.policy.changes_text(),
            retain_per_host: batch.policy.per_host,
        },
        cutoffs: CutoffText {
            reports: batch.cutoffs.routine.map(|t| t.to_string()),
            changes: batch.cutoffs.changes.map(|t| t.to_string()),
        },
        runs: merge(fresh.into_iter().chain(restated).collect()),
    };
    Ok((description, permits))
}

/// The retention row that records `description`, linked after `tip` at `now`.
pub(super) fn retention_row(
    description: &RetentionRecord,
    tip: &Tip,
    now: Timestamp,
) -> Result<NewRow, StoreError> {
    let mut row = NewRow::new(ReportRecord {
        kind: ReportKind::Retention.as_str().to_owned(),
        is_change: 1,
        principal: Some(PRINCIPAL.to_owned()),
        raw_body: serde_json::to_string(description)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ..ReportRecord::default()
    });
    row.link(tip.next_id, now, now, &tip.hash);
    Ok(row)
}

/// Sorts runs and joins neighbours that link (`a` ends right before `b` starts, and `b`'s
/// first row followed `a`'s last).
fn merge(mut runs: Vec<RemovedRun>) -> Vec<RemovedRun> {
    runs.sort_by_key(|run| run.first_id);
    let mut merged: Vec<RemovedRun> = Vec::with_capacity(runs.len());
    for run in runs {
        match merged.last_mut() {
            Some(last) if last.last_id + 1 == run.first_id && last.last_hash == run.prev_hash => {
                last.last_id = run.last_id;
                last.last_hash = run.last_hash;
            }
            _ => merged.push(run),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(first: i64, last: i64, prev: char, last_hash: char) -> RemovedRun {
        RemovedRun {
            first_id: first,
            last_id: last,
            prev_hash: prev.to_string().repeat(64),
            last_hash: last_hash.to_string().repeat(64),
        }
    }

    #[test]
    fn neighbouring_runs_that_link_are_merged() {
        let merged = merge(vec![
            run(5, 6, 'c', 'd'),
            run(1, 2, '0', 'a'),
            run(3, 4, 'a', 'c'),
        ]);
        assert_eq!(merged, [run(1, 6, '0', 'd')]);
        let apart = merge(vec![run(1, 2, '0', 'a'), run(4, 4, 'b', 'c')]);
        assert_eq!(apart.len(), 2, "a row in between is still there");
        let unlinked = merge(vec![run(1, 2, '0', 'a'), run(3, 3, 'b', 'c')]);
        assert_eq!(
            unlinked.len(),
            2,
            "runs that do not link stay apart for verify to name"
        );
    }

    #[test]
    fn malformed_runs_are_refused() {
        let ok = serde_json::json!({"runs": [run(1, 2, '0', 'a')]}).to_string();
        assert_eq!(RetentionRecord::runs_of(&ok).unwrap().len(), 1);
        let backwards = serde_json::json!({"runs": [run(3, 2, '0', 'a')]}).to_string();
        assert!(RetentionRecord::runs_of(&backwards).is_err());
        assert!(RetentionRecord::runs_of("{}").is_err());
    }
}
