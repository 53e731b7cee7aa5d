//! Parses the command line, starts logging and dispatches: nothing else lives here.

use clap::Parser;

use gitops_status::app::{Application, ShutdownSignals};
use gitops_status::cli::{Cli, Command};
use gitops_status::config::Settings;
use gitops_status::{openapi, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Openapi => {
            print!("{}", openapi::yaml()?);
            Ok(())
        }
        Command::Serve(args) => {
            let settings = Settings::try_from(args)?;
            telemetry::init(settings.log_format);
            let signals = ShutdownSignals::install()?;
            let app = Application::build(&settings).await?;
            let handle = app.handle();
            tokio::spawn(async move {
                let signal = signals.recv().await;
                tracing::info!(signal, "shutting down: finishing in-flight requests");
                handle.stop(true).await;
            });
            app.run_until_stopped().await
        }
    }
}
