//! The write path: one transaction per report appends it to `reports` and moves the host's
//! facet pointers in `hosts` (see `domain::merge`), then reads the host's new current state.

use sqlx::{Connection, SqliteConnection};

use crate::domain::{chain, Head, Heads, HostState, Report, Timestamp};

use super::chain::CANONICAL_VALUES;
use super::read::fetch_host_state;
use super::rows::timestamp;
use super::{Store, StoreError};

/// What the server knows about the request besides the report itself.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    /// The name of the token that authorised the write; None without tokens.
    pub principal: Option<String>,
    pub client_addr: Option<String>,
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    /// The body exactly as received; it must be valid JSON.
    pub raw_body: String,
}

/// The outcome of an accepted report.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The id of the new `reports` row.
    pub report_id: i64,
    /// The report created the host.
    pub created: bool,
    /// The report moved at least one part of the host's current state.
    pub changed: bool,
    /// Parts the report carried but did not move, because the host already held a newer
    /// observation there (`status`, `changed_files`, `deployment`, `last_cron_check`).
    pub kept_newer: Vec<&'static str>,
    /// The report's own time lay ahead of the server clock; it was ordered as of its arrival.
    pub ahead_of_clock: bool,
    pub state: HostState,
}

impl Store {
    /// Appends a report and updates the host's current state, atomically. When this returns
    /// `Ok`, the transaction is committed and on disk.
    #[tracing::instrument(skip_all, fields(kind = %report.kind(), server_group = %report.server_group, host = %report.host))]
    pub async fn record(
        &self,
        report: &Report,
        meta: &RequestMeta,
    ) -> Result<Recorded, StoreError> {
        let mut conn = self.writer.acquire().await?;
        let outcome = self.write_report(&mut conn, report, meta).await;
        if outcome
            .as_ref()
            .is_err_and(|e| !matches!(e, StoreError::UnknownHost { .. }))
        {
            // A failed COMMIT (disk full) can leave the connection's idea of its transaction
            // out of step with SQLite's; the next write gets a fresh connection.
            conn.close_on_drop();
        }
        self.note_write(outcome)
    }

    async fn write_report(
        &self,
        conn: &mut SqliteConnection,
        report: &Report,
        meta: &RequestMeta,
    ) -> Result<Recorded, StoreError> {
        // IMMEDIATE takes the write lock up front, so a writer outside this process (sqlite3)
        // makes us wait for busy_timeout instead of failing the transaction half-way.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let group = report.server_group.as_str();
        let host = report.host.as_str();

        let existing = load_heads(&mut tx, group, host).await?;
        if existing.is_none() && !report.kind().may_create_host() {
            return Err(StoreError::UnknownHost {
                server_group: report.server_group.clone(),
                host: report.host.clone(),
            });
        }

        // Stamped under the writer lock, so received_at follows id order.
        let received_at = Timestamp::now();
        // A report cannot have been observed after it arrived: a time ahead of the server clock
        // (a skewed client) orders as the arrival, so it cannot pin the host's state. The
        // client's time stays in its column and in raw_body.
        let observed_at = match report.reported_at {
            Some(at) if at <= received_at => at,
            _ => received_at,
        };
        let ahead_of_clock = report.reported_at.is_some_and(|at| at > received_at);
        if ahead_of_clock {
            tracing::warn!(client = ?meta.client_addr, "a report's own time lies ahead of the server clock; ordered by its arrival");
        }
        let (report_id, hash) =
            insert_report(&mut tx, report, meta, received_at, observed_at).await?;

        let new = Head {
            report_id,
            observed_at,
        };
        let (created, before) = match existing {
            Some((_, heads)) => (false, heads),
            None => (true, Heads::default()),
        };
        let after = before.advance(report.facets(), new);
        let kept_newer = after.kept_newer(report.facets(), new);
        let (Some(status), Some(files)) = (after.status, after.files) else {
            return Err(StoreError::Corrupt(format!(
                "host {group}/{host} would have no status report"
            )));
        };
        let pipeline = after.pipeline.map(|h| h.report_id);
        let cron = after.cron_check.map(|h| h.report_id);
        match existing {
            Some((host_id, _)) => {
                sqlx::query!(
                    "UPDATE hosts SET last_report_id = ?1, status_report_id = ?2,
                        files_report_id = ?3, pipeline_report_id = ?4, cron_report_id = ?5
                     WHERE id = ?6",
                    report_id,
                    status.report_id,
                    files.report_id,
                    pipeline,
                    cron,
                    host_id,
                )
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query!(
                    "INSERT INTO hosts (server_group, host, last_report_id, status_report_id,
                        files_report_id, pipeline_report_id, cron_report_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    group,
                    host,
                    report_id,
                    status.report_id,
                    files.report_id,
                    pipeline,
                    cron,
                )
                .execute(&mut *tx)
                .await?;
            }
        }

        let state = fetch_host_state(&mut *tx, group, host)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("host {group}/{host} vanished")))?;
        tx.commit().await?;
        // Published heads let an auditor detect a rewritten chain (see README, Security).
        if self.chain_log_every > 0 && report_id % self.chain_log_every == 0 {
            tracing::info!(id = report_id, hash = %hash, "audit chain head");
        }
        Ok(Recorded {
            report_id,
            created,
            changed: after != before,
            kept_newer,
            ahead_of_clock,
            state,
        })
    }
}

/// The host's row id and facet heads, or None for a host never seen.
async fn load_heads(
    conn: &mut SqliteConnection,
    group: &str,
    host: &str,
) -> Result<Option<(i64, Heads)>, StoreError> {
    let row = sqlx::query!(
        r#"SELECT h.id AS "id!",
                  h.status_report_id AS "status_id!", s.observed_at AS "status_at!",
                  h.files_report_id AS "files_id!", f.observed_at AS "files_at!",
                  h.pipeline_report_id AS "pipeline_id?", p.observed_at AS "pipeline_at?",
                  h.cron_report_id AS "cron_id?", c.observed_at AS "cron_at?"
           FROM hosts h
           JOIN reports s ON s.id = h.status_report_id
           JOIN reports f ON f.id = h.files_report_id
           LEFT JOIN reports p ON p.id = h.pipeline_report_id
           LEFT JOIN reports c ON c.id = h.cron_report_id
           WHERE h.server_group = ?1 AND h.host = ?2"#,
        group,
        host,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };

    let head = |id: Option<i64>, at: Option<String>| -> Result<Option<Head>, StoreError> {
        match (id, at) {
            (Some(report_id), Some(at)) => Ok(Some(Head {
                report_id,
                observed_at: timestamp("observed_at", &at)?,
            })),
            _ => Ok(None),
        }
    };
    let heads = Heads {
        status: head(Some(row.status_id), Some(row.status_at))?,
        files: head(Some(row.files_id), Some(row.files_at))?,
        pipeline: head(row.pipeline_id, row.pipeline_at)?,
        cron_check: head(row.cron_id, row.cron_at)?,
    };
    Ok(Some((row.id, heads)))
}

/// Appends the report as the next link of the audit chain; returns its id and hash.
async fn insert_report(
    conn: &mut SqliteConnection,
    report: &Report,
    meta: &RequestMeta,
    received_at: Timestamp,
    observed_at: Timestamp,
) -> Result<(i64, String), StoreError> {
    let kind = report.kind();
    let changed_files = report
        .changed_files()
        .map(|files| serde_json::to_string(files.as_slice()))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("changed_files: {e}")))?;
    let status = report.status().map(|s| s.as_str());
    let reported_at = report.reported_at.map(|t| t.to_string());
    let (last_pipeline_run, last_cron_check) = match kind {
        crate::domain::ReportKind::Pipeline => (reported_at, None),
        _ => (None, reported_at),
    };
    let empty = Default::default();
    let d = report.deployment().unwrap_or(&empty);
    let drift_count = report.drift_count().map(i64::from);
    let received_at = received_at.to_string();
    let observed_at = observed_at.to_string();
    let kind = kind.as_str();
    let group = report.server_group.as_str();
    let host = report.host.as_str();

    // The chain's tip. Ids are given here, not by SQLite, because the hash covers the id; the
    // writer lock makes this safe. sqlite_sequence remembers ids even after rows are deleted.
    let (seq, tip): (Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'reports'),
                (SELECT hash FROM reports ORDER BY id DESC LIMIT 1)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let id = seq.unwrap_or(0) + 1;
    let prev_hash = tip.unwrap_or_else(|| chain::GENESIS.to_owned());
    // SQLite renders the canonical text, exactly as `verify` and an auditor's sqlite3 will
    // from the stored row.
    let canonical: String = sqlx::query_scalar(sqlx::AssertSqlSafe(CANONICAL_VALUES))
        .bind(id)
        .bind(&received_at)
        .bind(kind)
        .bind(group)
        .bind(host)
        .bind(status)
        .bind(&changed_files)
        .bind(&d.project_name)
        .bind(&d.repo_name)
        .bind(&d.server_type)
        .bind(&d.environment)
        .bind(&d.validation_status)
        .bind(&d.validation_message)
        .bind(&d.commit_sha)
        .bind(&d.branch)
        .bind(&d.updated_by)
        .bind(&last_pipeline_run)
        .bind(&last_cron_check)
        .bind(drift_count)
        .bind(&observed_at)
        .bind(&meta.principal)
        .bind(&meta.client_addr)
        .bind(&meta.forwarded_for)
        .bind(&meta.user_agent)
        .bind(&meta.raw_body)
        .fetch_one(&mut *conn)
        .await?;
    let hash = chain::link(&prev_hash, &canonical);
    sqlx::query!(
        r#"INSERT INTO reports (
               id, received_at, kind, server_group, host, status, changed_files,
               project_name, repo_name, server_type, environment,
               validation_status, validation_message, commit_sha, branch, updated_by,
               last_pipeline_run, last_cron_check, drift_count, observed_at,
               principal, client_addr, forwarded_for, user_agent, raw_body, prev_hash, hash)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                   ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"#,
        id,
        received_at,
        kind,
        group,
        host,
        status,
        changed_files,
        d.project_name,
        d.repo_name,
        d.server_type,
        d.environment,
        d.validation_status,
        d.validation_message,
        d.commit_sha,
        d.branch,
        d.updated_by,
        last_pipeline_run,
        last_cron_check,
        drift_count,
        observed_at,
        meta.principal,
        meta.client_addr,
        meta.forwarded_for,
        meta.user_agent,
        meta.raw_body,
        prev_hash,
        hash,
    )
    .execute(&mut *conn)
    .await?;
    Ok((id, hash))
}
