use std::path::Path;
use std::process::Command;

use crate::helpers::{binary, spawn_app};

/// `gitops-status openapi` prints exactly the committed openapi.yaml.
/// `UPDATE_OPENAPI=1 cargo test` rewrites the file instead.
#[test]
fn committed_openapi_yaml_is_what_the_binary_prints() {
    let output = Command::new(binary()).arg("openapi").output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &printed).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == printed,
        "openapi.yaml differs from `gitops-status openapi`; run `UPDATE_OPENAPI=1 cargo test openapi` and commit it"
    );
}

#[tokio::test]
async fn served_spec_is_the_generated_spec() {
    let app = spawn_app().await;

    let served = app.get_json("/api-docs/openapi.json").await;

    let generated = serde_json::to_value(gitops_status::openapi::spec()).unwrap();
    assert_eq!(served, generated);
}

#[tokio::test]
async fn swagger_ui_is_served_and_points_at_the_spec() {
    let app = spawn_app().await;

    let page = app.get("/swagger-ui/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let bare = app.client.get(app.url("/swagger-ui")).send().await.unwrap();
    assert_eq!(bare.url().path(), "/swagger-ui/", "redirected to the UI");
    crate::helpers::expect_error(app.get("/swagger-ui/no-such-file.js").await, 404).await;
    let init = app.get("/swagger-ui/swagger-initializer.js").await;
    assert_eq!(init.status(), 200);
    assert!(init
        .text()
        .await
        .unwrap()
        .contains("/api-docs/openapi.json"));
}

#[test]
fn every_endpoint_is_documented_with_json_errors() {
    let spec = serde_json::to_value(gitops_status::openapi::spec()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    let mut operations: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            "DELETE /status/{server_group}/{host}",
            "GET /",
            "GET /admin/backup",
            "GET /api/status",
            "GET /badge/{server_group}.json",
            "GET /badge/{server_group}.svg",
            "GET /badge/{server_group}/{host}.json",
            "GET /badge/{server_group}/{host}.svg",
            "GET /commits",
            "GET /commits/{commit_sha}",
            "GET /groups",
            "GET /health",
            "GET /history",
            "GET /metrics",
            "GET /ready",
            "GET /status",
            "GET /status.json",
            "GET /status/{server_group}",
            "GET /status/{server_group}/{host}",
            "GET /status/{server_group}/{host}/history",
            "GET /summary",
            "GET /transitions",
            "POST /admin/prune",
            "POST /api/status",
            "POST /status/cron",
            "POST /status/pipeline",
        ]
    );
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            for (code, response) in operation["responses"].as_object().unwrap() {
                if (path.as_str(), code.as_str()) == ("/admin/backup", "200") {
                    // The database file itself.
                    let file = &response["content"]["application/vnd.sqlite3"]["schema"];
                    assert!(!file.is_null(), "{path} {code}");
                    continue;
                }
                if code.starts_with('3') && !path.starts_with("/badge/") {
                    // A redirect (GET / for a browser): a Location, no body.
                    assert!(
                        !response["headers"]["Location"].is_null(),
                        "{method} {path} {code}"
                    );
                    continue;
                }
                if path.starts_with("/badge/") && (code == "200" || code == "404" || code == "304")
                {
                    // The badge: SVG, or the shields.io endpoint JSON (304: no body).
                    let content = &response["content"];
                    assert!(
                        code == "304"
                            || !content["image/svg+xml"]["schema"].is_null()
                            || content["application/json"]["schema"]["$ref"]
                                == "#/components/schemas/ShieldsEndpoint",
                        "{method} {path} {code}"
                    );
                    continue;
                }
                if (path.as_str(), code.as_str()) == ("/metrics", "200") {
                    // The Prometheus text format.
                    let text = &response["content"]["text/plain; version=0.0.4; charset=utf-8"];
                    assert!(!text["schema"].is_null(), "{path} {code}");
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"];
                assert!(
                    !schema.is_null(),
                    "{method} {path} {code} has a JSON schema"
                );
                if code.starts_with('4') || code.starts_with('5') {
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {code}"
                    );
                }
            }
        }
    }
    // Writes need a bearer token; reads may send one (needed with --read-requires-token).
    let scheme = &spec["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let security = &operation["security"];
            match (method.as_str(), path.as_str()) {
                (_, "/admin/prune" | "/admin/backup") => assert_eq!(
                    security,
                    &serde_json::json!([{"bearer": ["admin"]}]),
                    "{method} {path}"
                ),
                ("post" | "delete", _) => assert!(
                    security[0]["bearer"][0]
                        .as_str()
                        .unwrap()
                        .starts_with("write:"),
                    "{method} {path}: {security}"
                ),
                ("get", "/" | "/health" | "/ready") => {
                    assert_eq!(security, &serde_json::json!([{}]), "{path}")
                }
                _ => assert_eq!(
                    security,
                    &serde_json::json!([{}, {"bearer": ["read"]}]),
                    "{method} {path}"
                ),
            }
        }
    }
    let schemas = &spec["components"]["schemas"];
    for name in [
        "PipelineReportBody",
        "CronReportBody",
        "V1StatusBody",
        "HostStatus",
        "V1Status",
        "HistoryRow",
        "ErrorBody",
    ] {
        assert!(!schemas[name]["example"].is_null(), "{name} has an example");
    }
}
