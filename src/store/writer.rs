//! The write path, with group commit, for every backend. One task owns the write connection
//! (through its backend's `Scribe`). A request hands its report over a bounded channel (when
//! it is full the request is refused at once, rather than queued without limit); the writer
//! takes every report that is waiting, writes them in one transaction in arrival order
//! (`group::plan` decides what; the scribe loads and stores), commits, and only then answers
//! each request. A group costs one commit and a handful of statements however many reports it
//! holds.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::domain::{
    Clock, Cutoffs, HostState, Period, Report, RetentionPolicy, Status, Timestamp,
};

use super::append::NewRow;
use super::group::Context;
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

pub(super) struct Pending {
    pub report: Report,
    /// The request's span (with its request id): the writer's lines about this report log
    /// inside it.
    pub span: tracing::Span,
    /// The report's row, rendered by the request's own thread as far as it can be before
    /// the writer gives it an id, times and its place in the chain.
    pub row: NewRow,
    pub import_entry: Option<String>,
    pub once: Option<OnceKey>,
    pub request_id: Option<String>,
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
pub(super) struct Shared {
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

/// Rows retention lets go, for the writer to remove in one transaction.
#[derive(Clone, Debug)]
pub(super) struct PruneBatch {
    /// Oldest first.
    pub ids: Vec<i64>,
    pub policy: RetentionPolicy,
    pub cutoffs: Cutoffs,
}

/// What one pruning transaction did.
#[derive(Clone, Debug, Default)]
pub(super) struct PruneOutcome {
    pub removed: u64,
    /// The retention row that records the removal.
    pub record_id: Option<i64>,
    pub record_hash: Option<String>,
}

/// A group as the scribe wrote it.
pub(super) struct GroupWritten {
    /// Each report's outcome, in the group's order.
    pub results: Vec<Result<Written, StoreError>>,
    /// The indexes of the reports that became rows, in chain order.
    pub linked: Vec<usize>,
}

/// A backend's half of the writer: each call is one transaction on the write connection,
/// which the scribe owns, opens again after `reset`, and closes on `close`.
pub(super) trait Scribe: Send + 'static {
    /// Writes a group in one transaction: loads what `group::names` lists, plans it
    /// (`group::plan`), stores the plan, commits. The outer error fails the whole group
    /// (nothing was stored).
    fn write(
        &mut self,
        group: &mut [Pending],
        context: &GroupContext,
        atomic: bool,
    ) -> impl Future<Output = Result<GroupWritten, StoreError>> + Send;

    /// Removes the rows of `batch` still there, recording them first in a retention row.
    fn prune(
        &mut self,
        batch: &PruneBatch,
        now: Timestamp,
    ) -> impl Future<Output = Result<PruneOutcome, StoreError>> + Send;

    /// Writes one small row to learn whether the database takes writes again.
    fn probe(&mut self, at: Timestamp) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the connection (and what it knew of the chain's tip) after a failed write: a
    /// failed COMMIT can leave a connection out of step with its database, and a rolled-back
    /// group never extended the chain.
    fn reset(&mut self);

    /// Closes the connection.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// What a scribe needs to write a group besides the group.
pub(super) struct GroupContext {
    pub render: RenderRow,
    pub clock: Clock,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_window: Period,
}

impl GroupContext {
    pub(super) fn plan(&self, atomic: bool, received_after: Option<Timestamp>) -> Context<'_> {
        Context {
            clock: &self.clock,
            atomic,
            received_after,
        }
    }
}

/// How the writer runs.
pub(super) struct WriterConfig {
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

/// Starts the writer on `scribe`; `committed` is the id of the newest row already stored.
pub(super) fn start<S: Scribe>(
    scribe: S,
    committed: i64,
    config: WriterConfig,
) -> (WriterHandle, WriterTask) {
    let shared = Arc::new(Shared::default());
    shared.committed.store(committed, Ordering::Release);
    let (jobs, queue) = mpsc::channel(config.queue.max(1));
    let writer = Writer {
        scribe,
        queue,
        shared: shared.clone(),
        chain_log_every: config.chain_log_every,
        context: GroupContext {
            render: config.render,
            clock: config.clock,
            idempotency_window: config.idempotency_window,
        },
        metrics: config.metrics,
        panic_on_host: config.panic_on_host,
    };
    (
        WriterHandle { jobs, shared },
        WriterTask(Box::pin(writer.run())),
    )
}

struct Writer<S> {
    scribe: S,
    queue: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    chain_log_every: i64,
    context: GroupContext,
    metrics: Arc<crate::metrics::Metrics>,
    panic_on_host: Option<String>,
}

impl<S: Scribe> Writer<S> {
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
        self.scribe.close().await;
    }

    fn reset(&mut self) {
        self.scribe.reset();
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
        let GroupWritten { results, linked } =
            self.scribe.write(group, &self.context, atomic).await?;
        if let Some(last) = linked.last().and_then(|index| group.get(*index)) {
            self.shared
                .committed
                .store(last.row.record.id, Ordering::Release);
        }
        if self.chain_log_every > 0 {
            for record in linked
                .iter()
                .filter_map(|index| group.get(*index))
                .map(|pending| &pending.row.record)
                .filter(|record| record.id % self.chain_log_every == 0)
            {
                tracing::info!(id = record.id, hash = %record.hash, "audit chain head");
            }
        }
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

    /// One pruning transaction (see `retention`).
    async fn prune(&mut self, batch: &PruneBatch) -> Result<PruneOutcome, StoreError> {
        let now = self.context.clock.now();
        let outcome = self.scribe.prune(batch, now).await;
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

    /// Has the scribe write its probe row: succeeds once the database takes writes again.
    async fn probe(&mut self) -> Result<(), StoreError> {
        let at = self.context.clock.now();
        let outcome = self.scribe.probe(at).await;
        if outcome.is_err() {
            self.reset();
        }
        self.note(outcome.as_ref().map(|_| ()));
        outcome
    }
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
