//! `gitops-status migrate-db`: a SQLite history copied into an empty PostgreSQL database
//! verifies there and serves the same answers. Runs with the suite on PostgreSQL (the source
//! is a SQLite server all the same); tests/postgres/migrate.sh does it with a million rows.

use std::path::Path;
use std::process::{Command, Output};

use gitops_status::domain::{Clock, Period, RetentionPolicy, Timestamp};
use serde_json::{json, Value};

use crate::helpers::{
    binary, cron_at, expect, fresh_postgres_database, on_postgres, pipeline_at, seed_pipeline,
    spawn_app_with, TestApp,
};

fn migrate(from: &Path, to: &str) -> Output {
    Command::new(binary())
        .args(["migrate-db", "--from"])
        .arg(from)
        .args(["--to", to])
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What a reader sees: the fleet, the history, transitions and rollouts.
async fn answers(app: &TestApp) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        "/status",
        "/history?limit=1000",
        "/transitions",
        "/commits",
        "/summary",
        "/groups",
    ] {
        seen.push(app.get_json(path).await);
    }
    seen
}

#[tokio::test]
async fn a_sqlite_history_copied_to_postgresql_verifies_and_serves_the_same() {
    if !on_postgres() {
        return;
    }
    // The source: a SQLite server with reports, a decommissioned host, an idempotency key
    // and a pruning pass behind it (gaps in the chain that retention rows vouch for).
    let clock = Clock::manual(Timestamp::parse_rfc3339("2026-04-26T09:00:00Z").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.db");
    let (sqlite, server_clock) = (file.clone(), clock.clone());
    let app = spawn_app_with(dir, move |s| {
        s.db = gitops_status::config::DbTarget::Sqlite(sqlite);
        s.clock = server_clock;
        // Retention runs when the test says (POST /admin/prune), not 10 s after start.
        s.first_prune_after = std::time::Duration::from_secs(86_400);
        s.retention = RetentionPolicy {
            reports: Some(Period::DAY),
            changes: Some(Period::DAY),
            per_host: 1,
        };
    })
    .await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    for (n, status) in ["out_of_sync", "synced", "failed"].iter().enumerate() {
        let at = format!("2026-04-26T1{n}:00:00Z");
        expect(
            app.cron(cron_at(
                "rsyslog-prod",
                "rsyslog-01",
                status,
                &["/etc/x"],
                &at,
            ))
            .await,
            200,
        )
        .await;
        expect(
            app.pipeline(pipeline_at("web", &format!("w{n}"), status, &at))
                .await,
            201,
        )
        .await;
    }
    expect(
        app.client
            .delete(app.url("/status/web/w1"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    clock.advance(Period::DAY);
    clock.advance(Period::DAY);
    let pass = expect(app.post_json("/admin/prune", &json!({})).await, 200).await;
    assert!(pass["removed"].as_u64().unwrap() > 0, "{pass}");
    let keyed = app
        .client
        .post(app.url("/status/pipeline"))
        .header("Idempotency-Key", "run-1")
        .json(&json!({"server_group": "web", "host": "w9", "status": "synced"}))
        .send()
        .await
        .unwrap();
    let first = expect(keyed, 201).await;
    let before = answers(&app).await;

    // Copying needs the server stopped: its lock is refused while it runs.
    let target = fresh_postgres_database().await;
    let refused = migrate(&file, &target);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("is in use"), "{}", text(&refused));
    let dir = app.stop().await;

    let output = migrate(&file, &target);
    assert!(output.status.success(), "{}", text(&output));
    let said = text(&output);
    assert!(said.contains("copied "), "{said}");
    assert!(said.contains("on PostgreSQL, verified "), "{said}");
    // A second copy into the same (no longer empty) database is refused.
    let again = migrate(&file, &target);
    assert!(!again.status.success());
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    // The same answers from a server on the copy, and it goes on where SQLite stopped.
    let (url, server_clock) = (target.clone(), clock.clone());
    let app = spawn_app_with(dir, move |s| {
        s.db = gitops_status::config::DbTarget::Postgres {
            url,
            password_file: None,
        };
        s.clock = server_clock;
    })
    .await;
    assert_eq!(answers(&app).await, before);
    let replayed = app
        .client
        .post(app.url("/status/pipeline"))
        .header("Idempotency-Key", "run-1")
        .json(&json!({"server_group": "web", "host": "w9", "status": "synced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect(replayed, 201).await, first);
    let next = expect(
        app.pipeline(pipeline_at("web", "w1", "synced", "2026-04-26T15:00:00Z"))
            .await,
        201,
    )
    .await;
    let last_id = before[1][0]["id"].as_i64().unwrap();
    assert_eq!(next["report_id"], json!(last_id + 1));
    let (code, out) = crate::retention::verify(Path::new(&target));
    assert_eq!(code, 0, "{out}");
}
