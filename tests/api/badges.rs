//! Badges: `/badge/{server_group}/{host}.svg|.json` and `/badge/{server_group}.svg|.json`.

use serde_json::{json, Value};

use crate::helpers::{expect, pipeline_at, spawn_app, spawn_app_with, token_file, TestApp};

/// A well-formed SVG document: its root is `svg`, and its text says `label` and `message`.
fn assert_svg(body: &str, label: &str, message: &str) {
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    assert!(texts.contains(&label), "{label:?} not in {texts:?}");
    assert!(texts.contains(&message), "{message:?} not in {texts:?}");
}

/// The shields.io endpoint schema (https://shields.io/badges/endpoint-badge): schemaVersion 1,
/// label and message strings (message not empty), optional color and cacheSeconds, and no
/// member it does not know.
fn assert_shields(body: &Value) {
    let known = [
        "schemaVersion",
        "label",
        "message",
        "color",
        "labelColor",
        "isError",
        "namedLogo",
        "logoSvg",
        "logoColor",
        "logoSize",
        "style",
        "cacheSeconds",
    ];
    let object = body.as_object().expect("an object");
    for key in object.keys() {
        assert!(known.contains(&key.as_str()), "unknown member {key}");
    }
    assert_eq!(body["schemaVersion"], 1);
    assert!(body["label"].is_string(), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["color"].is_string(), "{body}");
    assert!(
        body["cacheSeconds"].as_u64().is_some_and(|s| s >= 300),
        "{body}"
    );
}

async fn seed(app: &TestApp) {
    for (host, status) in [
        ("web-1", "synced"),
        ("web-2", "synced"),
        ("web-3", "failed"),
    ] {
        expect(
            app.pipeline(pipeline_at(
                "nginx-prod",
                host,
                status,
                "2026-05-01T10:00:00Z",
            ))
            .await,
            201,
        )
        .await;
    }
    expect(
        app.pipeline(pipeline_at(
            "rsyslog-prod",
            "rsyslog-01",
            "synced",
            "2026-05-01T10:00:00Z",
        ))
        .await,
        201,
    )
    .await;
}

#[tokio::test]
async fn host_and_group_badges_are_valid_svg_saying_the_state() {
    let app = spawn_app().await;
    seed(&app).await;

    let cases = [
        ("/badge/nginx-prod/web-1.svg", "web-1", "synced"),
        ("/badge/nginx-prod/web-3.svg", "web-3", "failed"),
        ("/badge/nginx-prod.svg", "nginx-prod", "1/3 failed"),
        ("/badge/rsyslog-prod.svg", "rsyslog-prod", "1/1 synced"),
        (
            "/badge/nginx-prod/web-1.svg?label=web&style=flat-square",
            "web",
            "synced",
        ),
    ];
    for (path, label, message) in cases {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "image/svg+xml",
            "{path}"
        );
        assert_eq!(response.headers()["cache-control"], "max-age=60", "{path}");
        assert!(response.headers().contains_key("etag"), "{path}");
        assert_svg(&response.text().await.unwrap(), label, message);
    }
    // Text from the query is escaped.
    let response = app.get("/badge/nginx-prod.svg?label=%3Cscript%3E").await;
    let body = response.text().await.unwrap();
    assert!(!body.contains("<script>"), "{body}");
    assert_svg(&body, "<script>", "1/3 failed");
}

#[tokio::test]
async fn json_badges_follow_the_shields_endpoint_schema() {
    let app = spawn_app().await;
    seed(&app).await;

    let body = expect(app.get("/badge/nginx-prod/web-3.json").await, 200).await;
    assert_shields(&body);
    assert_eq!(
        body,
        json!({"schemaVersion": 1, "label": "web-3", "message": "failed", "color": "red", "cacheSeconds": 300})
    );
    let body = expect(app.get("/badge/rsyslog-prod.json?label=logs").await, 200).await;
    assert_shields(&body);
    assert_eq!(
        (body["label"].as_str(), body["message"].as_str()),
        (Some("logs"), Some("1/1 synced"))
    );
    assert_eq!(body["color"], "brightgreen");
}

#[tokio::test]
async fn unknown_names_get_a_grey_unknown_badge_with_404() {
    let app = spawn_app().await;
    seed(&app).await;

    for path in [
        "/badge/nginx-prod/nowhere.svg",
        "/badge/nowhere.svg",
        "/badge/bad%20name.svg",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "image/svg+xml",
            "{path}"
        );
        let body = response.text().await.unwrap();
        assert_svg(&body, &body_label(path), "unknown");
        assert!(body.contains("#9f9f9f"), "lightgrey: {body}");
    }
    let response = app.get("/badge/nowhere/web-1.json").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_shields(&body);
    assert_eq!(
        (body["message"].as_str(), body["color"].as_str()),
        (Some("unknown"), Some("lightgrey"))
    );
}

/// The default label of a badge path: its host, or its group.
fn body_label(path: &str) -> String {
    let name = path
        .trim_start_matches("/badge/")
        .rsplit('/')
        .next()
        .unwrap();
    name.trim_end_matches(".svg").replace("%20", " ")
}

#[tokio::test]
async fn an_unchanged_badge_is_304_and_a_change_gives_a_new_etag() {
    let app = spawn_app().await;
    seed(&app).await;
    let first = app.get("/badge/nginx-prod/web-1.svg").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();

    let again = app
        .client
        .get(app.url("/badge/nginx-prod/web-1.svg"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);

    expect(
        app.pipeline(pipeline_at(
            "nginx-prod",
            "web-1",
            "out_of_sync",
            "2026-05-01T11:00:00Z",
        ))
        .await,
        200,
    )
    .await;
    let changed = app
        .client
        .get(app.url("/badge/nginx-prod/web-1.svg"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    assert_svg(&changed.text().await.unwrap(), "web-1", "out of sync");
}

#[tokio::test]
async fn bad_options_are_named() {
    let app = spawn_app().await;
    let path = format!(
        "/badge/nginx-prod.svg?style=plastic&label={}",
        "x".repeat(65)
    );
    let response = app.get(&path).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["label", "style"]);
    assert_eq!(
        app.get("/badge/nginx-prod.svg?colour=red").await.status(),
        400
    );
}

#[tokio::test]
async fn with_read_requires_token_badges_need_one_unless_public() {
    for public in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (path, tokens) = token_file(dir.path(), &[("reader", &["read"]), ("ci", &["admin"])]);
        let app = spawn_app_with(dir, |s| {
            s.tokens = Some(path);
            s.read_requires_token = true;
            s.public_badges = public;
        })
        .await;
        let created = app
            .post_as(
                &tokens["ci"],
                "/status/pipeline",
                &pipeline_at("g", "h", "synced", "2026-05-01T10:00:00Z"),
            )
            .await;
        assert_eq!(created.status(), 201);

        let anonymous = app.get("/badge/g/h.svg").await.status();
        assert_eq!(anonymous, if public { 200 } else { 401 }, "public {public}");
        let with_token = app
            .client
            .get(app.url("/badge/g.json"))
            .bearer_auth(&tokens["reader"])
            .send()
            .await
            .unwrap();
        assert_eq!(with_token.status(), 200);
        // Public badges open nothing else.
        assert_eq!(app.get("/status").await.status(), 401);
    }
}
