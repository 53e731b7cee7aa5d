//! The write path, with group commit. One task owns the write connection. A request hands its
//! report over a bounded channel (when it is full the request is refused at once, rather than
//! queued without limit); the writer takes every report that is waiting, writes them in one
//! transaction in arrival order, commits, and only then answers each request. A group costs
//! one fsync and a handful of statements however many reports it holds.
//!
//! Inside the group each report becomes the next link of the audit chain (ids and hashes are
//! given here, in order: the chain's tip lives in this task) and moves its host's facet
//! pointers (`domain::merge`) and its materialised `GET /status` row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::domain::{chain, Head, Heads, HostState, Report, Timestamp};

use super::append::{insert_reports, load_tip, Link, MultiRow, NewRow, Tip};
use super::rows::{head, HostStateRow};
use super::{RenderRow, StoreError, WRITER_ANSWER_TIMEOUT};

/// The most reports one transaction holds; more wait for the next one.
const MAX_GROUP: usize = 256;

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
    /// The host's state after the report.
    pub state: HostState,
}

type Answer<T> = oneshot::Sender<Result<T, StoreError>>;

struct Pending {
    report: Report,
    /// The report's row, rendered by the request's own thread as far as it can be before
    /// the writer gives it an id, times and its place in the chain.
    row: NewRow,
    reply: Answer<Recorded>,
}

enum Job {
    Report(Box<Pending>),
    /// Write one row to learn whether the database takes writes again (readiness).
    Probe(Answer<()>),
    /// Finish, close the connection (checkpointing the WAL), then answer.
    Close(oneshot::Sender<()>),
}

/// What the writer publishes to everyone else.
#[derive(Debug, Default)]
struct Shared {
    /// The id of the newest committed report (0 before the first): the version of everything
    /// a reader can see.
    committed: AtomicI64,
    /// Why the last write failed, while the database does not take writes.
    fault: Mutex<Option<String>>,
}

/// The requests' side of the writer.
#[derive(Clone)]
pub(super) struct WriterHandle {
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle")
            .field("queued", &(self.jobs.max_capacity() - self.jobs.capacity()))
            .field("shared", &self.shared)
            .finish()
    }
}

impl WriterHandle {
    /// Queues a report and waits for its commit. `Overloaded` at once when the queue is full.
    pub(super) async fn record(
        &self,
        report: Report,
        meta: RequestMeta,
    ) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        let row = NewRow::new(&report, meta);
        let job = Job::Report(Box::new(Pending { report, row, reply }));
        self.jobs.try_send(job).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        self.wait(answer).await
    }

    /// Asks the writer to write its probe row.
    pub(super) async fn probe(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Probe(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        self.wait(answer).await
    }

    async fn wait<T>(
        &self,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(WRITER_ANSWER_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            // The writer dropped the request: it stopped.
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// Lets the writer finish what is queued, then closes its connection.
    pub(super) async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.jobs.send(Job::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    pub(super) fn committed(&self) -> i64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    pub(super) fn fault(&self) -> Option<String> {
        self.shared.fault.lock().ok().and_then(|f| f.clone())
    }
}

/// How the writer runs.
pub(super) struct WriterConfig {
    pub options: SqliteConnectOptions,
    pub queue: usize,
    pub chain_log_every: i64,
    pub render: RenderRow,
}

/// Starts the writer on `conn` (migrated, its status rows rendered) and returns its handle.
pub(super) async fn start(
    mut conn: SqliteConnection,
    config: WriterConfig,
) -> Result<WriterHandle, StoreError> {
    let tip = load_tip(&mut conn).await?;
    let shared = Arc::new(Shared::default());
    shared.committed.store(tip.next_id - 1, Ordering::Release);
    if tip.hash != chain::GENESIS {
        // Published heads let an auditor detect a rewritten chain (see README, Security).
        tracing::info!(id = tip.next_id - 1, hash = %tip.hash, "audit chain head");
    }
    let (jobs, queue) = mpsc::channel(config.queue.max(1));
    let writer = Writer {
        conn: Some(conn),
        options: config.options,
        queue,
        shared: shared.clone(),
        tip: Some(tip),
        chain_log_every: config.chain_log_every,
        render: config.render,
    };
    tokio::spawn(writer.run());
    Ok(WriterHandle { jobs, shared })
}

struct Writer {
    /// None after a failed write, until a new connection opens.
    conn: Option<SqliteConnection>,
    options: SqliteConnectOptions,
    queue: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    /// None when it must be read again from the database (after a failed write).
    tip: Option<Tip>,
    chain_log_every: i64,
    render: RenderRow,
}

impl Writer {
    async fn run(mut self) {
        let mut next: Option<Job> = None;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => match self.queue.recv().await {
                    Some(job) => job,
                    None => break,
                },
            };
            match job {
                Job::Report(first) => {
                    // Everything waiting now joins this group; a probe or close waits for it.
                    let mut group = vec![*first];
                    while group.len() < MAX_GROUP {
                        match self.queue.try_recv() {
                            Ok(Job::Report(pending)) => group.push(*pending),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.write_group(group).await;
                }
                Job::Probe(reply) => {
                    let outcome = self.probe().await;
                    let _ = reply.send(outcome);
                }
                Job::Close(reply) => {
                    self.close().await;
                    let _ = reply.send(());
                    return;
                }
            }
        }
        self.close().await;
    }

    async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Err(err) = conn.close().await {
                tracing::warn!(error = %err, "closing the write connection failed");
            }
        }
    }

    /// The connection and the chain's tip, opening and reading them again after a failure.
    async fn ready(&mut self) -> Result<(&mut SqliteConnection, &mut Tip), StoreError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => SqliteConnection::connect_with(&self.options).await?,
        };
        let conn = self.conn.insert(conn);
        let tip = match self.tip.take() {
            Some(tip) => tip,
            None => load_tip(conn).await?,
        };
        Ok((conn, self.tip.insert(tip)))
    }

    /// Forgets the connection and the tip after a failed write: a failed COMMIT (disk full)
    /// can leave the connection's idea of its transaction out of step with SQLite's, and a
    /// rolled-back group never extended the chain.
    fn reset(&mut self) {
        self.conn = None;
        self.tip = None;
    }

    /// Records the outcome of a write for readiness: an unwritable database sets the fault,
    /// any success clears it.
    fn note(&self, outcome: Result<(), &StoreError>) {
        let fault = match outcome {
            Ok(()) => None,
            Err(err @ StoreError::Unwritable { .. }) => Some(err.to_string()),
            Err(_) => return,
        };
        if let Ok(mut slot) = self.shared.fault.lock() {
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
    }

    async fn write_group(&mut self, group: Vec<Pending>) {
        // A request whose client went away (or gave up waiting) is not written: nobody could
        // be told it was.
        let waiting = group.len();
        let group: Vec<Pending> = group.into_iter().filter(|p| !p.reply.is_closed()).collect();
        if group.len() < waiting {
            tracing::info!(
                reports = waiting - group.len(),
                "clients went away before their reports were written; not stored"
            );
        }
        if group.is_empty() {
            return;
        }
        match self.commit_group(&group).await {
            Ok(results) => {
                self.note(Ok(()));
                for (pending, result) in group.into_iter().zip(results) {
                    let _ = pending.reply.send(result);
                }
            }
            Err(err) => {
                self.reset();
                self.note(Err(&err));
                if group.len() == 1 || err.affects_every_write() {
                    for pending in group {
                        let _ = pending.reply.send(Err(err.clone()));
                    }
                    return;
                }
                // One report may be at fault: write each alone, so only it fails.
                tracing::warn!(error = %err, reports = group.len(), "a group commit failed; writing its reports one by one");
                for pending in group {
                    let result = match self.commit_group(std::slice::from_ref(&pending)).await {
                        Ok(mut results) => results.pop().unwrap_or(Err(StoreError::Closed)),
                        Err(err) => {
                            self.reset();
                            self.note(Err(&err));
                            Err(err)
                        }
                    };
                    let _ = pending.reply.send(result);
                }
            }
        }
    }

    /// Writes a group in one transaction. The outer error fails the whole group (nothing was
    /// stored); an inner error belongs to one report that was refused without being stored.
    async fn commit_group(
        &mut self,
        group: &[Pending],
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        let render = self.render;
        let log_every = self.chain_log_every;
        let (conn, stored_tip) = self.ready().await?;
        // IMMEDIATE takes the write lock up front, so a writer outside this process (sqlite3)
        // makes us wait for busy_timeout instead of failing the transaction half-way.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut hosts = load_hosts(&mut tx, group).await?;
        let mut tip = stored_tip.clone();
        let mut links = Vec::with_capacity(group.len());
        let mut results = Vec::with_capacity(group.len());
        let mut touched: Vec<HostKey> = Vec::new();

        for (index, pending) in group.iter().enumerate() {
            let report = &pending.report;
            let key = HostKey::of(report);
            let before = hosts.get(&key);
            if before.is_none() && !report.kind().may_create_host() {
                results.push(Err(StoreError::UnknownHost {
                    server_group: report.server_group.clone(),
                    host: report.host.clone(),
                }));
                continue;
            }
            let received_at = Timestamp::now();
            let observed_at = report.observed_at(received_at);
            let ahead_of_clock = report.reported_at.is_some_and(|at| at > received_at);
            if ahead_of_clock {
                tracing::warn!(client = ?pending.row.client_addr, "a report's own time lies ahead of the server clock; ordered by its arrival");
            }

            let id = tip.next_id;
            let link = pending
                .row
                .link(index, id, received_at, observed_at, &tip.hash);
            tip.next_id += 1;
            tip.hash.clone_from(&link.hash);

            let new = Head {
                report_id: id,
                observed_at,
            };
            let heads_before = before.map(|b| b.heads).unwrap_or_default();
            let heads = heads_before.advance(report.facets(), new);
            let state = HostState::after(
                before.map(|b| &b.state),
                report,
                heads.moved_to(new),
                received_at,
                observed_at,
            )
            .ok_or_else(|| StoreError::Corrupt(format!("host {key} would have no status")))?;
            results.push(Ok(Recorded {
                report_id: id,
                created: before.is_none(),
                changed: heads != heads_before,
                kept_newer: heads.kept_newer(report.facets(), new),
                ahead_of_clock,
                state: state.clone(),
            }));
            if !before.is_some_and(|b| b.touched) {
                touched.push(key.clone());
            }
            hosts.insert(
                key,
                HostEntry {
                    heads,
                    last_report_id: id,
                    state,
                    touched: true,
                },
            );
            links.push(link);
        }

        let rows: Vec<(&NewRow, &Link)> = links
            .iter()
            .filter_map(|link| group.get(link.index).map(|pending| (&pending.row, link)))
            .collect();
        insert_reports(&mut tx, &rows).await?;
        let mut pointers = Vec::with_capacity(touched.len());
        for key in &touched {
            if let Some(entry) = hosts.get(key) {
                // Only the state a host is left in is stored: rendered once per host.
                let row = render(&entry.state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                pointers.push(HostPointers {
                    key,
                    heads: entry.heads,
                    last_report_id: entry.last_report_id,
                    status_row: Some(row),
                });
            }
        }
        upsert_hosts(&mut tx, &pointers).await?;
        tx.commit().await?;

        *stored_tip = tip;
        if let Some(last) = links.last() {
            self.shared.committed.store(last.id, Ordering::Release);
        }
        if log_every > 0 {
            for link in links.iter().filter(|link| link.id % log_every == 0) {
                tracing::info!(id = link.id, hash = %link.hash, "audit chain head");
            }
        }
        Ok(results)
    }

    /// Rewrites the one row of `writer_probe` with 64 KiB: succeeds once the database takes
    /// writes again, with room for reports.
    async fn probe(&mut self) -> Result<(), StoreError> {
        let at = Timestamp::now().to_string();
        let outcome = async {
            let (conn, _) = self.ready().await?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query!(
                "INSERT INTO writer_probe (id, at, headroom) VALUES (1, ?1, zeroblob(65536))
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at, headroom = excluded.headroom",
                at
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        }
        .await;
        if outcome.is_err() {
            self.reset();
        }
        self.note(outcome.as_ref().map(|_| ()));
        outcome
    }
}

/// A host by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct HostKey {
    pub server_group: String,
    pub host: String,
}

impl HostKey {
    pub(super) fn of(report: &Report) -> Self {
        HostKey {
            server_group: report.server_group.as_str().to_owned(),
            host: report.host.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.server_group, self.host)
    }
}

/// A host as the group found it, then as the group left it.
struct HostEntry {
    heads: Heads,
    last_report_id: i64,
    state: HostState,
    /// A report of this group moved it: its row in `hosts` is to be written.
    touched: bool,
}

/// The stored facet heads and current state of every host the group names (one query).
async fn load_hosts(
    conn: &mut SqliteConnection,
    group: &[Pending],
) -> Result<HashMap<HostKey, HostEntry>, StoreError> {
    let mut keys: Vec<(&str, &str)> = group
        .iter()
        .map(|p| (p.report.server_group.as_str(), p.report.host.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let keys = serde_json::to_string(&keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // The state as the current_status view derives it, and the facet heads the merge needs
    // (the view carries every head's time but the files report's).
    let rows = sqlx::query_as!(
        LoadedHost,
        r#"SELECT cs.project_name AS "project_name?", cs.repo_name AS "repo_name?",
                  cs.server_group AS "server_group!", cs.server_type AS "server_type?",
                  cs.environment AS "environment?", cs.host AS "host!", cs.status AS "status!",
                  cs.changed_files AS "changed_files!: String",
                  cs.validation_status AS "validation_status?",
                  cs.validation_message AS "validation_message?",
                  cs.last_pipeline_run AS "last_pipeline_run?",
                  cs.last_cron_check AS "last_cron_check?", cs.commit_sha AS "commit_sha?",
                  cs.branch AS "branch?", cs.updated_by AS "updated_by?",
                  cs.timestamp AS "timestamp!", cs.status_observed_at AS "status_observed_at!",
                  cs.reported_drift_count AS "reported_drift_count?",
                  h.last_report_id AS "last_report_id!", h.status_report_id AS "status_id!",
                  h.files_report_id AS "files_id!", f.observed_at AS "files_at!",
                  h.pipeline_report_id AS "pipeline_id?", h.cron_report_id AS "cron_id?"
           FROM json_each(?1) AS k
           JOIN hosts h ON h.server_group = k.value ->> 0 AND h.host = k.value ->> 1
           JOIN current_status cs ON cs.server_group = h.server_group AND cs.host = h.host
           JOIN reports f ON f.id = h.files_report_id"#,
        keys
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let key = HostKey {
                server_group: row.server_group.clone(),
                host: row.host.clone(),
            };
            Ok((key, row.into_entry()?))
        })
        .collect()
}

/// One row of `load_hosts`.
struct LoadedHost {
    project_name: Option<String>,
    repo_name: Option<String>,
    server_group: String,
    server_type: Option<String>,
    environment: Option<String>,
    host: String,
    status: String,
    changed_files: String,
    validation_status: Option<String>,
    validation_message: Option<String>,
    last_pipeline_run: Option<String>,
    last_cron_check: Option<String>,
    commit_sha: Option<String>,
    branch: Option<String>,
    updated_by: Option<String>,
    timestamp: String,
    status_observed_at: String,
    reported_drift_count: Option<i64>,
    last_report_id: i64,
    status_id: i64,
    files_id: i64,
    files_at: String,
    pipeline_id: Option<i64>,
    cron_id: Option<i64>,
}

impl LoadedHost {
    fn into_entry(self) -> Result<HostEntry, StoreError> {
        // The view's pipeline and cron times are their reports' observed_at.
        let heads = Heads {
            status: head(Some(self.status_id), Some(&self.status_observed_at))?,
            files: head(Some(self.files_id), Some(&self.files_at))?,
            pipeline: head(self.pipeline_id, self.last_pipeline_run.as_deref())?,
            cron_check: head(self.cron_id, self.last_cron_check.as_deref())?,
        };
        let state = HostState::try_from(HostStateRow {
            project_name: self.project_name,
            repo_name: self.repo_name,
            server_group: self.server_group,
            server_type: self.server_type,
            environment: self.environment,
            host: self.host,
            status: self.status,
            changed_files: self.changed_files,
            validation_status: self.validation_status,
            validation_message: self.validation_message,
            last_pipeline_run: self.last_pipeline_run,
            last_cron_check: self.last_cron_check,
            commit_sha: self.commit_sha,
            branch: self.branch,
            updated_by: self.updated_by,
            timestamp: self.timestamp,
            status_observed_at: self.status_observed_at,
            reported_drift_count: self.reported_drift_count,
        })?;
        Ok(HostEntry {
            heads,
            last_report_id: self.last_report_id,
            state,
            touched: false,
        })
    }
}

/// A host's new pointers, and its rendered `GET /status` row (None: rendered at the next
/// start, as the bulk loader leaves it).
pub(super) struct HostPointers<'a> {
    pub key: &'a HostKey,
    pub heads: Heads,
    pub last_report_id: i64,
    pub status_row: Option<String>,
}

static UPSERT_HOSTS: LazyLock<MultiRow> = LazyLock::new(|| {
    MultiRow::new(
        "INSERT INTO hosts (server_group, host, last_report_id, status_report_id, \
         files_report_id, pipeline_report_id, cron_report_id, status_row)",
        8,
        " ON CONFLICT (server_group, host) DO UPDATE SET \
         last_report_id = excluded.last_report_id, \
         status_report_id = excluded.status_report_id, \
         files_report_id = excluded.files_report_id, \
         pipeline_report_id = excluded.pipeline_report_id, \
         cron_report_id = excluded.cron_report_id, \
         status_row = excluded.status_row",
    )
});

/// Writes the hosts' new pointers and rows; each host appears once.
pub(super) async fn upsert_hosts(
    conn: &mut SqliteConnection,
    hosts: &[HostPointers<'_>],
) -> Result<(), StoreError> {
    for (sql, chunk) in UPSERT_HOSTS.chunks(hosts) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for host in chunk {
            let (Some(status), Some(files)) = (host.heads.status, host.heads.files) else {
                return Err(StoreError::Corrupt(format!(
                    "host {} would have no status",
                    host.key
                )));
            };
            query = query
                .bind(host.key.server_group.as_str())
                .bind(host.key.host.as_str())
                .bind(host.last_report_id)
                .bind(status.report_id)
                .bind(files.report_id)
                .bind(host.heads.pipeline.map(|h| h.report_id))
                .bind(host.heads.cron_check.map(|h| h.report_id))
                .bind(host.status_row.as_deref());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
