//! Parses the command line and dispatches to a subcommand: nothing else lives here.

use std::process::ExitCode;

use clap::Parser;

use gitops_status::cli::{Cli, Command, TokenCommand};
use gitops_status::{commands, openapi};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => commands::serve::run(*args).await,
        Command::Openapi => {
            print!("{}", openapi::yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => commands::verify::run(&args.db, args.db_password_file).await,
        Command::Import(args) => {
            commands::import::run(&args.db, args.db_password_file, &args.files).await
        }
        Command::Backup(args) => commands::backup::run(&args.db, &args.out).await,
        Command::MigrateDb(args) => commands::migrate_db::run(args).await,
        // A blocking client: it runs apart from the runtime's workers.
        Command::Report(args) => {
            Ok(tokio::task::spawn_blocking(move || commands::report::run(*args)).await?)
        }
        Command::Token {
            command: TokenCommand::New { name, scope },
        } => commands::token::new(&name, &scope),
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
    }
}
