//! The SQLite half of the writer (`super::super::writer`): the write connection, the chain's
//! tip (kept in memory: only this process writes the file, `lock` makes sure), and the SQL
//! that loads and stores a group (`group::plan` decides what it holds).

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use crate::domain::{chain, Timestamp, Transition};
use crate::store::append::Tip;
use crate::store::group::{self, CommitSeen, HostKey, HostPointers, KnownKey, LoadedHost};
use crate::store::writer::{
    self, GroupContext, GroupWritten, Pending, PruneBatch, PruneOutcome, Scribe, StoredAnswer,
    WriterConfig, WriterHandle, WriterTask,
};

use super::append::{insert_reports, load_tip, MultiRow};
use super::retention::prune_batch;
use super::StoreError;

/// Starts the writer on `conn` (migrated, its status rows rendered); `options` open it again
/// after a failure.
pub(super) async fn start(
    mut conn: SqliteConnection,
    options: SqliteConnectOptions,
    config: WriterConfig,
) -> Result<(WriterHandle, WriterTask), StoreError> {
    let tip = load_tip(&mut conn).await?;
    if tip.hash != chain::GENESIS {
        // Published heads let an auditor detect a rewritten chain (see README, Security).
        tracing::info!(id = tip.next_id - 1, hash = %tip.hash, "audit chain head");
    }
    let committed = tip.next_id - 1;
    let scribe = SqliteScribe {
        conn: Some(conn),
        options,
        tip,
        reread_tip: false,
    };
    Ok(writer::start(scribe, committed, config))
}

struct SqliteScribe {
    /// None after a failed write, until a new connection opens.
    conn: Option<SqliteConnection>,
    options: SqliteConnectOptions,
    /// The chain's tip as this writer last committed it.
    tip: Tip,
    /// After a failed write the tip is read again from the database (a rolled-back group
    /// never extended the chain); it must still be where this writer left it.
    reread_tip: bool,
}

impl SqliteScribe {
    /// The connection and the chain's tip, opening and reading them again after a failure.
    async fn ready(&mut self) -> Result<(&mut SqliteConnection, &mut Tip), StoreError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => SqliteConnection::connect_with(&self.options).await?,
        };
        let conn = self.conn.insert(conn);
        if self.reread_tip {
            let stored = load_tip(conn).await?;
            if stored.next_id != self.tip.next_id || stored.hash != self.tip.hash {
                tracing::error!(
                    id = stored.next_id - 1,
                    hash = %stored.hash,
                    written_id = self.tip.next_id - 1,
                    written_hash = %self.tip.hash,
                    "the audit chain does not end where this server left it: another \
                     process wrote to reports; check the rows after written_id"
                );
            }
            self.tip = stored;
            self.reread_tip = false;
        }
        Ok((conn, &mut self.tip))
    }
}

impl Scribe for SqliteScribe {
    async fn write(
        &mut self,
        group: &mut [Pending],
        context: &GroupContext,
        atomic: bool,
    ) -> Result<GroupWritten, StoreError> {
        let forget_before = group::forget_before(context.clock.now(), context.idempotency_window);
        let (conn, stored_tip) = self.ready().await?;
        // IMMEDIATE takes the write lock up front, so a writer outside this process (sqlite3)
        // makes us wait for busy_timeout instead of failing the transaction half-way.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let (hosts, keys) = group::names(group);
        let mut known: HashMap<(String, String), KnownKey> = HashMap::new();
        if !keys.is_empty() {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?1")
                .bind(&forget_before)
                .execute(&mut *tx)
                .await?;
            for (principal, key) in &keys {
                if let Some(found) = stored_key(&mut *tx, principal, key, &forget_before).await? {
                    known.insert(((*principal).to_owned(), (*key).to_owned()), found);
                }
            }
        }
        let hosts = load_hosts(&mut tx, &hosts).await?;
        let plan = group::plan(
            group,
            hosts,
            &known,
            stored_tip.clone(),
            &context.plan(atomic, None),
        )?;

        insert_reports(&mut tx, &plan.rows(group)).await?;
        let (pointers, removed) = plan.hosts(context.render)?;
        upsert_hosts(&mut tx, &pointers).await?;
        delete_hosts(&mut tx, &removed).await?;
        insert_transitions(&mut tx, &plan.transitions).await?;
        upsert_commits(&mut tx, &plan.commits()).await?;
        for (principal, key, fingerprint, report_id, answer, created_at) in &plan.keys {
            // A row still there for the key is older than the window: this replaces it.
            sqlx::query(
                "INSERT OR REPLACE INTO idempotency_keys
                     (principal, key, fingerprint, report_id, status, body, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(principal)
            .bind(key)
            .bind(fingerprint)
            .bind(report_id)
            .bind(i64::from(answer.status))
            .bind(&answer.body)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
        }
        for (server_group, host, entry, report_id) in plan.imports(group) {
            sqlx::query(
                "INSERT INTO imported_entries (server_group, host, entry_sha256, report_id)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(server_group)
            .bind(host)
            .bind(entry)
            .bind(report_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        *stored_tip = plan.tip;
        Ok(GroupWritten {
            results: plan.results,
            linked: plan.linked,
        })
    }

    async fn prune(
        &mut self,
        batch: &PruneBatch,
        now: Timestamp,
    ) -> Result<PruneOutcome, StoreError> {
        let (conn, tip) = self.ready().await?;
        prune_batch(conn, tip, now, batch).await
    }

    /// Rewrites the one row of `writer_probe` with 64 KiB: succeeds once the database takes
    /// writes again, with room for reports.
    async fn probe(&mut self, at: Timestamp) -> Result<(), StoreError> {
        let at = at.to_string();
        let (conn, _) = self.ready().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query!(
            "INSERT INTO writer_probe (id, at, headroom) VALUES (1, ?1, zeroblob(65536))
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at, headroom = excluded.headroom",
            at
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    fn reset(&mut self) {
        self.conn = None;
        self.reread_tip = true;
    }

    async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Err(err) = conn.close().await {
                tracing::warn!(error = %err, "closing the write connection failed");
            }
        }
    }
}

/// The stored facet heads and current state of every host the group names (one query).
async fn load_hosts(
    conn: &mut SqliteConnection,
    keys: &[(&str, &str)],
) -> Result<HashMap<HostKey, group::Touched>, StoreError> {
    let keys = serde_json::to_string(keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // The state as the current_status view derives it, and the facet heads the merge needs
    // (the view carries every head's time but the files report's).
    let rows = sqlx::query_as!(
        LoadedHost,
        r#"SELECT cs.project_name AS "project_name?", cs.repo_name AS "repo_name?",
                  cs.server_group AS "server_group!", cs.server_type AS "server_type?",
                  cs.environment AS "environment?", cs.host AS "host!", cs.status AS "status!",
                  cs.changed_files AS "changed_files!: String",
                  cs.validation_status AS "validation_status?",
                  cs.validation_message AS "validation_message?",
                  cs.last_pipeline_run AS "last_pipeline_run?: String",
                  cs.last_cron_check AS "last_cron_check?: String", cs.commit_sha AS "commit_sha?",
                  cs.branch AS "branch?", cs.updated_by AS "updated_by?",
                  cs.timestamp AS "timestamp!", cs.status_observed_at AS "status_observed_at!",
                  cs.reported_drift_count AS "reported_drift_count?",
                  cs.status_since AS "status_since!: String",
                  cs.drift_received_at AS "drift_received_at?: String",
                  cs.commit_since AS "commit_since?: String",
                  h.last_report_id AS "last_report_id!", h.status_report_id AS "status_id!",
                  h.files_report_id AS "files_id!", f.observed_at AS "files_at!",
                  h.pipeline_report_id AS "pipeline_id?", h.cron_report_id AS "cron_id?"
           FROM json_each(?1) AS k
           JOIN hosts h ON h.server_group = k.value ->> 0 AND h.host = k.value ->> 1
           JOIN current_status cs ON cs.server_group = h.server_group AND cs.host = h.host
           JOIN reports f ON f.id = h.files_report_id"#,
        keys
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(LoadedHost::into_entry).collect()
}

static UPSERT_HOSTS: LazyLock<MultiRow> = LazyLock::new(|| {
    MultiRow::new(
        "INSERT INTO hosts (server_group, host, last_report_id, status_report_id, \
         files_report_id, pipeline_report_id, cron_report_id, status_row, status, \
         changed_files_count, environment, server_type, repo_name, project_name, branch, \
         commit_sha, validation_status, status_since, drift_received_at, commit_since)",
        20,
        " ON CONFLICT (server_group, host) DO UPDATE SET \
         last_report_id = excluded.last_report_id, \
         status_report_id = excluded.status_report_id, \
         files_report_id = excluded.files_report_id, \
         pipeline_report_id = excluded.pipeline_report_id, \
         cron_report_id = excluded.cron_report_id, \
         status_row = excluded.status_row, status = excluded.status, \
         changed_files_count = excluded.changed_files_count, \
         environment = excluded.environment, server_type = excluded.server_type, \
         repo_name = excluded.repo_name, project_name = excluded.project_name, \
         branch = excluded.branch, commit_sha = excluded.commit_sha, \
         validation_status = excluded.validation_status, \
         status_since = excluded.status_since, \
         drift_received_at = excluded.drift_received_at, \
         commit_since = excluded.commit_since",
    )
});

/// Removes decommissioned hosts from the current state.
async fn delete_hosts(conn: &mut SqliteConnection, hosts: &[&HostKey]) -> Result<(), StoreError> {
    for key in hosts {
        sqlx::query("DELETE FROM hosts WHERE server_group = ?1 AND host = ?2")
            .bind(&key.server_group)
            .bind(&key.host)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Writes the hosts' new pointers and rows; each host appears once.
pub(super) async fn upsert_hosts(
    conn: &mut SqliteConnection,
    hosts: &[HostPointers<'_>],
) -> Result<(), StoreError> {
    for (sql, chunk) in UPSERT_HOSTS.chunks(hosts) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for host in chunk {
            let (Some(status), Some(files)) = (host.heads.status, host.heads.files) else {
                return Err(StoreError::Corrupt(format!(
                    "host {} would have no status",
                    host.key
                )));
            };
            query = query
                .bind(host.key.server_group.as_str())
                .bind(host.key.host.as_str())
                .bind(host.last_report_id)
                .bind(status.report_id)
                .bind(files.report_id)
                .bind(host.heads.pipeline.map(|h| h.report_id))
                .bind(host.heads.cron_check.map(|h| h.report_id))
                .bind(host.status_row.as_deref());
            let state = host.state;
            let d = state.map(|s| &s.deployment);
            let time = |t: Option<Timestamp>| t.map(|t| t.to_string());
            query = query
                .bind(state.map(|s| s.status.as_str()))
                .bind(state.map(|s| s.changed_files.len() as i64))
                .bind(d.and_then(|d| d.environment.as_deref()))
                .bind(d.and_then(|d| d.server_type.as_deref()))
                .bind(d.and_then(|d| d.repo_name.as_deref()))
                .bind(d.and_then(|d| d.project_name.as_deref()))
                .bind(d.and_then(|d| d.branch.as_deref()))
                .bind(d.and_then(|d| d.commit_sha.as_deref()))
                .bind(d.and_then(|d| d.validation_status.as_deref()))
                .bind(time(state.map(|s| s.status_since)))
                .bind(time(state.and_then(|s| s.drift_received_at)))
                .bind(time(state.and_then(|s| s.commit_since)));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

static INSERT_TRANSITIONS: LazyLock<MultiRow> = LazyLock::new(|| {
    MultiRow::new(
        "INSERT INTO transitions (report_id, server_group, host, from_status, to_status, at, \
         kind, previous_duration_ms, commit_sha, changed_files_count)",
        10,
        "",
    )
});

/// Records the changes of status the group's reports made.
async fn insert_transitions(
    conn: &mut SqliteConnection,
    transitions: &[Transition],
) -> Result<(), StoreError> {
    for (sql, chunk) in INSERT_TRANSITIONS.chunks(transitions) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in chunk {
            query = query
                .bind(t.report_id)
                .bind(t.server_group.as_str())
                .bind(t.host.as_str())
                .bind(t.from_status.map(|s| s.as_str()))
                .bind(t.to_status.as_str())
                .bind(t.at.to_string())
                .bind(t.kind.as_str())
                .bind(t.previous_duration_ms)
                .bind(t.commit_sha.as_deref())
                .bind(t.changed_files_count as i64);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

static UPSERT_COMMITS: LazyLock<MultiRow> = LazyLock::new(|| {
    MultiRow::new(
        "INSERT INTO commits (server_group, commit_sha, branch, first_reported, last_reported)",
        5,
        " ON CONFLICT (server_group, commit_sha) DO UPDATE SET \
         branch = excluded.branch, last_reported = excluded.last_reported",
    )
});

/// Notes each commit the group's pipeline reports named (`Plan::commits`), one statement.
async fn upsert_commits(
    conn: &mut SqliteConnection,
    seen: &[CommitSeen<'_>],
) -> Result<(), StoreError> {
    for (sql, chunk) in UPSERT_COMMITS.chunks(seen) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (group, sha, branch, first, last) in chunk {
            query = query
                .bind(*group)
                .bind(*sha)
                .bind(*branch)
                .bind(first.to_string())
                .bind(last.to_string());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A key's fingerprint and stored answer, when it was used since `since` (the writer's
/// transaction and the read pool's fast path ask the same question).
pub(super) async fn stored_key<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    principal: &str,
    key: &str,
    since: &str,
) -> Result<Option<(String, StoredAnswer)>, StoreError> {
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT fingerprint, status, body FROM idempotency_keys
         WHERE principal = ?1 AND key = ?2 AND created_at >= ?3",
    )
    .bind(principal)
    .bind(key)
    .bind(since)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|(fingerprint, status, body)| {
        (
            fingerprint,
            StoredAnswer {
                status: u16::try_from(status).unwrap_or(200),
                body,
            },
        )
    }))
}
