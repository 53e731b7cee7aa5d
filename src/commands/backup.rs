//! `gitops-status backup --db PATH --out FILE`: a consistent copy while the server runs.

use std::path::Path;
use std::process::ExitCode;

use crate::store::backup;

pub async fn run(db: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let size = backup::backup_file(db, out).await?;
    println!(
        "wrote a consistent copy of {} to {} ({size} bytes) in {:.1} s",
        db.display(),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
