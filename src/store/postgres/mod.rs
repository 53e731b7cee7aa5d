//! The PostgreSQL backend: several replicas may share one database.
//! Its checked SQL lives in `crates/postgres` (sqlx checks one crate's macros against one
//! database); the queries built at run time (filters) live here. Each replica runs the same
//! writer as SQLite (`store::writer`) on a connection of its own; the chain's tip is locked
//! and read inside every transaction (`writer`), never kept in memory.

pub(super) mod chain;
mod fleet;
mod read;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use gitops_status_postgres::MIGRATOR;

use crate::domain::{Period, Report, StalePolicy, Timestamp};

// What the modules below reach as `super::…`.
use super::writer::{
    OnceKey, Recorded, RequestMeta, WriterConfig, WriterHandle, WriterTask, Written,
};
#[allow(unused_imports)]
use super::{record, rows, StatusRows, StoreError};
use super::{FileSizes, StoreConfig};

/// How long a transaction waits for a lock (the chain's tip) before it fails (55P03, 503).
const LOCK_TIMEOUT: &str = "20s";
/// How long a session may sit idle inside a transaction before PostgreSQL ends it, freeing
/// the chain's tip that a cut-off replica held.
const IDLE_IN_TRANSACTION: &str = "30s";

/// How long a read may wait for a connection of the read pool.
const READ_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The database: a pool of connections to one PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    writer: WriterHandle,
    readers: PgPool,
    stale_policy: Arc<StalePolicy>,
    /// The SQL of a host's `report_due_by` under `stale_policy` (`fleet::due_by_sql`): the
    /// policy is fixed for the store's life, so it is built once, in `open`.
    due_by: Arc<str>,
    idempotency_window: Period,
}

/// Where the server connects: `url` (postgres:// or postgresql://) and the password, which
/// comes from the URL, from PGPASSWORD (which sqlx reads), or from `password` (the contents
/// of --db-password-file), whichever is given; the URL and a file both giving one is refused.
pub fn connect_options(url: &str, password: Option<&str>) -> anyhow::Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        anyhow::anyhow!("--db (GITOPS_STATUS_DB) is not a usable PostgreSQL URL: {e}")
    })?;
    // user:password@host, or ?password=… (which sqlx reads too).
    let has_password = url::Url::parse(url).ok().is_some_and(|u| {
        u.password().is_some_and(|p| !p.is_empty())
            || u.query_pairs()
                .any(|(k, v)| k == "password" && !v.is_empty())
    });
    let options = match password {
        Some(_) if has_password => anyhow::bail!(
            "the password is given twice: in --db (GITOPS_STATUS_DB) and in \
             --db-password-file (GITOPS_STATUS_DB_PASSWORD_FILE); give one"
        ),
        Some(password) => options.password(password),
        None => options,
    };
    // A 2xx means the report is committed: whatever the server's default, our sessions
    // wait for the commit's WAL flush (and for synchronous standbys, where configured).
    // The chain's tip lock assumes READ COMMITTED (the statements after it see what the
    // lock's previous holder committed). A replica cut off while it holds the lock keeps
    // every other replica waiting until PostgreSQL ends its session: idle in a transaction
    // for IDLE_IN_TRANSACTION it is ended, and a writer waits at most LOCK_TIMEOUT for the
    // lock (then its reports are answered 503 and retried), within the 30 s a request waits.
    Ok(options
        .options([
            ("synchronous_commit", "on"),
            ("default_transaction_isolation", "read committed"),
            ("lock_timeout", LOCK_TIMEOUT),
            ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION),
        ])
        .application_name("gitops-status")
        .disable_statement_logging())
}

/// The database's name and server, for log lines (never the password).
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}@{}:{}",
        options.get_database().unwrap_or("postgres"),
        options.get_host(),
        options.get_port()
    )
}

/// Refuses a database whose schema is not the one this build migrates to (`verify` never
/// migrates): names both versions instead of failing on a missing column.
pub(super) async fn check_schema(conn: &mut PgConnection) -> anyhow::Result<()> {
    let expected = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let found: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await
            .context("the database has no gitops-status schema (no _sqlx_migrations)")?;
    let found = found.unwrap_or(0);
    anyhow::ensure!(
        found == expected,
        "the database's schema is version {found}, and this gitops-status reads version \
         {expected}: {}",
        if found < expected {
            "start this gitops-status's server on it once to migrate it"
        } else {
            "use the newer gitops-status that wrote it"
        }
    );
    Ok(())
}

/// Does what migrations leave for the first start: SQLite's migration 0004 queues `derive`
/// for the history it found; the PostgreSQL schema queues it too, and a new database has no
/// history to derive from (`migrate-db` copies what SQLite derived). Then renders the status
/// rows still missing.
async fn prepare(conn: &mut PgConnection, render: super::RenderRow) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    let queued: Option<String> =
        sqlx::query_scalar("SELECT name FROM store_tasks WHERE name = 'derive' FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await?;
    if queued.is_some() {
        let history: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM reports)")
            .fetch_one(&mut *tx)
            .await?;
        if history {
            return Err(StoreError::Corrupt(
                "the database holds reports whose transitions and commits were never derived; \
                 copy a SQLite history with `gitops-status migrate-db`, which carries them"
                    .to_owned(),
            ));
        }
        sqlx::query("DELETE FROM store_tasks WHERE name = 'derive'")
            .execute(&mut *tx)
            .await?;
    }
    let missing: Vec<(String, String)> =
        sqlx::query_as("SELECT server_group, host FROM hosts WHERE status_row IS NULL FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
    for (group, host) in &missing {
        let state = read::fetch_host_state(&mut *tx, group, host)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("{group}/{host} has no current state")))?;
        let row = render(&state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE hosts SET status_row = $1 WHERE server_group = $2 AND host = $3")
            .bind(row)
            .bind(group)
            .bind(host)
            .execute(&mut *tx)
            .await?;
    }
    if !missing.is_empty() {
        tracing::info!(hosts = missing.len(), "rendered the hosts' status rows");
    }
    tx.commit().await?;
    Ok(())
}

impl PgStore {
    /// Connects, migrates (`migrations/postgres`; sqlx holds an advisory lock meanwhile, so
    /// replicas starting together migrate once), checks what the database was left with, and
    /// readies the writer: the caller runs the returned task.
    pub async fn open(
        options: PgConnectOptions,
        config: StoreConfig,
    ) -> anyhow::Result<(PgStore, WriterTask)> {
        let name = describe(&options);
        let mut conn = PgConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot connect to the database {name}"))?;
        MIGRATOR
            .run(&mut conn)
            .await
            .with_context(|| format!("cannot migrate the database {name}"))?;
        let (synchronous_commit, fsync, isolation): (String, String, String) = sqlx::query_as(
            "SELECT current_setting('synchronous_commit'), current_setting('fsync'),
                    current_setting('default_transaction_isolation')",
        )
        .fetch_one(&mut conn)
        .await?;
        // Asked for in the connection's options; a pooler in between may drop them.
        anyhow::ensure!(
            synchronous_commit == "on",
            "synchronous_commit is {synchronous_commit} in this server's sessions on {name}, \
             where it must be on (a 2xx means the report is committed); a connection pooler \
             that drops startup options would do this"
        );
        anyhow::ensure!(
            isolation == "read committed",
            "default_transaction_isolation is {isolation} in this server's sessions on {name}, \
             where the chain's tip lock needs read committed; a connection pooler that drops \
             startup options would do this"
        );
        if fsync != "on" {
            tracing::warn!(database = %name, "fsync is off on the PostgreSQL server: a crash of its machine can lose reports that were answered 2xx");
        }
        prepare(&mut conn, config.render_row)
            .await
            .with_context(|| format!("cannot prepare the database {name}"))?;
        let committed: i64 = sqlx::query_scalar("SELECT seq FROM reports_sequence WHERE id = 1")
            .fetch_one(&mut conn)
            .await?;
        tracing::info!(database = %name, synchronous_commit, "database opened");
        let readers = PgPoolOptions::new()
            .max_connections(config.read_connections.max(1))
            .acquire_timeout(READ_ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the database {name} for reading"))?;
        let (writer, task) = super::writer::start(
            writer::PgScribe::new(conn, options, Arc::clone(&config.metrics)),
            committed,
            WriterConfig {
                queue: config.write_queue,
                chain_log_every: i64::try_from(config.chain_log_every).unwrap_or(i64::MAX),
                render: config.render_row,
                clock: config.clock,
                idempotency_window: config.idempotency_window,
                metrics: config.metrics,
                panic_on_host: config.panic_on_host,
            },
        );
        let store = PgStore {
            writer,
            readers,
            due_by: fleet::due_by_sql(&config.stale_policy).into(),
            idempotency_window: config.idempotency_window,
            stale_policy: Arc::new(config.stale_policy),
        };
        Ok((store, task))
    }

    pub fn idempotency_window(&self) -> Period {
        self.idempotency_window
    }

    pub fn stale_policy(&self) -> &Arc<StalePolicy> {
        &self.stale_policy
    }

    #[tracing::instrument(skip_all, fields(kind = %report.kind(), server_group = %report.server_group, host = %report.host))]
    pub async fn record(&self, report: Report, meta: RequestMeta) -> Result<Recorded, StoreError> {
        match self.writer.record(report, meta, None).await? {
            Written::Fresh(recorded, _) => Ok(*recorded),
            Written::Replayed(_) => Err(StoreError::Corrupt(
                "a report without a key was replayed".to_owned(),
            )),
        }
    }

    #[tracing::instrument(skip_all, fields(kind = %report.kind(), server_group = %report.server_group, host = %report.host))]
    pub async fn record_once(
        &self,
        report: Report,
        meta: RequestMeta,
        once: OnceKey,
    ) -> Result<Written, StoreError> {
        self.writer.record(report, meta, Some(once)).await
    }

    pub async fn record_all(
        &self,
        reports: Vec<(Report, RequestMeta)>,
    ) -> Result<Vec<Recorded>, StoreError> {
        self.writer.record_all(reports).await
    }

    /// The highest id the history ever held, from the database: every replica's commits
    /// move it (reports, decommissions and retention rows alike), and ids follow commit
    /// order, so a rendering made at this version holds every report committed by then.
    pub async fn version(&self) -> Result<i64, StoreError> {
        Ok(gitops_status_postgres::write::version(&self.readers).await?)
    }

    pub async fn check(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM current_status LIMIT 1")
            .fetch_optional(&self.readers)
            .await?;
        if self.write_fault().is_some() {
            self.writer.probe().await?;
        }
        Ok(())
    }

    pub fn queued(&self) -> usize {
        self.writer.queued()
    }

    pub fn queue_capacity(&self) -> usize {
        self.writer.capacity()
    }

    /// The database's size as PostgreSQL counts it (0 when it cannot be read: a gauge, not a
    /// reason to fail /metrics).
    pub async fn file_sizes(&self) -> FileSizes {
        let size: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&self.readers)
                .await;
        FileSizes {
            database: size.ok().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            wal: 0,
        }
    }

    pub fn writer_up(&self) -> bool {
        self.writer.is_up()
    }

    pub fn write_fault(&self) -> Option<String> {
        self.writer.fault()
    }

    /// Runs one pruning pass with `policy` as of `now` (see `store::prune::run_pass`).
    /// Replicas may prune at once: their transactions queue on the chain's tip like reports,
    /// and rows another replica removed first are skipped.
    #[tracing::instrument(skip_all)]
    pub async fn prune(
        &self,
        policy: crate::domain::RetentionPolicy,
        now: Timestamp,
        stopping: impl Fn() -> bool,
    ) -> Result<super::PruneSummary, StoreError> {
        super::prune::run_pass(self, policy, now, stopping).await
    }

    /// A PostgreSQL database is copied with its own tools (pg_dump, or the platform's
    /// backups and point-in-time recovery), not through this server.
    pub async fn backup(&self) -> Result<super::backup::BackupStream, StoreError> {
        Err(StoreError::Unsupported(
            "this server runs on PostgreSQL: back the database up with pg_dump (or your \
             platform's backups and point-in-time recovery), not through this server",
        ))
    }

    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

impl super::prune::PruneSource for PgStore {
    async fn last_received_before(&self, cutoff: &str) -> Result<Option<i64>, StoreError> {
        Ok(gitops_status_postgres::write::last_received_before(&self.readers, cutoff).await?)
    }

    async fn candidates(
        &self,
        after: i64,
        last: i64,
        limit: i64,
    ) -> Result<Vec<super::prune::Candidate>, StoreError> {
        let rows =
            gitops_status_postgres::write::candidates(&self.readers, after, last, limit).await?;
        Ok(rows
            .into_iter()
            .map(|r| super::prune::Candidate {
                id: r.id,
                received_at: r.received_at,
                server_group: r.server_group,
                host: r.host,
                is_change: r.is_change,
            })
            .collect())
    }

    async fn host_pointers(&self) -> Result<Vec<super::prune::HostPointerRow>, StoreError> {
        Ok(gitops_status_postgres::write::host_pointers(&self.readers).await?)
    }

    async fn nth_newest(
        &self,
        group: &str,
        host: &str,
        offset: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(gitops_status_postgres::write::nth_newest(&self.readers, group, host, offset).await?)
    }

    async fn remove(
        &self,
        batch: super::writer::PruneBatch,
    ) -> Result<super::writer::PruneOutcome, StoreError> {
        self.writer.prune(batch).await
    }
}
