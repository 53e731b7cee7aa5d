//! One JSON error shape everywhere: unknown routes, wrong methods and actix's own extractors.

use crate::helpers::{expect_error, spawn_app};

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let app = spawn_app().await;
    for path in ["/nothing", "/status/a/b/c/d", "/api", "/status/"] {
        let response = app.get(path).await;
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        let details = expect_error(response, 404).await;
        assert!(details.is_empty());
    }
}

#[tokio::test]
async fn wrong_method_is_a_json_405_with_allow() {
    let app = spawn_app().await;
    let cases = [
        (reqwest::Method::DELETE, "/status", "GET, HEAD"),
        (reqwest::Method::PUT, "/status/pipeline", "POST"),
        (reqwest::Method::GET, "/status/pipeline", "POST"),
        (reqwest::Method::GET, "/status/cron", "POST"),
        (reqwest::Method::OPTIONS, "/status/cron", "POST"),
        (
            reqwest::Method::POST,
            "/status/rsyslog-prod/rsyslog-01",
            "DELETE, GET, HEAD",
        ),
        (reqwest::Method::GET, "/admin/prune", "POST"),
        (reqwest::Method::DELETE, "/admin/backup", "GET, HEAD"),
        (reqwest::Method::PATCH, "/api/status", "GET, HEAD, POST"),
        (reqwest::Method::POST, "/history", "GET, HEAD"),
        (reqwest::Method::POST, "/health", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        expect_error(response, 405).await;
    }
    // The endpoints' names are not groups.
    let details = expect_error(
        app.pipeline(serde_json::json!({"server_group": "cron", "host": "h", "status": "synced"}))
            .await,
        422,
    )
    .await;
    assert!(details[0].1.contains("reserved"), "{details:?}");
}

#[tokio::test]
async fn unreadable_query_string_is_a_json_400() {
    let app = spawn_app().await;

    expect_error(app.get("/history?limit=1&limit=2").await, 400).await;
    expect_error(app.get("/api/status?repo=a&repo=b").await, 400).await;
}

#[tokio::test]
async fn undecodable_path_segment_is_a_json_error() {
    let app = spawn_app().await;

    let details = expect_error(app.get("/status/%FF%FE").await, 422).await;

    assert!(!details.is_empty());
}
