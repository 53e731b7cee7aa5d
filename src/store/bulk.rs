//! Bulk loading, for benchmarks only (`--features bench`): appends generated reports to a
//! database through the writer's own row rendering and audit chain, but in large unsynced
//! transactions with the history's secondary indexes rebuilt at the end, so millions of rows
//! take minutes instead of hours. The result is a database the server opens like any other:
//! `verify` passes on it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::{Connection, SqliteConnection};

use crate::domain::{Head, Heads, Report, Timestamp};

use super::append::{insert_reports, load_tip, Link, NewRow};
use super::rows::{render_missing_status_rows, timestamp};
use super::writer::HostKey;
use super::{connect_options, open_for_writing, RenderRow, RequestMeta};

/// One generated report and the time the server is to have received it.
pub struct Generated {
    pub report: Report,
    pub meta: RequestMeta,
    pub received_at: Timestamp,
}

/// Rows per transaction.
const COMMIT_EVERY: u64 = 100_000;
/// Rows per batch of INSERT statements.
const BATCH: usize = 256;

/// Appends `reports` (in the order given, as if received then) to the database at `path`,
/// creating and migrating it if needed; returns how many rows it appended. Cron reports for
/// hosts that do not exist are skipped, as the server would refuse them.
pub async fn append(
    path: &Path,
    render: RenderRow,
    reports: impl IntoIterator<Item = Generated>,
) -> anyhow::Result<u64> {
    let (_, options) = connect_options(path);
    let options = options.synchronous(SqliteSynchronous::Off);
    let mut conn = open_for_writing(path, &options, render).await?;
    // The history's secondary indexes: dropped now, built again from scratch at the end,
    // which is much faster than growing them row by row.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master
         WHERE type = 'index' AND tbl_name = 'reports' AND sql IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut heads = load_heads(&mut conn).await?;
    let mut tip = load_tip(&mut conn).await?;

    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for (name, _) in &indexes {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
            .execute(&mut *tx)
            .await?;
    }
    let mut appended = 0u64;
    let mut batch: Vec<(NewRow, Link)> = Vec::with_capacity(BATCH);
    for generated in reports {
        let report = &generated.report;
        let key = HostKey::of(report);
        let known = heads.get(&key).map(|(heads, _)| *heads);
        if known.is_none() && !report.kind().may_create_host() {
            continue;
        }
        let received_at = generated.received_at;
        let observed_at = match report.reported_at {
            Some(at) if at <= received_at => at,
            _ => received_at,
        };
        let row = NewRow::new(report, generated.meta);
        let link = row.link(0, tip.next_id, received_at, observed_at, &tip.hash);
        tip.hash.clone_from(&link.hash);
        tip.next_id += 1;
        let new = Head {
            report_id: link.id,
            observed_at,
        };
        let advanced = known.unwrap_or_default().advance(report.facets(), new);
        heads.insert(key, (advanced, link.id));
        batch.push((row, link));
        appended += 1;
        if batch.len() == BATCH {
            flush(&mut tx, &mut batch).await?;
        }
        if appended.is_multiple_of(COMMIT_EVERY) {
            tx.commit().await?;
            tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        }
    }
    flush(&mut tx, &mut batch).await?;
    for (key, (heads, last_report_id)) in &heads {
        let (Some(status), Some(files)) = (heads.status, heads.files) else {
            anyhow::bail!("host {key} has no status");
        };
        // The row is rendered from current_status below, like any row still missing.
        sqlx::query(
            "INSERT INTO hosts (server_group, host, last_report_id, status_report_id,
                 files_report_id, pipeline_report_id, cron_report_id, status_row)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)
             ON CONFLICT (server_group, host) DO UPDATE SET
                 last_report_id = excluded.last_report_id,
                 status_report_id = excluded.status_report_id,
                 files_report_id = excluded.files_report_id,
                 pipeline_report_id = excluded.pipeline_report_id,
                 cron_report_id = excluded.cron_report_id, status_row = NULL",
        )
        .bind(&key.server_group)
        .bind(&key.host)
        .bind(last_report_id)
        .bind(status.report_id)
        .bind(files.report_id)
        .bind(heads.pipeline.map(|h| h.report_id))
        .bind(heads.cron_check.map(|h| h.report_id))
        .execute(&mut *tx)
        .await?;
    }
    for (_, sql) in &indexes {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("cannot rebuild {sql}"))?;
    }
    tx.commit().await?;
    render_missing_status_rows(&mut conn, render).await?;
    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(appended)
}

async fn flush(conn: &mut SqliteConnection, batch: &mut Vec<(NewRow, Link)>) -> anyhow::Result<()> {
    let rows: Vec<(&NewRow, &Link)> = batch.iter().map(|(row, link)| (row, link)).collect();
    insert_reports(conn, &rows).await?;
    batch.clear();
    Ok(())
}

/// Every host's facet heads and last report.
async fn load_heads(conn: &mut SqliteConnection) -> anyhow::Result<HashMap<HostKey, (Heads, i64)>> {
    type Row = (
        String,
        String,
        i64,
        i64,
        String,
        i64,
        String,
        Option<i64>,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT h.server_group, h.host, h.last_report_id,
                h.status_report_id, s.observed_at, h.files_report_id, f.observed_at,
                h.pipeline_report_id, p.observed_at, h.cron_report_id, c.observed_at
         FROM hosts h
         JOIN reports s ON s.id = h.status_report_id
         JOIN reports f ON f.id = h.files_report_id
         LEFT JOIN reports p ON p.id = h.pipeline_report_id
         LEFT JOIN reports c ON c.id = h.cron_report_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let head = |id: Option<i64>, at: Option<String>| -> anyhow::Result<Option<Head>> {
        Ok(match (id, at) {
            (Some(report_id), Some(at)) => Some(Head {
                report_id,
                observed_at: timestamp("observed_at", &at)?,
            }),
            _ => None,
        })
    };
    let mut heads = HashMap::with_capacity(rows.len());
    for (
        group,
        host,
        last,
        status,
        status_at,
        files,
        files_at,
        pipeline,
        pipeline_at,
        cron,
        cron_at,
    ) in rows
    {
        heads.insert(
            HostKey {
                server_group: group,
                host,
            },
            (
                Heads {
                    status: head(Some(status), Some(status_at))?,
                    files: head(Some(files), Some(files_at))?,
                    pipeline: head(pipeline, pipeline_at)?,
                    cron_check: head(cron, cron_at)?,
                },
                last,
            ),
        );
    }
    Ok(heads)
}
