//! `gitops-status verify --db PATH|URL`: checks the database, walks the audit chain (across
//! the gaps retention recorded) and compares every host's status row with its reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::api;
use crate::config::DbTarget;
use crate::store::chain::{self, Verification};

pub async fn run(db: &Path, password_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let render = api::status::render_row;
    let verification = match DbTarget::parse(db, password_file)? {
        DbTarget::Sqlite(path) => chain::verify_file(&path, render).await?,
        DbTarget::Postgres { url, password_file } => {
            let password = match password_file {
                Some(file) => Some(crate::app::read_password(&file).await?),
                None => None,
            };
            chain::verify_postgres(&url, password.as_deref(), render).await?
        }
    };
    let (text, ok) = describe(&verification);
    println!("{text}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What verify prints, and whether the database passed.
pub fn describe(verification: &Verification) -> (String, bool) {
    match verification {
        Verification::Intact {
            rows,
            first_id,
            head,
            removed_by_retention,
            hosts,
            transitions,
        } => {
            let text = match (first_id, head) {
                (Some(first), Some(head)) => format!(
                    "verified {} (ids {first}..{}), {} by retention; chain head {}; {} \
                     their reports; {} their reports",
                    plural(*rows, "row", "rows"),
                    head.id,
                    plural(*removed_by_retention, "row removed", "rows removed"),
                    head.hash,
                    plural(*hosts, "host row matches", "host rows match"),
                    plural(*transitions, "transition matches", "transitions match"),
                ),
                _ => "verified 0 rows (the history is empty)".to_owned(),
            };
            (text, true)
        }
        Verification::StaleHostRow { host, problem } => (format!("host {host}: {problem}"), false),
        Verification::Transition { report_id, problem } => (
            format!("transition of report {report_id}: {problem}"),
            false,
        ),
        Verification::Damaged { problems } => {
            let mut text = "the database file is damaged (integrity_check):".to_owned();
            for problem in problems {
                text.push_str("\n  ");
                text.push_str(problem);
            }
            (text, false)
        }
        Verification::Broken { id, problem } => (format!("row {id}: {problem}"), false),
    }
}
