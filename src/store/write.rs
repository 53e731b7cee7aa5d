//! The write path: one transaction per report appends it to `reports` and moves the host's
//! facet pointers in `hosts` (see `domain::merge`), then reads the host's new current state.

use sqlx::SqliteConnection;

use crate::domain::{Head, Heads, HostState, Report, Timestamp};

use super::read::fetch_host_state;
use super::rows::timestamp;
use super::{Store, StoreError};

/// What the server knows about the request besides the report itself.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
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
        // IMMEDIATE takes the write lock up front, so a writer outside this process (sqlite3)
        // makes us wait for busy_timeout instead of failing the transaction half-way.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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
        let observed_at = report.reported_at.unwrap_or(received_at);
        let report_id = insert_report(&mut tx, report, meta, received_at, observed_at).await?;

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
        Ok(Recorded {
            report_id,
            created,
            changed: after != before,
            kept_newer,
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

async fn insert_report(
    conn: &mut SqliteConnection,
    report: &Report,
    meta: &RequestMeta,
    received_at: Timestamp,
    observed_at: Timestamp,
) -> Result<i64, StoreError> {
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
    let id = sqlx::query_scalar!(
        r#"INSERT INTO reports (
               received_at, kind, server_group, host, status, changed_files,
               project_name, repo_name, server_type, environment,
               validation_status, validation_message, commit_sha, branch, updated_by,
               last_pipeline_run, last_cron_check, drift_count, observed_at,
               client_addr, forwarded_for, user_agent, raw_body)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                   ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)
           RETURNING id AS "id!""#,
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
        meta.client_addr,
        meta.forwarded_for,
        meta.user_agent,
        meta.raw_body,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}
