//! `GET /metrics`: the service's counters and the fleet's gauges in the Prometheus text
//! format. (`tests/promtool/` checks the same output with promtool.)

use std::collections::BTreeMap;

use serde_json::json;

use crate::helpers::{
    expect, expect_error, pipeline_at, seed_pipeline, spawn_app, spawn_app_with, token_file,
    TestApp,
};

/// One sample: its name and labels.
type Key = (String, BTreeMap<String, String>);

/// Reads the text format: every sample by name and labels.
fn parse(text: &str) -> BTreeMap<Key, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').expect("closing brace");
                let labels = rest
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").expect("name=\"value\"");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            other => other.parse().expect("a number"),
        };
        samples.insert((name, labels), value);
    }
    samples
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

async fn scrape(app: &TestApp) -> (String, BTreeMap<Key, f64>) {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

fn value(samples: &BTreeMap<Key, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    *samples
        .get(&key(name, labels))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

#[tokio::test]
async fn reports_requests_and_the_fleet_are_counted() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    expect(
        app.pipeline(pipeline_at(
            "nginx-prod",
            "web-1",
            "failed",
            "2026-05-01T10:00:00Z",
        ))
        .await,
        201,
    )
    .await;
    expect_error(app.pipeline(json!({"server_group": "g"})).await, 422).await;
    expect_error(
        app.cron(json!({"server_group": "g", "host": "nowhere"}))
            .await,
        404,
    )
    .await;
    expect(app.get("/status/rsyslog-prod/rsyslog-01").await, 200).await;

    let (text, samples) = scrape(&app).await;
    let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);

    assert_eq!(
        v(
            "gitops_status_reports_accepted_total",
            &[("kind", "pipeline")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "gitops_status_reports_refused_total",
            &[("reason", "validation")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "gitops_status_reports_refused_total",
            &[("reason", "not_found")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "gitops_status_reports_refused_total",
            &[("reason", "queue_full")]
        ),
        0.0
    );
    // Requests by route template, never by the raw path.
    let host_route = [
        ("route", "/status/{server_group}/{host}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert_eq!(v("gitops_status_http_requests_total", &host_route), 1.0);
    assert_eq!(
        v(
            "gitops_status_http_request_duration_seconds_count",
            &[
                ("route", "/status/{server_group}/{host}"),
                ("method", "GET")
            ]
        ),
        1.0
    );
    assert!(
        !text.contains("rsyslog-01\",method"),
        "a raw path in a route label"
    );
    assert_eq!(v("gitops_status_commit_group_size_count", &[]), 2.0);
    assert_eq!(v("gitops_status_commit_duration_seconds_count", &[]), 2.0);
    assert_eq!(v("gitops_status_write_queue_depth", &[]), 0.0);
    assert_eq!(v("gitops_status_write_queue_capacity", &[]), 1024.0);
    assert_eq!(v("gitops_status_writer_up", &[]), 1.0);
    assert_eq!(v("gitops_status_ready", &[]), 1.0);
    assert_eq!(v("gitops_status_task_up", &[("task", "writer")]), 1.0);
    assert_eq!(v("gitops_status_task_up", &[("task", "pruner")]), 1.0);
    assert_eq!(v("gitops_status_history_rows", &[]), 2.0);
    assert!(v("gitops_status_database_size_bytes", &[]) > 0.0);
    let oldest = v("gitops_status_oldest_report_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - oldest).abs() < 600.0, "{oldest} vs {now}");
    assert_eq!(
        v(
            "gitops_status_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // The fleet: totals, and one series per host (statuses as an enum).
    assert_eq!(v("gitops_status_hosts", &[("status", "synced")]), 1.0);
    assert_eq!(v("gitops_status_hosts", &[("status", "failed")]), 1.0);
    assert_eq!(v("gitops_status_hosts", &[("status", "out_of_sync")]), 0.0);
    assert_eq!(v("gitops_status_hosts_stale", &[]), 0.0);
    let rsyslog = [("server_group", "rsyslog-prod"), ("host", "rsyslog-01")];
    let web = [("server_group", "nginx-prod"), ("host", "web-1")];
    assert_eq!(v("gitops_status_host_in_sync", &rsyslog), 1.0);
    assert_eq!(v("gitops_status_host_in_sync", &web), 0.0);
    assert_eq!(v("gitops_status_host_stale", &web), 0.0);
    assert!(v("gitops_status_host_last_report_timestamp_seconds", &web) > 1.7e9);
    for (status, expected) in [
        ("synced", 0.0),
        ("out_of_sync", 0.0),
        ("failed", 1.0),
        ("unknown", 0.0),
    ] {
        let labels = [web[0], web[1], ("status", status)];
        assert_eq!(
            v("gitops_status_host_status", &labels),
            expected,
            "{status}"
        );
    }
    // The standard process metrics.
    assert!(v("process_resident_memory_bytes", &[]) > 0.0);
    // No commit SHA, path or message in any label.
    assert!(
        !text.contains("commit_sha") && !text.contains("/etc/"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_methods_share_one_label_and_refused_decommissions_count() {
    let app = spawn_app().await;
    for method in ["FOO1", "FOO2", "BREW"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url("/status"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
    }
    let gone = app
        .client
        .delete(app.url("/status/rsyslog-prod/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    let (text, samples) = scrape(&app).await;

    assert!(!text.contains("FOO1") && !text.contains("BREW"), "{text}");
    let other = [("route", "/status"), ("method", "other"), ("status", "405")];
    assert_eq!(
        value(&samples, "gitops_status_http_requests_total", &other),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "gitops_status_reports_refused_total",
            &[("reason", "not_found")]
        ),
        1.0
    );
}

#[tokio::test]
async fn per_host_series_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, |s| s.metrics_per_host = false).await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    let (text, samples) = scrape(&app).await;

    assert!(!text.contains("gitops_status_host_"), "{text}");
    assert_eq!(
        value(&samples, "gitops_status_hosts", &[("status", "synced")]),
        1.0
    );
}

#[tokio::test]
async fn with_read_requires_token_metrics_need_the_read_scope_and_auth_failures_count() {
    let dir = tempfile::tempdir().unwrap();
    let (path, tokens) = token_file(
        dir.path(),
        &[("prometheus", &["read"]), ("ci", &["write:*"])],
    );
    let app = spawn_app_with(dir, |s| {
        s.tokens = Some(path);
        s.read_requires_token = true;
    })
    .await;

    expect_error(app.get("/metrics").await, 401).await;
    let forbidden = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&tokens["ci"])
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&tokens["prometheus"])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let samples = parse(&response.text().await.unwrap());

    let v = |reason| {
        value(
            &samples,
            "gitops_status_auth_failures_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(v("missing_token"), 1.0);
    assert_eq!(v("insufficient_scope"), 1.0);
    assert_eq!(v("invalid_token"), 0.0);
    assert_eq!(value(&samples, "gitops_status_token_file_loaded", &[]), 1.0);
    assert_eq!(value(&samples, "gitops_status_tokens", &[]), 2.0);
}
