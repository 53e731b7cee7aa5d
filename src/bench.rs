//! `gitops-status bench-fill` (built with `--features bench`): fills a database with a
//! generated history for bench/run, quickly and without HTTP. Reports are the same bodies the
//! benchmark's wrk scripts send (hosts `host-NNNNN` in groups `group-NN`), parsed by the
//! API's own parsers and appended through the store's bulk loader, so the database is one the
//! server could have written: the chain verifies and every host has its status row.

use std::path::Path;

use anyhow::Context;

use crate::api::body::JsonObject;
use crate::api::{cron, pipeline, status};
use crate::domain::Timestamp;
use crate::store::bulk::{self, Generated};
use crate::store::RequestMeta;

/// bench/run reuses the databases it generated while this and the migrations are unchanged:
/// raise it whenever the generated history changes.
pub const GENERATOR_VERSION: u32 = 1;

/// 2025-01-01T00:00:00Z: the generated history starts here, one report a second.
const HISTORY_START_MILLIS: i64 = 1_735_689_600_000;

/// Host `i` of the benchmark: its group and name, as bench/wrk/common.lua names them.
fn names(i: u64) -> (String, String) {
    (format!("group-{:02}", i % 10), format!("host-{i:05}"))
}

/// Report `n` (counting every report the database holds) of the generated history: hosts
/// take turns; every twelfth round is a deployment (the first round creates the hosts), the
/// others are drift checks, one in five of them finding two drifted files.
fn body(n: u64, hosts: u64, at: Timestamp) -> String {
    let (group, host) = names(n % hosts);
    let round = n / hosts;
    if round.is_multiple_of(12) {
        format!(
            r#"{{"project_name": "gitops-for-servers", "repo_name": "rsyslog", "server_group": "{group}", "server_type": "rsyslog", "environment": "prod", "host": "{host}", "status": "synced", "changed_files": [], "validation_status": "passed", "validation_message": "rsyslog syntax validation passed", "commit_sha": "{:013x}", "branch": "master", "updated_by": "woodpecker", "last_pipeline_run": "{at}"}}"#,
            round * 7919
        )
    } else if round.is_multiple_of(5) {
        format!(
            r#"{{"server_group": "{group}", "host": "{host}", "status": "out_of_sync", "changed_files": ["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"], "last_cron_check": "{at}"}}"#
        )
    } else {
        format!(
            r#"{{"server_group": "{group}", "host": "{host}", "status": "synced", "changed_files": [], "last_cron_check": "{at}"}}"#
        )
    }
}

/// Appends reports to the database at `db` until it holds `rows` reports over `hosts` hosts.
/// Returns how many rows it appended.
pub async fn fill(db: &Path, hosts: u64, rows: u64) -> anyhow::Result<u64> {
    anyhow::ensure!(hosts > 0 && hosts <= 100_000, "--hosts must be 1..=100000");
    let existing = existing_rows(db).await?;
    anyhow::ensure!(
        rows >= existing,
        "{} already holds {existing} reports",
        db.display()
    );
    let at = |millis: i64| Timestamp::from_epoch_millis(millis).map_err(anyhow::Error::msg);
    let generated = (existing..rows).map(move |n| {
        // Report n is received n seconds after 2025-01-01, observed 5 s before: the same
        // database every time, and an extended one continues where it ended.
        let millis = i64::try_from(n).unwrap_or(i64::MAX).saturating_mul(1000);
        let received_at = at(HISTORY_START_MILLIS.saturating_add(millis))?;
        let observed = at(HISTORY_START_MILLIS.saturating_add(millis) - 5_000)?;
        let text = body(n, hosts, observed);
        let object = JsonObject::parse(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("generated body {n}: {e}"))?;
        let report = if (n / hosts).is_multiple_of(12) {
            pipeline::parse(&object)
        } else {
            cron::parse(&object)
        }
        .map_err(|e| anyhow::anyhow!("generated body {n}: {e}"))?;
        Ok::<_, anyhow::Error>(Generated {
            report,
            meta: RequestMeta {
                principal: None,
                client_addr: Some("127.0.0.1".to_owned()),
                forwarded_for: None,
                user_agent: Some("gitops-status bench-fill".to_owned()),
                raw_body: object.raw,
                import_entry: None,
                request_id: None,
            },
            received_at,
        })
    });
    let mut failure = None;
    let reports = generated.map_while(|g| match g {
        Ok(g) => Some(g),
        Err(e) => {
            failure = Some(e);
            None
        }
    });
    let appended = bulk::append(db, status::render_row, reports).await?;
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(appended)
}

async fn existing_rows(db: &Path) -> anyhow::Result<u64> {
    use sqlx::Connection;
    if !db.exists() {
        return Ok(0);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open {}", db.display()))?;
    let count: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'reports'")
            .fetch_optional(&mut conn)
            .await
            .unwrap_or(None);
    conn.close().await?;
    Ok(count.map_or(0, |c| u64::try_from(c).unwrap_or(0)))
}
