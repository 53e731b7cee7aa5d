//! The SQLite backend. One writer task owns the only write connection and commits reports in
//! groups (so concurrent POSTs share transactions instead of meeting SQLITE_BUSY), a pool of
//! read-only connections serves the GETs, and WAL lets them run side by side: reads never wait
//! for the writer. Migrations in `migrations/` run at start-up. The PRAGMAs, `sqlite_sequence`
//! and `json_object` stay in here, behind the verbs of `super::Database`.

mod append;
pub mod backup;
#[cfg(feature = "bench")]
pub mod bulk;
pub mod chain;
mod derive;
mod fleet;
pub mod lock;
mod read;
pub mod retention;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use crate::domain::{Period, Report, StalePolicy};

// What the modules below reach as `super::…`.
use super::writer::{OnceKey, Recorded, RequestMeta, StoredAnswer, WriterTask, Written};
use super::{record, rows, FileSizes, RenderRow, StatusRows, StoreConfig, StoreError};

/// `migrations/`, embedded once: run at start-up, and the schema version `verify` expects.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// How long a read may wait for a connection of the read pool.
const READ_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SQLite retries a locked database (another process, a checkpoint) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database: one writer task and a read pool over one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: super::writer::WriterHandle,
    readers: SqlitePool,
    path: PathBuf,
    lock: lock::WriterLock,
    stale_policy: Arc<StalePolicy>,
    /// The SQL of a host's `report_due_by` under `stale_policy`.
    due_by: Arc<str>,
    idempotency_window: Period,
}

/// Logs the durability settings the writer actually runs with (read back from SQLite, not
/// from our options), so an operator and the tests can see them.
async fn log_settings(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await?;
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await?;
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await?;
    let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await?;
    let synchronous = match synchronous {
        0 => "off",
        1 => "normal",
        2 => "full",
        3 => "extra",
        _ => "unknown",
    };
    tracing::info!(
        journal_mode,
        synchronous,
        foreign_keys = foreign_keys == 1,
        busy_timeout_ms,
        "database opened"
    );
    Ok(())
}

/// The options every connection uses, and the write connection's on top of them.
fn connect_options(path: &Path) -> (SqliteConnectOptions, SqliteConnectOptions) {
    let base = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT);
    let writer = base
        .clone()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk (WAL fsynced) before we answer 2xx.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .optimize_on_close(true, 400);
    (base, writer)
}

/// A read-only connection to an existing database file, for the commands that only read it
/// (verify, backup): safe while a server writes it.
pub(crate) async fn connect_read_only(path: &Path) -> anyhow::Result<SqliteConnection> {
    anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT);
    SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Applies the migrations the database lacks, on a connection of its own that does not log
/// their SQL (a rebuild of a large history runs for a minute: sqlx would log all of it).
async fn migrate(path: &Path, options: &SqliteConnectOptions) -> anyhow::Result<()> {
    use sqlx::ConnectOptions;
    let mut conn = SqliteConnection::connect_with(&options.clone().disable_statement_logging())
        .await
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    let applied: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let pending: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if !applied.is_empty() && !pending.is_empty() {
        tracing::info!(
            migrations = %pending.join(", "),
            "migrating the database; a rebuild takes about a minute per 5 million reports"
        );
    }
    let started = std::time::Instant::now();
    MIGRATOR
        .run(&mut conn)
        .await
        .with_context(|| format!("cannot migrate the database {}", path.display()))?;
    if !applied.is_empty() && !pending.is_empty() {
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "database migrated"
        );
    }
    conn.close().await?;
    Ok(())
}

/// Refuses a database whose schema is not the one this build migrates to: `verify` and the
/// other read-only commands never migrate, so they name the versions instead of failing on
/// a missing column.
pub(crate) async fn check_schema(path: &Path, conn: &mut SqliteConnection) -> anyhow::Result<()> {
    let expected = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let found: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "{} has no readable migrations table, so it is not a gitops-status \
                     database this release can read: {err}",
                    path.display()
                )
            })?;
    match found {
        Some(found) if found == expected => Ok(()),
        Some(found) if found < expected => anyhow::bail!(
            "{} has schema version {found} and this gitops-status reads version {expected}: \
             start the server on it once (it migrates at start-up), or use the release that \
             wrote it",
            path.display()
        ),
        Some(found) => anyhow::bail!(
            "{} has schema version {found}, newer than the {expected} this gitops-status \
             reads: use the release that wrote it",
            path.display()
        ),
        None => anyhow::bail!(
            "{} has no migration applied: it is not a gitops-status database",
            path.display()
        ),
    }
}

/// Opens (creating it and its parent folders if needed) and migrates the database, renders
/// the hosts' status rows still missing, and returns the write connection.
async fn open_for_writing(
    path: &Path,
    options: &SqliteConnectOptions,
    render: RenderRow,
) -> anyhow::Result<SqliteConnection> {
    migrate(path, options).await?;
    let mut conn = SqliteConnection::connect_with(options)
        .await
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    log_settings(&mut conn).await?;
    let started = std::time::Instant::now();
    if derive::run_pending(&mut conn)
        .await
        .with_context(|| format!("cannot derive the hosts' transitions in {}", path.display()))?
    {
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "derived status_since, transitions and commits from the history"
        );
    }
    let rendered = read::render_missing_status_rows(&mut conn, render)
        .await
        .with_context(|| format!("cannot render the status rows of {}", path.display()))?;
    if rendered > 0 {
        tracing::info!(hosts = rendered, "rendered the hosts' status rows");
    }
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating it and its parent folders if needed) and migrates the database,
    /// renders the hosts' status rows still missing, and readies the writer: the caller runs
    /// the returned task (under its supervisor); until it does, writes wait.
    pub async fn open(
        path: &Path,
        config: StoreConfig,
    ) -> anyhow::Result<(SqliteStore, WriterTask)> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the folder {}", parent.display()))?;
        }
        let lock = lock::WriterLock::acquire(path)?;
        let (base, writer_options) = connect_options(path);
        let conn = open_for_writing(path, &writer_options, config.render_row).await?;
        // Readers open after the writer so the file exists and is already in WAL mode.
        let readers = SqlitePoolOptions::new()
            .max_connections(config.read_connections.max(1))
            .acquire_timeout(READ_ACQUIRE_TIMEOUT)
            .connect_with(base.read_only(true))
            .await
            .with_context(|| format!("cannot open the database {} for reading", path.display()))?;
        let (writer, task) = writer::start(
            conn,
            writer_options,
            super::writer::WriterConfig {
                queue: config.write_queue,
                chain_log_every: i64::try_from(config.chain_log_every).unwrap_or(i64::MAX),
                render: config.render_row,
                clock: config.clock,
                idempotency_window: config.idempotency_window,
                metrics: config.metrics,
                panic_on_host: config.panic_on_host,
            },
        )
        .await
        .with_context(|| format!("cannot read the audit chain of {}", path.display()))?;
        let store = SqliteStore {
            writer,
            readers,
            path: path.to_owned(),
            lock,
            due_by: fleet::due_by_sql(&config.stale_policy).into(),
            idempotency_window: config.idempotency_window,
            stale_policy: Arc::new(config.stale_policy),
        };
        Ok((store, task))
    }

    /// How long an Idempotency-Key is remembered.
    pub fn idempotency_window(&self) -> Period {
        self.idempotency_window
    }

    /// When silent hosts turn stale.
    pub fn stale_policy(&self) -> &Arc<StalePolicy> {
        &self.stale_policy
    }

    /// Appends a report and updates its host's current state, atomically, in the writer's
    /// next group commit. When this returns `Ok`, the transaction is committed and on disk.
    #[tracing::instrument(skip_all, fields(kind = %report.kind(), server_group = %report.server_group, host = %report.host))]
    pub async fn record(&self, report: Report, meta: RequestMeta) -> Result<Recorded, StoreError> {
        match self.writer.record(report, meta, None).await? {
            Written::Fresh(recorded, _) => Ok(*recorded),
            Written::Replayed(_) => Err(StoreError::Corrupt(
                "a report without a key was replayed".to_owned(),
            )),
        }
    }

    /// Appends a report sent with an Idempotency-Key, unless the key was used within the
    /// window: then nothing is written and the answer stored with it comes back (or
    /// `KeyReused` when it was used for a different request). The check and the write happen
    /// in the writer, one report after another, so two requests racing with one key give one
    /// row; the key is stored in the report's transaction, so it survives a restart.
    #[tracing::instrument(skip_all, fields(kind = %report.kind(), server_group = %report.server_group, host = %report.host))]
    pub async fn record_once(
        &self,
        report: Report,
        meta: RequestMeta,
        once: OnceKey,
    ) -> Result<Written, StoreError> {
        self.writer.record(report, meta, Some(once)).await
    }

    /// The answer stored with a key used within the window, read without the writer (a retry
    /// after its first answer was lost): its fingerprint and answer.
    pub async fn stored_answer(
        &self,
        principal: &str,
        key: &str,
        now: crate::domain::Timestamp,
        window: Period,
    ) -> Result<Option<(String, StoredAnswer)>, StoreError> {
        let since = now.checked_sub(window).unwrap_or(now).to_string();
        writer::stored_key(&self.readers, principal, key, &since).await
    }

    /// Appends every report in one transaction, or none: a report that cannot be written
    /// (a drift check for an unknown host) fails them all.
    pub async fn record_all(
        &self,
        reports: Vec<(Report, RequestMeta)>,
    ) -> Result<Vec<Recorded>, StoreError> {
        self.writer.record_all(reports).await
    }

    /// The id of the newest committed report: it changes whenever what readers see changes.
    pub async fn version(&self) -> Result<i64, StoreError> {
        Ok(self.writer.committed())
    }

    /// Readiness: the schema answers a query through the read pool, and the database takes
    /// writes. After a write failed (disk full, read-only), a one-row probe write tells when
    /// it takes them again, so readiness recovers without waiting for a client to write.
    pub async fn check(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM current_status LIMIT 1")
            .fetch_optional(&self.readers)
            .await?;
        if self.write_fault().is_some() {
            self.writer.probe().await?;
        }
        Ok(())
    }

    /// Reports waiting for the writer.
    pub fn queued(&self) -> usize {
        self.writer.queued()
    }

    /// Reports that may wait for the writer.
    pub fn queue_capacity(&self) -> usize {
        self.writer.capacity()
    }

    /// The database file's size and its write-ahead log's, in bytes (0 for a file not there).
    pub async fn file_sizes(&self) -> FileSizes {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        FileSizes {
            database: size(&self.path),
            wal: size(Path::new(&wal)),
        }
    }

    /// Whether the writer task runs.
    pub fn writer_up(&self) -> bool {
        self.writer.is_up()
    }

    /// Why writes currently fail, if they do.
    pub fn write_fault(&self) -> Option<String> {
        self.writer.fault()
    }

    /// Lets the writer finish what is queued, waits for in-flight queries, then closes every
    /// connection. Closing the last connection checkpoints the WAL into the main file.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
        self.lock.release();
    }
}
