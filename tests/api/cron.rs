use serde_json::json;

use crate::helpers::{expect, expect_error, seed_pipeline, spawn_app};

#[tokio::test]
async fn cron_report_for_unknown_host_is_404_and_stores_nothing() {
    let app = spawn_app().await;

    let details = expect_error(
        app.cron(json!({"server_group": "rsyslog-prod", "host": "rsyslog-99", "status": "synced"}))
            .await,
        404,
    )
    .await;

    assert!(details.is_empty());
    assert_eq!(app.history("").await.len(), 0);
    assert_eq!(app.get_json("/status").await, json!([]));
    assert_eq!(app.db().scalar("SELECT count(*) FROM reports").await, 0);
}

#[tokio::test]
async fn seed_cron_examples_change_only_the_drift_fields() {
    let app = spawn_app().await;
    let created = expect(app.pipeline(seed_pipeline()).await, 201).await;

    let synced = expect(
        app.cron(json!({
            "server_group": "rsyslog-prod",
            "host": "rsyslog-01",
            "status": "synced",
            "changed_files": [],
            "last_cron_check": "2026-04-26T11:00:00Z"
        }))
        .await,
        200,
    )
    .await;
    assert_eq!(
        synced["status"]["last_cron_check"],
        "2026-04-26T11:00:00.000Z"
    );

    let drifted = expect(
        app.cron(json!({
            "server_group": "rsyslog-prod",
            "host": "rsyslog-01",
            "status": "out_of_sync",
            "changed_files": ["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"],
            "last_cron_check": "2026-04-26T11:02:00Z"
        }))
        .await,
        200,
    )
    .await;

    let before = &created["status"];
    let after = &drifted["status"];
    assert_eq!(after["status"], "out_of_sync");
    assert_eq!(after["changed_files_count"], 2);
    assert_eq!(
        after["changed_files"],
        json!(["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"])
    );
    assert_eq!(after["last_cron_check"], "2026-04-26T11:02:00.000Z");
    for field in [
        "project_name",
        "repo_name",
        "server_type",
        "environment",
        "validation_status",
        "validation_message",
        "last_pipeline_run",
        "commit_sha",
        "branch",
        "updated_by",
    ] {
        assert_eq!(after[field], before[field], "{field} must not change");
    }
}

#[tokio::test]
async fn pipeline_members_sent_to_cron_are_kept_in_history_but_not_applied() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    let body = expect(
        app.cron(json!({
            "server_group": "rsyslog-prod", "host": "rsyslog-01", "status": "synced",
            "commit_sha": "forged", "branch": "evil", "validation_status": "passed",
            "last_cron_check": "2026-04-26T11:00:00Z"
        }))
        .await,
        200,
    )
    .await;

    assert_eq!(body["status"]["commit_sha"], "abc1234567890");
    assert_eq!(body["status"]["branch"], "master");
    let row = &app.history("?kind=cron").await[0];
    assert_eq!(row["commit_sha"], json!(null));
    assert_eq!(row["raw_body"]["commit_sha"], "forged");
}

#[tokio::test]
async fn cron_without_status_only_records_the_check_time() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    let body = expect(
        app.cron(json!({
            "server_group": "rsyslog-prod", "host": "rsyslog-01",
            "last_cron_check": "2026-04-26T11:00:00Z"
        }))
        .await,
        200,
    )
    .await;

    assert_eq!(body["status"]["status"], "synced");
    assert_eq!(
        body["status"]["last_cron_check"],
        "2026-04-26T11:00:00.000Z"
    );
    let row = &app.history("?kind=cron").await[0];
    assert_eq!(row["status"], json!(null));
    assert_eq!(row["changed_files"], json!(null));
    assert_eq!(row["changed_files_count"], json!(null));
}

#[tokio::test]
async fn cron_with_files_but_no_status_keeps_the_status() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    let body = expect(
        app.cron(json!({
            "server_group": "rsyslog-prod", "host": "rsyslog-01",
            "changed_files": ["/etc/rsyslog.conf"], "last_cron_check": "2026-04-26T11:00:00Z"
        }))
        .await,
        200,
    )
    .await;

    assert_eq!(body["status"]["status"], "synced");
    assert_eq!(
        body["status"]["changed_files"],
        json!(["/etc/rsyslog.conf"])
    );
}

#[tokio::test]
async fn seed_nginx_cron_script_payload_is_accepted() {
    let app = spawn_app().await;
    expect(
        app.pipeline(
            json!({"server_group": "nginx-prod", "host": "web-01", "status": "synced",
                            "last_pipeline_run": "2026-04-26T10:00:00Z"}),
        )
        .await,
        201,
    )
    .await;
    // The body the seed's bash script builds with `date -u +%Y-%m-%dT%H:%M:%SZ`.
    let raw = "{\n    \"server_group\": \"nginx-prod\",\n    \"host\": \"web-01\",\n    \
               \"status\": \"out_of_sync\",\n    \"changed_files\": [\"/etc/nginx/nginx.conf\"],\n    \
               \"last_cron_check\": \"2026-04-26T11:00:00Z\"\n  }";

    let body = expect(
        app.post_raw("/status/cron", Some("application/json"), raw)
            .await,
        200,
    )
    .await;

    assert_eq!(
        body["status"]["changed_files"],
        json!(["/etc/nginx/nginx.conf"])
    );
}
