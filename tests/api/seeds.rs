//! Every curl example of the seed documents (../shared/seeds), replayed verbatim against the
//! service: they are the compatibility contract.

use serde_json::json;

use crate::helpers::{expect, spawn_app};

const JSON: Option<&str> = Some("application/json");

/// Seed 003 (v2): the pipeline example, both cron examples and the three query examples.
#[tokio::test]
async fn seed_003_v2_examples() {
    let app = spawn_app().await;

    let pipeline = r#"{
    "project_name": "gitops-for-servers",
    "repo_name": "rsyslog",
    "server_group": "rsyslog-prod",
    "server_type": "rsyslog",
    "environment": "prod",
    "host": "rsyslog-01",
    "status": "synced",
    "changed_files": [],
    "validation_status": "passed",
    "validation_message": "rsyslog syntax validation passed",
    "commit_sha": "abc1234567890",
    "branch": "master",
    "updated_by": "woodpecker",
    "last_pipeline_run": "2026-04-26T10:30:00Z"
  }"#;
    expect(app.post_raw("/status/pipeline", JSON, pipeline).await, 201).await;

    let cron_synced = r#"{
    "server_group": "rsyslog-prod",
    "host": "rsyslog-01",
    "status": "synced",
    "changed_files": [],
    "last_cron_check": "2026-04-26T11:00:00Z"
  }"#;
    expect(app.post_raw("/status/cron", JSON, cron_synced).await, 200).await;

    let cron_drift = r#"{
    "server_group": "rsyslog-prod",
    "host": "rsyslog-01",
    "status": "out_of_sync",
    "changed_files": ["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"],
    "last_cron_check": "2026-04-26T11:00:00Z"
  }"#;
    let drift = expect(app.post_raw("/status/cron", JSON, cron_drift).await, 200).await;
    assert_eq!(
        drift["status"]["status"], "out_of_sync",
        "same time: the later report wins"
    );

    let all = app.get_json("/status").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0]["changed_files_count"], 2);
    assert_eq!(all[0]["last_cron_check"], "2026-04-26T11:00:00.000Z");
    let group = app.get_json("/status/rsyslog-prod").await;
    assert_eq!(group, all);
    let host = app.get_json("/status/rsyslog-prod/rsyslog-01").await;
    assert_eq!(host, all[0]);
}

/// Seed 003 "Local Development" and "Docker" smoke tests.
#[tokio::test]
async fn seed_003_local_development_examples() {
    let app = spawn_app().await;

    let p = r#"{"server_group":"test","host":"test-01","status":"synced"}"#;
    expect(app.post_raw("/status/pipeline", JSON, p).await, 201).await;
    expect(app.post_raw("/status/cron", JSON, p).await, 200).await;
    assert_eq!(app.get_json("/status").await.as_array().unwrap().len(), 1);
    assert_eq!(
        app.get_json("/status/test/test-01").await["status"],
        "synced"
    );
    assert_eq!(app.get_json("/").await["service"], "gitops-status");
}

/// Seeds 000, 001, 004 (v1): POST /api/status, GET /status.json, /health and /ready.
#[tokio::test]
async fn seed_000_001_004_v1_examples() {
    let app = spawn_app().await;

    let drift = r#"{
"repo": "rsyslog",
"server": "rsyslog-lab",
"sync_status": "OUT_OF_SYNC",
"drift_count": 2,
"files": [
{"name": "rsyslog.conf"},
{"name": "rsyslog.d/30-lab.conf"}
],
"last_check": "2026-04-21T10:30:00Z"
}"#;
    let answer = expect(app.post_raw("/api/status", JSON, drift).await, 200).await;
    assert_eq!(answer["success"], json!(true));
    assert_eq!(answer["message"], "Status updated successfully");
    assert_eq!(answer["status"]["drift_count"], 2);

    // The Woodpecker script's payload (seed 000) and the seed 004 "synced" template.
    let synced = r#"{
"repo": "rsyslog",
"server": "rsyslog-lab",
"sync_status": "SYNCED",
"drift_count": 0,
"files": [],
"last_check": "2026-04-21T10:32:15Z"
}"#;
    let answer = expect(app.post_raw("/api/status", JSON, synced).await, 200).await;
    assert_eq!(answer["status"]["sync_status"], "SYNCED");

    let rows = app.get_json("/status.json").await;
    assert_eq!(rows[0]["server_group"], "rsyslog");
    assert_eq!(rows[0]["status"], "synced");
    assert_eq!(app.get_json("/api/status").await["sync_status"], "SYNCED");
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/ready").await.status(), 200);
}
