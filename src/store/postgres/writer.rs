//! The PostgreSQL half of the writer (`store::writer`). Several replicas may write at once, so
//! the chain's tip is never kept in memory: each transaction first locks it
//! (`gitops_status_postgres::lock_tip`, a row lock on `reports_sequence`) and reads it, then
//! loads the hosts and keys the group names, plans (`group::plan`) and stores. The groups of
//! every replica thereby commit one after another, each linked after the one before.

use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use gitops_status_postgres::write as sql;

use crate::domain::{chain, Timestamp};
use crate::store::append::Tip;
use crate::store::group::{self, HostPointers, KnownKey, LoadedHost};
use crate::store::prune;
use crate::store::writer::{GroupContext, GroupWritten, Pending, PruneBatch, PruneOutcome, Scribe};

use super::StoreError;

pub(super) struct PgScribe {
    /// None after a failed write, until a new connection opens.
    conn: Option<PgConnection>,
    options: PgConnectOptions,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl PgScribe {
    pub(super) fn new(
        conn: PgConnection,
        options: PgConnectOptions,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        PgScribe {
            conn: Some(conn),
            options,
            metrics,
        }
    }

    async fn ready(&mut self) -> Result<&mut PgConnection, StoreError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => PgConnection::connect_with(&self.options).await?,
        };
        Ok(self.conn.insert(conn))
    }
}

/// The chain's tip, locked for the rest of the transaction, and when its newest row was
/// received (by whichever replica).
pub(super) async fn lock_tip(
    tx: &mut PgConnection,
) -> Result<(Tip, Option<Timestamp>), StoreError> {
    let tip = gitops_status_postgres::lock_tip(tx).await?;
    let received_at = tip
        .received_at
        .as_deref()
        .map(|t| crate::store::rows::timestamp("received_at", t))
        .transpose()?;
    Ok((
        Tip {
            next_id: tip.seq + 1,
            hash: tip.hash.unwrap_or_else(|| chain::GENESIS.to_owned()),
        },
        received_at,
    ))
}

fn text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `[[server_group, host], …]`.
fn pairs<'a>(keys: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Array(keys.into_iter().map(|(g, h)| json!([g, h])).collect())
}

fn host_object(host: &HostPointers<'_>) -> Result<Value, StoreError> {
    let (Some(status), Some(files)) = (host.heads.status, host.heads.files) else {
        return Err(StoreError::Corrupt(format!(
            "host {} would have no status",
            host.key
        )));
    };
    let state = host.state;
    let d = state.map(|s| &s.deployment);
    let time = |t: Option<Timestamp>| t.map(|t| t.to_string());
    Ok(json!({
        "server_group": host.key.server_group,
        "host": host.key.host,
        "last_report_id": host.last_report_id,
        "status_report_id": status.report_id,
        "files_report_id": files.report_id,
        "pipeline_report_id": host.heads.pipeline.map(|h| h.report_id),
        "cron_report_id": host.heads.cron_check.map(|h| h.report_id),
        "status_row": host.status_row,
        "status": state.map(|s| s.status.as_str()),
        "changed_files_count": state.map(|s| s.changed_files.len() as i64),
        "environment": d.and_then(|d| d.environment.as_deref()),
        "server_type": d.and_then(|d| d.server_type.as_deref()),
        "repo_name": d.and_then(|d| d.repo_name.as_deref()),
        "project_name": d.and_then(|d| d.project_name.as_deref()),
        "branch": d.and_then(|d| d.branch.as_deref()),
        "commit_sha": d.and_then(|d| d.commit_sha.as_deref()),
        "validation_status": d.and_then(|d| d.validation_status.as_deref()),
        "status_since": time(state.map(|s| s.status_since)),
        "drift_received_at": time(state.and_then(|s| s.drift_received_at)),
        "commit_since": time(state.and_then(|s| s.commit_since)),
    }))
}

impl From<sql::LoadedHost> for LoadedHost {
    fn from(row: sql::LoadedHost) -> Self {
        LoadedHost {
            project_name: row.project_name,
            repo_name: row.repo_name,
            server_group: row.server_group,
            server_type: row.server_type,
            environment: row.environment,
            host: row.host,
            status: row.status,
            changed_files: row.changed_files,
            validation_status: row.validation_status,
            validation_message: row.validation_message,
            last_pipeline_run: row.last_pipeline_run,
            last_cron_check: row.last_cron_check,
            commit_sha: row.commit_sha,
            branch: row.branch,
            updated_by: row.updated_by,
            timestamp: row.timestamp,
            status_observed_at: row.status_observed_at,
            reported_drift_count: row.reported_drift_count,
            status_since: row.status_since,
            drift_received_at: row.drift_received_at,
            commit_since: row.commit_since,
            last_report_id: row.last_report_id,
            status_id: row.status_id,
            files_id: row.files_id,
            files_at: row.files_at,
            pipeline_id: row.pipeline_id,
            cron_id: row.cron_id,
        }
    }
}

impl Scribe for PgScribe {
    async fn write(
        &mut self,
        group: &mut [Pending],
        context: &GroupContext,
        atomic: bool,
    ) -> Result<GroupWritten, StoreError> {
        let forget_before = group::forget_before(context.clock.now(), context.idempotency_window);
        let metrics = std::sync::Arc::clone(&self.metrics);
        let conn = self.ready().await?;
        let mut tx = conn.begin().await?;
        // First, before anything is read: every replica's groups serialise here.
        let waited = std::time::Instant::now();
        let (tip, newest) = lock_tip(&mut tx).await?;
        metrics.chain_lock_waited(waited.elapsed().as_secs_f64());
        let (hosts, keys) = group::names(group);
        let mut known: HashMap<(String, String), KnownKey> = HashMap::new();
        if !keys.is_empty() {
            sql::forget_keys(&mut tx, &forget_before).await?;
            for (principal, key) in &keys {
                if let Some(found) =
                    super::read::stored_key(&mut *tx, principal, key, &forget_before).await?
                {
                    known.insert(((*principal).to_owned(), (*key).to_owned()), found);
                }
            }
        }
        let loaded = sql::load_hosts(&mut tx, &text(&pairs(hosts))?).await?;
        let hosts = loaded
            .into_iter()
            .map(|row| LoadedHost::from(row).into_entry())
            .collect::<Result<HashMap<_, _>, _>>()?;
        let plan = group::plan(group, hosts, &known, tip, &context.plan(atomic, newest))?;

        let rows = plan.rows(group);
        if !rows.is_empty() {
            let rows =
                serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sql::insert_reports(&mut tx, &rows).await?;
        }
        let (pointers, removed) = plan.hosts(context.render)?;
        if !pointers.is_empty() {
            let objects = pointers
                .iter()
                .map(host_object)
                .collect::<Result<Vec<_>, _>>()?;
            sql::upsert_hosts(&mut tx, &text(&Value::Array(objects))?).await?;
        }
        if !removed.is_empty() {
            let keys = pairs(
                removed
                    .iter()
                    .map(|k| (k.server_group.as_str(), k.host.as_str())),
            );
            sql::delete_hosts(&mut tx, &text(&keys)?).await?;
        }
        if !plan.transitions.is_empty() {
            let objects: Vec<Value> = plan
                .transitions
                .iter()
                .map(|t| {
                    json!({
                        "report_id": t.report_id,
                        "server_group": t.server_group.as_str(),
                        "host": t.host.as_str(),
                        "from_status": t.from_status.map(|s| s.as_str()),
                        "to_status": t.to_status.as_str(),
                        "at": t.at.to_string(),
                        "kind": t.kind.as_str(),
                        "previous_duration_ms": t.previous_duration_ms,
                        "commit_sha": t.commit_sha,
                        "changed_files_count": t.changed_files_count,
                    })
                })
                .collect();
            sql::insert_transitions(&mut tx, &text(&Value::Array(objects))?).await?;
        }
        let commits = plan.commits();
        if !commits.is_empty() {
            let objects: Vec<Value> = commits
                .iter()
                .map(|(group, sha, branch, first, last)| {
                    json!({
                        "server_group": group,
                        "commit_sha": sha,
                        "branch": branch,
                        "first_reported": first.to_string(),
                        "last_reported": last.to_string(),
                    })
                })
                .collect();
            sql::upsert_commits(&mut tx, &text(&Value::Array(objects))?).await?;
        }
        if !plan.keys.is_empty() {
            let objects: Vec<Value> = plan
                .keys
                .iter()
                .map(
                    |(principal, key, fingerprint, report_id, answer, created_at)| {
                        json!({
                            "principal": principal,
                            "key": key,
                            "fingerprint": fingerprint,
                            "report_id": report_id,
                            "status": answer.status,
                            "body": answer.body,
                            "created_at": created_at,
                        })
                    },
                )
                .collect();
            sql::upsert_keys(&mut tx, &text(&Value::Array(objects))?).await?;
        }
        let imports = plan.imports(group);
        if !imports.is_empty() {
            let objects: Vec<Value> = imports
                .iter()
                .map(|(server_group, host, entry, report_id)| {
                    json!({
                        "server_group": server_group,
                        "host": host,
                        "entry_sha256": entry,
                        "report_id": report_id,
                    })
                })
                .collect();
            sql::insert_imports(&mut tx, &text(&Value::Array(objects))?).await?;
        }
        tx.commit().await?;
        Ok(GroupWritten {
            results: plan.results,
            linked: plan.linked,
        })
    }

    /// One pruning transaction: after the chain's tip is locked, the rows of `batch` still
    /// there (another replica may have removed some) are recorded in a retention row linked
    /// after the tip, then deleted with the permits the append-only trigger asks for.
    async fn prune(
        &mut self,
        batch: &PruneBatch,
        now: Timestamp,
    ) -> Result<PruneOutcome, StoreError> {
        let metrics = std::sync::Arc::clone(&self.metrics);
        let conn = self.ready().await?;
        let mut tx = conn.begin().await?;
        let waited = std::time::Instant::now();
        let (tip, newest) = lock_tip(&mut tx).await?;
        metrics.chain_lock_waited(waited.elapsed().as_secs_f64());
        let now = newest.map_or(now, |newest| now.max(newest));
        let rows = sql::prune_rows(&mut tx, &batch.ids).await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(PruneOutcome::default());
        }
        let (description, permits) = prune::describe(&rows, batch)?;
        let row = prune::retention_row(&description, &tip, now)?;
        let record = serde_json::to_string(&[&row.record])
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sql::insert_reports(&mut tx, &record).await?;
        let permits =
            serde_json::to_string(&permits).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sql::permit(&mut tx, &permits).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let deleted = sql::delete_pruned(&mut tx, &ids).await?;
        if deleted != rows.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "retention meant to remove {} rows but removed {deleted}",
                rows.len()
            )));
        }
        tx.commit().await?;
        Ok(PruneOutcome {
            removed: deleted,
            record_id: Some(row.record.id),
            record_hash: Some(row.record.hash),
        })
    }

    async fn probe(&mut self, at: Timestamp) -> Result<(), StoreError> {
        let at = at.to_string();
        let conn = self.ready().await?;
        let mut tx = conn.begin().await?;
        sql::probe(&mut tx, &at).await?;
        tx.commit().await?;
        Ok(())
    }

    fn reset(&mut self) {
        self.conn = None;
    }

    async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Err(err) = conn.close().await {
                tracing::warn!(error = %err, "closing the write connection failed");
            }
        }
    }
}
