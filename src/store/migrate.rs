//! `migrate-db`: copies a SQLite history into an empty PostgreSQL database, every table row
//! for row (the chain's rows byte for byte, so they verify there), in one PostgreSQL
//! transaction: the target holds all of it or nothing. The source is read in one snapshot
//! under its writer lock, so no server writes it meanwhile.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};

/// Rows per statement.
const BATCH: i64 = 5_000;

/// A table to copy, in an order that the target's constraints accept, and how to page it.
struct Table {
    name: &'static str,
    /// An integer column that orders the rows and pages them (keyset); None: a small table
    /// paged by its primary key with OFFSET (SQLite's WITHOUT ROWID tables).
    key: Option<&'static str>,
    order: &'static str,
}

const TABLES: &[Table] = &[
    Table {
        name: "reports",
        key: Some("id"),
        order: "id",
    },
    Table {
        name: "hosts",
        key: Some("id"),
        order: "id",
    },
    Table {
        name: "transitions",
        key: Some("report_id"),
        order: "report_id",
    },
    Table {
        name: "commits",
        key: None,
        order: "server_group, commit_sha",
    },
    Table {
        name: "imported_entries",
        key: None,
        order: "server_group, host, entry_sha256",
    },
    Table {
        name: "idempotency_keys",
        key: None,
        order: "principal, key",
    },
];

/// What was copied.
#[derive(Debug, Default)]
pub struct Copied {
    /// (table, rows), in copy order.
    pub tables: Vec<(&'static str, u64)>,
    pub seconds: f64,
}

/// Copies the SQLite database at `from` (at this release's schema version, which a server
/// start gives it) into the empty PostgreSQL database `to`, migrating it first.
pub async fn sqlite_to_postgres(from: &Path, to: &PgConnectOptions) -> anyhow::Result<Copied> {
    let started = Instant::now();
    // No server or import may write the file while it is copied.
    let _lock = super::sqlite::lock::WriterLock::acquire(from)?;
    let mut source = super::sqlite::connect_read_only(from).await?;
    super::sqlite::check_schema(from, &mut source).await?;
    let pending: Option<String> = sqlx::query_scalar("SELECT name FROM store_tasks LIMIT 1")
        .fetch_optional(&mut source)
        .await?;
    if let Some(task) = pending {
        bail!(
            "{} still has work queued for the server's next start ({task}): start the server \
             on it once, stop it, then migrate",
            from.display()
        );
    }
    let mut target = PgConnection::connect_with(to)
        .await
        .context("cannot connect to the target database")?;
    gitops_status_postgres::MIGRATOR
        .run(&mut target)
        .await
        .context("cannot migrate the target database")?;

    // One snapshot of the source, one transaction on the target.
    let mut snapshot = source.begin().await?;
    let mut tx = target.begin().await?;
    for table in TABLES {
        let any: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            table.name
        )))
        .fetch_one(&mut *tx)
        .await?;
        ensure!(
            !any,
            "the target database is not empty: its table {} has rows; migrate-db copies into \
             an empty database only",
            table.name
        );
    }
    let mut copied = Copied::default();
    for table in TABLES {
        let columns = columns(&mut snapshot, &mut tx, table.name).await?;
        let n = copy_table(&mut snapshot, &mut tx, table, &columns).await?;
        tracing::info!(table = table.name, rows = n, "copied");
        copied.tables.push((table.name, n));
    }
    // What the schema's migration left for a new database's first start: this one is derived.
    sqlx::query("DELETE FROM store_tasks")
        .execute(&mut *tx)
        .await?;
    // The next report continues SQLite's ids, which never reuse one (even one retention
    // removed from the end), and new hosts get ids after the copied ones.
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'reports'")
            .fetch_optional(&mut *snapshot)
            .await?;
    sqlx::query("UPDATE reports_sequence SET seq = greatest(seq, $1) WHERE id = 1")
        .bind(seq.unwrap_or(0))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('hosts', 'id'), coalesce(max(id), 0) + 1, false)
         FROM hosts",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    snapshot.rollback().await?;
    copied.seconds = started.elapsed().as_secs_f64();
    Ok(copied)
}

/// The columns of `table`, which both databases must have alike.
async fn columns(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    table: &str,
) -> anyhow::Result<Vec<String>> {
    let mut from: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
    )))
    .fetch_all(&mut *source)
    .await?;
    let mut to: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *target)
    .await?;
    let ordered = from.clone();
    from.sort();
    to.sort();
    ensure!(
        from == to,
        "the table {table} has columns {from:?} in SQLite and {to:?} in PostgreSQL: this \
         release's two schemas do not match"
    );
    Ok(ordered)
}

/// Copies one table in pages of `BATCH` rows: each page is one JSON array from SQLite
/// (`json_object` keeps every text byte for byte) and one INSERT in PostgreSQL.
async fn copy_table(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    table: &Table,
    columns: &[String],
) -> anyhow::Result<u64> {
    let object = columns
        .iter()
        .map(|c| format!("'{c}', {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let list = columns.join(", ");
    let insert = format!(
        "INSERT INTO {name} ({list}) SELECT {list} \
         FROM json_populate_recordset(NULL::{name}, $1::text::json)",
        name = table.name
    );
    let mut copied = 0u64;
    let mut after = i64::MIN;
    loop {
        let page: (Option<i64>, i64, Option<String>) = match table.key {
            Some(key) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT max({key}), count(*), json_group_array(json_object({object}))
                     FROM (SELECT * FROM {name} WHERE {key} > ?1 ORDER BY {key} LIMIT ?2)",
                    name = table.name
                )))
                .bind(after)
                .bind(BATCH)
                .fetch_one(&mut *source)
                .await?
            }
            None => {
                let offset = i64::try_from(copied).unwrap_or(i64::MAX);
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT NULL, count(*), json_group_array(json_object({object}))
                     FROM (SELECT * FROM {name} ORDER BY {order} LIMIT ?1 OFFSET ?2)",
                    name = table.name,
                    order = table.order
                )))
                .bind(BATCH)
                .bind(offset)
                .fetch_one(&mut *source)
                .await?
            }
        };
        let (last, count, rows) = page;
        if count == 0 {
            break;
        }
        let rows = rows.unwrap_or_else(|| "[]".to_owned());
        sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
            .bind(rows)
            .execute(&mut *target)
            .await
            .with_context(|| format!("cannot copy rows of {} into PostgreSQL", table.name))?;
        copied += u64::try_from(count).unwrap_or(0);
        match last {
            Some(last) => after = last,
            None if table.key.is_some() => break,
            None => {}
        }
    }
    Ok(copied)
}
