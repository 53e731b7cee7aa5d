//! `gitops-status token new NAME --scope …`: a new random token and its token-file line.

use std::process::ExitCode;

use crate::auth;

pub fn new(name: &str, scopes: &[String]) -> anyhow::Result<ExitCode> {
    let token = auth::generate()?;
    let line = auth::file_line(name, &token, scopes).map_err(anyhow::Error::msg)?;
    println!("{token}");
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
