//! `gitops-status import`: the old servers' files, built from the seeds' own examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

use crate::helpers::{binary, cron_at, expect, spawn_app_in, ServerProcess};

/// Seed 003's storage format, its `{ ... }` placeholders filled in.
const V2_STATUS_JSON: &str = r#"{
  "version": "2.0",
  "servers": {
    "rsyslog-prod/rsyslog-01": {
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
      "commit_sha": "abc1234",
      "branch": "master",
      "updated_by": "woodpecker",
      "last_pipeline_run": "2026-04-26T10:30:00Z",
      "last_cron_check": "2026-04-26T11:00:00Z",
      "timestamp": "2026-04-26T11:00:00Z"
    },
    "rsyslog-prod/rsyslog-02": {
      "server_group": "rsyslog-prod",
      "host": "rsyslog-02",
      "status": "out_of_sync",
      "changed_files": ["/etc/rsyslog.conf"],
      "commit_sha": "abc1234",
      "last_pipeline_run": "2026-04-26T10:30:00Z",
      "last_cron_check": "2026-04-26T11:02:00Z",
      "timestamp": "2026-04-26T11:02:00Z"
    },
    "splunk-prod/splunk-indexer-01": {
      "project_name": "gitops-for-servers",
      "repo_name": "splunk",
      "server_group": "splunk-prod",
      "server_type": "splunk",
      "environment": "prod",
      "host": "splunk-indexer-01",
      "status": "synced",
      "changed_files": [],
      "validation_status": "passed",
      "commit_sha": "def5678",
      "branch": "master",
      "updated_by": "jenkins",
      "last_pipeline_run": "2026-04-25T09:00:00Z",
      "last_cron_check": null,
      "timestamp": "2026-04-25T09:00:00Z"
    }
  }
}"#;

/// Seeds 000 and 004: the v1 status object.
const V1_STATUS_JSON: &str = r#"{
  "repo": "rsyslog",
  "server": "rsyslog-lab",
  "sync_status": "OUT_OF_SYNC",
  "drift_count": 2,
  "files": [
    { "name": "rsyslog.conf" },
    { "name": "rsyslog.d/30-lab.conf" }
  ],
  "last_check": "2026-04-21T10:32:15Z"
}"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn import(db: &Path, files: &[&Path]) -> Output {
    Command::new(binary())
        .arg("import")
        .arg("--db")
        .arg(db)
        .args(files)
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

#[tokio::test]
async fn both_seed_formats_become_one_import_report_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let v2 = write(files.path(), "status.json", V2_STATUS_JSON);
    let v1 = write(files.path(), "status-v1.json", V1_STATUS_JSON);
    let db = crate::helpers::db_for(dir.path()).await;

    let output = import(&db, &[&v2, &v1]);

    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("imported 4 hosts (0 already imported, skipped)"),
        "{}",
        text(&output)
    );
    let app = spawn_app_in(dir).await;
    let host = app.host("rsyslog-prod", "rsyslog-01").await;
    assert_eq!(host["status"], "synced");
    assert_eq!(host["commit_sha"], "abc1234");
    assert_eq!(
        host["validation_message"],
        "rsyslog syntax validation passed"
    );
    assert_eq!(host["last_pipeline_run"], "2026-04-26T10:30:00.000Z");
    assert_eq!(host["last_cron_check"], "2026-04-26T11:00:00.000Z");
    let drifted = app.host("rsyslog-prod", "rsyslog-02").await;
    assert_eq!(
        (
            drifted["status"].as_str(),
            drifted["changed_files_count"].as_i64()
        ),
        (Some("out_of_sync"), Some(1))
    );
    let splunk = app.host("splunk-prod", "splunk-indexer-01").await;
    assert_eq!(splunk["last_cron_check"], serde_json::Value::Null);
    assert_eq!(splunk["updated_by"], "jenkins");
    let lab = app
        .get_json("/api/status?repo=rsyslog&server=rsyslog-lab")
        .await;
    assert_eq!(
        lab,
        json!({"repo": "rsyslog", "server": "rsyslog-lab", "sync_status": "OUT_OF_SYNC", "drift_count": 2,
               "files": [{"name": "rsyslog.conf"}, {"name": "rsyslog.d/30-lab.conf"}],
               "last_check": "2026-04-21T10:32:15.000Z"})
    );
    assert_eq!(
        app.host("rsyslog", "rsyslog-lab").await["last_cron_check"],
        "2026-04-21T10:32:15.000Z"
    );

    // Each report keeps the file's name and the entry as it was written there.
    let rows = app.history("?kind=import").await;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["principal"] == "import"));
    let row = rows.iter().find(|r| r["host"] == "rsyslog-01").unwrap();
    assert_eq!(row["raw_body"]["file"], "status.json");
    assert_eq!(row["raw_body"]["key"], "rsyslog-prod/rsyslog-01");
    assert_eq!(
        row["raw_body"]["entry"]["timestamp"],
        "2026-04-26T11:00:00Z"
    );
    assert_eq!(row["observed_at"], "2026-04-26T11:00:00.000Z");
    let lab_row = rows.iter().find(|r| r["host"] == "rsyslog-lab").unwrap();
    assert_eq!(lab_row["raw_body"]["file"], "status-v1.json");
    assert_eq!(
        lab_row["raw_body"]["entry"]["files"][1]["name"],
        "rsyslog.d/30-lab.conf"
    );
    assert_eq!(crate::retention::verify(&app.db_path).0, 0);
}

#[tokio::test]
async fn importing_the_same_file_twice_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = write(dir.path(), "status.json", V2_STATUS_JSON);
    let db = dir.path().join("x.db");
    assert!(import(&db, &[&v2]).status.success());

    let again = import(&db, &[&v2]);
    // The same entry under another file name is the same entry.
    let copy = write(dir.path(), "copy.json", V2_STATUS_JSON);
    let copied = import(&db, &[&copy, &copy]);

    assert!(
        text(&again).contains("imported 0 hosts (3 already imported, skipped)"),
        "{}",
        text(&again)
    );
    assert!(
        text(&copied).contains("imported 0 hosts (6 already imported, skipped)"),
        "{}",
        text(&copied)
    );
    let db_handle = crate::helpers::db::Db::open(&db);
    assert_eq!(db_handle.scalar("SELECT count(*) FROM reports").await, 3);
}

#[tokio::test]
async fn a_bad_file_is_refused_with_its_name_and_json_path_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.json", V1_STATUS_JSON);
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"version": "2.0", "servers": {"rsyslog-prod/rsyslog-01": {"status": "in_sync", "last_pipeline_run": "yesterday"}}}"#,
    );
    let broken = write(dir.path(), "broken.json", "{\"repo\": ");
    let db = dir.path().join("x.db");

    let output = import(&db, &[&good, &bad, &broken]);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(r#"bad.json: $.servers["rsyslog-prod/rsyslog-01"].status: must be one of"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"bad.json: $.servers["rsyslog-prod/rsyslog-01"].last_pipeline_run: "#),
        "{stderr}"
    );
    assert!(stderr.contains("broken.json: $: not JSON"), "{stderr}");
    assert!(stderr.contains("nothing imported"), "{stderr}");
    assert!(!db.exists(), "not even the good file was stored");
}

#[tokio::test]
async fn an_import_never_overwrites_newer_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let v2 = write(files.path(), "status.json", V2_STATUS_JSON);
    let app = spawn_app_in(dir).await;
    // Live drift checks newer than the file's, and none for the deployment.
    expect(
        app.v1(
            json!({"repo": "rsyslog-prod", "server": "rsyslog-01", "sync_status": "OUT_OF_SYNC",
                           "files": ["/etc/live.conf"], "last_check": "2026-05-01T00:00:00Z"}),
        )
        .await,
        200,
    )
    .await;
    expect(
        app.cron(cron_at(
            "rsyslog-prod",
            "rsyslog-01",
            "out_of_sync",
            &["/etc/live.conf"],
            "2026-05-01T00:00:00Z",
        ))
        .await,
        200,
    )
    .await;
    let db = app.db_path.clone();
    let dir = app.stop().await;

    let output = import(&db, &[&v2]);

    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("rsyslog-prod/rsyslog-01: report 3 (newer live state kept for: status, changed_files, last_cron_check)"), "{}", text(&output));
    let app = spawn_app_in(dir).await;
    let host = app.host("rsyslog-prod", "rsyslog-01").await;
    assert_eq!(
        host["status"], "out_of_sync",
        "the live drift check is newer"
    );
    assert_eq!(host["changed_files"], json!(["/etc/live.conf"]));
    assert_eq!(host["last_cron_check"], "2026-05-01T00:00:00.000Z");
    assert_eq!(
        host["commit_sha"], "abc1234",
        "the file's deployment was news"
    );
    assert_eq!(crate::retention::verify(&app.db_path).0, 0);
}

#[tokio::test]
async fn one_writer_per_file_a_running_server_blocks_an_import_and_a_second_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let v1 = write(dir.path(), "status.json", V1_STATUS_JSON);
    let mut server = ServerProcess::start(&db);

    let output = import(&db, &[&v1]);
    let second = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .output()
        .unwrap();

    assert!(!output.status.success());
    assert!(
        text(&output).contains("is in use: another gitops-status process"),
        "{}",
        text(&output)
    );
    assert!(!second.status.success());
    assert!(
        text(&second).contains("is in use: another gitops-status process"),
        "{}",
        text(&second)
    );
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(server.wait(), Some(0));
    let after = import(&db, &[&v1]);
    assert!(after.status.success(), "{}", text(&after));
}

#[tokio::test]
async fn an_entry_imported_once_stays_imported_after_retention_removed_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let v1 = write(files.path(), "status.json", V1_STATUS_JSON);
    let db = crate::helpers::db_for(dir.path()).await;
    assert!(import(&db, &[&v1]).status.success());
    // The host is retired; a year and more later retention has removed every row of it.
    let later = gitops_status::domain::Timestamp::now()
        .checked_add(gitops_status::domain::Period::parse("500d").unwrap())
        .unwrap();
    let clock = gitops_status::domain::Clock::manual(later);
    let app = crate::helpers::spawn_app_with(dir, |s| {
        s.clock = clock.clone();
        // Retention runs when the test says (POST /admin/prune), not 10 s after start.
        s.first_prune_after = std::time::Duration::from_secs(86_400);
        s.retention = gitops_status::domain::RetentionPolicy {
            reports: gitops_status::domain::Period::parse("1d").ok(),
            changes: gitops_status::domain::Period::parse("1d").ok(),
            per_host: 0,
        };
    })
    .await;
    let response = app
        .client
        .delete(app.url("/status/rsyslog/rsyslog-lab"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    clock.advance(gitops_status::domain::Period::parse("2d").unwrap());
    expect(app.post_json("/admin/prune", &json!({})).await, 200).await;
    assert!(
        app.history("?kind=import").await.is_empty(),
        "the import's report is gone"
    );
    let dir = app.stop().await;

    let again = import(&db, &[&v1]);
    // The same entry with its members in another order and other spacing is the same entry.
    let reordered: serde_json::Value = serde_json::from_str(V1_STATUS_JSON).unwrap();
    let mut members: Vec<(String, serde_json::Value)> =
        reordered.as_object().unwrap().clone().into_iter().collect();
    members.reverse();
    let reordered_text =
        serde_json::to_string_pretty(&members.into_iter().collect::<serde_json::Map<_, _>>())
            .unwrap();
    let other = write(files.path(), "other.json", &reordered_text);
    let reordered = import(&db, &[&other]);

    assert!(
        text(&again).contains("imported 0 hosts (1 already imported, skipped)"),
        "{}",
        text(&again)
    );
    assert!(
        text(&reordered).contains("imported 0 hosts (1 already imported, skipped)"),
        "{}",
        text(&reordered)
    );
    let app = spawn_app_in(dir).await;
    assert_eq!(
        app.get_json("/status").await,
        json!([]),
        "the retired host stays retired"
    );
}
