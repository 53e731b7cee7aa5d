//! Reading the audit chain back: `verify` walks every row and names the first one whose
//! content, order or presence was changed. Retention deletes rows, but each pruning
//! transaction appends a `retention` row saying which ids it removed and the hashes at both
//! ends of each run; `verify` links the chain across exactly those gaps and names any other
//! missing row.

use std::path::Path;

use anyhow::Context;
use sqlx::{Connection, SqliteConnection};

use crate::domain::chain::{is_hash, link, GENESIS};

use super::record::{column_list, StoredRow};
use super::retention::{RemovedRun, RetentionRecord};

const BATCH: i64 = 5_000;

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

/// Walks the whole chain of the database at `path`, then checks every host's status row
/// against the reports it derives from (rendered with `render`), read-only, in one snapshot
/// (safe while the server runs).
pub async fn verify(path: &Path, render: super::RenderRow) -> anyhow::Result<Verification> {
    let mut conn = super::connect_read_only(path).await?;
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await?;
    if problems != ["ok"] {
        return Ok(Verification::Damaged { problems });
    }
    super::check_schema(path, &mut conn).await?;
    // One read transaction: one snapshot, whatever the server appends meanwhile.
    let mut tx = conn.begin().await?;
    let mut gaps = match Gaps::load(&mut tx).await? {
        Ok(gaps) => gaps,
        Err((id, problem)) => return Ok(Verification::Broken { id, problem }),
    };
    let removed_by_retention = gaps.removed();
    // Each row's canonical text is rendered here from its columns, in the format it records,
    // the same way whichever backend stored it.
    let sql = format!(
        "SELECT {} FROM reports WHERE id > ?1 ORDER BY id LIMIT ?2",
        column_list()
    );
    let mut previous: Option<ChainHead> = None;
    let mut first_id = None;
    let mut rows = 0u64;
    loop {
        let after = previous.as_ref().map_or(0, |p| p.id);
        let batch = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(after)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        if batch.is_empty() {
            break;
        }
        for row in &batch {
            let row = StoredRow::read(row)?;
            let (id, prev_hash, hash) = (row.id(), row.prev_hash(), row.hash());
            let canonical = match row.recorded_canonical() {
                Ok(canonical) => canonical,
                Err(problem) => return Ok(Verification::Broken { id, problem }),
            };
            // What the row must link to: the row before it, or across a gap retention made,
            // the last row it removed there.
            let expected = match gaps.bridge(previous.as_ref(), id) {
                Ok(expected) => expected,
                Err((id, problem)) => return Ok(Verification::Broken { id, problem }),
            };
            if let Some(problem) = check_link(&expected, prev_hash, hash, &canonical) {
                return Ok(Verification::Broken { id, problem });
            }
            first_id.get_or_insert(id);
            rows += 1;
            previous = Some(ChainHead {
                id,
                hash: hash.to_owned(),
            });
        }
    }
    if let Some((id, problem)) = gaps.left_over(previous.as_ref()) {
        return Ok(Verification::Broken { id, problem });
    }
    let hosts = sqlx::query_as::<_, (String, String, Option<String>)>(
        "SELECT server_group, host, status_row FROM hosts ORDER BY server_group, host",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (group, host, stored) in &hosts {
        let name = format!("{group}/{host}");
        let state = super::read::fetch_host_state(&mut *tx, group, host)
            .await
            .with_context(|| format!("cannot read the current state of {name}"))?;
        let expected = state.map(|state| render(&state)).transpose()?;
        let problem = match (stored, expected) {
            (None, _) => "has no status_row (the server renders it at its next start)",
            (Some(_), None) => "has a status_row but no current state",
            (Some(stored), Some(expected)) if *stored != expected => {
                "its status_row differs from what its reports make of it"
            }
            _ => continue,
        };
        return Ok(Verification::StaleHostRow {
            host: name,
            problem: problem.to_owned(),
        });
    }
    let removed: Vec<(i64, i64)> = gaps
        .runs
        .iter()
        .map(|(_, run)| (run.first_id, run.last_id))
        .collect();
    let transitions = match super::derive::check_transitions(&mut tx, &removed).await? {
        Ok(checked) => checked,
        Err((report_id, problem)) => {
            return Ok(Verification::Transition { report_id, problem });
        }
    };
    tx.rollback().await?;
    Ok(Verification::Intact {
        rows,
        first_id,
        head: previous,
        removed_by_retention,
        hosts: hosts.len() as u64,
        transitions,
    })
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
struct Gaps {
    runs: Vec<(i64, RemovedRun)>,
    next: usize,
}

impl Gaps {
    /// Every run of every retention row; an unreadable or overlapping one is named.
    async fn load(conn: &mut SqliteConnection) -> anyhow::Result<Result<Gaps, (i64, String)>> {
        let records: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, raw_body FROM reports WHERE kind = 'retention' ORDER BY id")
                .fetch_all(&mut *conn)
                .await?;
        let mut runs = Vec::new();
        for (id, body) in records {
            match RetentionRecord::runs_of(&body) {
                Ok(list) => runs.extend(list.into_iter().map(|run| (id, run))),
                Err(problem) => return Ok(Err((id, problem))),
            }
        }
        runs.sort_by_key(|(_, run)| run.first_id);
        for pair in runs.windows(2) {
            let ((a, first), (b, second)) = (&pair[0], &pair[1]);
            if second.first_id <= first.last_id {
                return Ok(Err((
                    *b,
                    format!(
                        "retention row {b} says it removed rows {}..{}, which retention row {a} \
                         says it removed ({}..{})",
                        second.first_id, second.last_id, first.first_id, first.last_id
                    ),
                )));
            }
        }
        Ok(Ok(Gaps { runs, next: 0 }))
    }

    fn removed(&self) -> u64 {
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
