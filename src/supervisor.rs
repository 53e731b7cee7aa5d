//! The service's background tasks (the pruner, the token watcher) run under one supervisor
//! that the application owns: they share one shutdown signal, their handles are kept, and a
//! task that ends before shutdown (returned or panicked) is reported to `/ready`.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

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

#[derive(Debug)]
pub struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
    /// Why a task ended before shutdown, for `/ready`.
    failed: Arc<Mutex<Option<String>>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            failed: Arc::default(),
        }
    }
}

impl Supervisor {
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.stop.subscribe())
    }

    /// Runs `task` in the background until it ends; ending before shutdown is a failure.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let inner = tokio::spawn(task);
        let stop = self.stop.subscribe();
        let failed = Arc::clone(&self.failed);
        let watcher = tokio::spawn(async move {
            let outcome = inner.await;
            if *stop.borrow() {
                return;
            }
            let why = match outcome {
                Ok(()) => format!("the {name} task stopped"),
                Err(err) if err.is_panic() => format!("the {name} task panicked"),
                Err(_) => format!("the {name} task was cancelled"),
            };
            tracing::error!(task = name, problem = %why, "a background task ended; /ready answers 503");
            if let Ok(mut slot) = failed.lock() {
                slot.get_or_insert(why);
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push((name, watcher));
        }
    }

    /// Why a background task is no longer running, if one is not.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// Signals shutdown (tasks see it at their next step).
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Signals shutdown and waits for every task to end.
    pub async fn stop(&self) {
        self.begin_shutdown();
        let tasks = match self.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(_) => Vec::new(),
        };
        for (name, task) in tasks {
            if task.await.is_err() {
                tracing::warn!(task = name, "a background task did not stop cleanly");
            }
        }
    }
}
