//! Everything SQL. One writer connection serialises every write (so concurrent POSTs queue
//! instead of meeting SQLITE_BUSY), a pool of read-only connections serves the GETs, and WAL
//! lets them run side by side. Migrations in `migrations/` run at start-up.

pub mod chain;
mod read;
mod rows;
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqlitePool};

use crate::domain::{HostName, ServerGroup};

pub use write::{Recorded, RequestMeta};

/// How long a request may wait for the writer before it is answered 503.
const WRITER_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SQLite retries a locked database (another process, a checkpoint) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no host {server_group}/{host}")]
    UnknownHost {
        server_group: ServerGroup,
        host: HostName,
    },
    #[error("timed out waiting for the database")]
    Timeout,
    /// Another connection (an operator's sqlite3, say) held a lock past the busy timeout.
    #[error("the database is locked by another connection")]
    Busy(#[source] sqlx::Error),
    /// The file cannot be written: the disk is full, or the file or its folder is read-only.
    #[error("the database cannot be written ({reason})")]
    Unwritable {
        reason: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("stored data does not match the schema: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        // SQLite's primary result code, whatever the extended one.
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        match (err, code) {
            (sqlx::Error::PoolTimedOut, _) => StoreError::Timeout,
            // SQLITE_BUSY, SQLITE_LOCKED
            (other, Some(5 | 6)) => StoreError::Busy(other),
            // SQLITE_FULL
            (source, Some(13)) => StoreError::Unwritable {
                reason: "the disk is full",
                source,
            },
            // SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN
            (source, Some(8)) => StoreError::Unwritable {
                reason: "the file is read-only",
                source,
            },
            (source, Some(10 | 14)) => StoreError::Unwritable {
                reason: "a disk write failed",
                source,
            },
            (other, _) => StoreError::Database(other),
        }
    }
}

/// How the store runs.
#[derive(Clone, Copy, Debug)]
pub struct StoreConfig {
    /// Read-only connections serving GETs.
    pub read_connections: u32,
    /// Log the audit chain's head every this many reports (0: never).
    pub chain_log_every: u64,
}

/// The database: a single writer and a read pool over one SQLite file.
#[derive(Clone, Debug)]
pub struct Store {
    writer: SqlitePool,
    readers: SqlitePool,
    path: PathBuf,
    chain_log_every: i64,
    /// Why the last write failed, while the database does not take writes; None when the
    /// last write (or probe) succeeded.
    write_fault: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// Logs the durability settings the writer actually runs with (read back from SQLite, not
/// from our options), so an operator and the tests can see them.
async fn log_settings(writer: &SqlitePool) -> anyhow::Result<()> {
    let mut conn = writer.acquire().await?;
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

impl Store {
    /// Opens (creating it and its parent folders if needed) and migrates the database.
    pub async fn open(path: &Path, config: StoreConfig) -> anyhow::Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the folder {}", parent.display()))?;
        }
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT);
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk (WAL fsynced) before we answer 2xx.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .optimize_on_close(true, 400);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(WRITER_QUEUE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        sqlx::migrate!()
            .run(&writer)
            .await
            .with_context(|| format!("cannot migrate the database {}", path.display()))?;
        log_settings(&writer).await?;
        let head =
            sqlx::query!(r#"SELECT id AS "id!", hash FROM reports ORDER BY id DESC LIMIT 1"#)
                .fetch_optional(&writer)
                .await?;
        if let Some(head) = head {
            tracing::info!(id = head.id, hash = %head.hash, "audit chain head");
        }
        // Readers open after the writer so the file exists and is already in WAL mode.
        let readers = SqlitePoolOptions::new()
            .max_connections(config.read_connections.max(1))
            .acquire_timeout(WRITER_QUEUE_TIMEOUT)
            .connect_with(base.read_only(true))
            .await
            .with_context(|| format!("cannot open the database {} for reading", path.display()))?;
        Ok(Store {
            writer,
            readers,
            path: path.to_owned(),
            chain_log_every: i64::try_from(config.chain_log_every).unwrap_or(i64::MAX),
            write_fault: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Readiness: the schema answers a query through the read pool, and the database takes
    /// writes. After a write failed (disk full, read-only), a one-row probe write tells when
    /// it takes them again, so readiness recovers without waiting for a client to write.
    pub async fn check(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM current_status LIMIT 1")
            .fetch_optional(&self.readers)
            .await?;
        if self.write_fault().is_some() {
            let at = crate::domain::Timestamp::now().to_string();
            let mut conn = self.writer.acquire().await?;
            let probe = async {
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query!(
                    "INSERT INTO writer_probe (id, at) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                    at
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            };
            let outcome = probe.await.map_err(StoreError::from);
            if outcome.is_err() {
                conn.close_on_drop();
            }
            self.note_write(outcome)?;
        }
        Ok(())
    }

    /// Why writes currently fail, if they do.
    pub fn write_fault(&self) -> Option<String> {
        self.write_fault.lock().ok().and_then(|f| f.clone())
    }

    /// Records the outcome of a write for readiness: an unwritable database sets the fault,
    /// any success clears it.
    fn note_write<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        let fault = match &outcome {
            Ok(_) => Some(None),
            Err(err @ StoreError::Unwritable { .. }) => Some(Some(err.to_string())),
            Err(_) => None,
        };
        if let (Some(fault), Ok(mut slot)) = (fault, self.write_fault.lock()) {
            if *slot != fault {
                match &fault {
                    Some(reason) => {
                        tracing::error!(reason = %reason, "writes fail; /ready answers 503")
                    }
                    None => tracing::info!("the database takes writes again"),
                }
                *slot = fault;
            }
        }
        outcome
    }

    /// Waits for in-flight queries, then closes every connection. Closing the last connection
    /// checkpoints the WAL into the main file.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}
