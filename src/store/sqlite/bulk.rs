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

use crate::domain::{Heads, Report, Status, Tier, Timestamp};

use super::append::{insert_reports, load_tip};
use super::lock::WriterLock;
use super::read::render_missing_status_rows;
use super::rows::head;
use super::writer::upsert_hosts;
use super::{connect_options, open_for_writing, RenderRow, RequestMeta};
use crate::store::append::NewRow;
use crate::store::group::{HostKey, HostPointers};

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
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let lock = WriterLock::acquire(path)?;
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
    // What each host's reports of this run left of its status and files, for their tiers
    // (the generated reports arrive in observation order).
    let mut said: HashMap<HostKey, (Status, Vec<String>)> = HashMap::new();
    let mut tip = load_tip(&mut conn).await?;

    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for (name, _) in &indexes {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
            .execute(&mut *tx)
            .await?;
    }
    let mut appended = 0u64;
    let mut batch: Vec<NewRow> = Vec::with_capacity(BATCH);
    for generated in reports {
        let report = &generated.report;
        let key = HostKey::of(report);
        let known = heads.get(&key).map(|(heads, _)| *heads);
        if known.is_none() && !report.kind().may_create_host() {
            continue;
        }
        let received_at = generated.received_at;
        let observed_at = report.observed_at(received_at);
        let before = said.get(&key).cloned();
        let after = match (report.status(), &before) {
            (Some(status), _) => Some((
                status,
                report
                    .changed_files()
                    .map(|f| f.as_slice().to_vec())
                    .unwrap_or_default(),
            )),
            (None, Some((status, files))) => Some((
                *status,
                report
                    .changed_files()
                    .map_or_else(|| files.clone(), |f| f.as_slice().to_vec()),
            )),
            (None, None) => None,
        };
        // A host the database already had but this run has not seen is compared with nothing:
        // its first generated report counts as a change.
        let tier = Tier::of(
            report.kind(),
            before.as_ref().map(|(s, f)| (*s, f.as_slice())),
            after.as_ref().map(|(s, f)| (*s, f.as_slice())),
        );
        if let Some(after) = after {
            said.insert(key.clone(), after);
        }
        let mut row = NewRow::of_report(report, generated.meta);
        row.record.is_change = i64::from(tier.is_change());
        let id = tip.next_id;
        row.link(id, received_at, observed_at, &tip.hash);
        tip.hash.clone_from(&row.record.hash);
        tip.next_id += 1;
        let advanced = known
            .unwrap_or_default()
            .advance(report.facet_times(received_at), id);
        heads.insert(key, (advanced, id));
        batch.push(row);
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
    // Their rows are rendered from current_status below, like any row still missing.
    let pointers: Vec<HostPointers> = heads
        .iter()
        .map(|(key, (heads, last_report_id))| HostPointers {
            key,
            heads: *heads,
            last_report_id: *last_report_id,
            status_row: None,
            state: None,
        })
        .collect();
    upsert_hosts(&mut tx, &pointers).await?;
    for (_, sql) in &indexes {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("cannot rebuild {sql}"))?;
    }
    // Transitions, commits and the hosts' copies of their state, as after a migration.
    super::derive::derive(&mut tx).await?;
    tx.commit().await?;
    render_missing_status_rows(&mut conn, render).await?;
    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    lock.release();
    Ok(appended)
}

async fn flush(conn: &mut SqliteConnection, batch: &mut Vec<NewRow>) -> anyhow::Result<()> {
    let rows: Vec<&super::record::ReportRecord> = batch.iter().map(|row| &row.record).collect();
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
                    status: head(Some(status), Some(&status_at))?,
                    files: head(Some(files), Some(&files_at))?,
                    pipeline: head(pipeline, pipeline_at.as_deref())?,
                    cron_check: head(cron, cron_at.as_deref())?,
                },
                last,
            ),
        );
    }
    Ok(heads)
}
