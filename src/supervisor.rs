//! The service's background tasks (the writer, the pruner, the token watcher) run under one
//! supervisor that the application owns. They share one shutdown signal and their handles are
//! kept. A task that ends before shutdown (returned, or panicked) is logged with its cause and
//! reported to `/ready`; then, by the task's policy, it is either restarted after a pause or
//! the whole process stops with an error so that its orchestrator restarts it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};

/// The first pause before a restart; it doubles for each restart in a row, up to the cap.
const RESTART_PAUSE: Duration = Duration::from_secs(1);
const RESTART_PAUSE_CAP: Duration = Duration::from_secs(60);
/// A task that ran this long before it failed starts again at the first pause.
const STABLE_AFTER: Duration = Duration::from_secs(300);

/// The shared shutdown signal, as a task sees it.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// True once shutdown began.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when shutdown begins.
    pub async fn wait(&mut self) {
        // An error means the supervisor is gone: shutting down all the same.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// What happens when a task ends before shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The service cannot run without it: `/ready` fails and the process stops with an error.
    Fatal,
    /// It holds nothing that a fresh start loses: it starts again after a pause (`/ready`
    /// fails during the pause).
    Restart,
}

/// One task's state, for `/ready` and `/metrics`.
#[derive(Clone, Debug)]
pub struct TaskState {
    pub name: &'static str,
    pub running: bool,
    pub restarts: u64,
}

#[derive(Debug, Default)]
struct Task {
    /// Why it is not running, while it is not.
    down: Option<String>,
    restarts: Arc<AtomicU64>,
}

#[derive(Debug)]
pub struct Supervisor {
    stop: watch::Sender<bool>,
    handles: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
    tasks: Arc<Mutex<BTreeMap<&'static str, Task>>>,
    /// Set when a fatal task ended: why.
    fatal: watch::Sender<Option<String>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            stop: watch::channel(false).0,
            handles: Mutex::new(Vec::new()),
            tasks: Arc::default(),
            fatal: watch::channel(None).0,
        }
    }
}

/// What a task's end says, as a sentence.
fn cause(name: &str, outcome: Result<(), JoinError>) -> String {
    match outcome {
        Ok(()) => format!("the {name} task stopped"),
        Err(err) if err.is_panic() => {
            let payload = err.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned());
            format!("the {name} task panicked: {message}")
        }
        Err(_) => format!("the {name} task was cancelled"),
    }
}

impl Supervisor {
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.stop.subscribe())
    }

    fn set_down(&self, name: &'static str, why: Option<String>) {
        set_down(&self.tasks, name, why);
    }

    /// Runs `task`; if it ends before shutdown, `/ready` fails and the process stops.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.set_down(name, None);
        let inner = tokio::spawn(task);
        let stop = self.stop.subscribe();
        let tasks = Arc::clone(&self.tasks);
        let fatal = self.fatal.clone();
        let watcher = tokio::spawn(async move {
            let outcome = inner.await;
            if *stop.borrow() {
                return;
            }
            let why = cause(name, outcome);
            tracing::error!(task = name, problem = %why, "a background task the service cannot run without ended; /ready answers 503 and the process stops");
            set_down(&tasks, name, Some(why.clone()));
            fatal.send_if_modified(|slot| {
                let first = slot.is_none();
                slot.get_or_insert(why);
                first
            });
        });
        self.keep(name, watcher);
    }

    /// Runs the task `make` builds; if it ends before shutdown, it is logged, `/ready` fails,
    /// and a new one starts after a pause (1 s, doubling up to 60 s while it keeps failing).
    pub fn spawn_restarting<F, Fut>(&self, name: &'static str, mut make: F)
    where
        F: FnMut(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.set_down(name, None);
        let restarts = self
            .tasks
            .lock()
            .map(|t| t.get(name).map(|t| Arc::clone(&t.restarts)))
            .ok()
            .flatten()
            .unwrap_or_default();
        let shutdown = self.shutdown();
        let tasks = Arc::clone(&self.tasks);
        let watcher = tokio::spawn(async move {
            let mut pause = RESTART_PAUSE;
            loop {
                let started = tokio::time::Instant::now();
                let outcome = tokio::spawn(make(shutdown.clone())).await;
                if shutdown.is_set() {
                    return;
                }
                let why = cause(name, outcome);
                if started.elapsed() >= STABLE_AFTER {
                    pause = RESTART_PAUSE;
                }
                tracing::error!(task = name, problem = %why, restart_in_s = pause.as_secs(), "a background task ended; /ready answers 503 until it runs again");
                set_down(&tasks, name, Some(format!("{why}; it restarts")));
                let mut waiting = shutdown.clone();
                tokio::select! {
                    _ = waiting.wait() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(RESTART_PAUSE_CAP);
                restarts.fetch_add(1, Ordering::Relaxed);
                set_down(&tasks, name, None);
                tracing::info!(task = name, "background task restarted");
            }
        });
        self.keep(name, watcher);
    }

    fn keep(&self, name: &'static str, handle: JoinHandle<()>) {
        if let Ok(mut handles) = self.handles.lock() {
            handles.push((name, handle));
        }
    }

    /// Why background tasks are not running, if some are not.
    pub fn failure(&self) -> Option<String> {
        let tasks = self.tasks.lock().ok()?;
        let reasons: Vec<&str> = tasks.values().filter_map(|t| t.down.as_deref()).collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Every task: whether it runs, and how often it was restarted.
    pub fn states(&self) -> Vec<TaskState> {
        self.tasks
            .lock()
            .map(|tasks| {
                tasks
                    .iter()
                    .map(|(name, task)| TaskState {
                        name,
                        running: task.down.is_none(),
                        restarts: task.restarts.load(Ordering::Relaxed),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Resolves when a task the service cannot run without has ended, with why.
    pub async fn fatal(&self) -> String {
        let mut fatal = self.fatal.subscribe();
        let why = fatal
            .wait_for(Option::is_some)
            .await
            .map(|why| why.clone().unwrap_or_default());
        match why {
            Ok(why) => why,
            // The supervisor is gone; nothing can fail any more.
            Err(_) => std::future::pending().await,
        }
    }

    /// Signals shutdown (tasks see it at their next step).
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Signals shutdown and waits for every task to end.
    pub async fn stop(&self) {
        self.stop_all_but(None).await;
    }

    /// Signals shutdown and waits for every task but `spared` to end (the writer, which ends
    /// when the store closes, after the others stopped using it).
    pub async fn stop_all_but(&self, spared: Option<&str>) {
        self.begin_shutdown();
        let handles = match self.handles.lock() {
            Ok(mut handles) => {
                let (spare, stop): (Vec<_>, Vec<_>) = std::mem::take(&mut *handles)
                    .into_iter()
                    .partition(|(name, _)| Some(*name) == spared);
                *handles = spare;
                stop
            }
            Err(_) => Vec::new(),
        };
        for (name, task) in handles {
            if task.await.is_err() {
                tracing::warn!(task = name, "a background task did not stop cleanly");
            }
        }
    }
}

fn set_down(tasks: &Mutex<BTreeMap<&'static str, Task>>, name: &'static str, why: Option<String>) {
    if let Ok(mut tasks) = tasks.lock() {
        tasks.entry(name).or_default().down = why;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_restarting_task_that_panics_runs_again_and_ready_recovers() {
        let supervisor = Supervisor::default();
        let runs = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&runs);
        supervisor.spawn_restarting("flaky", move |mut shutdown| {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if run == 0 {
                    panic!("injected");
                }
                shutdown.wait().await;
            }
        });
        // The first run panics: /ready names the cause while the restart waits.
        while supervisor.failure().is_none() {
            tokio::task::yield_now().await;
        }
        let failure = supervisor.failure().unwrap();
        assert!(
            failure.contains("the flaky task panicked: injected"),
            "{failure}"
        );
        tokio::time::sleep(RESTART_PAUSE + Duration::from_millis(10)).await;
        while runs.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(supervisor.failure(), None);
        let states = supervisor.states();
        assert_eq!(states.len(), 1);
        assert!(states[0].running);
        assert_eq!(states[0].restarts, 1);
        supervisor.stop().await;
    }

    #[tokio::test]
    async fn a_fatal_task_that_ends_is_reported_and_not_restarted() {
        let supervisor = Supervisor::default();
        supervisor.spawn("writer", async { panic!("boom") });
        let why = supervisor.fatal().await;
        assert_eq!(why, "the writer task panicked: boom");
        assert_eq!(
            supervisor.failure().as_deref(),
            Some("the writer task panicked: boom")
        );
        assert!(!supervisor.states()[0].running);
        supervisor.stop().await;
    }

    #[tokio::test]
    async fn tasks_that_end_at_shutdown_are_not_failures() {
        let supervisor = Supervisor::default();
        let shutdown = supervisor.shutdown();
        supervisor.spawn("pruner", async move {
            let mut shutdown = shutdown;
            shutdown.wait().await;
        });
        supervisor.stop().await;
        assert_eq!(supervisor.failure(), None);
    }
}
