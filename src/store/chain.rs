//! Reading the audit chain back, whichever backend holds it: `verify` walks every row and
//! names the first one whose content, order or presence was changed. Retention deletes rows,
//! but each pruning transaction appends a `retention` row saying which ids it removed and the
//! hashes at both ends of each run; the walk links the chain across exactly those gaps and
//! names any other missing row. Each backend reads the rows (`sqlite::chain`,
//! `postgres::chain`); the checks are here.

use crate::domain::chain::{is_hash, link, GENESIS};

use super::record::StoredRow;
use super::removed::{RemovedRun, RetentionRecord};

/// Walks the chain of the SQLite file at `path` (read-only, safe while the server runs).
pub async fn verify_file(
    path: &std::path::Path,
    render: super::RenderRow,
) -> anyhow::Result<Verification> {
    super::sqlite::chain::verify(path, render).await
}

/// Walks the chain of a PostgreSQL database (`url`; `password` from --db-password-file).
pub async fn verify_postgres(
    url: &str,
    password: Option<&str>,
    render: super::RenderRow,
) -> anyhow::Result<Verification> {
    let options = super::postgres::connect_options(url, password)?;
    super::postgres::chain::verify(&options, render).await
}

/// Rows read per query.
pub(super) const BATCH: i64 = 5_000;

/// The newest row of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub id: i64,
    pub hash: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every row links to the one before it (across the gaps retention recorded) and matches
    /// its hash, and every host's status row is what its reports make of it.
    Intact {
        rows: u64,
        first_id: Option<i64>,
        head: Option<ChainHead>,
        /// Rows that retention removed, as its records in the chain describe them.
        removed_by_retention: u64,
        /// Hosts whose `status_row` was checked.
        hosts: u64,
        /// Transitions checked against their reports.
        transitions: u64,
    },
    /// SQLite's own integrity check failed.
    Damaged { problems: Vec<String> },
    /// The first row (by id) that was changed, removed, inserted or reordered.
    Broken { id: i64, problem: String },
    /// A host's materialised `GET /status` row differs from what its reports make of it.
    StaleHostRow { host: String, problem: String },
    /// A stored transition differs from its report, from the one before it, or one is missing.
    Transition { report_id: i64, problem: String },
}

/// What a row must link to.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    /// The id of the row whose hash it must carry as prev_hash (0: none, the genesis).
    after_id: i64,
    prev_hash: String,
    /// Retention removed the rows between `after_id` and this row.
    across_gap: bool,
}

/// The gaps retention made in the chain, as its records describe them, in id order.
pub(super) struct Gaps {
    pub runs: Vec<(i64, RemovedRun)>,
    next: usize,
}

impl Gaps {
    /// Every run of every retention row (`records`: id and body, in id order); an unreadable
    /// or overlapping one is named.
    pub(super) fn from_records(records: Vec<(i64, String)>) -> Result<Gaps, (i64, String)> {
        let mut runs = Vec::new();
        for (id, body) in records {
            match RetentionRecord::runs_of(&body) {
                Ok(list) => runs.extend(list.into_iter().map(|run| (id, run))),
                Err(problem) => return Err((id, problem)),
            }
        }
        runs.sort_by_key(|(_, run)| run.first_id);
        for pair in runs.windows(2) {
            let ((a, first), (b, second)) = (&pair[0], &pair[1]);
            if second.first_id <= first.last_id {
                return Err((
                    *b,
                    format!(
                        "retention row {b} says it removed rows {}..{}, which retention row {a} \
                         says it removed ({}..{})",
                        second.first_id, second.last_id, first.first_id, first.last_id
                    ),
                ));
            }
        }
        Ok(Gaps { runs, next: 0 })
    }

    pub(super) fn removed(&self) -> u64 {
        self.runs
            .iter()
            .map(|(_, run)| u64::try_from(run.last_id - run.first_id + 1).unwrap_or(0))
            .sum()
    }

    /// What row `id`, the next one present after `previous`, must link to. Every id missing
    /// between them must be covered, in order, by runs retention recorded, each linking to
    /// the one before it; otherwise the first missing row is named.
    fn bridge(&mut self, previous: Option<&ChainHead>, id: i64) -> Result<Expected, (i64, String)> {
        let (mut after_id, mut prev_hash) = match previous {
            Some(p) => (p.id, p.hash.clone()),
            None => (0, GENESIS.to_owned()),
        };
        let mut across_gap = false;
        while after_id + 1 < id {
            let missing = after_id + 1;
            let run = match self.runs.get(self.next) {
                Some((record, run)) if run.first_id == missing => (*record, run),
                Some((record, run)) if run.first_id < missing => {
                    return Err((
                        run.first_id.max(1),
                        format!(
                            "is present, but retention row {record} says it removed rows {}..{}",
                            run.first_id, run.last_id
                        ),
                    ))
                }
                _ => {
                    let last = id - 1;
                    let span = if last > missing {
                        format!(" (rows {missing}..{last} are missing)")
                    } else {
                        String::new()
                    };
                    return Err((
                        missing,
                        format!("deleted outside retention: no retention record covers it{span}"),
                    ));
                }
            };
            let (record, run) = run;
            if run.prev_hash != prev_hash {
                return Err((
                    missing,
                    format!(
                        "retention row {record} removed rows {}..{}, but the first of them did \
                         not follow {}: the chain does not link across the gap",
                        run.first_id,
                        run.last_id,
                        if after_id == 0 {
                            "the genesis".to_owned()
                        } else {
                            format!("row {after_id}")
                        }
                    ),
                ));
            }
            if run.last_id >= id {
                return Err((
                    id,
                    format!(
                        "is present, but retention row {record} says it removed rows {}..{}",
                        run.first_id, run.last_id
                    ),
                ));
            }
            after_id = run.last_id;
            prev_hash = run.last_hash.clone();
            across_gap = true;
            self.next += 1;
        }
        Ok(Expected {
            after_id,
            prev_hash,
            across_gap,
        })
    }

    /// A run beyond the last row present: rows retention never removed are missing from the
    /// end, or a retention row describes rows that never were.
    fn left_over(&self, last: Option<&ChainHead>) -> Option<(i64, String)> {
        let (record, run) = self.runs.get(self.next)?;
        let last = last.map_or(0, |l| l.id);
        Some((
            run.first_id,
            format!(
                "retention row {record} says it removed rows {}..{}, after the last row present \
                 ({last})",
                run.first_id, run.last_id
            ),
        ))
    }
}

/// What is wrong with one row given what it must link to, if anything.
fn check_link(expected: &Expected, prev_hash: &str, hash: &str, canonical: &str) -> Option<String> {
    if !is_hash(prev_hash) || !is_hash(hash) {
        return Some("its hash or prev_hash is not 64 lower-case hex digits".to_owned());
    }
    if prev_hash != expected.prev_hash {
        return Some(match (expected.after_id, expected.across_gap) {
            (0, false) => "the first row's prev_hash is not the genesis value".to_owned(),
            (after, false) => format!(
                "its prev_hash is not the hash of row {after}: a row before it was changed, \
                 removed or reordered"
            ),
            (after, true) => format!(
                "its prev_hash is not the hash retention recorded for row {after}, the last \
                 row it removed before this one"
            ),
        });
    }
    if link(prev_hash, canonical) != hash {
        return Some("its content does not match its hash: the row was changed".to_owned());
    }
    None
}

/// The walk along the chain, one row at a time in id order, whichever backend reads them.
pub(super) struct Walk {
    gaps: Gaps,
    pub previous: Option<ChainHead>,
    pub first_id: Option<i64>,
    pub rows: u64,
}

impl Walk {
    pub(super) fn new(gaps: Gaps) -> Self {
        Walk {
            gaps,
            previous: None,
            first_id: None,
            rows: 0,
        }
    }

    /// The id after which the next batch starts.
    pub(super) fn after(&self) -> i64 {
        self.previous.as_ref().map_or(0, |p| p.id)
    }

    /// Checks the next row; its canonical text is rendered from its columns, in the format it
    /// records, the same way whichever backend stored it.
    pub(super) fn row(&mut self, row: &StoredRow<'_>) -> Result<(), Verification> {
        let (id, prev_hash, hash) = (row.id(), row.prev_hash(), row.hash());
        let broken = |(id, problem): (i64, String)| Verification::Broken { id, problem };
        let canonical = row
            .recorded_canonical()
            .map_err(|problem| broken((id, problem)))?;
        // What the row must link to: the row before it, or across a gap retention made, the
        // last row it removed there.
        let expected = self
            .gaps
            .bridge(self.previous.as_ref(), id)
            .map_err(broken)?;
        if let Some(problem) = check_link(&expected, prev_hash, hash, &canonical) {
            return Err(broken((id, problem)));
        }
        self.first_id.get_or_insert(id);
        self.rows += 1;
        self.previous = Some(ChainHead {
            id,
            hash: hash.to_owned(),
        });
        Ok(())
    }

    /// After the last row: a gap recorded past it is named.
    pub(super) fn end(&self) -> Result<(), Verification> {
        match self.gaps.left_over(self.previous.as_ref()) {
            Some((id, problem)) => Err(Verification::Broken { id, problem }),
            None => Ok(()),
        }
    }

    /// The runs retention removed, as (first id, last id).
    pub(super) fn removed_runs(&self) -> Vec<(i64, i64)> {
        self.gaps
            .runs
            .iter()
            .map(|(_, run)| (run.first_id, run.last_id))
            .collect()
    }

    pub(super) fn removed_by_retention(&self) -> u64 {
        self.gaps.removed()
    }
}

/// What is wrong with a host's stored `status_row` given what its reports make of it
/// (`expected`, None without a current state), if anything.
pub(super) fn host_row_problem(
    stored: Option<&str>,
    expected: Option<&str>,
) -> Option<&'static str> {
    match (stored, expected) {
        (None, _) => Some("has no status_row (the server renders it at its next start)"),
        (Some(_), None) => Some("has a status_row but no current state"),
        (Some(stored), Some(expected)) if stored != expected => {
            Some("its status_row differs from what its reports make of it")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(contents: &[&str]) -> Vec<ChainHead> {
        let mut prev = GENESIS.to_owned();
        contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                prev = link(&prev, c);
                ChainHead {
                    id: i as i64 + 1,
                    hash: prev.clone(),
                }
            })
            .collect()
    }

    fn no_gaps() -> Gaps {
        Gaps {
            runs: Vec::new(),
            next: 0,
        }
    }

    /// A run as the pruner records it: rows first..=last of `rows` (1-based ids).
    fn run(record: i64, rows: &[ChainHead], first: i64, last: i64) -> (i64, RemovedRun) {
        let hash_of = |id: i64| {
            if id == 0 {
                GENESIS.to_owned()
            } else {
                rows[id as usize - 1].hash.clone()
            }
        };
        (
            record,
            RemovedRun {
                first_id: first,
                last_id: last,
                prev_hash: hash_of(first - 1),
                last_hash: hash_of(last),
            },
        )
    }

    #[test]
    fn links_are_checked_in_order() {
        let rows = chain(&["a", "b", "c"]);
        let mut gaps = no_gaps();
        let expected = gaps.bridge(None, 1).unwrap();
        assert_eq!(check_link(&expected, GENESIS, &rows[0].hash, "a"), None);
        let expected = gaps.bridge(Some(&rows[0]), 2).unwrap();
        assert_eq!(
            check_link(&expected, &rows[0].hash, &rows[1].hash, "b"),
            None
        );
        assert!(check_link(&expected, &rows[0].hash, &rows[1].hash, "B")
            .unwrap()
            .contains("content"));
        let other = link(GENESIS, "x");
        assert!(check_link(&expected, &other, &link(&other, "b"), "b")
            .unwrap()
            .contains("not the hash of row 1"));
        let first = gaps.bridge(None, 1).unwrap();
        assert!(check_link(&first, &rows[0].hash, &rows[1].hash, "b")
            .unwrap()
            .contains("genesis"));
    }

    #[test]
    fn a_missing_row_is_named_unless_retention_covers_it() {
        let rows = chain(&["a", "b", "c", "d", "e", "f"]);
        let (code, problem) = no_gaps().bridge(Some(&rows[1]), 5).unwrap_err();
        assert_eq!(code, 3);
        assert!(problem.contains("deleted outside retention") && problem.contains("3..4"));
        let (code, _) = no_gaps().bridge(None, 3).unwrap_err();
        assert_eq!(code, 1, "rows missing from the start are named too");

        // Retention removed 1..2 (record 7), then 3 and 4 (record 8).
        let mut gaps = Gaps {
            runs: vec![
                run(7, &rows, 1, 2),
                run(8, &rows, 3, 3),
                run(8, &rows, 4, 4),
            ],
            next: 0,
        };
        assert_eq!(gaps.removed(), 4);
        let expected = gaps.bridge(None, 5).unwrap();
        assert_eq!(expected.prev_hash, rows[3].hash);
        assert!(expected.across_gap);
        assert_eq!(
            check_link(&expected, &rows[3].hash, &rows[4].hash, "e"),
            None
        );
        assert!(gaps.left_over(Some(&rows[5])).is_none());
    }

    #[test]
    fn a_gap_whose_ends_do_not_link_is_named() {
        let rows = chain(&["a", "b", "c", "d"]);
        let mut forged = run(9, &rows, 2, 3);
        forged.1.prev_hash = link(GENESIS, "forged");
        let mut gaps = Gaps {
            runs: vec![forged],
            next: 0,
        };
        let (id, problem) = gaps.bridge(Some(&rows[0]), 4).unwrap_err();
        assert_eq!(id, 2);
        assert!(problem.contains("does not link"), "{problem}");
    }

    #[test]
    fn a_run_over_a_present_row_or_past_the_end_is_named() {
        let rows = chain(&["a", "b", "c", "d"]);
        let mut gaps = Gaps {
            runs: vec![run(9, &rows, 2, 3)],
            next: 0,
        };
        let (id, problem) = gaps.bridge(Some(&rows[0]), 3).unwrap_err();
        assert_eq!(id, 3);
        assert!(problem.contains("is present"), "{problem}");
        let gaps = Gaps {
            runs: vec![run(9, &rows, 4, 4)],
            next: 0,
        };
        let (id, problem) = gaps.left_over(Some(&rows[2])).unwrap();
        assert_eq!(id, 4);
        assert!(problem.contains("after the last row"), "{problem}");
    }
}
