//! Reading the audit chain back: its head, and `verify`, which walks every row and names the
//! first one whose content, order or presence was changed.

use std::path::Path;

use anyhow::Context;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, SqliteConnection};

use crate::domain::chain::{is_hash, link, GENESIS};

/// The canonical content of a stored row, as SQLite renders it. The writer renders the same
/// members from the values it is about to insert (store/write.rs); the README gives auditors
/// the same expression.
pub const CANONICAL_ROW: &str = "json_object(\
    'id', id, 'received_at', received_at, 'kind', kind, 'server_group', server_group, \
    'host', host, 'status', status, 'changed_files', changed_files, \
    'project_name', project_name, 'repo_name', repo_name, 'server_type', server_type, \
    'environment', environment, 'validation_status', validation_status, \
    'validation_message', validation_message, 'commit_sha', commit_sha, 'branch', branch, \
    'updated_by', updated_by, 'last_pipeline_run', last_pipeline_run, \
    'last_cron_check', last_cron_check, 'drift_count', drift_count, \
    'observed_at', observed_at, 'principal', principal, 'client_addr', client_addr, \
    'forwarded_for', forwarded_for, 'user_agent', user_agent, 'raw_body', raw_body)";

/// The same members from bound values (?1…?25 in CANONICAL_ROW's order), which the writer
/// renders before it inserts the row. A test checks both render the same text.
pub(super) const CANONICAL_VALUES: &str = "SELECT json_object(\
    'id', ?1, 'received_at', ?2, 'kind', ?3, 'server_group', ?4, 'host', ?5, 'status', ?6, \
    'changed_files', ?7, 'project_name', ?8, 'repo_name', ?9, 'server_type', ?10, \
    'environment', ?11, 'validation_status', ?12, 'validation_message', ?13, \
    'commit_sha', ?14, 'branch', ?15, 'updated_by', ?16, 'last_pipeline_run', ?17, \
    'last_cron_check', ?18, 'drift_count', ?19, 'observed_at', ?20, 'principal', ?21, \
    'client_addr', ?22, 'forwarded_for', ?23, 'user_agent', ?24, 'raw_body', ?25)";

const BATCH: i64 = 5_000;

/// The newest row of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub id: i64,
    pub hash: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every row links to the one before it and matches its hash.
    Intact {
        rows: u64,
        first_id: Option<i64>,
        head: Option<ChainHead>,
    },
    /// SQLite's own integrity check failed.
    Damaged { problems: Vec<String> },
    /// The first row (by id) that was changed, removed, inserted or reordered.
    Broken { id: i64, problem: String },
}

/// Walks the whole chain of the database at `path`, read-only (safe while the server runs).
pub async fn verify(path: &Path) -> anyhow::Result<Verification> {
    anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(5));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await?;
    if problems != ["ok"] {
        return Ok(Verification::Damaged { problems });
    }
    // One read transaction: one snapshot, whatever the server appends meanwhile.
    let mut tx = conn.begin().await?;
    let sql = format!(
        "SELECT id, prev_hash, hash, {CANONICAL_ROW} AS canonical \
         FROM reports WHERE id > ?1 ORDER BY id LIMIT ?2"
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
        for row in batch {
            let id: i64 = row.try_get("id")?;
            let prev_hash: String = row.try_get("prev_hash")?;
            let hash: String = row.try_get("hash")?;
            let canonical: String = row.try_get("canonical")?;
            if let Some(problem) = check_link(previous.as_ref(), id, &prev_hash, &hash, &canonical)
            {
                return Ok(Verification::Broken { id, problem });
            }
            first_id.get_or_insert(id);
            rows += 1;
            previous = Some(ChainHead { id, hash });
        }
    }
    tx.rollback().await?;
    Ok(Verification::Intact {
        rows,
        first_id,
        head: previous,
    })
}

/// What is wrong with one row given the row before it, if anything.
fn check_link(
    previous: Option<&ChainHead>,
    id: i64,
    prev_hash: &str,
    hash: &str,
    canonical: &str,
) -> Option<String> {
    if !is_hash(prev_hash) || !is_hash(hash) {
        return Some("its hash or prev_hash is not 64 lower-case hex digits".to_owned());
    }
    match previous {
        // The first remaining row anchors the chain; only row 1 has a known predecessor.
        None if id == 1 && prev_hash != GENESIS => {
            return Some("the first row's prev_hash is not the genesis value".to_owned())
        }
        None => {}
        Some(before) if id != before.id + 1 => {
            return Some(format!(
                "ids jump from {} to {id}: rows between them are missing",
                before.id
            ))
        }
        Some(before) if prev_hash != before.hash => {
            return Some(format!(
                "its prev_hash is not the hash of row {}: a row before it was changed, \
                 removed or reordered",
                before.id
            ))
        }
        Some(_) => {}
    }
    if link(prev_hash, canonical) != hash {
        return Some("its content does not match its hash: the row was changed".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: i64, canonical: &str, prev: &str) -> (ChainHead, String) {
        let hash = link(prev, canonical);
        (
            ChainHead {
                id,
                hash: hash.clone(),
            },
            hash,
        )
    }

    #[test]
    fn links_are_checked_in_order() {
        let (first, h1) = head(1, "a", GENESIS);
        assert_eq!(check_link(None, 1, GENESIS, &h1, "a"), None);
        let h2 = link(&h1, "b");
        assert_eq!(check_link(Some(&first), 2, &h1, &h2, "b"), None);
        assert!(check_link(Some(&first), 2, &h1, &h2, "B")
            .unwrap()
            .contains("content"));
        assert!(check_link(Some(&first), 3, &h1, &h2, "b")
            .unwrap()
            .contains("missing"));
        let other = link(GENESIS, "x");
        assert!(check_link(Some(&first), 2, &other, &link(&other, "b"), "b")
            .unwrap()
            .contains("prev_hash"));
        assert!(check_link(None, 1, &h1, &link(&h1, "a"), "a")
            .unwrap()
            .contains("genesis"));
        // After retention, the first remaining row anchors the chain.
        assert_eq!(check_link(None, 7, &h1, &h2, "b"), None);
    }
}
