//! Bad input gets a clear JSON error with the right status code and changes nothing.

use serde_json::{json, Value};

use crate::helpers::{expect_error, spawn_app, TestApp};

async fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(app.db().scalar("SELECT count(*) FROM reports").await, 0);
    assert_eq!(app.get_json("/status").await, json!([]));
}

/// Sends a pipeline report with one member replaced and expects a 422 naming `field`.
async fn rejects(app: &TestApp, member: &str, value: Value, field: &str, problem: &str) {
    let mut body = json!({"server_group": "g", "host": "h", "status": "synced"});
    body[member] = value;
    let details = expect_error(app.pipeline(body).await, 422).await;
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!(details[0].0, field, "{details:?}");
    assert!(
        details[0].1.contains(problem),
        "{field}: expected {problem:?} in {:?}",
        details[0].1
    );
}

const WRITE_PATHS: [&str; 3] = ["/status/pipeline", "/status/cron", "/api/status"];

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let bodies = [
        "{\"server_group\": ",
        "not json",
        "{'a': 1}",
        "{\"a\":1} trailing",
        "",
    ];
    for path in WRITE_PATHS {
        for body in bodies {
            let response = app.post_raw(path, Some("application/json"), body).await;
            let details = expect_error(response, 400).await;
            assert!(details.is_empty());
        }
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_422() {
    let app = spawn_app().await;
    for body in ["[]", "\"text\"", "42", "null"] {
        let details = expect_error(
            app.post_raw("/status/cron", Some("application/json"), body)
                .await,
            422,
        )
        .await;
        assert_eq!(details[0].0, "(body)");
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let app = spawn_app().await;
    let body = r#"{"server_group":"g","host":"h","status":"synced"}"#;
    for path in WRITE_PATHS {
        expect_error(app.post_raw(path, Some("text/plain"), body).await, 415).await;
        expect_error(
            app.post_raw(path, Some("application/x-www-form-urlencoded"), body)
                .await,
            415,
        )
        .await;
        expect_error(app.post_raw(path, None, body).await, 415).await;
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn json_with_a_charset_is_accepted() {
    let app = spawn_app().await;
    let body = r#"{"server_group":"g","host":"h","status":"synced"}"#;
    let response = app
        .post_raw(
            "/status/pipeline",
            Some("application/json; charset=utf-8"),
            body,
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn body_over_one_mebibyte_is_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(1024 * 1024);
    let body = format!(r#"{{"server_group":"g","host":"h","status":"synced","pad":"{padding}"}}"#);

    for path in WRITE_PATHS {
        let details = expect_error(
            app.post_raw(path, Some("application/json"), &body).await,
            413,
        )
        .await;
        assert!(details.is_empty());
    }

    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn missing_required_members_are_each_named() {
    let app = spawn_app().await;

    let details = expect_error(app.pipeline(json!({"project_name": "p"})).await, 422).await;
    assert_eq!(
        details,
        [
            ("server_group".to_owned(), "is required".to_owned()),
            ("host".to_owned(), "is required".to_owned()),
            ("status".to_owned(), "is required".to_owned()),
        ]
    );
    let details = expect_error(app.cron(json!({})).await, 422).await;
    let fields: Vec<&str> = details.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["server_group", "host"]);
    let details = expect_error(
        app.pipeline(json!({"server_group": null, "host": "h", "status": "synced"}))
            .await,
        422,
    )
    .await;
    assert_eq!(
        details[0],
        ("server_group".to_owned(), "is required".to_owned())
    );
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn invalid_names_are_422() {
    let app = spawn_app().await;
    rejects(&app, "server_group", json!(""), "server_group", "empty").await;
    rejects(&app, "host", json!("a".repeat(129)), "host", "128").await;
    rejects(&app, "host", json!("web 01"), "host", "letters, digits").await;
    rejects(&app, "host", json!("a/b"), "host", "letters, digits").await;
    rejects(
        &app,
        "server_group",
        json!(".."),
        "server_group",
        "URL path",
    )
    .await;
    rejects(&app, "host", json!(7), "host", "must be a string").await;
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn invalid_status_is_422() {
    let app = spawn_app().await;
    rejects(
        &app,
        "status",
        json!("in_sync"),
        "status",
        "synced, out_of_sync",
    )
    .await;
    rejects(&app, "status", json!(true), "status", "must be a string").await;
    let details = expect_error(
        app.cron(json!({"server_group": "g", "host": "h", "status": "green"}))
            .await,
        422,
    )
    .await;
    assert_eq!(details[0].0, "status");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn invalid_timestamps_are_422() {
    let app = spawn_app().await;
    rejects(
        &app,
        "last_pipeline_run",
        json!("2026-04-26T10:30:00"),
        "last_pipeline_run",
        "time zone",
    )
    .await;
    rejects(
        &app,
        "last_pipeline_run",
        json!("26/04/2026"),
        "last_pipeline_run",
        "RFC 3339",
    )
    .await;
    rejects(
        &app,
        "last_pipeline_run",
        json!(1777199400),
        "last_pipeline_run",
        "must be a string",
    )
    .await;
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn changed_files_limits_are_enforced() {
    let app = spawn_app().await;
    rejects(
        &app,
        "changed_files",
        json!("a.conf"),
        "changed_files",
        "must be an array",
    )
    .await;
    rejects(
        &app,
        "changed_files",
        json!(["a", {"name": "b"}]),
        "changed_files[1]",
        "must be a string",
    )
    .await;
    rejects(
        &app,
        "changed_files",
        json!(["ok", "x".repeat(4097)]),
        "changed_files[1]",
        "4096",
    )
    .await;
    let too_many: Vec<String> = (0..10_001).map(|i| i.to_string()).collect();
    rejects(
        &app,
        "changed_files",
        json!(too_many),
        "changed_files",
        "10000",
    )
    .await;
    assert_nothing_stored(&app).await;

    let mut body = json!({"server_group": "g", "host": "h", "status": "out_of_sync"});
    body["changed_files"] = json!((0..10_000).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(app.pipeline(body).await.status(), 201, "10000 is the limit");
}

#[tokio::test]
async fn text_members_have_types_and_limits() {
    let app = spawn_app().await;
    rejects(
        &app,
        "commit_sha",
        json!("c".repeat(257)),
        "commit_sha",
        "256",
    )
    .await;
    rejects(
        &app,
        "project_name",
        json!(5),
        "project_name",
        "must be a string",
    )
    .await;
    rejects(
        &app,
        "validation_message",
        json!("m".repeat(65_537)),
        "validation_message",
        "65536",
    )
    .await;
    rejects(
        &app,
        "branch",
        json!(["main"]),
        "branch",
        "must be a string",
    )
    .await;
    // Valid JSON (`\u0000`), but no text column of PostgreSQL can hold it: refused on both.
    rejects(
        &app,
        "validation_message",
        json!("before\u{0}after"),
        "validation_message",
        "U+0000",
    )
    .await;
    assert_nothing_stored(&app).await;

    let mut body = json!({"server_group": "g", "host": "h", "status": "synced"});
    body["validation_message"] = json!("m".repeat(65_536));
    assert_eq!(app.pipeline(body).await.status(), 201);
}

#[tokio::test]
async fn every_problem_of_one_report_is_reported_at_once() {
    let app = spawn_app().await;

    let details = expect_error(
        app.pipeline(json!({
            "server_group": "bad group", "host": "", "status": "nope",
            "changed_files": [1], "commit_sha": 3, "last_pipeline_run": "soon"
        }))
        .await,
        422,
    )
    .await;

    let fields: Vec<&str> = details.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "server_group",
            "host",
            "status",
            "commit_sha",
            "changed_files[0]",
            "last_pipeline_run"
        ]
    );
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_member_sent_twice_is_refused_naming_it() {
    let app = spawn_app().await;
    // serde_json would keep the last value while the stored raw body keeps both, and
    // sqlite3's json_extract reads the first: the audit trail would disagree with the state.
    let cases = [
        (
            "/status/pipeline",
            r#"{"server_group":"nginx-prod","server_group":"rsyslog-prod","host":"h","status":"synced"}"#,
            "server_group",
        ),
        (
            "/status/pipeline",
            r#"{"server_group":"g","host":"h","status":"synced","status":"failed"}"#,
            "status",
        ),
        (
            "/status/cron",
            r#"{"server_group":"g","host":"h","drift":{"a":1,"a":2}}"#,
            "drift.a",
        ),
        (
            "/api/status",
            r#"{"repo":"g","server":"h","sync_status":"SYNCED","files":[{"path":"/a","path":"/b"}]}"#,
            "files[0].path",
        ),
    ];
    for (path, body, member) in cases {
        let details = expect_error(
            app.post_raw(path, Some("application/json"), body).await,
            422,
        )
        .await;
        assert_eq!(details.len(), 1, "{path} {body}: {details:?}");
        assert_eq!(details[0].0, member, "{path} {body}");
        assert!(details[0].1.contains("more than once"), "{details:?}");
    }
    assert_nothing_stored(&app).await;
    // The same members once each are fine.
    let once = r#"{"server_group":"g","host":"h","status":"synced","files":{"status":1}}"#;
    let response = app
        .post_raw("/status/pipeline", Some("application/json"), once)
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn a_member_sent_twice_under_an_escaped_name_is_refused_too() {
    let app = spawn_app().await;
    // `st\u0061tus` is `status` once decoded, as serde_json and sqlite3 both read it.
    let body = r#"{"server_group":"g","host":"h","status":"synced","st\u0061tus":"failed"}"#;
    let details = expect_error(
        app.post_raw("/status/pipeline", Some("application/json"), body)
            .await,
        422,
    )
    .await;
    assert_eq!(details[0].0, "status", "{details:?}");
    assert_nothing_stored(&app).await;
}
