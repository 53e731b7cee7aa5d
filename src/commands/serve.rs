//! `gitops-status serve` (also a bare `gitops-status`): the HTTP server until SIGTERM/SIGINT.

use std::process::ExitCode;

use crate::app::{Application, ShutdownSignals, TokenWatcher};
use crate::cli::ServeArgs;
use crate::config::Settings;
use crate::telemetry;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::try_from(args)?;
    telemetry::init(settings.log_format);
    let signals = ShutdownSignals::install()?;
    // Caught from now on: SIGHUP's default action would end the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let app = Application::build(&settings).await?;
    let stopper = app.stopper();
    if let Some(auth) = app.auth() {
        let watcher = std::sync::Arc::new(TokenWatcher {
            auth,
            poll: settings.tokens_poll_interval,
            hangup: tokio::sync::Mutex::new(hangup),
            metrics: app.metrics(),
            fault: settings.token_watcher_panics.into(),
        });
        let mut runs = 0_u64;
        // It keeps nothing of its own (the tokens and the file's stamp live in `auth`); a
        // restarted watcher reloads the file first.
        app.spawn_restarting("token watcher", move |shutdown| {
            runs += 1;
            std::sync::Arc::clone(&watcher).run(runs > 1, shutdown)
        });
    }
    // Its handle is not kept: the signal ends the process, through the stopper.
    tokio::spawn(async move {
        let signal = signals.recv().await;
        tracing::info!(signal, "shutting down: finishing in-flight requests");
        stopper.stop().await;
    });
    // A task the service cannot run without that ended is an error: the exit status is
    // non-zero and the orchestrator restarts the process.
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}
