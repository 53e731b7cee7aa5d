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
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::domain::{
    chain, Clock, Heads, HostState, Period, Report, ReportKind, Status, Tier, Timestamp, Transition,
};

use super::append::{insert_reports, load_tip, MultiRow, NewRow, Tip};
use super::record::ReportRecord;
use super::retention::{prune_batch, PruneBatch, PruneOutcome};
use super::rows::{head, HostStateRow};
use super::{RenderRow, StoreError, WRITER_ANSWER_TIMEOUT};

/// The most reports one transaction holds; more wait for the next one.
const MAX_GROUP: usize = 256;

/// How long `/ready`'s write probe waits for the writer (inside /ready's own limit).
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// For an entry of an old server's file: the SHA-256 (hex) of its JSON with keys sorted,
    /// recorded in `imported_entries` with the report, so it is imported only once.
    pub import_entry: Option<String>,
    /// The request's id (`X-Request-Id`), for the writer's log lines; not stored.
    pub request_id: Option<String>,
}

/// The outcome of an accepted report.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The id of the new `reports` row.
    pub report_id: i64,
    /// The report created the host.
    pub created: bool,
    /// The host's status before the report; None when it created the host.
    pub previous_status: Option<Status>,
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

/// An answer as the client got it, kept to be given again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
}

/// How the endpoint answers a committed report (computed in the writer, so the answer is
/// stored in the report's own transaction).
pub type RenderAnswer = Box<dyn Fn(&Recorded) -> Result<StoredAnswer, String> + Send + Sync>;

/// A request's `Idempotency-Key`, scoped to who sent it.
pub struct OnceKey {
    /// The token's name; empty without tokens.
    pub principal: String,
    pub key: String,
    /// SHA-256 (hex) of the method, path and body.
    pub fingerprint: String,
    pub render: RenderAnswer,
}

impl std::fmt::Debug for OnceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnceKey")
            .field("principal", &self.principal)
            .field("key", &self.key)
            .finish()
    }
}

/// What the writer did with a report.
#[derive(Debug)]
pub enum Written {
    /// Stored now; with a key, the answer that was stored with it.
    Fresh(Box<Recorded>, Option<StoredAnswer>),
    /// Its key was used before for the same request: nothing written, this was the answer.
    Replayed(StoredAnswer),
}

/// Where the writer sends a job's result. Dropped unanswered while the writer panics, it
/// marks the writer stopped before its receiver learns of it: a request answered 503 because
/// the writer died finds `/ready` already saying so (the supervisor records the cause a moment
/// later), wherever the writer held it. Only the writer can be unwinding with one in hand: the
/// requesting side moves it into the queue as soon as it is made.
struct Answer<T> {
    tx: Option<oneshot::Sender<Result<T, StoreError>>>,
    shared: Arc<Shared>,
}

type Receiver<T> = oneshot::Receiver<Result<T, StoreError>>;

impl<T> Answer<T> {
    fn channel(shared: &Arc<Shared>) -> (Answer<T>, Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        let answer = Answer {
            tx: Some(tx),
            shared: Arc::clone(shared),
        };
        (answer, rx)
    }

    /// Answers; nothing happens when the request is gone.
    fn send(mut self, result: Result<T, StoreError>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }

    /// The request stopped waiting for its answer.
    fn is_closed(&self) -> bool {
        self.tx.as_ref().is_none_or(|tx| tx.is_closed())
    }
}

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        // The fields (the sender among them) are dropped after this.
        if self.tx.is_some() && std::thread::panicking() {
            self.shared.stopped.store(true, Ordering::Release);
        }
    }
}

struct Pending {
    report: Report,
    /// The request's span (with its request id): the writer's lines about this report log
    /// inside it.
    span: tracing::Span,
    /// The report's row, rendered by the request's own thread as far as it can be before
    /// the writer gives it an id, times and its place in the chain.
    row: NewRow,
    import_entry: Option<String>,
    once: Option<OnceKey>,
    request_id: Option<String>,
}

impl Pending {
    fn new(report: Report, mut meta: RequestMeta) -> Self {
        let import_entry = meta.import_entry.take();
        let request_id = meta.request_id.take();
        let row = NewRow::of_report(&report, meta);
        Pending {
            report,
            span: tracing::Span::current(),
            row,
            import_entry,
            once: None,
            request_id,
        }
    }
}

enum Job {
    Report(Box<Pending>, Answer<Written>),
    /// Reports written all together or not at all (an import run).
    Atomic(Vec<Pending>, Answer<Vec<Recorded>>),
    /// Remove rows retention let go, recording them in the chain.
    Prune(PruneBatch, Answer<PruneOutcome>),
    /// Write one row to learn whether the database takes writes again (readiness).
    Probe(Answer<()>),
    /// Finish, close the connection (checkpointing the WAL), then answer.
    Close(oneshot::Sender<()>),
}

/// What the writer publishes to everyone else.
#[derive(Debug, Default)]
struct Shared {
    /// The id of the newest committed row (0 before the first): the version of everything
    /// a reader can see.
    committed: AtomicI64,
    /// Why the last write failed, while the database does not take writes.
    fault: Mutex<Option<String>>,
    /// The writer task panicked (set before the requests it held are answered).
    stopped: AtomicBool,
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
        once: Option<OnceKey>,
    ) -> Result<Written, StoreError> {
        let (reply, answer) = Answer::channel(&self.shared);
        let mut pending = Pending::new(report, meta);
        pending.once = once;
        let job = Job::Report(Box::new(pending), reply);
        self.jobs.try_send(job).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        self.wait(answer).await
    }

    /// Writes every report in one transaction, or none of them.
    pub(super) async fn record_all(
        &self,
        reports: Vec<(Report, RequestMeta)>,
    ) -> Result<Vec<Recorded>, StoreError> {
        let group = reports
            .into_iter()
            .map(|(report, meta)| Pending::new(report, meta))
            .collect();
        self.send(|reply| Job::Atomic(group, reply)).await
    }

    /// Has the writer remove what retention let go (waits for room in the queue).
    pub(super) async fn prune(&self, batch: PruneBatch) -> Result<PruneOutcome, StoreError> {
        self.send(|reply| Job::Prune(batch, reply)).await
    }

    /// Asks the writer to write its probe row: refused at once when the queue is full, and
    /// given up after `PROBE_TIMEOUT` (a readiness probe must answer in time).
    pub(super) async fn probe(&self) -> Result<(), StoreError> {
        let (reply, answer) = Answer::channel(&self.shared);
        self.jobs
            .try_send(Job::Probe(reply))
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => StoreError::ProbeUnanswered(format!(
                    "the write queue is full ({} reports waiting); the write probe was not queued",
                    self.jobs.max_capacity()
                )),
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })?;
        match tokio::time::timeout(PROBE_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::ProbeUnanswered(format!(
                "the writer did not answer the write probe within {} s",
                PROBE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Reports waiting for the writer.
    pub(super) fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    pub(super) fn capacity(&self) -> usize {
        self.jobs.max_capacity()
    }

    /// Whether the writer task still runs (its end closes the queue; a panic says so first).
    pub(super) fn is_up(&self) -> bool {
        !self.jobs.is_closed() && !self.shared.stopped.load(Ordering::Acquire)
    }

    async fn send<T>(&self, job: impl FnOnce(Answer<T>) -> Job) -> Result<T, StoreError> {
        let (reply, answer) = Answer::channel(&self.shared);
        self.jobs
            .send(job(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        self.wait(answer).await
    }

    async fn wait<T>(&self, answer: Receiver<T>) -> Result<T, StoreError> {
        match tokio::time::timeout(WRITER_ANSWER_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            // The writer dropped the request: it stopped.
            Ok(Err(_)) => Err(StoreError::Closed),
            // It may still be committed: the writer has it.
            Err(_) => Err(StoreError::Unanswered),
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
    pub clock: Clock,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_window: Period,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Test builds only: the writer panics when asked to write a report for this host.
    pub panic_on_host: Option<String>,
}

/// The writer's loop, for the caller to run under its supervisor. Dropping it unstarted
/// closes the queue: every write is then refused.
pub struct WriterTask(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl WriterTask {
    pub async fn run(self) {
        self.0.await
    }
}

/// Starts the writer on `conn` (migrated, its status rows rendered) and returns its handle.
pub(super) async fn start(
    mut conn: SqliteConnection,
    config: WriterConfig,
) -> Result<(WriterHandle, WriterTask), StoreError> {
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
        tip,
        reread_tip: false,
        chain_log_every: config.chain_log_every,
        render: config.render,
        clock: config.clock,
        idempotency_window: config.idempotency_window,
        metrics: config.metrics,
        panic_on_host: config.panic_on_host,
    };
    Ok((
        WriterHandle { jobs, shared },
        WriterTask(Box::pin(writer.run())),
    ))
}

struct Writer {
    /// None after a failed write, until a new connection opens.
    conn: Option<SqliteConnection>,
    options: SqliteConnectOptions,
    queue: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    /// The chain's tip as this writer last committed it.
    tip: Tip,
    /// After a failed write the tip is read again from the database (a rolled-back group
    /// never extended the chain); it must still be where this writer left it.
    reread_tip: bool,
    chain_log_every: i64,
    render: RenderRow,
    clock: Clock,
    idempotency_window: Period,
    metrics: Arc<crate::metrics::Metrics>,
    panic_on_host: Option<String>,
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
                Job::Report(first, reply) => {
                    // Everything waiting now joins this group; other jobs wait for it.
                    let mut group = vec![(*first, reply)];
                    while group.len() < MAX_GROUP {
                        match self.queue.try_recv() {
                            Ok(Job::Report(pending, reply)) => group.push((*pending, reply)),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.write_group(group).await;
                }
                Job::Atomic(mut group, reply) => {
                    let outcome = self.commit_group(&mut group, true).await;
                    let outcome = match outcome {
                        Ok(results) => results
                            .into_iter()
                            .map(|result| match result? {
                                Written::Fresh(recorded, _) => Ok(*recorded),
                                Written::Replayed(_) => Err(StoreError::Corrupt(
                                    "an atomic group carried an idempotency key".to_owned(),
                                )),
                            })
                            .collect(),
                        Err(err) => Err(err),
                    };
                    if outcome.is_err() {
                        self.reset();
                    }
                    self.note(outcome.as_ref().map(|_| ()));
                    reply.send(outcome);
                }
                Job::Prune(batch, reply) => {
                    let outcome = self.prune(&batch).await;
                    reply.send(outcome);
                }
                Job::Probe(reply) => {
                    let outcome = self.probe().await;
                    reply.send(outcome);
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
        if self.reread_tip {
            let stored = load_tip(conn).await?;
            if stored.next_id != self.tip.next_id || stored.hash != self.tip.hash {
                tracing::error!(
                    id = stored.next_id - 1,
                    hash = %stored.hash,
                    written_id = self.tip.next_id - 1,
                    written_hash = %self.tip.hash,
                    "the audit chain does not end where this server left it: another \
                     process wrote to reports; check the rows after written_id"
                );
            }
            self.tip = stored;
            self.reread_tip = false;
        }
        Ok((conn, &mut self.tip))
    }

    /// Forgets the connection and the tip after a failed write: a failed COMMIT (disk full)
    /// can leave the connection's idea of its transaction out of step with SQLite's, and a
    /// rolled-back group never extended the chain.
    fn reset(&mut self) {
        self.conn = None;
        self.reread_tip = true;
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

    async fn write_group(&mut self, group: Vec<(Pending, Answer<Written>)>) {
        // A request whose client went away (or gave up waiting) is not written: nobody could
        // be told it was.
        let (mut group, replies): (Vec<Pending>, Vec<Answer<Written>>) = group
            .into_iter()
            .filter(|(pending, reply)| {
                let gone = reply.is_closed();
                if gone {
                    pending.span.in_scope(|| {
                        tracing::info!(
                            request_id = pending.request_id.as_deref(),
                            "the client went away before its report was written; not stored"
                        )
                    });
                }
                !gone
            })
            .unzip();
        if group.is_empty() {
            return;
        }
        match self.commit_group(&mut group, false).await {
            Ok(results) => {
                self.note(Ok(()));
                for (reply, result) in replies.into_iter().zip(results) {
                    reply.send(result);
                }
            }
            Err(err) => {
                self.reset();
                self.note(Err(&err));
                if group.len() == 1 || err.affects_every_write() {
                    for reply in replies {
                        reply.send(Err(err.clone()));
                    }
                    return;
                }
                // One report may be at fault: write each alone, so only it fails.
                let request_ids: Vec<String> =
                    group.iter().filter_map(|p| p.request_id.clone()).collect();
                tracing::warn!(error = %err, reports = group.len(), request_ids = %request_ids.join(","), "a group commit failed; writing its reports one by one");
                for (pending, reply) in group.into_iter().zip(replies) {
                    let mut alone = [pending];
                    let result = match self.commit_group(&mut alone, false).await {
                        Ok(mut results) => results.pop().unwrap_or(Err(StoreError::Closed)),
                        Err(err) => {
                            self.reset();
                            self.note(Err(&err));
                            Err(err)
                        }
                    };
                    reply.send(result);
                }
            }
        }
    }

    /// Writes a group in one transaction. The outer error fails the whole group (nothing was
    /// stored); an inner error belongs to one report that was refused without being stored.
    /// When `atomic`, a refused report fails the whole group instead.
    async fn commit_group(
        &mut self,
        group: &mut [Pending],
        atomic: bool,
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        if let Some(host) = &self.panic_on_host {
            if group.iter().any(|p| p.report.host.as_str() == host) {
                panic!("injected fault: a report for host {host}");
            }
        }
        let started = std::time::Instant::now();
        let results = self.write_transaction(group, atomic).await?;
        let mut written = 0;
        for (pending, result) in group.iter().zip(&results) {
            if let Ok(Written::Fresh(recorded, _)) = result {
                written += 1;
                self.metrics.accepted(pending.report.kind().as_str());
                pending.span.in_scope(|| {
                    tracing::debug!(
                        report_id = recorded.report_id,
                        request_id = pending.request_id.as_deref(),
                        "report committed"
                    );
                });
            }
        }
        if written > 0 {
            self.metrics
                .group_committed(written, started.elapsed().as_secs_f64());
        }
        Ok(results)
    }

    async fn write_transaction(
        &mut self,
        group: &mut [Pending],
        atomic: bool,
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let render = self.render;
        let window = self.idempotency_window;
        let log_every = self.chain_log_every;
        let clock = self.clock.clone();
        let (conn, stored_tip) = self.ready().await?;
        // IMMEDIATE takes the write lock up front, so a writer outside this process (sqlite3)
        // makes us wait for busy_timeout instead of failing the transaction half-way.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut hosts = load_hosts(&mut tx, group).await?;
        let mut tip = stored_tip.clone();
        let mut linked: Vec<usize> = Vec::with_capacity(group.len());
        let mut results = Vec::with_capacity(group.len());
        let mut touched: Vec<HostKey> = Vec::new();
        let mut transitions: Vec<Transition> = Vec::new();
        let mut commits: Vec<(HostKey, String, Option<String>, Timestamp)> = Vec::new();

        let now = clock.now();
        let forget_before = now.checked_sub(window).unwrap_or(now).to_string();
        let mut keys_seen: HashMap<(String, String), (String, StoredAnswer)> = HashMap::new();
        let mut keys_new: Vec<NewKey> = Vec::new();
        if group.iter().any(|p| p.once.is_some()) {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?1")
                .bind(&forget_before)
                .execute(&mut *tx)
                .await?;
        }
        for (index, pending) in group.iter_mut().enumerate() {
            if let Some(once) = &pending.once {
                let name = (once.principal.clone(), once.key.clone());
                let known = match keys_seen.get(&name) {
                    Some(known) => Some(known.clone()),
                    None => {
                        stored_key(&mut *tx, &once.principal, &once.key, &forget_before).await?
                    }
                };
                match known {
                    Some((fingerprint, answer)) if fingerprint == once.fingerprint => {
                        results.push(Ok(Written::Replayed(answer)));
                        continue;
                    }
                    Some(_) => {
                        let refused = StoreError::KeyReused(once.key.clone());
                        if atomic {
                            return Err(refused);
                        }
                        results.push(Err(refused));
                        continue;
                    }
                    None => {}
                }
            }
            let report = &pending.report;
            let key = HostKey::of(report);
            let before = hosts.get(&key).and_then(|entry| entry.present());
            if before.is_none() && !report.kind().may_create_host() {
                let refused = StoreError::UnknownHost {
                    server_group: report.server_group.clone(),
                    host: report.host.clone(),
                };
                if atomic {
                    return Err(refused);
                }
                results.push(Err(refused));
                continue;
            }
            let received_at = clock.now();
            let observed_at = report.observed_at(received_at);
            let ahead_of_clock = report.reported_at.is_some_and(|at| at > received_at);
            if ahead_of_clock {
                pending.span.in_scope(|| {
                    tracing::warn!(client = ?pending.row.record.client_addr, request_id = pending.request_id.as_deref(), "a report's own time lies ahead of the server clock; ordered by its arrival");
                });
            }

            let id = tip.next_id;
            pending.row.link(id, received_at, observed_at, &tip.hash);
            tip.next_id += 1;
            tip.hash.clone_from(&pending.row.record.hash);

            let entry = if report.kind() == ReportKind::Decommission {
                // The host leaves the current state; its history stays.
                let Some(before) = before else {
                    return Err(StoreError::Corrupt(format!("host {key} is not there")));
                };
                pending.row.record.is_change = 1;
                let recorded = Recorded {
                    report_id: id,
                    created: false,
                    previous_status: Some(before.state.status),
                    changed: true,
                    kept_newer: Vec::new(),
                    ahead_of_clock: false,
                    state: before.state.clone(),
                };
                results.push(Ok(remember(
                    pending.once.as_ref(),
                    recorded,
                    received_at,
                    &mut keys_seen,
                    &mut keys_new,
                )?));
                HostEntry::Removed
            } else {
                let times = report.facet_times(received_at);
                let heads_before = before.map(|b| b.heads).unwrap_or_default();
                let heads = heads_before.advance(times, id);
                let state = HostState::after(
                    before.map(|b| &b.state),
                    report,
                    heads.moved_to(id),
                    received_at,
                    times,
                )
                .ok_or_else(|| StoreError::Corrupt(format!("host {key} would have no status")))?;
                let tier = Tier::of(
                    report.kind(),
                    before.map(|b| (b.state.status, b.state.changed_files.as_slice())),
                    Some((state.status, state.changed_files.as_slice())),
                );
                pending.row.record.is_change = i64::from(tier.is_change());
                if let Some(transition) = state.transition_from(
                    before.map(|b| &b.state),
                    heads.moved_to(id),
                    id,
                    report.kind(),
                ) {
                    transitions.push(transition);
                }
                if report.kind() == ReportKind::Pipeline {
                    if let Some(deployment) = report.deployment() {
                        if let Some(sha) = &deployment.commit_sha {
                            commits.push((
                                key.clone(),
                                sha.clone(),
                                deployment.branch.clone(),
                                received_at,
                            ));
                        }
                    }
                }
                let recorded = Recorded {
                    report_id: id,
                    created: before.is_none(),
                    previous_status: before.map(|b| b.state.status),
                    changed: heads != heads_before,
                    kept_newer: heads.kept_newer(times, id),
                    ahead_of_clock,
                    state: state.clone(),
                };
                results.push(Ok(remember(
                    pending.once.as_ref(),
                    recorded,
                    received_at,
                    &mut keys_seen,
                    &mut keys_new,
                )?));
                HostEntry::Present(Box::new(PresentHost {
                    heads,
                    last_report_id: id,
                    state,
                }))
            };
            if !hosts.get(&key).is_some_and(|e| e.touched) {
                touched.push(key.clone());
            }
            hosts.insert(
                key,
                Touched {
                    entry,
                    touched: true,
                },
            );
            linked.push(index);
        }

        let rows: Vec<&ReportRecord> = linked
            .iter()
            .filter_map(|index| group.get(*index).map(|pending| &pending.row.record))
            .collect();
        insert_reports(&mut tx, &rows).await?;
        let mut pointers = Vec::with_capacity(touched.len());
        let mut removed = Vec::new();
        for key in &touched {
            match hosts.get(key).map(|t| &t.entry) {
                Some(HostEntry::Present(host)) => {
                    // Only the state a host is left in is stored: rendered once per host.
                    let row =
                        render(&host.state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    pointers.push(HostPointers {
                        key,
                        heads: host.heads,
                        last_report_id: host.last_report_id,
                        status_row: Some(row),
                        state: Some(&host.state),
                    });
                }
                Some(HostEntry::Removed) => removed.push(key),
                None => {}
            }
        }
        upsert_hosts(&mut tx, &pointers).await?;
        delete_hosts(&mut tx, &removed).await?;
        insert_transitions(&mut tx, &transitions).await?;
        upsert_commits(&mut tx, &commits).await?;
        for (principal, key, fingerprint, report_id, answer, created_at) in &keys_new {
            // A row still there for the key is older than the window: this replaces it.
            sqlx::query(
                "INSERT OR REPLACE INTO idempotency_keys
                     (principal, key, fingerprint, report_id, status, body, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(principal)
            .bind(key)
            .bind(fingerprint)
            .bind(report_id)
            .bind(i64::from(answer.status))
            .bind(&answer.body)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
        }
        for pending in linked.iter().filter_map(|index| group.get(*index)) {
            if let Some(entry) = &pending.import_entry {
                sqlx::query(
                    "INSERT INTO imported_entries (server_group, host, entry_sha256, report_id)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .bind(pending.report.server_group.as_str())
                .bind(pending.report.host.as_str())
                .bind(entry)
                .bind(pending.row.record.id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;

        let last = linked
            .last()
            .and_then(|index| group.get(*index))
            .map(|pending| pending.row.record.id);
        *stored_tip = tip;
        if let Some(last) = last {
            self.shared.committed.store(last, Ordering::Release);
        }
        if log_every > 0 {
            for record in linked
                .iter()
                .filter_map(|index| group.get(*index))
                .map(|pending| &pending.row.record)
                .filter(|record| record.id % log_every == 0)
            {
                tracing::info!(id = record.id, hash = %record.hash, "audit chain head");
            }
        }
        Ok(results)
    }

    /// One pruning transaction (see `retention::prune_batch`).
    async fn prune(&mut self, batch: &PruneBatch) -> Result<PruneOutcome, StoreError> {
        let now = self.clock.now();
        let outcome = async {
            let (conn, tip) = self.ready().await?;
            prune_batch(conn, tip, now, batch).await
        }
        .await;
        match &outcome {
            Ok(done) => {
                if let Some(id) = done.record_id {
                    self.shared.committed.store(id, Ordering::Release);
                    // Published like the chain's head: a retention row in the file that is
                    // not in the log was not written by this server.
                    tracing::info!(
                        removed = done.removed,
                        retention_row = id,
                        hash = done.record_hash.as_deref().unwrap_or_default(),
                        "retention removed reports"
                    );
                }
                self.note(Ok(()));
            }
            Err(err) => {
                self.reset();
                self.note(Err(err));
            }
        }
        outcome
    }

    /// Rewrites the one row of `writer_probe` with 64 KiB: succeeds once the database takes
    /// writes again, with room for reports.
    async fn probe(&mut self) -> Result<(), StoreError> {
        let at = self.clock.now().to_string();
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
struct Touched {
    entry: HostEntry,
    /// A report of this group moved it: its row in `hosts` is to be written (or deleted).
    touched: bool,
}

enum HostEntry {
    Present(Box<PresentHost>),
    /// Decommissioned by a report of this group.
    Removed,
}

struct PresentHost {
    heads: Heads,
    last_report_id: i64,
    state: HostState,
}

impl Touched {
    fn present(&self) -> Option<&PresentHost> {
        match &self.entry {
            HostEntry::Present(host) => Some(host),
            HostEntry::Removed => None,
        }
    }
}

/// The stored facet heads and current state of every host the group names (one query).
async fn load_hosts(
    conn: &mut SqliteConnection,
    group: &[Pending],
) -> Result<HashMap<HostKey, Touched>, StoreError> {
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
                  cs.last_pipeline_run AS "last_pipeline_run?: String",
                  cs.last_cron_check AS "last_cron_check?: String", cs.commit_sha AS "commit_sha?",
                  cs.branch AS "branch?", cs.updated_by AS "updated_by?",
                  cs.timestamp AS "timestamp!", cs.status_observed_at AS "status_observed_at!",
                  cs.reported_drift_count AS "reported_drift_count?",
                  cs.status_since AS "status_since!: String",
                  cs.drift_received_at AS "drift_received_at?: String",
                  cs.commit_since AS "commit_since?: String",
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
    status_since: String,
    drift_received_at: Option<String>,
    commit_since: Option<String>,
    last_report_id: i64,
    status_id: i64,
    files_id: i64,
    files_at: String,
    pipeline_id: Option<i64>,
    cron_id: Option<i64>,
}

impl LoadedHost {
    fn into_entry(self) -> Result<Touched, StoreError> {
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
            status_since: self.status_since,
            drift_received_at: self.drift_received_at,
            commit_since: self.commit_since,
        })?;
        Ok(Touched {
            entry: HostEntry::Present(Box::new(PresentHost {
                heads,
                last_report_id: self.last_report_id,
                state,
            })),
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
    /// The state the row was rendered from, for the columns filters read (None: derived at
    /// the next start, as the bulk loader leaves it).
    pub state: Option<&'a HostState>,
}

static UPSERT_HOSTS: LazyLock<MultiRow> = LazyLock::new(|| {
    MultiRow::new(
        "INSERT INTO hosts (server_group, host, last_report_id, status_report_id, \
         files_report_id, pipeline_report_id, cron_report_id, status_row, status, \
         changed_files_count, environment, server_type, repo_name, project_name, branch, \
         commit_sha, validation_status, status_since, drift_received_at, commit_since)",
        20,
        " ON CONFLICT (server_group, host) DO UPDATE SET \
         last_report_id = excluded.last_report_id, \
         status_report_id = excluded.status_report_id, \
         files_report_id = excluded.files_report_id, \
         pipeline_report_id = excluded.pipeline_report_id, \
         cron_report_id = excluded.cron_report_id, \
         status_row = excluded.status_row, status = excluded.status, \
         changed_files_count = excluded.changed_files_count, \
         environment = excluded.environment, server_type = excluded.server_type, \
         repo_name = excluded.repo_name, project_name = excluded.project_name, \
         branch = excluded.branch, commit_sha = excluded.commit_sha, \
         validation_status = excluded.validation_status, \
         status_since = excluded.status_since, \
         drift_received_at = excluded.drift_received_at, \
         commit_since = excluded.commit_since",
    )
});

/// Removes decommissioned hosts from the current state.
async fn delete_hosts(conn: &mut SqliteConnection, hosts: &[&HostKey]) -> Result<(), StoreError> {
    for key in hosts {
        sqlx::query("DELETE FROM hosts WHERE server_group = ?1 AND host = ?2")
            .bind(&key.server_group)
            .bind(&key.host)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

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
            let state = host.state;
            let d = state.map(|s| &s.deployment);
            let time = |t: Option<Timestamp>| t.map(|t| t.to_string());
            query = query
                .bind(state.map(|s| s.status.as_str()))
                .bind(state.map(|s| s.changed_files.len() as i64))
                .bind(d.and_then(|d| d.environment.as_deref()))
                .bind(d.and_then(|d| d.server_type.as_deref()))
                .bind(d.and_then(|d| d.repo_name.as_deref()))
                .bind(d.and_then(|d| d.project_name.as_deref()))
                .bind(d.and_then(|d| d.branch.as_deref()))
                .bind(d.and_then(|d| d.commit_sha.as_deref()))
                .bind(d.and_then(|d| d.validation_status.as_deref()))
                .bind(time(state.map(|s| s.status_since)))
                .bind(time(state.and_then(|s| s.drift_received_at)))
                .bind(time(state.and_then(|s| s.commit_since)));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

static INSERT_TRANSITIONS: LazyLock<MultiRow> = LazyLock::new(|| {
    MultiRow::new(
        "INSERT INTO transitions (report_id, server_group, host, from_status, to_status, at, \
         kind, previous_duration_ms, commit_sha, changed_files_count)",
        10,
        "",
    )
});

/// Records the changes of status the group's reports made.
async fn insert_transitions(
    conn: &mut SqliteConnection,
    transitions: &[Transition],
) -> Result<(), StoreError> {
    for (sql, chunk) in INSERT_TRANSITIONS.chunks(transitions) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in chunk {
            query = query
                .bind(t.report_id)
                .bind(t.server_group.as_str())
                .bind(t.host.as_str())
                .bind(t.from_status.map(|s| s.as_str()))
                .bind(t.to_status.as_str())
                .bind(t.at.to_string())
                .bind(t.kind.as_str())
                .bind(t.previous_duration_ms)
                .bind(t.commit_sha.as_deref())
                .bind(t.changed_files_count as i64);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

static UPSERT_COMMITS: LazyLock<MultiRow> = LazyLock::new(|| {
    MultiRow::new(
        "INSERT INTO commits (server_group, commit_sha, branch, first_reported, last_reported)",
        5,
        " ON CONFLICT (server_group, commit_sha) DO UPDATE SET \
         branch = excluded.branch, last_reported = excluded.last_reported",
    )
});

/// Notes each commit the group's pipeline reports named, with when the first and the last of
/// them arrived (in arrival order): one row per commit and group, one statement.
async fn upsert_commits(
    conn: &mut SqliteConnection,
    commits: &[(HostKey, String, Option<String>, Timestamp)],
) -> Result<(), StoreError> {
    let mut seen: Vec<(&str, &str, Option<&str>, Timestamp, Timestamp)> = Vec::new();
    for (key, sha, branch, at) in commits {
        match seen
            .iter_mut()
            .find(|(g, s, ..)| *g == key.server_group && *s == sha.as_str())
        {
            Some(entry) => {
                entry.2 = branch.as_deref();
                entry.4 = *at;
            }
            None => seen.push((&key.server_group, sha, branch.as_deref(), *at, *at)),
        }
    }
    for (sql, chunk) in UPSERT_COMMITS.chunks(&seen) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (group, sha, branch, first, last) in chunk {
            query = query
                .bind(*group)
                .bind(*sha)
                .bind(*branch)
                .bind(first.to_string())
                .bind(last.to_string());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A key's fingerprint and stored answer, when it was used since `since` (the writer's
/// transaction and the read pool's fast path ask the same question).
pub(super) async fn stored_key<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    principal: &str,
    key: &str,
    since: &str,
) -> Result<Option<(String, StoredAnswer)>, StoreError> {
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT fingerprint, status, body FROM idempotency_keys
         WHERE principal = ?1 AND key = ?2 AND created_at >= ?3",
    )
    .bind(principal)
    .bind(key)
    .bind(since)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|(fingerprint, status, body)| {
        (
            fingerprint,
            StoredAnswer {
                status: u16::try_from(status).unwrap_or(200),
                body,
            },
        )
    }))
}

type NewKey = (String, String, String, i64, StoredAnswer, String);

/// The written outcome of a report; with a key, its answer is rendered now and kept to be
/// stored in this transaction (and to answer a repeat later in the same group).
fn remember(
    once: Option<&OnceKey>,
    recorded: Recorded,
    received_at: Timestamp,
    seen: &mut HashMap<(String, String), (String, StoredAnswer)>,
    new: &mut Vec<NewKey>,
) -> Result<Written, StoreError> {
    let Some(once) = once else {
        return Ok(Written::Fresh(Box::new(recorded), None));
    };
    let answer = (once.render)(&recorded).map_err(StoreError::Corrupt)?;
    seen.insert(
        (once.principal.clone(), once.key.clone()),
        (once.fingerprint.clone(), answer.clone()),
    );
    new.push((
        once.principal.clone(),
        once.key.clone(),
        once.fingerprint.clone(),
        recorded.report_id,
        answer.clone(),
        received_at.to_string(),
    ));
    Ok(Written::Fresh(Box::new(recorded), Some(answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_dropped_by_a_panic_marks_the_writer_stopped() {
        let shared = Arc::new(Shared::default());
        let (answer, mut receiver) = Answer::<()>::channel(&shared);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = answer;
            panic!("the writer fails with a request in hand");
        }));

        assert!(unwound.is_err());
        assert!(shared.stopped.load(Ordering::Acquire));
        assert!(receiver.try_recv().is_err(), "the request learns it");
    }

    #[test]
    fn an_answer_sent_or_dropped_without_a_panic_leaves_the_writer_up() {
        let shared = Arc::new(Shared::default());
        let (answer, mut receiver) = Answer::<()>::channel(&shared);
        answer.send(Ok(()));
        let (dropped, _receiver) = Answer::<()>::channel(&shared);
        drop(dropped);
        let (sent_in_panic, _receiver) = Answer::<()>::channel(&shared);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            sent_in_panic.send(Ok(()));
            panic!("after the answer went out");
        }));

        assert!(unwound.is_err());
        assert!(matches!(receiver.try_recv(), Ok(Ok(()))));
        assert!(!shared.stopped.load(Ordering::Acquire));
    }
}
