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
use crate::config::Settings;
use crate::openapi;
use crate::store::{Store, StoreConfig};

/// A bound, running server and its database.
pub struct Application {
    server: Server,
    address: SocketAddr,
    store: Store,
    auth: Option<Arc<Auth>>,
}

impl Application {
    /// Opens and migrates the database, binds the listener and starts serving in the background.
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        let store = Store::open(
            &settings.db,
            StoreConfig {
                read_connections: settings.read_connections,
                chain_log_every: settings.chain_log_every,
                write_queue: settings.write_queue,
                render_row: api::status::render_row,
            },
        )
        .await?;
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
        let context = web::Data::new(AppContext {
            store: store.clone(),
            auth: auth.clone(),
            body_timeout: settings.request_timeout,
            status_cache: Default::default(),
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
                .wrap(ErrorHandlers::new().default_handler(api::json_error_body))
                // gzip, brotli or zstd for clients that ask (Grafana sends Accept-Encoding);
                // GET /status brings its own cached gzip body, which this leaves alone.
                .wrap(Compress::default())
                .wrap(from_fn(api::log_request))
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
        .listen(listener)?
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        // Signals are ours: actix would stop abruptly on SIGINT; we drain on both.
        .disable_signals();
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server.run();
        tracing::info!(addr = %address, db = %settings.db.display(), "listening");
        Ok(Application {
            server,
            address,
            store,
            auth,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The live tokens, when the server runs with a token file.
    pub fn auth(&self) -> Option<Arc<Auth>> {
        self.auth.clone()
    }

    /// Stops the server: `handle().stop(true)` finishes in-flight requests first.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then closes the database (checkpointing the WAL).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await;
        self.store.close().await;
        tracing::info!("stopped; database closed");
        Ok(served?)
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
/// Kubernetes Secret). A malformed file is logged and the tokens in force stay.
/// `hangup` is SIGHUP, caught since before the server listened.
pub async fn watch_tokens(
    auth: Arc<Auth>,
    poll: Option<Duration>,
    mut hangup: tokio::signal::unix::Signal,
) {
    let mut ticks = poll.map(tokio::time::interval);
    loop {
        let trigger = tokio::select! {
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
        };
        match auth.reload() {
            Ok(tokens) => {
                tracing::info!(trigger, tokens, file = %auth.path().display(), "token file reloaded")
            }
            Err(err) => {
                tracing::error!(trigger, error = %format!("{err:#}"), "token file not reloaded; the previous tokens stay in force")
            }
        }
    }
}
