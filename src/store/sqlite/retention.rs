//! Retention on SQLite (`store::prune` runs the pass): the reads a pass makes, and the
//! writer's transaction that records and removes a batch. The DELETE trigger lets through
//! only the ids listed in `prune_permit`, which holds this transaction's runs until its
//! commit.

use sqlx::{Connection, SqliteConnection};

use crate::domain::{RetentionPolicy, Timestamp};
use crate::store::append::Tip;
use crate::store::prune::{self, Candidate, HostPointerRow, PruneSource, PruneSummary};
use crate::store::writer::{PruneBatch, PruneOutcome};

use super::append::insert_reports;
use super::{SqliteStore, StoreError};

impl SqliteStore {
    /// Runs one pruning pass with `policy` as of `now` (see `store::prune::run_pass`).
    #[tracing::instrument(skip_all)]
    pub async fn prune(
        &self,
        policy: RetentionPolicy,
        now: Timestamp,
        stopping: impl Fn() -> bool,
    ) -> Result<PruneSummary, StoreError> {
        prune::run_pass(self, policy, now, stopping).await
    }
}

impl PruneSource for SqliteStore {
    async fn last_received_before(&self, cutoff: &str) -> Result<Option<i64>, StoreError> {
        // Rows received before the cutoff end about here (the clock only moves forward, or
        // nearly); later ids are newer than every limit.
        Ok(sqlx::query_scalar(
            "SELECT id FROM reports WHERE received_at < ?1 ORDER BY received_at DESC LIMIT 1",
        )
        .bind(cutoff)
        .fetch_optional(&self.readers)
        .await?)
    }

    async fn candidates(
        &self,
        after: i64,
        last: i64,
        limit: i64,
    ) -> Result<Vec<Candidate>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, received_at, server_group, host, is_change
             FROM reports WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
        )
        .bind(after)
        .bind(last)
        .bind(limit)
        .fetch_all(&self.readers)
        .await?)
    }

    async fn host_pointers(&self) -> Result<Vec<HostPointerRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT server_group, host, last_report_id, status_report_id, files_report_id,
                    pipeline_report_id, cron_report_id
             FROM hosts",
        )
        .fetch_all(&self.readers)
        .await?)
    }

    async fn nth_newest(
        &self,
        group: &str,
        host: &str,
        offset: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM reports WHERE server_group = ?1 AND host = ?2
             ORDER BY id DESC LIMIT 1 OFFSET ?3",
        )
        .bind(group)
        .bind(host)
        .bind(offset)
        .fetch_optional(&self.readers)
        .await?)
    }

    async fn remove(&self, batch: PruneBatch) -> Result<PruneOutcome, StoreError> {
        self.writer.prune(batch).await
    }
}

/// The writer's half: removes the rows `batch` names that are still there, recording them
/// first in a retention row linked after `tip`, all in one transaction. `tip` moves only
/// once the transaction is committed.
pub(super) async fn prune_batch(
    conn: &mut SqliteConnection,
    tip: &mut Tip,
    now: Timestamp,
    batch: &PruneBatch,
) -> Result<PruneOutcome, StoreError> {
    let ids = serde_json::to_string(&batch.ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    // No host's state rests on these rows: the pass left out every report a host pointed at
    // when it began, and pointers only ever move to reports newer than that (a decommission
    // removes them; a host created again points at its new reports). Checking again here
    // would cost a scan of `hosts` per transaction, inside the writer's lock.
    let rows: Vec<(i64, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT r.id, r.kind, r.prev_hash, r.hash,
                CASE WHEN r.kind = 'retention' THEN r.raw_body END
         FROM json_each(?1) AS j JOIN reports r ON r.id = j.value
         ORDER BY r.id",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(PruneOutcome::default());
    }
    let (description, permits) = prune::describe(&rows, batch)?;
    let row = prune::retention_row(&description, tip, now)?;
    let id = row.record.id;
    insert_reports(&mut tx, &[&row.record]).await?;
    let permits =
        serde_json::to_string(&permits).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO prune_permit (first_id, last_id)
         SELECT value ->> 0, value ->> 1 FROM json_each(?1)",
    )
    .bind(&permits)
    .execute(&mut *tx)
    .await?;
    // The ids still there are the rows read above.
    let deleted = sqlx::query("DELETE FROM reports WHERE id IN (SELECT value FROM json_each(?1))")
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // A transition goes with the report that made it.
    sqlx::query("DELETE FROM transitions WHERE report_id IN (SELECT value FROM json_each(?1))")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM prune_permit")
        .execute(&mut *tx)
        .await?;
    if deleted != rows.len() as u64 {
        return Err(StoreError::Corrupt(format!(
            "retention meant to remove {} rows but removed {deleted}",
            rows.len()
        )));
    }
    tx.commit().await?;
    tip.next_id = id + 1;
    tip.hash.clone_from(&row.record.hash);
    Ok(PruneOutcome {
        removed: deleted,
        record_id: Some(id),
        record_hash: Some(row.record.hash),
    })
}
