//! Filters on the current state, and the rule that no endpoint ignores a query parameter.

use serde_json::{json, Value};

use crate::helpers::{expect, expect_error, spawn_app, TestApp};

fn hosts(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["server_group"].as_str().unwrap(),
                r["host"].as_str().unwrap()
            )
        })
        .collect()
}

/// rsyslog-prod/01 synced, rsyslog-prod/02 out_of_sync, rsyslog-dev/01 failed, nginx-prod/01
/// synced on commit c2.
async fn fleet(app: &TestApp) {
    let deploy = |group: &str, host: &str, status: &str, commit: &str, env: &str| {
        json!({"server_group": group, "host": host, "status": status, "commit_sha": commit,
               "environment": env, "server_type": group.split('-').next().unwrap(),
               "branch": "main", "validation_status": "passed"})
    };
    for body in [
        deploy("rsyslog-prod", "rsyslog-01", "synced", "c1", "prod"),
        deploy("rsyslog-prod", "rsyslog-02", "synced", "c1", "prod"),
        deploy("rsyslog-dev", "rsyslog-01", "failed", "c1", "dev"),
        deploy("nginx-prod", "nginx-01", "synced", "c2", "prod"),
    ] {
        expect(app.pipeline(body).await, 201).await;
    }
    let drift = json!({"server_group": "rsyslog-prod", "host": "rsyslog-02",
                       "status": "out_of_sync", "changed_files": ["/etc/rsyslog.conf"]});
    expect(app.cron(drift).await, 200).await;
}

#[tokio::test]
async fn filters_take_lists_globs_and_all() {
    let app = spawn_app().await;
    fleet(&app).await;
    let cases: [(&str, &[&str]); 12] = [
        ("status=out_of_sync", &["rsyslog-prod/rsyslog-02"]),
        (
            "status=out_of_sync,FAILED",
            &["rsyslog-dev/rsyslog-01", "rsyslog-prod/rsyslog-02"],
        ),
        (
            "server_group=rsyslog-*",
            &[
                "rsyslog-dev/rsyslog-01",
                "rsyslog-prod/rsyslog-01",
                "rsyslog-prod/rsyslog-02",
            ],
        ),
        (
            "server_group=*-prod&host=*-01",
            &["nginx-prod/nginx-01", "rsyslog-prod/rsyslog-01"],
        ),
        ("environment=dev", &["rsyslog-dev/rsyslog-01"]),
        ("server_type=nginx", &["nginx-prod/nginx-01"]),
        ("commit_sha=c2", &["nginx-prod/nginx-01"]),
        (
            "commit_sha=c*&status=synced&environment=prod",
            &["nginx-prod/nginx-01", "rsyslog-prod/rsyslog-01"],
        ),
        (
            "branch=main&validation_status=passed&repo_name=&project_name=*",
            &[
                "nginx-prod/nginx-01",
                "rsyslog-dev/rsyslog-01",
                "rsyslog-prod/rsyslog-01",
                "rsyslog-prod/rsyslog-02",
            ],
        ),
        (
            "server_group=*&status=",
            &[
                "nginx-prod/nginx-01",
                "rsyslog-dev/rsyslog-01",
                "rsyslog-prod/rsyslog-01",
                "rsyslog-prod/rsyslog-02",
            ],
        ),
        ("host=nothing-*", &[]),
        (
            "stale=false&status=*",
            &[
                "nginx-prod/nginx-01",
                "rsyslog-dev/rsyslog-01",
                "rsyslog-prod/rsyslog-01",
                "rsyslog-prod/rsyslog-02",
            ],
        ),
    ];
    for (query, expected) in cases {
        let rows = app.get_json(&format!("/status?{query}")).await;
        assert_eq!(hosts(&rows), expected.to_vec(), "{query}");
        let json = app.get_json(&format!("/status.json?{query}")).await;
        assert_eq!(rows, json, "{query}");
    }
    let group = app.get_json("/status/rsyslog-prod?status=synced").await;
    assert_eq!(hosts(&group), ["rsyslog-prod/rsyslog-01"]);
    let group = app
        .get_json("/status/rsyslog-prod?server_group=nginx-*")
        .await;
    assert_eq!(hosts(&group), Vec::<String>::new());
}

#[tokio::test]
async fn an_unknown_query_parameter_is_a_400_naming_it_on_every_endpoint() {
    let app = spawn_app().await;
    fleet(&app).await;
    for path in [
        "/status?stauts=failed",
        "/status.json?stauts=failed",
        "/status/rsyslog-prod?stauts=failed",
        "/status/rsyslog-prod/rsyslog-01?stauts=failed",
        "/status/rsyslog-prod/rsyslog-01/history?stauts=failed",
        "/history?stauts=failed",
        "/summary?stauts=failed",
        "/groups?stauts=failed",
        "/transitions?stauts=failed",
        "/commits?stauts=failed",
        "/commits/c1?stauts=failed",
        "/health?stauts=failed",
        "/?stauts=failed",
    ] {
        let details = expect_error(app.get(path).await, 400).await;
        assert_eq!(details.len(), 1, "{path}");
        assert_eq!(details[0].0, "stauts", "{path}");
    }
    // With a known parameter beside it, only the unknown one is named.
    let details = expect_error(app.get("/status?status=failed&x=1&y=2&x=3").await, 400).await;
    let named: Vec<&str> = details.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(named, ["x", "y"]);
    assert!(
        details[0].1.contains("status, environment"),
        "{}",
        details[0].1
    );

    // On a write it stores nothing.
    let before = app.db().scalar("SELECT count(*) FROM reports").await;
    let drift = json!({"server_group": "rsyslog-prod", "host": "rsyslog-01", "status": "synced"});
    let details = expect_error(app.post_json("/status/cron?dry_run=1", &drift).await, 400).await;
    assert_eq!(details[0].0, "dry_run");
    assert!(
        details[0].1.contains("takes no query parameters"),
        "{}",
        details[0].1
    );
    assert_eq!(
        app.db().scalar("SELECT count(*) FROM reports").await,
        before
    );
}

#[tokio::test]
async fn a_bad_filter_value_is_a_422_naming_each_parameter() {
    let app = spawn_app().await;
    let details = expect_error(
        app.get("/status?status=green&stale=maybe&server_group=bad%20name")
            .await,
        422,
    )
    .await;
    let named: Vec<&str> = details.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(named, ["status", "server_group", "stale"]);
    let details = expect_error(app.get("/history?kind=pipeline,bogus").await, 422).await;
    assert_eq!(details[0].0, "kind");
    let details = expect_error(app.get("/transitions?envelope=*").await, 422).await;
    assert_eq!(details[0].0, "envelope");
}

#[tokio::test]
async fn history_takes_lists_and_globs_too() {
    let app = spawn_app().await;
    fleet(&app).await;
    let rows = app
        .history("?server_group=rsyslog-*&kind=cron,legacy")
        .await;
    assert_eq!(rows.len(), 1);
    let rows = app
        .history("?server_group=rsyslog-prod,nginx-prod&host=*-01")
        .await;
    assert_eq!(rows.len(), 2);
    let rows = app.history("?status=failed,out_of_sync").await;
    assert_eq!(rows.len(), 2);
}
