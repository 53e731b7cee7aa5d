//! The read path on PostgreSQL: current state from the `current_status` view and the audit
//! trail from `reports`, through the read pool. The fixed SQL is checked in `crates/postgres`;
//! the history's filters are built here.

use gitops_status_postgres as checked;
use sqlx::{PgExecutor, Postgres, QueryBuilder};

use crate::domain::{HistoryEntry, HistoryFilter, HostName, HostState, ServerGroup, Timestamp};
use crate::store::StoredAnswer;

use super::record::{self, ReportRecord};
use super::rows::{timestamp, HostStateRow};
use super::{PgStore, StoreError};

/// The current state of one host (an indexed lookup plus primary-key joins).
pub(super) async fn fetch_host_state<'e>(
    executor: impl PgExecutor<'e>,
    group: &str,
    host: &str,
) -> Result<Option<HostState>, StoreError> {
    let row = checked::current_status(executor, group, host).await?;
    row.map(|r| {
        HostState::try_from(HostStateRow {
            project_name: r.project_name,
            repo_name: r.repo_name,
            server_group: r.server_group,
            server_type: r.server_type,
            environment: r.environment,
            host: r.host,
            status: r.status,
            changed_files: r.changed_files,
            validation_status: r.validation_status,
            validation_message: r.validation_message,
            last_pipeline_run: r.last_pipeline_run,
            last_cron_check: r.last_cron_check,
            commit_sha: r.commit_sha,
            branch: r.branch,
            updated_by: r.updated_by,
            timestamp: r.timestamp,
            status_observed_at: r.status_observed_at,
            reported_drift_count: r.reported_drift_count,
            status_since: r.status_since,
            drift_received_at: r.drift_received_at,
            commit_since: r.commit_since,
        })
    })
    .transpose()
}

/// The answer stored with `principal`'s `key` at or after `since`: its fingerprint and
/// answer. The writer reads it in its transaction, a retry through the read pool.
pub(super) async fn stored_key<'e>(
    executor: impl PgExecutor<'e>,
    principal: &str,
    key: &str,
    since: &str,
) -> Result<Option<(String, StoredAnswer)>, StoreError> {
    let row = checked::idempotency_answer(executor, principal, key, since).await?;
    Ok(row.map(|r| {
        (
            r.fingerprint,
            StoredAnswer {
                // The schema allows 200–299 only.
                status: u16::try_from(r.status).unwrap_or(200),
                body: r.body,
            },
        )
    }))
}

impl PgStore {
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
        let key = checked::latest_legacy_host(
            &mut *conn,
            group.map(ServerGroup::as_str),
            host.map(HostName::as_str),
        )
        .await?;
        // A decommission committed between the two reads leaves no state: None, as for a
        // host that is gone.
        match key {
            Some(key) => fetch_host_state(&mut *conn, &key.server_group, &key.host).await,
            None => Ok(None),
        }
    }

    /// When the oldest row still in the history was received.
    pub async fn oldest_report(&self) -> Result<Option<Timestamp>, StoreError> {
        checked::oldest_received_at(&self.readers)
            .await?
            .map(|t| timestamp("received_at", &t))
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
        Ok(
            checked::imported_before(&self.readers, group.as_str(), host.as_str(), entry_sha256)
                .await?,
        )
    }

    /// The answer stored with a key used within the window, read without the writer (a retry
    /// after its first answer was lost): its fingerprint and answer.
    pub async fn stored_answer(
        &self,
        principal: &str,
        key: &str,
        now: Timestamp,
        window: crate::domain::Period,
    ) -> Result<Option<(String, StoredAnswer)>, StoreError> {
        let since = now.checked_sub(window).unwrap_or(now).to_string();
        stored_key(&self.readers, principal, key, &since).await
    }

    /// The audit trail, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn history(&self, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(format!(
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
        // BIGINT is signed 64-bit; an offset beyond that matches nothing anyway.
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
