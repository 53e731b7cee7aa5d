//! What every request gets: a request id (honoured when the client sends a sane one, echoed
//! either way, carried into the writer's log lines for its report), and HEAD answered as GET.

use serde_json::{json, Value};

use crate::helpers::{expect, seed_pipeline, spawn_app, ServerProcess};

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_others_are_replaced() {
    let app = spawn_app().await;

    let sent = "3f2b9c1e-8a7d-4e21-9b0a-1c2d3e4f5a6b";
    let response = app
        .client
        .get(app.url("/status"))
        .header("x-request-id", sent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], sent);

    for insane in ["two words", "a\"b", &"x".repeat(200)] {
        let response = app
            .client
            .get(app.url("/status"))
            .header("x-request-id", insane)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(echoed, insane);
        assert_eq!(echoed.len(), 32, "{echoed}");
    }
    // None sent: one is made, for errors too.
    let a = app.get("/nowhere").await;
    assert_eq!(a.status(), 404);
    let b = app.get("/status").await;
    let (a, b) = (&a.headers()["x-request-id"], &b.headers()["x-request-id"]);
    assert_ne!(a, b);
}

#[tokio::test]
async fn the_writers_lines_about_a_report_carry_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("x.db"));
    // A report from a client whose clock runs ahead makes the writer log about it.
    let mut body = seed_pipeline();
    body["last_pipeline_run"] = json!("2099-01-01T00:00:00Z");
    let response = reqwest::Client::new()
        .post(server.url("/status/pipeline"))
        .header("x-request-id", "ci-run-4711")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-request-id"], "ci-run-4711");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (writer, request) = loop {
        let events: Vec<Value> = server
            .logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let find = |needle: &str| {
            events
                .iter()
                .find(|e| e["message"].as_str().is_some_and(|m| m.contains(needle)))
                .cloned()
        };
        if let (Some(w), Some(r)) = (find("ahead of the server clock"), find("request")) {
            break (w, r);
        }
        assert!(std::time::Instant::now() < deadline, "log lines missing");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    for event in [&writer, &request] {
        let span = event["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == "request"))
            .unwrap_or_else(|| panic!("no request span in {event}"));
        assert_eq!(span["request_id"], "ci-run-4711", "{event}");
        assert_eq!(span["route"], "/status/pipeline", "{event}");
        assert_eq!(span["method"], "POST", "{event}");
    }
    assert_eq!(request["status"], 201);
}

#[tokio::test]
async fn head_answers_as_get_without_a_body() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    for path in [
        "/status",
        "/status/rsyslog-prod/rsyslog-01",
        "/health",
        "/ready",
        "/metrics",
        "/history?limit=1",
        "/",
    ] {
        let get = app.get(path).await;
        let get_status = get.status();
        let get_type = get.headers()["content-type"].clone();
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), get_status, "{path}");
        assert_eq!(head.headers()["content-type"], get_type, "{path}");
        assert!(head.text().await.unwrap().is_empty(), "{path}: a body");
    }
    // A backup's headers, without taking a copy of the database.
    let head = app
        .client
        .head(app.url("/admin/backup"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/vnd.sqlite3");
    assert!(head.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"gitops-status-"));
    // Query parameters are checked as for GET.
    let head = app
        .client
        .head(app.url("/status?stauts=failed"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 400);
    // A path without GET keeps 405, and every Allow that lists GET lists HEAD.
    let head = app
        .client
        .head(app.url("/status/pipeline"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 405);
    assert_eq!(head.headers()["allow"], "POST");
    let delete = app.client.delete(app.url("/status")).send().await.unwrap();
    assert_eq!(delete.status(), 405);
    assert_eq!(delete.headers()["allow"], "GET, HEAD");
}
