//! Retention in the background: a pruning pass shortly after start, then every
//! `--prune-interval`, one pass at a time. `POST /admin/prune` runs one at once.

use std::sync::Mutex;
use std::time::Duration;

use crate::domain::{Clock, Period, RetentionPolicy, Timestamp};
use crate::store::{PruneSummary, Store, StoreError};
use crate::supervisor::Shutdown;

/// How long after start the first pass waits: the server is serving by then, and a restart
/// loop does not prune on every attempt.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(10);

/// The last pass, for the index and the logs.
#[derive(Clone, Debug)]
pub struct LastPass {
    pub started_at: Timestamp,
    pub summary: PruneSummary,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct Pruner {
    store: Store,
    policy: RetentionPolicy,
    interval: Period,
    clock: Clock,
    shutdown: Shutdown,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Held while a pass runs: passes never overlap.
    running: tokio::sync::Mutex<()>,
    last: Mutex<Option<LastPass>>,
    /// How long after start the first background pass waits.
    first_pass_after: Duration,
}

impl Pruner {
    pub fn new(
        store: Store,
        policy: RetentionPolicy,
        interval: Period,
        clock: Clock,
        shutdown: Shutdown,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        Pruner {
            store,
            policy,
            interval,
            clock,
            shutdown,
            metrics,
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            first_pass_after: FIRST_PASS_AFTER,
        }
    }

    /// Waits `after` instead of `FIRST_PASS_AFTER` before the first background pass.
    pub fn with_first_pass_after(mut self, after: Duration) -> Self {
        self.first_pass_after = after;
        self
    }

    pub fn policy(&self) -> RetentionPolicy {
        self.policy
    }

    pub fn interval(&self) -> Period {
        self.interval
    }

    pub fn last_pass(&self) -> Option<LastPass> {
        self.last.lock().ok().and_then(|last| last.clone())
    }

    /// Runs a pass now (after the one running, if any) and returns what it did.
    pub async fn run_now(&self) -> Result<PruneSummary, StoreError> {
        let _running = self.running.lock().await;
        let started_at = self.clock.now();
        let shutdown = self.shutdown.clone();
        let outcome = self
            .store
            .prune(self.policy, started_at, || shutdown.is_set())
            .await;
        if let Ok(summary) = &outcome {
            self.metrics.retention_deleted(summary.removed);
        }
        match &outcome {
            Ok(summary) if summary.removed > 0 || summary.interrupted => tracing::info!(
                scanned = summary.scanned,
                removed = summary.removed,
                retention_rows = summary.records,
                interrupted = summary.interrupted,
                "retention pass done"
            ),
            Ok(summary) => {
                tracing::debug!(
                    scanned = summary.scanned,
                    "retention pass: nothing to remove"
                )
            }
            Err(err) => {
                tracing::error!(error = %err, "retention pass failed; the next one retries")
            }
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(LastPass {
                started_at,
                summary: outcome.clone().unwrap_or_default(),
                error: outcome.as_ref().err().map(|e| e.to_string()),
            });
        }
        outcome
    }

    /// The background loop: ends when shutdown begins (a pass in progress stops between
    /// transactions).
    pub async fn run(self: std::sync::Arc<Self>) {
        if self.policy.keeps_everything() {
            tracing::info!("retention is off (--retain-reports off): the history is kept whole");
            self.shutdown.clone().wait().await;
            return;
        }
        let mut shutdown = self.shutdown.clone();
        let mut wait = self.first_pass_after;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            // Failures are logged and kept for the index; the next pass retries.
            let _ = self.run_now().await;
            wait = self.interval.as_duration();
        }
    }
}
