use serde_json::json;

use crate::helpers::{expect, seed_pipeline, spawn_app};

#[tokio::test]
async fn seed_pipeline_example_creates_the_host_with_201() {
    let app = spawn_app().await;

    let body = expect(app.pipeline(seed_pipeline()).await, 201).await;

    assert_eq!(body["success"], json!(true));
    assert_eq!(body["message"], json!("Status updated successfully"));
    assert_eq!(body["report_id"], json!(1));
    let status = &body["status"];
    let timestamp = status["timestamp"].as_str().unwrap().to_owned();
    assert_eq!(
        status,
        &json!({
            "project_name": "gitops-for-servers",
            "repo_name": "rsyslog",
            "server_group": "rsyslog-prod",
            "server_type": "rsyslog",
            "environment": "prod",
            "host": "rsyslog-01",
            "status": "synced",
            "changed_files_count": 0,
            "changed_files": [],
            "validation_status": "passed",
            "validation_message": "rsyslog syntax validation passed",
            "last_pipeline_run": "2026-04-26T10:30:00.000Z",
            "last_cron_check": null,
            "commit_sha": "abc1234567890",
            "branch": "master",
            "updated_by": "woodpecker",
            "timestamp": timestamp,
            "status_since": "2026-04-26T10:30:00.000Z",
            "stale": false,
            "report_due_by": null,
        })
    );
    assert_eq!(app.host("rsyslog-prod", "rsyslog-01").await, *status);
}

#[tokio::test]
async fn next_pipeline_report_answers_200_and_replaces_the_deployment() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    let body = expect(
        app.pipeline(json!({
            "server_group": "rsyslog-prod",
            "host": "rsyslog-01",
            "status": "failed",
            "commit_sha": "def4567",
            "validation_status": "failed",
            "last_pipeline_run": "2026-04-26T12:00:00Z"
        }))
        .await,
        200,
    )
    .await;

    let status = &body["status"];
    assert_eq!(body["report_id"], json!(2));
    assert_eq!(status["status"], "failed");
    assert_eq!(status["commit_sha"], "def4567");
    assert_eq!(status["validation_status"], "failed");
    // A pipeline report is a whole deployment: what it leaves out is not carried over.
    assert_eq!(status["branch"], json!(null));
    assert_eq!(status["project_name"], json!(null));
    assert_eq!(status["last_pipeline_run"], "2026-04-26T12:00:00.000Z");
}

#[tokio::test]
async fn seed_local_development_examples_work() {
    let app = spawn_app().await;

    expect(
        app.pipeline(json!({"server_group":"test","host":"test-01","status":"synced"}))
            .await,
        201,
    )
    .await;
    expect(
        app.cron(json!({"server_group":"test","host":"test-01","status":"synced"}))
            .await,
        200,
    )
    .await;

    let all = app.get_json("/status").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let host = app.host("test", "test-01").await;
    assert_eq!(host["status"], "synced");
    // Without client times both were stamped with the server clock.
    assert!(host["last_pipeline_run"].is_string());
    assert!(host["last_cron_check"].is_string());
    assert_eq!(host["last_cron_check"], host["timestamp"]);
}

#[tokio::test]
async fn report_without_time_is_stamped_with_the_server_clock() {
    let app = spawn_app().await;

    let body = expect(
        app.pipeline(json!({"server_group":"g","host":"h","status":"synced"}))
            .await,
        201,
    )
    .await;

    let history = app.history("").await;
    assert_eq!(history[0]["last_pipeline_run"], json!(null), "as sent");
    assert_eq!(history[0]["observed_at"], history[0]["received_at"]);
    assert_eq!(
        body["status"]["last_pipeline_run"],
        history[0]["received_at"]
    );
}

#[tokio::test]
async fn seed_ansible_uri_example_with_empty_strings_is_accepted() {
    let app = spawn_app().await;
    // What the seed's Ansible task sends when CI_COMMIT_SHA is unset and the validator is quiet.
    let body = json!({
        "project_name": "gitops-for-servers",
        "repo_name": "nginx",
        "server_group": "nginx-prod",
        "server_type": "nginx",
        "environment": "prod",
        "host": "web01.example.com",
        "status": "synced",
        "validation_status": "passed",
        "validation_message": "",
        "commit_sha": "",
        "branch": "",
        "updated_by": "woodpecker"
    });

    let response = app
        .client
        .post(app.url("/status/pipeline"))
        .header("user-agent", "ansible-httpget")
        .json(&body)
        .send()
        .await
        .unwrap();
    let answer = expect(response, 201).await;

    assert_eq!(answer["status"]["commit_sha"], "");
    assert_eq!(answer["status"]["validation_message"], "");
    assert_eq!(app.history("").await[0]["user_agent"], "ansible-httpget");
}

#[tokio::test]
async fn unknown_members_are_accepted_and_the_raw_body_is_kept_verbatim() {
    let app = spawn_app().await;
    let raw = r#"{"server_group": "rsyslog-prod", "host": "rsyslog-01",
        "status": "synced", "ci_pipeline": 4711, "extra": {"nested": [1, 2.5, null]}}"#;

    expect(
        app.post_raw("/status/pipeline", Some("application/json"), raw)
            .await,
        201,
    )
    .await;

    let history = app.history("").await;
    assert_eq!(history[0]["raw_body"]["ci_pipeline"], 4711);
    assert_eq!(
        history[0]["raw_body"]["extra"],
        json!({"nested": [1, 2.5, null]})
    );
    let stored = app
        .db()
        .text("SELECT raw_body FROM reports WHERE id = 1")
        .await;
    assert_eq!(stored, raw, "byte for byte");
}

#[tokio::test]
async fn status_with_no_changed_files_means_none() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    expect(
        app.cron(json!({
            "server_group": "rsyslog-prod", "host": "rsyslog-01", "status": "out_of_sync",
            "changed_files": ["/etc/rsyslog.conf"], "last_cron_check": "2026-04-26T11:00:00Z"
        }))
        .await,
        200,
    )
    .await;

    let body = expect(
        app.pipeline(json!({
            "server_group": "rsyslog-prod", "host": "rsyslog-01", "status": "synced",
            "last_pipeline_run": "2026-04-26T12:00:00Z"
        }))
        .await,
        200,
    )
    .await;

    assert_eq!(body["status"]["status"], "synced");
    assert_eq!(body["status"]["changed_files"], json!([]));
    assert_eq!(body["status"]["changed_files_count"], 0);
}

#[tokio::test]
async fn status_is_accepted_in_any_case_and_stored_in_lower_case() {
    let app = spawn_app().await;

    let body = expect(
        app.pipeline(json!({"server_group":"g","host":"h","status":"OUT_OF_SYNC"}))
            .await,
        201,
    )
    .await;

    assert_eq!(body["status"]["status"], "out_of_sync");
}
