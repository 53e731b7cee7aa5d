//! Parses the command line, starts logging and dispatches: nothing else lives here.

use std::process::ExitCode;

use clap::Parser;

use gitops_status::app::{watch_tokens, Application, ShutdownSignals};
use gitops_status::cli::{Cli, Command, TokenCommand};
use gitops_status::config::Settings;
use gitops_status::store::chain::Verification;
use gitops_status::{api, auth, openapi, store, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Openapi => {
            print!("{}", openapi::yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => verify(&args.db).await,
        #[cfg(feature = "bench")]
        Command::BenchFill(args) => {
            let started = std::time::Instant::now();
            let appended = gitops_status::bench::fill(&args.db, args.hosts, args.rows).await?;
            println!(
                "appended {appended} reports to {} in {:.1} s",
                args.db.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command: TokenCommand::New { name, scope },
        } => {
            let token = auth::generate()?;
            let line = auth::file_line(&name, &token, &scope).map_err(anyhow::Error::msg)?;
            println!("{token}");
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let settings = Settings::try_from(args)?;
            telemetry::init(settings.log_format);
            let signals = ShutdownSignals::install()?;
            // Caught from now on: SIGHUP's default action would end the process.
            let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            let app = Application::build(&settings).await?;
            let handle = app.handle();
            if let Some(auth) = app.auth() {
                let poll = settings.tokens_poll_interval;
                tokio::spawn(watch_tokens(auth, poll, hangup));
            }
            tokio::spawn(async move {
                let signal = signals.recv().await;
                tracing::info!(signal, "shutting down: finishing in-flight requests");
                handle.stop(true).await;
            });
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn verify(db: &std::path::Path) -> anyhow::Result<ExitCode> {
    Ok(
        match store::chain::verify(db, api::status::render_row).await? {
            Verification::Intact {
                rows,
                first_id,
                head,
                hosts,
            } => {
                match (first_id, head) {
                    (Some(first), Some(head)) => println!(
                        "verified {rows} {} (ids {first}..{}); chain head {}; {hosts} host {} \
                     match their reports",
                        if rows == 1 { "row" } else { "rows" },
                        head.id,
                        head.hash,
                        if hosts == 1 { "row" } else { "rows" },
                    ),
                    _ => println!("verified 0 rows (the history is empty)"),
                }
                ExitCode::SUCCESS
            }
            Verification::StaleHostRow { host, problem } => {
                println!("host {host}: {problem}");
                ExitCode::FAILURE
            }
            Verification::Damaged { problems } => {
                println!("the database file is damaged (integrity_check):");
                for problem in problems {
                    println!("  {problem}");
                }
                ExitCode::FAILURE
            }
            Verification::Broken { id, problem } => {
                println!("row {id}: {problem}");
                ExitCode::FAILURE
            }
        },
    )
}
