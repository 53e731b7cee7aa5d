//! The read path: current state from the `current_status` view and the audit trail from
//! `reports`. Reads use the read-only pool and never wait for the writer.

use sqlx::{QueryBuilder, Sqlite, SqliteExecutor};

use crate::domain::{HistoryEntry, HistoryFilter, HostName, HostState, ServerGroup};

use super::record::{self, ReportRecord};
use super::rows::HostStateRow;

use super::{SqliteStore, StoreError};

/// The current state of one host (an indexed lookup plus primary-key joins).
pub(super) async fn fetch_host_state<'e>(
    executor: impl SqliteExecutor<'e>,
    group: &str,
    host: &str,
) -> Result<Option<HostState>, StoreError> {
    let row = sqlx::query_as!(
        HostStateRow,
        r#"SELECT project_name, repo_name, server_group AS "server_group!", server_type,
                  environment, host AS "host!", status AS "status!",
                  changed_files AS "changed_files!", validation_status, validation_message,
                  last_pipeline_run AS "last_pipeline_run?: String",
                  last_cron_check AS "last_cron_check?: String", commit_sha, branch, updated_by,
                  timestamp AS "timestamp!", status_observed_at AS "status_observed_at!",
                  reported_drift_count, status_since AS "status_since!: String",
                  drift_received_at AS "drift_received_at?: String",
                  commit_since AS "commit_since?: String"
           FROM current_status
           WHERE server_group = ?1 AND host = ?2"#,
        group,
        host,
    )
    .fetch_optional(executor)
    .await?;
    row.map(HostState::try_from).transpose()
}

impl SqliteStore {
    /// One host's current state, None when the host was never reported.
    #[tracing::instrument(skip_all)]
    pub async fn host_state(
        &self,
        group: &ServerGroup,
        host: &HostName,
    ) -> Result<Option<HostState>, StoreError> {
        fetch_host_state(&self.readers, group.as_str(), host.as_str()).await
    }

    /// The host that received the most recent v1 report (in `group`, or with name `host`,
    /// when given); None when there is none.
    #[tracing::instrument(skip_all)]
    pub async fn latest_legacy_host(
        &self,
        group: Option<&ServerGroup>,
        host: Option<&HostName>,
    ) -> Result<Option<HostState>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        let group = group.map(ServerGroup::as_str);
        let host = host.map(HostName::as_str);
        // The newest v1 report of a host still in the fleet, sent since it last joined it.
        let key = sqlx::query!(
            r#"SELECT r.server_group AS "server_group!", r.host AS "host!" FROM reports r
             WHERE r.kind = 'legacy' AND (?1 IS NULL OR r.server_group = ?1)
               AND (?2 IS NULL OR r.host = ?2)
               AND EXISTS (SELECT 1 FROM hosts h
                           WHERE h.server_group = r.server_group AND h.host = r.host)
               AND NOT EXISTS (SELECT 1 FROM reports d
                               WHERE d.server_group = r.server_group AND d.host = r.host
                                 AND d.kind = 'decommission' AND d.id > r.id)
             ORDER BY r.id DESC LIMIT 1"#,
            group,
            host
        )
        .fetch_optional(&mut *conn)
        .await?;
        match key {
            Some(key) => fetch_host_state(&mut *conn, &key.server_group, &key.host).await,
            None => Ok(None),
        }
    }

    /// When the oldest row still in the history was received.
    pub async fn oldest_report(&self) -> Result<Option<crate::domain::Timestamp>, StoreError> {
        let oldest: Option<String> =
            sqlx::query_scalar("SELECT received_at FROM reports ORDER BY id LIMIT 1")
                .fetch_optional(&self.readers)
                .await?;
        oldest
            .map(|t| super::rows::timestamp("received_at", &t))
            .transpose()
    }

    /// Whether an entry of an old server's file (by the SHA-256 of its JSON, keys sorted) was
    /// imported for this host before.
    pub async fn imported_before(
        &self,
        group: &ServerGroup,
        host: &HostName,
        entry_sha256: &str,
    ) -> Result<bool, StoreError> {
        let found: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM imported_entries
                            WHERE server_group = ?1 AND host = ?2 AND entry_sha256 = ?3)",
        )
        .bind(group.as_str())
        .bind(host.as_str())
        .bind(entry_sha256)
        .fetch_one(&self.readers)
        .await?;
        Ok(found == 1)
    }

    /// The audit trail, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn history(&self, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM reports WHERE 1 = 1",
            record::column_list()
        ));
        super::fleet::push_any_text(&mut query, "server_group", &filter.server_group);
        super::fleet::push_any_text(&mut query, "host", &filter.host);
        if !filter.kind.is_empty() {
            query.push(" AND kind IN (");
            let mut list = query.separated(", ");
            for kind in filter.kind.iter() {
                list.push_bind(kind.as_str());
            }
            query.push(")");
        }
        super::fleet::push_any_status(&mut query, "status", &filter.status);
        if let Some(from) = filter.from {
            query
                .push(" AND received_at >= ")
                .push_bind(from.to_string());
        }
        if let Some(to) = filter.to {
            query.push(" AND received_at <= ").push_bind(to.to_string());
        }
        if let Some(before) = filter.before {
            query.push(" AND id < ").push_bind(before);
        }
        // SQLite integers are signed 64-bit; an offset beyond that matches nothing anyway.
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit))
            .push(" OFFSET ")
            .push_bind(offset);
        let rows: Vec<ReportRecord> = query.build_query_as().fetch_all(&self.readers).await?;
        rows.into_iter().map(HistoryEntry::try_from).collect()
    }
}

/// Renders the `status_row` of every host that has none yet (a database from before rows
/// were materialised, or after a migration that changed their format), in one transaction.
/// Returns how many it rendered. Uses the partial index on missing rows, so an up-to-date
/// database costs one index probe.
pub(super) async fn render_missing_status_rows(
    conn: &mut sqlx::SqliteConnection,
    render: super::RenderRow,
) -> Result<u64, StoreError> {
    use sqlx::Connection;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let missing = sqlx::query!(
        r#"SELECT server_group AS "server_group!", host AS "host!" FROM hosts
           WHERE status_row IS NULL"#
    )
    .fetch_all(&mut *tx)
    .await?;
    for key in &missing {
        let state = fetch_host_state(&mut *tx, &key.server_group, &key.host)
            .await?
            .ok_or_else(|| {
                super::rows::corrupt(
                    "hosts",
                    format!("{}/{} has no current state", key.server_group, key.host),
                )
            })?;
        let row = render(&state).map_err(|e| super::rows::corrupt("status_row", e.to_string()))?;
        sqlx::query!(
            "UPDATE hosts SET status_row = ?1 WHERE server_group = ?2 AND host = ?3",
            row,
            key.server_group,
            key.host
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(missing.len() as u64)
}
