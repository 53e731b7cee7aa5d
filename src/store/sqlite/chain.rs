//! Reading the audit chain back from a SQLite file, for `store::chain`'s walk: in one read
//! transaction (one snapshot, safe while the server writes), after SQLite's own integrity
//! check.

use std::path::Path;

use anyhow::Context;
use sqlx::Connection;

use crate::store::chain::{host_row_problem, Gaps, Verification, Walk, BATCH};

use super::record::{column_list, StoredRow};

/// Walks the whole chain of the database at `path`, then checks every host's status row
/// against the reports it derives from (rendered with `render`), read-only, in one snapshot
/// (safe while the server runs).
pub(crate) async fn verify(path: &Path, render: super::RenderRow) -> anyhow::Result<Verification> {
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
    let records: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, raw_body FROM reports WHERE kind = 'retention' ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
    let mut walk = match Gaps::from_records(records) {
        Ok(gaps) => Walk::new(gaps),
        Err((id, problem)) => return Ok(Verification::Broken { id, problem }),
    };
    // Each row's canonical text is rendered here from its columns, in the format it records,
    // the same way whichever backend stored it.
    let sql = format!(
        "SELECT {} FROM reports WHERE id > ?1 ORDER BY id LIMIT ?2",
        column_list()
    );
    loop {
        let batch = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(walk.after())
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        if batch.is_empty() {
            break;
        }
        for row in &batch {
            if let Err(broken) = walk.row(&StoredRow::read(row)?) {
                return Ok(broken);
            }
        }
    }
    if let Err(broken) = walk.end() {
        return Ok(broken);
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
        let Some(problem) = host_row_problem(stored.as_deref(), expected.as_deref()) else {
            continue;
        };
        return Ok(Verification::StaleHostRow {
            host: name,
            problem: problem.to_owned(),
        });
    }
    let removed = walk.removed_runs();
    let transitions = match super::derive::check_transitions(&mut tx, &removed).await? {
        Ok(checked) => checked,
        Err((report_id, problem)) => {
            return Ok(Verification::Transition { report_id, problem });
        }
    };
    tx.rollback().await?;
    Ok(Verification::Intact {
        rows: walk.rows,
        first_id: walk.first_id,
        removed_by_retention: walk.removed_by_retention(),
        head: walk.previous,
        hosts: hosts.len() as u64,
        transitions,
    })
}
