//! Everything SQL, behind one interface of domain verbs (`Database`) with one implementation
//! per backend: `sqlite`, the default, and `postgres`. `Store` is what the rest of the server
//! holds: it dispatches each verb to the backend `--db` chose. Backend-neutral here: the
//! errors, the configuration, the row of `reports` and its canonical text (`record`), the
//! writer's queue and what a group writes, retention's pass, verify's walk, migrate-db.

mod append;
pub mod chain;
mod group;
pub mod migrate;
mod postgres;
mod prune;
pub mod record;
mod removed;
mod rows;
mod sqlite;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{
    Clock, FleetFilter, FleetOrder, FleetPage, FleetSummary, HistoryEntry, HistoryFilter,
    HistoryStats, HostGauge, HostName, HostState, Period, Report, RetentionPolicy, Rollout,
    RolloutFilter, RolloutHost, ServerGroup, StalePolicy, Timestamp, Transition, TransitionFilter,
};

pub use prune::PruneSummary;
#[cfg(feature = "bench")]
pub use sqlite::bulk;
pub use sqlite::{backup, lock, retention};
pub use writer::{OnceKey, Recorded, RenderAnswer, RequestMeta, StoredAnswer, WriterTask, Written};

/// How long a request may wait for its report's commit before it is answered 503. The
/// writer's queue is bounded, so this is only reached when SQLite itself stalls.
const WRITER_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a store operation failed. Cheap to clone: one failed group commit answers every
/// report in the group with the same error.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no host {server_group}/{host}")]
    UnknownHost {
        server_group: ServerGroup,
        host: HostName,
    },
    #[error("timed out waiting for the database")]
    Timeout,
    /// `/ready`'s write probe could not be queued or was not answered in time: why.
    #[error("{0}")]
    ProbeUnanswered(String),
    /// The writer did not answer in time; it still holds the report, which may be committed.
    #[error("the report was not answered in time; it may still be stored")]
    Unanswered,
    /// An Idempotency-Key already used within the window for a different request.
    #[error("the Idempotency-Key {0:?} was used for a different request")]
    KeyReused(String),
    /// The writer's queue is full: more reports arrive than the database commits.
    #[error("too many reports are waiting to be written")]
    Overloaded,
    /// The writer has stopped (the server is shutting down).
    #[error("the database is closed")]
    Closed,
    /// Another connection (an operator's sqlite3, say) held a lock past the busy timeout.
    #[error("the database is locked by another connection")]
    Busy(#[source] Arc<sqlx::Error>),
    /// The file cannot be written: the disk is full, or the file or its folder is read-only.
    #[error("the database cannot be written ({reason})")]
    Unwritable {
        reason: &'static str,
        #[source]
        source: Arc<sqlx::Error>,
    },
    #[error("database error")]
    Database(#[source] Arc<sqlx::Error>),
    #[error("stored data does not match the schema: {0}")]
    Corrupt(String),
    /// Something this backend does not do (a SQLite file copy of a PostgreSQL database).
    #[error("{0}")]
    Unsupported(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        let postgres = err
            .as_database_error()
            .and_then(|e| e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
            .map(|e| e.code().to_owned());
        if let Some(sqlstate) = postgres {
            return StoreError::of_postgres(&sqlstate, err);
        }
        // SQLite's primary result code, whatever the extended one.
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        let source = Arc::new(err);
        match (&*source, code) {
            (sqlx::Error::PoolTimedOut, _) => StoreError::Timeout,
            // The connection to a database server broke, or none could be made.
            (
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolClosed,
                _,
            ) => StoreError::Unwritable {
                reason: "the database server cannot be reached",
                source,
            },
            // SQLITE_BUSY, SQLITE_LOCKED
            (_, Some(5 | 6)) => StoreError::Busy(source),
            // SQLITE_FULL
            (_, Some(13)) => StoreError::Unwritable {
                reason: "the disk is full",
                source,
            },
            // SQLITE_READONLY
            (_, Some(8)) => StoreError::Unwritable {
                reason: "the file is read-only",
                source,
            },
            // SQLITE_IOERR, SQLITE_CANTOPEN
            (_, Some(10 | 14)) => StoreError::Unwritable {
                reason: "a disk write failed",
                source,
            },
            _ => StoreError::Database(source),
        }
    }
}

impl StoreError {
    /// A PostgreSQL error by its SQLSTATE: what concerns the database as a whole (full, read
    /// only after a failover, shutting down, locked) is told apart from one statement's fault.
    fn of_postgres(sqlstate: &str, err: sqlx::Error) -> Self {
        let source = Arc::new(err);
        let unwritable = |reason| StoreError::Unwritable {
            reason,
            source: source.clone(),
        };
        match sqlstate {
            "53100" => unwritable("the disk is full"),
            // lock_not_available (lock_timeout), deadlock_detected, serialization_failure,
            // too_many_connections, query_canceled (a timeout).
            "55P03" | "40P01" | "40001" | "53300" | "57014" => StoreError::Busy(source),
            // read_only_sql_transaction: a standby, or a primary demoted by a failover.
            "25006" => unwritable("the database is read-only"),
            // admin_shutdown, crash_shutdown, cannot_connect_now.
            "57P01" | "57P02" | "57P03" => unwritable("the database server is shutting down"),
            // idle_session_timeout, idle_in_transaction_session_timeout: the session was
            // ended; the next write opens another.
            "57P05" | "25P03" => unwritable("the database server ended the session"),
            // insufficient_privilege: the server's user may not write.
            "42501" => unwritable("the database refuses the server's user"),
            s if s.starts_with("08") => unwritable("the database server cannot be reached"),
            // invalid_authorization_specification (a wrong or rotated password).
            s if s.starts_with("28") => unwritable("the database refuses the server's login"),
            // invalid_catalog_name: the database does not exist.
            s if s.starts_with("3D") => unwritable("the database does not exist"),
            // insufficient_resources, system_error (an I/O error on the server).
            s if s.starts_with("53") || s.starts_with("58") => {
                unwritable("the database server is out of resources or failing")
            }
            _ => StoreError::Database(source),
        }
    }
}

impl StoreError {
    /// True when the error is about the database as a whole (it cannot be written, is locked,
    /// is gone), not about the one report being written: retrying the reports of a failed
    /// group one by one would fail the same way.
    pub fn affects_every_write(&self) -> bool {
        matches!(
            self,
            StoreError::Timeout
                | StoreError::Unanswered
                | StoreError::Overloaded
                | StoreError::Closed
                | StoreError::Busy(_)
                | StoreError::Unwritable { .. }
        )
    }
}

/// The rows of `GET /status`, and when the first of them turns stale.
pub struct StatusRows {
    /// One JSON array.
    pub body: String,
    /// The earliest `report_due_by` not yet passed: the rows are correct until then.
    pub valid_until: Option<Timestamp>,
}

/// Renders a host's state as its `GET /status` row (JSON). The API owns the row's shape; the
/// store keeps each host's rendered row in `hosts.status_row`.
pub type RenderRow = fn(&HostState) -> Result<String, serde_json::Error>;

/// How the store runs.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Read-only connections serving GETs.
    pub read_connections: u32,
    /// Log the audit chain's head every this many reports (0: never).
    pub chain_log_every: u64,
    /// Reports that may wait for the writer; more are refused (503) until it catches up.
    pub write_queue: usize,
    /// How a host's `GET /status` row is rendered.
    pub render_row: RenderRow,
    /// The clock that stamps every row (the system clock but in tests).
    pub clock: Clock,
    /// `--stale-after`: when silent hosts turn stale.
    pub stale_policy: StalePolicy,
    /// `--idempotency-window`: how long an Idempotency-Key is remembered.
    pub idempotency_window: Period,
    /// The writer's counters and histograms.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Test builds only (`GITOPS_STATUS_TEST_FAULT=writer-panics-on-host:NAME`): the writer
    /// panics when asked to write a report for this host.
    pub panic_on_host: Option<String>,
}

/// Sizes of the database, in bytes: SQLite's file and write-ahead log; PostgreSQL's
/// `pg_database_size` (its WAL is the server's, not the database's: 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct FileSizes {
    pub database: u64,
    pub wal: u64,
}

/// The store's verbs, once: `Database` lists them for every backend to implement, `Store`
/// dispatches each to the backend it runs on, and each backend's implementation calls its
/// inherent method of the same name.
macro_rules! verbs {
    (
        async { $( $(#[$adoc:meta])* fn $async_name:ident(&self $(, $aarg:ident: $aty:ty)*) -> $aret:ty; )* }
        sync { $( $(#[$sdoc:meta])* fn $sync_name:ident(&self $(, $sarg:ident: $sty:ty)*) -> $sret:ty; )* }
    ) => {
        /// What a backend does: the verbs of the domain, in its types.
        pub(crate) trait Database {
            $( $(#[$adoc])* async fn $async_name(&self $(, $aarg: $aty)*) -> $aret; )*
            $( $(#[$sdoc])* fn $sync_name(&self $(, $sarg: $sty)*) -> $sret; )*
        }

        impl Store {
            $(
                $(#[$adoc])*
                pub async fn $async_name(&self $(, $aarg: $aty)*) -> $aret {
                    match &self.backend {
                        Backend::Sqlite(db) => Database::$async_name(db $(, $aarg)*).await,
                        Backend::Postgres(db) => Database::$async_name(db $(, $aarg)*).await,
                    }
                }
            )*
            $(
                $(#[$sdoc])*
                pub fn $sync_name(&self $(, $sarg: $sty)*) -> $sret {
                    match &self.backend {
                        Backend::Sqlite(db) => Database::$sync_name(db $(, $sarg)*),
                        Backend::Postgres(db) => Database::$sync_name(db $(, $sarg)*),
                    }
                }
            )*
        }

        impl Database for sqlite::SqliteStore {
            $( async fn $async_name(&self $(, $aarg: $aty)*) -> $aret {
                sqlite::SqliteStore::$async_name(self $(, $aarg)*).await
            } )*
            $( fn $sync_name(&self $(, $sarg: $sty)*) -> $sret {
                sqlite::SqliteStore::$sync_name(self $(, $sarg)*)
            } )*
        }

        impl Database for postgres::PgStore {
            $( async fn $async_name(&self $(, $aarg: $aty)*) -> $aret {
                postgres::PgStore::$async_name(self $(, $aarg)*).await
            } )*
            $( fn $sync_name(&self $(, $sarg: $sty)*) -> $sret {
                postgres::PgStore::$sync_name(self $(, $sarg)*)
            } )*
        }
    };
}

/// How the server connects to the PostgreSQL database at `url` (see `--db-password-file`).
pub fn postgres_options(
    url: &str,
    password: Option<&str>,
) -> anyhow::Result<sqlx::postgres::PgConnectOptions> {
    postgres::connect_options(url, password)
}

/// The database the server runs on, whichever backend holds it.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (creating it and its parent folders if needed) and migrates the database,
    /// renders the hosts' status rows still missing, and readies the writer: the caller runs
    /// the returned task (under its supervisor); until it does, writes wait.
    pub async fn open(path: &Path, config: StoreConfig) -> anyhow::Result<(Store, WriterTask)> {
        let (db, task) = sqlite::SqliteStore::open(path, config).await?;
        Ok((
            Store {
                backend: Backend::Sqlite(db),
            },
            task,
        ))
    }

    /// Connects to a PostgreSQL database (`url`; `password` from --db-password-file), migrates
    /// it, and readies the writer: the caller runs the returned task.
    pub async fn open_postgres(
        url: &str,
        password: Option<&str>,
        config: StoreConfig,
    ) -> anyhow::Result<(Store, WriterTask)> {
        let options = postgres::connect_options(url, password)?;
        let (db, task) = postgres::PgStore::open(options, config).await?;
        Ok((
            Store {
                backend: Backend::Postgres(db),
            },
            task,
        ))
    }
}

verbs! {
    async {
        /// Appends a report and updates its host's current state, atomically, in the writer's
        /// next group commit. When this returns `Ok`, the transaction is committed and durable.
        fn record(&self, report: Report, meta: RequestMeta) -> Result<Recorded, StoreError>;
        /// Appends a report sent with an Idempotency-Key, unless the key was used within the
        /// window: then nothing is written and the answer stored with it comes back (or
        /// `KeyReused` when it was used for a different request).
        fn record_once(&self, report: Report, meta: RequestMeta, once: OnceKey) -> Result<Written, StoreError>;
        /// The answer stored with a key used within the window, read without the writer.
        fn stored_answer(&self, principal: &str, key: &str, now: Timestamp, window: Period) -> Result<Option<(String, StoredAnswer)>, StoreError>;
        /// Appends every report in one transaction, or none.
        fn record_all(&self, reports: Vec<(Report, RequestMeta)>) -> Result<Vec<Recorded>, StoreError>;
        /// Readiness: the schema answers a read, and the database takes writes.
        fn check(&self) -> Result<(), StoreError>;
        /// Lets the writer finish what is queued, then closes every connection.
        fn close(&self) -> ();
        /// The hosts' `GET /status` rows that match, with their staleness at `now`.
        fn status_rows(&self, filter: &FleetFilter, group: Option<&ServerGroup>, now: Timestamp) -> Result<StatusRows, StoreError>;
        /// One page of the fleet, for the status page.
        fn fleet_page(&self, filter: &FleetFilter, text: Option<&str>, order: FleetOrder, page: (u64, u64), now: Timestamp) -> Result<FleetPage, StoreError>;
        /// Every host's gauges, for /metrics.
        fn host_gauges(&self, now: Timestamp) -> Result<Vec<HostGauge>, StoreError>;
        /// One host's gauges.
        fn host_gauge(&self, group: &ServerGroup, host: &HostName, now: Timestamp) -> Result<Option<HostGauge>, StoreError>;
        /// The history's size and age, for /metrics.
        fn history_stats(&self) -> Result<HistoryStats, StoreError>;
        /// One host's `GET /status` row.
        fn status_row(&self, group: &ServerGroup, host: &HostName, now: Timestamp) -> Result<Option<String>, StoreError>;
        /// The counts of the hosts that match.
        fn summary(&self, filter: &FleetFilter, now: Timestamp) -> Result<FleetSummary, StoreError>;
        /// The counts per group.
        fn groups(&self, filter: &FleetFilter, now: Timestamp) -> Result<Vec<(ServerGroup, FleetSummary)>, StoreError>;
        /// The status changes that match, newest first.
        fn transitions(&self, filter: &TransitionFilter) -> Result<Vec<Transition>, StoreError>;
        /// The commits deployed, newest first.
        fn rollouts(&self, filter: &RolloutFilter) -> Result<Vec<Rollout>, StoreError>;
        /// The hosts of one commit's rollout.
        fn rollout_hosts(&self, commit_sha: &str) -> Result<Vec<RolloutHost>, StoreError>;
        /// One host's current state.
        fn host_state(&self, group: &ServerGroup, host: &HostName) -> Result<Option<HostState>, StoreError>;
        /// The newest v1 host that matches (the legacy endpoint).
        fn latest_legacy_host(&self, group: Option<&ServerGroup>, host: Option<&HostName>) -> Result<Option<HostState>, StoreError>;
        /// When the oldest report kept was received.
        fn oldest_report(&self) -> Result<Option<Timestamp>, StoreError>;
        /// Whether an import already wrote this entry.
        fn imported_before(&self, group: &ServerGroup, host: &HostName, entry_sha256: &str) -> Result<bool, StoreError>;
        /// The audit trail, newest first.
        fn history(&self, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>, StoreError>;
        /// Removes what retention lets go, in batches, recording each in the chain.
        fn prune(&self, policy: RetentionPolicy, now: Timestamp, stopping: impl Fn() -> bool) -> Result<PruneSummary, StoreError>;
        /// The id of the newest committed report: it changes whenever what readers see
        /// changes. SQLite: this process's writer's, the only one. PostgreSQL: read from the
        /// database, since another replica may have written.
        fn version(&self) -> Result<i64, StoreError>;
        /// The database's size (and its write-ahead log's, for SQLite).
        fn file_sizes(&self) -> FileSizes;
        /// A consistent copy of the database, streamed.
        fn backup(&self) -> Result<backup::BackupStream, StoreError>;
    }
    sync {
        /// How long an Idempotency-Key is remembered.
        fn idempotency_window(&self) -> Period;
        /// When silent hosts turn stale.
        fn stale_policy(&self) -> &Arc<StalePolicy>;
        /// Reports waiting for the writer.
        fn queued(&self) -> usize;
        /// Reports that may wait for the writer.
        fn queue_capacity(&self) -> usize;
        /// Whether the writer task runs.
        fn writer_up(&self) -> bool;
        /// Why writes currently fail, if they do.
        fn write_fault(&self) -> Option<String>;
    }
}
