//! `DELETE /status/{server_group}/{host}`: a host leaves the fleet, its history stays.

use serde_json::json;

use crate::helpers::{
    cron_at, expect, expect_error, pipeline_at, seed_pipeline, spawn_app, spawn_app_with,
    token_file, TestApp,
};

async fn delete(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.delete(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_decommissioned_host_leaves_the_current_state_and_keeps_its_history() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    expect(
        app.pipeline(pipeline_at(
            "rsyslog-prod",
            "rsyslog-02",
            "synced",
            "2026-04-26T10:00:00Z",
        ))
        .await,
        201,
    )
    .await;
    expect(
        app.v1(json!({"repo": "rsyslog-prod", "server": "rsyslog-01", "sync_status": "SYNCED"}))
            .await,
        200,
    )
    .await;

    let body = expect(
        delete(
            &app,
            "/status/rsyslog-prod/rsyslog-01",
            None,
            Some(r#"{"reason": "replaced by rsyslog-05", "ticket": "CHG-1"}"#),
        )
        .await,
        200,
    )
    .await;

    assert_eq!(body["success"], true);
    let id = body["report_id"].as_i64().unwrap();
    let status = app.get_json("/status").await;
    let hosts: Vec<&str> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["rsyslog-02"]);
    assert_eq!(app.get_json("/status.json").await, status);
    assert_eq!(app.get_json("/status/rsyslog-prod").await, status);
    expect_error(app.get("/status/rsyslog-prod/rsyslog-01").await, 404).await;
    // The v1 view no longer shows it either.
    expect_error(app.get("/api/status").await, 404).await;
    expect_error(
        app.get("/api/status?repo=rsyslog-prod&server=rsyslog-01")
            .await,
        404,
    )
    .await;

    // The history keeps everything, the decommission included, with who and why.
    let history = app
        .history("?server_group=rsyslog-prod&host=rsyslog-01")
        .await;
    assert_eq!(history.len(), 3);
    assert_eq!(
        app.get_json("/status/rsyslog-prod/rsyslog-01/history")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let row = &history[0];
    assert_eq!(
        (row["id"].as_i64().unwrap(), row["kind"].as_str().unwrap()),
        (id, "decommission")
    );
    assert_eq!(
        row["raw_body"],
        json!({"reason": "replaced by rsyslog-05", "ticket": "CHG-1"})
    );
    assert_eq!(row["client_addr"], "127.0.0.1");
    assert!(row["status"].is_null());
    assert_eq!(app.history("?kind=decommission").await.len(), 1);
    assert_eq!(crate::retention::verify(&app.db_path).0, 0);
}

#[tokio::test]
async fn a_second_delete_or_an_unknown_host_is_404_and_stores_nothing() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    expect(
        delete(&app, "/status/rsyslog-prod/rsyslog-01", None, None).await,
        200,
    )
    .await;
    let rows = app.history("").await.len();

    let again = expect_error(
        delete(&app, "/status/rsyslog-prod/rsyslog-01", None, None).await,
        404,
    )
    .await;
    let never = expect_error(
        delete(&app, "/status/rsyslog-prod/never", None, None).await,
        404,
    )
    .await;

    assert!(again.is_empty() && never.is_empty());
    assert_eq!(app.history("").await.len(), rows);
}

#[tokio::test]
async fn a_later_pipeline_or_v1_report_creates_the_host_again_but_a_cron_is_404() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    expect(
        app.cron(cron_at(
            "rsyslog-prod",
            "rsyslog-01",
            "out_of_sync",
            &["/etc/a"],
            "2026-04-26T11:00:00Z",
        ))
        .await,
        200,
    )
    .await;
    expect(
        delete(&app, "/status/rsyslog-prod/rsyslog-01", None, None).await,
        200,
    )
    .await;

    expect_error(
        app.cron(cron_at(
            "rsyslog-prod",
            "rsyslog-01",
            "synced",
            &[],
            "2026-04-26T12:00:00Z",
        ))
        .await,
        404,
    )
    .await;
    // Created anew, from this report alone: nothing of its earlier state comes back.
    let created = expect(
        app.pipeline(
            json!({"server_group": "rsyslog-prod", "host": "rsyslog-01", "status": "synced"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["status"]["commit_sha"], serde_json::Value::Null);
    assert_eq!(created["status"]["changed_files"], json!([]));
    assert_eq!(
        created["status"]["last_cron_check"],
        serde_json::Value::Null
    );
    expect(
        delete(&app, "/status/rsyslog-prod/rsyslog-01", None, None).await,
        200,
    )
    .await;
    expect(
        app.v1(
            json!({"repo": "rsyslog-prod", "server": "rsyslog-01", "sync_status": "OUT_OF_SYNC"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        app.host("rsyslog-prod", "rsyslog-01").await["status"],
        "out_of_sync"
    );
    assert_eq!(app.get_json("/api/status").await["server"], "rsyslog-01");
    assert_eq!(crate::retention::verify(&app.db_path).0, 0);
}

#[tokio::test]
async fn a_bad_body_or_name_is_refused_and_stores_nothing() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    let details = expect_error(
        delete(
            &app,
            "/status/rsyslog-prod/rsyslog-01",
            None,
            Some(r#"{"reason": 5}"#),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(details[0].0, "reason");
    let long = json!({"reason": "x".repeat(1025)}).to_string();
    expect_error(
        delete(&app, "/status/rsyslog-prod/rsyslog-01", None, Some(&long)).await,
        422,
    )
    .await;
    expect_error(
        delete(
            &app,
            "/status/rsyslog-prod/rsyslog-01",
            None,
            Some("{not json"),
        )
        .await,
        400,
    )
    .await;
    let text = app
        .client
        .delete(app.url("/status/rsyslog-prod/rsyslog-01"))
        .header("content-type", "text/plain")
        .body("because")
        .send()
        .await
        .unwrap();
    expect_error(text, 415).await;
    expect_error(
        delete(&app, "/status/rsyslog-prod/bad%20name", None, None).await,
        422,
    )
    .await;

    assert_eq!(app.history("").await.len(), 1);
    assert_eq!(
        app.host("rsyslog-prod", "rsyslog-01").await["status"],
        "synced"
    );
}

#[tokio::test]
async fn with_tokens_a_decommission_needs_write_scope_on_the_group_or_admin() {
    let dir = tempfile::tempdir().unwrap();
    let (file, tokens) = token_file(
        dir.path(),
        &[
            ("rsyslog-ci", &["write:rsyslog-*"]),
            ("splunk-ci", &["write:splunk-*"]),
            ("grafana", &["read"]),
            ("ops", &["admin"]),
        ],
    );
    let app = spawn_app_with(dir, |s| s.tokens = Some(file)).await;
    for host in ["rsyslog-01", "rsyslog-02"] {
        let body = json!({"server_group": "rsyslog-prod", "host": host, "status": "synced"});
        expect(
            app.post_as(&tokens["rsyslog-ci"], "/status/pipeline", &body)
                .await,
            201,
        )
        .await;
    }
    let path = "/status/rsyslog-prod/rsyslog-01";

    expect_error(delete(&app, path, None, None).await, 401).await;
    expect_error(delete(&app, path, Some("gst_not-a-token"), None).await, 401).await;
    expect_error(
        delete(&app, path, Some(&tokens["splunk-ci"]), None).await,
        403,
    )
    .await;
    expect_error(
        delete(&app, path, Some(&tokens["grafana"]), None).await,
        403,
    )
    .await;
    assert_eq!(app.history("").await.len(), 2, "nothing stored");

    expect(
        delete(&app, path, Some(&tokens["rsyslog-ci"]), None).await,
        200,
    )
    .await;
    expect(
        delete(
            &app,
            "/status/rsyslog-prod/rsyslog-02",
            Some(&tokens["ops"]),
            None,
        )
        .await,
        200,
    )
    .await;
    let principals: Vec<String> = app
        .history("?kind=decommission")
        .await
        .iter()
        .map(|r| r["principal"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(principals, ["ops", "rsyslog-ci"]);
    assert_eq!(app.get_json("/status").await, json!([]));
}
