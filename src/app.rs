//! Builds the actix application and server from settings: binds the listener itself (so tests
//! can ask for port 0), serves until told to stop, then closes the database.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::KeepAlive;
use actix_web::middleware::{from_fn, Compress, ErrorHandlers};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, body::MAX_BODY_BYTES, AppContext, RouteTable};
use crate::auth::Auth;
use crate::config::{DbTarget, Settings};
use crate::metrics::Metrics;
use crate::openapi;
use crate::pruner::Pruner;
use crate::store::{Store, StoreConfig};
use crate::supervisor::{Shutdown, Supervisor};

/// A bound, running server, its database and its background tasks.
pub struct Application {
    server: Server,
    address: SocketAddr,
    store: Store,
    auth: Option<Arc<Auth>>,
    supervisor: Arc<Supervisor>,
    metrics: Arc<Metrics>,
}

/// Stops a running application: its background tasks, then its server (in-flight requests
/// finish first).
#[derive(Clone)]
pub struct Stopper {
    server: ServerHandle,
    supervisor: Arc<Supervisor>,
}

impl Stopper {
    pub async fn stop(&self) {
        self.supervisor.begin_shutdown();
        self.server.stop(true).await;
    }
}

/// The password in `--db-password-file`: the file's text without a final line break.
pub async fn read_password(file: &std::path::Path) -> anyhow::Result<String> {
    let text = tokio::fs::read_to_string(file).await.with_context(|| {
        format!(
            "--db-password-file / GITOPS_STATUS_DB_PASSWORD_FILE: cannot read {}",
            file.display()
        )
    })?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(
        !password.is_empty(),
        "--db-password-file / GITOPS_STATUS_DB_PASSWORD_FILE: {} is empty",
        file.display()
    );
    Ok(password.to_owned())
}

impl Application {
    /// Opens and migrates the database, binds the listener and starts serving in the background.
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        let metrics = Arc::new(Metrics::new().context("cannot set up the metrics")?);
        let config = StoreConfig {
            read_connections: settings.read_connections,
            chain_log_every: settings.chain_log_every,
            write_queue: settings.write_queue,
            render_row: api::status::render_row,
            clock: settings.clock.clone(),
            stale_policy: settings.stale_policy.clone(),
            idempotency_window: settings.idempotency_window,
            metrics: Arc::clone(&metrics),
            panic_on_host: settings.panic_on_host.clone(),
        };
        let (store, writer) = match &settings.db {
            DbTarget::Sqlite(path) => Store::open(path, config).await?,
            DbTarget::Postgres { url, password_file } => {
                let password = match password_file {
                    Some(file) => Some(read_password(file).await?),
                    None => None,
                };
                Store::open_postgres(url, password.as_deref(), config).await?
            }
        };
        let supervisor = Arc::new(Supervisor::default());
        // The writer holds the chain's tip and every queued report: after a panic its state
        // cannot be trusted, so the process stops (and is restarted by its orchestrator, which
        // reads the tip again from the database).
        supervisor.spawn("writer", writer.run());
        let pruner = Arc::new(
            Pruner::new(
                store.clone(),
                settings.retention,
                settings.prune_interval,
                settings.clock.clone(),
                supervisor.shutdown(),
                Arc::clone(&metrics),
            )
            .with_first_pass_after(settings.first_prune_after),
        );
        tracing::info!(retention = %settings.retention, prune_interval = %settings.prune_interval, "history retention");
        // A pass is a series of transactions: a pass cut short by a panic left nothing half
        // done, so the pruner starts again.
        let background = Arc::clone(&pruner);
        supervisor.spawn_restarting("pruner", move |_| Arc::clone(&background).run());
        let auth = match &settings.tokens {
            Some(path) => {
                let auth = Auth::load(path, settings.read_requires_token)?;
                let count = auth.tokens().len();
                if count == 0 {
                    tracing::warn!(file = %path.display(), "the token file has no tokens: every write will be refused");
                }
                tracing::info!(file = %path.display(), tokens = count, read_requires_token = settings.read_requires_token, "writes need a bearer token");
                Some(Arc::new(auth))
            }
            None => {
                tracing::warn!("no token file (--tokens / GITOPS_STATUS_TOKENS): anyone who can reach the service may write");
                None
            }
        };
        let metrics_handle = Arc::clone(&metrics);
        let context = web::Data::new(AppContext {
            store: store.clone(),
            auth: auth.clone(),
            body_timeout: settings.request_timeout,
            status_cache: Default::default(),
            pruner,
            supervisor: Arc::clone(&supervisor),
            clock: settings.clock.clone(),
            metrics,
            metrics_per_host: settings.metrics_per_host,
            public_badges: settings.public_badges,
        });
        let spec = openapi::spec();
        let routes = web::Data::new(RouteTable::from_spec(&spec));

        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        let mut server = HttpServer::new(move || {
            App::new()
                .into_utoipa_app()
                .configure(api::configure)
                .into_app()
                .configure(crate::ui::configure)
                .app_data(context.clone())
                .app_data(routes.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .app_data(web::QueryConfig::default().error_handler(api::query_error))
                .app_data(web::PathConfig::default().error_handler(api::path_error))
                .service(
                    SwaggerUi::new("/swagger-ui/{_:.*}")
                        .url("/api-docs/openapi.json", spec.clone()),
                )
                .service(web::redirect("/swagger-ui", "/swagger-ui/"))
                .default_service(web::to(api::fallback))
                .wrap(from_fn(api::strict_query))
                .wrap(from_fn(api::middleware::head_as_get))
                .wrap(ErrorHandlers::new().default_handler(api::json_error_body))
                // gzip, brotli or zstd for clients that ask (Grafana sends Accept-Encoding);
                // GET /status brings its own cached gzip body, which this leaves alone.
                .wrap(Compress::default())
                .wrap(from_fn(api::middleware::trace_request))
        })
        // Slow or idle clients: the head must arrive within the request timeout (the body's
        // own timeout is in api::body), idle keep-alive connections close, and each worker
        // holds a bounded number of connections.
        .client_request_timeout(settings.request_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(if settings.keep_alive.is_zero() {
            KeepAlive::Disabled
        } else {
            KeepAlive::Timeout(settings.keep_alive)
        })
        .max_connections(settings.max_connections)
        // Responses go out as soon as they are written: with Nagle's algorithm a compressed
        // page, written in pieces, waited ~40 ms for the client's delayed ACK on kept-alive
        // connections (seen on one in four gzip requests of /ui/).
        .tcp_nodelay(true)
        .listen(listener)?
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        // Signals are ours: actix would stop abruptly on SIGINT; we drain on both.
        .disable_signals();
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server.run();
        tracing::info!(addr = %address, db = %settings.db, "listening");
        Ok(Application {
            server,
            address,
            store,
            auth,
            supervisor,
            metrics: metrics_handle,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The live tokens, when the server runs with a token file.
    pub fn auth(&self) -> Option<Arc<Auth>> {
        self.auth.clone()
    }

    /// What stops the application (from a signal handler).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            server: self.server.handle(),
            supervisor: Arc::clone(&self.supervisor),
        }
    }

    /// Runs the task `make` builds under the application's supervisor, restarting it if it
    /// ends before shutdown; it gets the shared shutdown signal.
    pub fn spawn_restarting<F>(
        &self,
        name: &'static str,
        make: impl FnMut(Shutdown) -> F + Send + 'static,
    ) where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.supervisor.spawn_restarting(name, make);
    }

    /// The application's counters, for tasks started beside it.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Serves until stopped, then stops the background tasks and closes the database
    /// (checkpointing the WAL). A task the service cannot run without that ends stops the
    /// server too (in-flight requests finish), and this returns that task's failure.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = self.server;
        let outcome = tokio::select! {
            served = &mut server => served.map_err(anyhow::Error::from),
            why = self.supervisor.fatal() => {
                tracing::error!(problem = %why, "stopping: finishing in-flight requests, then exiting with an error");
                // The command is sent now; the server future, polled below, carries it out.
                let stopped = handle.stop(true);
                let _ = (&mut server).await;
                stopped.await;
                Err(anyhow::anyhow!("{why}"))
            }
        };
        // The other tasks stop first; closing the store lets the writer finish what is
        // queued and end; then its handle is collected.
        self.supervisor.stop_all_but(Some("writer")).await;
        self.store.close().await;
        self.supervisor.stop().await;
        tracing::info!("stopped; database closed");
        outcome
    }
}

/// SIGTERM and SIGINT, caught from the moment this is created (before the server listens,
/// so an early signal cannot kill the process with the default action).
pub struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on the first of them, naming it.
    pub async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Reloads the token file on SIGHUP and, every `poll`, when it changed on disk (a rotated
/// Kubernetes Secret). A file that cannot be loaded (deleted, unreadable, malformed) is logged
/// and counted, and no token is valid until it loads (`Auth::valid_tokens`); `/ready` says so.
pub struct TokenWatcher {
    pub auth: Arc<Auth>,
    pub poll: Option<Duration>,
    /// SIGHUP, caught since before the server listened; a restarted watcher takes it over.
    pub hangup: tokio::sync::Mutex<tokio::signal::unix::Signal>,
    pub metrics: Arc<Metrics>,
    /// An injected fault of test builds: while set, the next SIGHUP panics the watcher (and
    /// clears it).
    pub fault: std::sync::atomic::AtomicBool,
}

impl TokenWatcher {
    /// Watches until shutdown. A `restarted` watcher reloads the file first: the signal or
    /// change that its predecessor died on is not lost.
    pub async fn run(self: Arc<Self>, restarted: bool, mut shutdown: Shutdown) {
        let auth = &self.auth;
        let mut hangup = self.hangup.lock().await;
        let mut ticks = self.poll.map(tokio::time::interval);
        let mut pending = restarted.then_some("restart");
        loop {
            let trigger = match pending.take() {
                Some(trigger) => trigger,
                None => tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = hangup.recv() => "SIGHUP",
                    _ = async {
                        match ticks.as_mut() {
                            Some(ticks) => { ticks.tick().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => {
                        if !auth.changed_on_disk() {
                            continue;
                        }
                        "file changed"
                    }
                },
            };
            if trigger == "SIGHUP" && self.fault.swap(false, std::sync::atomic::Ordering::Relaxed) {
                panic!("injected fault: the token watcher panics on SIGHUP");
            }
            self.reload(trigger);
        }
    }

    fn reload(&self, trigger: &'static str) {
        let auth = &self.auth;
        let reloaded = auth.reload();
        self.metrics.token_reload(reloaded.is_ok());
        match reloaded {
            Ok(tokens) => {
                tracing::info!(trigger, tokens, file = %auth.path().display(), "token file reloaded")
            }
            Err(err) => {
                tracing::error!(trigger, error = %format!("{err:#}"), "token file not reloaded; no token is accepted until it loads (/ready warns)")
            }
        }
    }
}
