use serde_json::{json, Value};

use crate::helpers::{expect, expect_error, seed_pipeline, spawn_app};

fn seed_v1_drift() -> Value {
    json!({
        "repo": "rsyslog",
        "server": "rsyslog-lab",
        "sync_status": "OUT_OF_SYNC",
        "drift_count": 2,
        "files": [
            {"name": "rsyslog.conf"},
            {"name": "rsyslog.d/30-lab.conf"}
        ],
        "last_check": "2026-04-21T10:30:00Z"
    })
}

#[tokio::test]
async fn v1_round_trip_returns_what_was_posted() {
    let app = spawn_app().await;

    let body = expect(app.v1(seed_v1_drift()).await, 200).await;

    let mut expected = seed_v1_drift();
    expected["last_check"] = json!("2026-04-21T10:30:00.000Z");
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["message"], "Status updated successfully");
    assert_eq!(body["status"], expected);
    assert_eq!(app.get_json("/api/status").await, expected);
}

#[tokio::test]
async fn v1_report_maps_into_the_v2_state() {
    let app = spawn_app().await;

    expect(app.v1(seed_v1_drift()).await, 200).await;

    let host = app.host("rsyslog", "rsyslog-lab").await;
    assert_eq!(host["server_group"], "rsyslog");
    assert_eq!(host["host"], "rsyslog-lab");
    assert_eq!(host["status"], "out_of_sync");
    assert_eq!(
        host["changed_files"],
        json!(["rsyslog.conf", "rsyslog.d/30-lab.conf"])
    );
    assert_eq!(host["changed_files_count"], 2);
    assert_eq!(host["last_cron_check"], "2026-04-21T10:30:00.000Z");
    assert_eq!(host["commit_sha"], json!(null));
    let row = &app.history("").await[0];
    assert_eq!(row["kind"], "legacy");
    assert_eq!(row["drift_count"], 2);
}

#[tokio::test]
async fn v1_accepts_plain_string_files_and_any_case() {
    let app = spawn_app().await;

    let body = expect(
        app.v1(json!({
            "repo": "rsyslog", "server": "rsyslog-lab", "sync_status": "out_of_sync",
            "drift_count": 1, "files": ["rsyslog.conf"], "last_check": "2026-04-21T10:30:00Z"
        }))
        .await,
        200,
    )
    .await;

    assert_eq!(body["status"]["sync_status"], "OUT_OF_SYNC");
    assert_eq!(body["status"]["files"], json!([{"name": "rsyslog.conf"}]));
}

#[tokio::test]
async fn seed_woodpecker_synced_payload_works() {
    let app = spawn_app().await;
    let payload = r#"{
"repo": "rsyslog",
"server": "rsyslog-lab",
"sync_status": "SYNCED",
"drift_count": 0,
"files": [],
"last_check": "2026-04-21T10:30:00Z"
}"#;

    let body = expect(
        app.post_raw("/api/status", Some("application/json"), payload)
            .await,
        200,
    )
    .await;

    assert_eq!(body["status"]["sync_status"], "SYNCED");
    assert_eq!(body["status"]["drift_count"], 0);
    assert_eq!(body["status"]["files"], json!([]));
}

#[tokio::test]
async fn v1_get_before_any_v1_report_is_404() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    expect_error(app.get("/api/status").await, 404).await;
}

#[tokio::test]
async fn v1_get_shows_the_most_recently_reported_v1_host_or_the_one_asked_for() {
    let app = spawn_app().await;
    let mut first = seed_v1_drift();
    first["server"] = json!("rsyslog-a");
    let mut second = seed_v1_drift();
    second["server"] = json!("rsyslog-b");
    second["sync_status"] = json!("SYNCED");
    second["files"] = json!([]);
    expect(app.v1(first).await, 200).await;
    expect(app.v1(second).await, 200).await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    assert_eq!(app.get_json("/api/status").await["server"], "rsyslog-b");
    let picked = app
        .get_json("/api/status?repo=rsyslog&server=rsyslog-a")
        .await;
    assert_eq!(picked["server"], "rsyslog-a");
    assert_eq!(picked["sync_status"], "OUT_OF_SYNC");
    // Any host has a v1 view, whichever API reported it.
    let v2 = app
        .get_json("/api/status?repo=rsyslog-prod&server=rsyslog-01")
        .await;
    assert_eq!(v2["sync_status"], "SYNCED");
    assert_eq!(v2["last_check"], "2026-04-26T10:30:00.000Z");

    expect_error(app.get("/api/status?repo=rsyslog&server=nope").await, 404).await;
    // One of them narrows the most recent v1 host.
    assert_eq!(
        app.get_json("/api/status?repo=rsyslog").await["server"],
        "rsyslog-b"
    );
    let by_server = app.get_json("/api/status?server=rsyslog-a").await;
    assert_eq!(by_server["server"], "rsyslog-a");
    expect_error(app.get("/api/status?repo=nginx").await, 404).await;
    let details = expect_error(app.get("/api/status?repo=a%20b").await, 422).await;
    assert_eq!(details[0].0, "repo");
}

#[tokio::test]
async fn v1_report_on_a_v2_host_changes_only_drift_fields() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    let body = expect(
        app.v1(json!({
            "repo": "rsyslog-prod", "server": "rsyslog-01", "sync_status": "OUT_OF_SYNC",
            "files": ["/etc/rsyslog.conf"], "last_check": "2026-04-26T11:00:00Z"
        }))
        .await,
        200,
    )
    .await;

    assert_eq!(body["status"]["sync_status"], "OUT_OF_SYNC");
    let host = app.host("rsyslog-prod", "rsyslog-01").await;
    assert_eq!(host["status"], "out_of_sync");
    assert_eq!(host["commit_sha"], "abc1234567890");
    assert_eq!(host["last_cron_check"], "2026-04-26T11:00:00.000Z");
}

#[tokio::test]
async fn invalid_v1_reports_name_each_field() {
    let app = spawn_app().await;

    let details = expect_error(
        app.v1(json!({
            "sync_status": "MAYBE", "drift_count": -1,
            "files": [{"nom": "x"}, 3], "last_check": "today"
        }))
        .await,
        422,
    )
    .await;

    let fields: Vec<&str> = details.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "repo",
            "server",
            "sync_status",
            "drift_count",
            "files[0].name",
            "files[1]",
            "last_check"
        ]
    );
    assert_eq!(app.db().scalar("SELECT count(*) FROM reports").await, 0);
}

#[tokio::test]
async fn late_v1_report_is_kept_but_does_not_roll_the_state_back() {
    let app = spawn_app().await;
    expect(app.v1(seed_v1_drift()).await, 200).await;

    let mut late = seed_v1_drift();
    late["sync_status"] = json!("SYNCED");
    late["files"] = json!([]);
    late["last_check"] = json!("2026-04-21T09:00:00Z");
    let body = expect(app.v1(late).await, 200).await;

    assert!(
        body["message"].as_str().unwrap().contains("not changed"),
        "{body}"
    );
    assert_eq!(body["status"]["sync_status"], "OUT_OF_SYNC");
    assert_eq!(app.history("?kind=legacy").await.len(), 2);
}

#[tokio::test]
async fn v1_drift_count_round_trips_even_when_it_differs_from_the_files() {
    let app = spawn_app().await;
    let mut report = seed_v1_drift();
    report["drift_count"] = json!(5);
    report["files"] = json!([]);

    let body = expect(app.v1(report).await, 200).await;

    assert_eq!(body["status"]["drift_count"], 5);
    assert_eq!(app.get_json("/api/status").await["drift_count"], 5);
    assert_eq!(
        app.host("rsyslog", "rsyslog-lab").await["changed_files_count"],
        0
    );
    // Once a v2 report brings the files, the count is theirs.
    expect(
        app.cron(
            json!({"server_group": "rsyslog", "host": "rsyslog-lab", "status": "out_of_sync",
                        "changed_files": ["a", "b"], "last_cron_check": "2026-04-22T00:00:00Z"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(app.get_json("/api/status").await["drift_count"], 2);
}

#[tokio::test]
async fn empty_v1_query_values_mean_no_choice() {
    let app = spawn_app().await;
    expect(app.v1(seed_v1_drift()).await, 200).await;

    assert_eq!(
        app.get_json("/api/status?repo=&server=").await["server"],
        "rsyslog-lab"
    );
}
