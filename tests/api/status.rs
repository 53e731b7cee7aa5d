use serde_json::{json, Value};

use crate::helpers::{expect, expect_error, seed_pipeline, spawn_app};

/// The 17 members of the seed's GET /status example, in its order, then the three this
/// service adds after them.
pub const STATUS_FIELDS: [&str; 20] = [
    "project_name",
    "repo_name",
    "server_group",
    "server_type",
    "environment",
    "host",
    "status",
    "changed_files_count",
    "changed_files",
    "validation_status",
    "validation_message",
    "last_pipeline_run",
    "last_cron_check",
    "commit_sha",
    "branch",
    "updated_by",
    "timestamp",
    "status_since",
    "stale",
    "report_due_by",
];

fn is_fixed_precision_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
}

#[tokio::test]
async fn status_is_an_empty_array_before_any_report() {
    let app = spawn_app().await;

    assert_eq!(app.get_json("/status").await, json!([]));
    assert_eq!(app.get_json("/status.json").await, json!([]));
}

#[tokio::test]
async fn status_rows_are_flat_complete_and_typed_the_same_in_every_row() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    expect(
        app.pipeline(
            json!({"server_group": "splunk-prod", "server_type": "splunk",
                            "host": "splunk-indexer-01", "status": "synced"}),
        )
        .await,
        201,
    )
    .await;
    expect(
        app.v1(json!({"repo": "rsyslog", "server": "rsyslog-lab", "sync_status": "SYNCED"}))
            .await,
        200,
    )
    .await;

    let rows = app.get_json("/status").await;
    let rows = rows.as_array().unwrap();

    assert_eq!(rows.len(), 3);
    let keys: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.as_object().unwrap().keys().map(String::as_str).collect())
        .collect();
    for row_keys in &keys {
        assert_eq!(row_keys, &STATUS_FIELDS.to_vec(), "every field, seed order");
    }
    for field in STATUS_FIELDS {
        let types: std::collections::BTreeSet<&str> = rows
            .iter()
            .map(|r| match &r[field] {
                Value::Null => "null",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Array(_) => "array",
                Value::Bool(_) => "boolean",
                other => panic!("{field}: unexpected {other}"),
            })
            .filter(|t| *t != "null")
            .collect();
        assert!(types.len() <= 1, "{field} mixes {types:?}");
    }
    for row in rows {
        for field in [
            "last_pipeline_run",
            "last_cron_check",
            "timestamp",
            "status_since",
            "report_due_by",
        ] {
            if let Some(text) = row[field].as_str() {
                assert!(is_fixed_precision_utc(text), "{field}: {text}");
            }
        }
        assert_eq!(
            row["changed_files_count"].as_u64().unwrap() as usize,
            row["changed_files"].as_array().unwrap().len()
        );
    }
    let order: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["server_group"].as_str().unwrap(),
                r["host"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("rsyslog", "rsyslog-lab"),
            ("rsyslog-prod", "rsyslog-01"),
            ("splunk-prod", "splunk-indexer-01")
        ]
    );
    assert_eq!(
        app.get_json("/status.json").await,
        Value::Array(rows.clone())
    );
}

#[tokio::test]
async fn group_endpoint_lists_the_group_and_an_unknown_group_is_empty() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    let mut second = seed_pipeline();
    second["host"] = json!("rsyslog-02");
    expect(app.pipeline(second).await, 201).await;
    expect(
        app.pipeline(json!({"server_group": "splunk-prod", "host": "s1", "status": "synced"}))
            .await,
        201,
    )
    .await;

    let group = app.get_json("/status/rsyslog-prod").await;
    let hosts: Vec<&str> = group
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["rsyslog-01", "rsyslog-02"]);
    assert_eq!(app.get_json("/status/nginx-prod").await, json!([]));
    let details = expect_error(app.get("/status/bad%20group").await, 422).await;
    assert_eq!(details[0].0, "server_group");
}

#[tokio::test]
async fn host_endpoint_answers_one_object_or_404() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    let host = app.host("rsyslog-prod", "rsyslog-01").await;
    assert_eq!(host["commit_sha"], "abc1234567890");
    expect_error(app.get("/status/rsyslog-prod/rsyslog-99").await, 404).await;
    let details = expect_error(app.get("/status/rsyslog-prod/a%20b").await, 422).await;
    assert_eq!(details[0].0, "host");
}

#[tokio::test]
async fn timestamp_is_when_the_server_last_accepted_a_report_even_a_late_one() {
    let app = spawn_app().await;
    expect(
        app.pipeline(json!({"server_group": "g", "host": "h", "status": "synced",
                            "last_pipeline_run": "2026-04-26T10:00:00Z"}))
            .await,
        201,
    )
    .await;

    let late = expect(
        app.pipeline(json!({"server_group": "g", "host": "h", "status": "failed",
                            "last_pipeline_run": "2026-04-26T09:00:00Z"}))
            .await,
        200,
    )
    .await;

    let history = app.history("").await;
    assert_eq!(late["status"]["status"], "synced", "state not rolled back");
    assert_eq!(late["status"]["timestamp"], history[0]["received_at"]);
}

/// GET /status as a gzip-asking client (Grafana) reads it: the decompressed rows.
async fn gzipped_status(app: &crate::helpers::TestApp) -> Value {
    use std::io::Read;
    let response = app
        .client
        .get(app.url("/status"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["vary"], "accept-encoding");
    let compressed = response.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn status_is_gzipped_when_asked_and_follows_every_report() {
    let app = spawn_app().await;
    assert_eq!(gzipped_status(&app).await, json!([]));

    for n in 0..3 {
        let mut body = seed_pipeline();
        body["host"] = json!(format!("rsyslog-0{n}"));
        expect(app.pipeline(body).await, 201).await;
        // Each read after an acknowledged report includes it, plain or gzip.
        let plain = app.get_json("/status").await;
        assert_eq!(plain.as_array().unwrap().len(), n + 1);
        assert_eq!(gzipped_status(&app).await, plain);
    }
    let mut cron = json!({"server_group": "rsyslog-prod", "host": "rsyslog-01", "status": "out_of_sync",
                          "changed_files": ["/etc/rsyslog.conf"]});
    expect(app.cron(cron.take()).await, 200).await;
    let rows = gzipped_status(&app).await;
    assert_eq!(rows[1]["status"], "out_of_sync");
    assert_eq!(rows, app.get_json("/status").await);
    // Without Accept-Encoding the body is plain JSON.
    let plain = app.get("/status").await;
    assert!(plain.headers().get("content-encoding").is_none());
}
