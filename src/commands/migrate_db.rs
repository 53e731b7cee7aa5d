//! `gitops-status migrate-db --from PATH --to URL`: copies a SQLite history into an empty
//! PostgreSQL database (`store::migrate`), then verifies the chain there.

use std::process::ExitCode;

use crate::api;
use crate::cli::MigrateDbArgs;
use crate::config::DbTarget;
use crate::store::{chain, migrate};

pub async fn run(args: MigrateDbArgs) -> anyhow::Result<ExitCode> {
    let DbTarget::Postgres { url, password_file } =
        DbTarget::parse(&args.to, args.db_password_file)?
    else {
        anyhow::bail!(
            "--to (GITOPS_STATUS_MIGRATE_TO) must be a postgres:// or postgresql:// URL, not {}",
            args.to.display()
        );
    };
    let password = match password_file {
        Some(file) => Some(crate::app::read_password(&file).await?),
        None => None,
    };
    let target = crate::store::postgres_options(&url, password.as_deref())?;
    let copied = migrate::sqlite_to_postgres(&args.from, &target).await?;
    let tables: Vec<String> = copied
        .tables
        .iter()
        .map(|(table, rows)| format!("{table} {rows}"))
        .collect();
    println!(
        "copied {} into {} in {:.1} s: {}",
        args.from.display(),
        DbTarget::Postgres {
            url: url.clone(),
            password_file: None
        },
        copied.seconds,
        tables.join(", ")
    );
    let started = std::time::Instant::now();
    let verification =
        chain::verify_postgres(&url, password.as_deref(), api::status::render_row).await?;
    let (text, ok) = super::verify::describe(&verification);
    println!(
        "on PostgreSQL, {text} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
