//! The shipped Grafana dashboard against a live server: every panel's and variable's URL,
//! with the variables substituted the way Grafana does (`${var:csv}` as comma-separated
//! values or the All value `*`, `${__from}`/`${__to}` as epoch milliseconds), answers 200
//! with every field the panel reads. Cursor-paged panels are followed page by page the way
//! Infinity's cursor mode does.

use serde_json::{json, Value};

use crate::helpers::{expect, TestApp};
use crate::staleness::{at, cron, deploy, fleet_app};

const DASHBOARD: &str = include_str!("../../charts/gitops-status/dashboards/gitops-status.json");

/// Every Infinity query of the dashboard: (where, target).
fn queries(board: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            found.push((format!("panel {:?}", panel["title"]), target.clone()));
        }
    }
    for variable in board["templating"]["list"].as_array().unwrap() {
        found.push((
            format!("variable {}", variable["name"]),
            variable["query"]["infinityQuery"].clone(),
        ));
    }
    found
}

/// Grafana's interpolation of the URL for one choice of variables.
fn interpolate(url: &str, base: &str, groups: &str, hosts: &str, from: i64, to: i64) -> String {
    url.replace("__GITOPS_STATUS_URL__", base)
        .replace("${server_group:csv}", groups)
        .replace("${host:csv}", hosts)
        .replace("${__from}", &from.to_string())
        .replace("${__to}", &to.to_string())
}

/// The rows the target's root selector picks from a page.
fn rows<'a>(page: &'a Value, root: &str) -> Vec<&'a Value> {
    let picked = if root.is_empty() { page } else { &page[root] };
    match picked {
        Value::Array(rows) => rows.iter().collect(),
        object @ Value::Object(_) => vec![object],
        other => panic!("root {root:?} picks {other}"),
    }
}

async fn get(app: &TestApp, url: &str) -> Value {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "GET {url}: {:?}",
        response.text().await
    );
    response.json().await.unwrap()
}

/// Runs one query as Infinity would; returns how many rows it read.
async fn run(app: &TestApp, place: &str, target: &Value, url: &str) -> usize {
    assert!(!url.contains("${"), "{place}: uninterpolated {url}");
    let root = target["root_selector"].as_str().unwrap_or_default();
    let columns: Vec<&str> = target["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["selector"].as_str().unwrap())
        .collect();
    assert!(!columns.is_empty(), "{place}: name the fields it reads");
    let mut pages = vec![];
    if target["pagination_mode"] == "cursor" {
        assert_eq!(target["pagination_param_size_field_name"], "limit");
        assert_eq!(target["pagination_param_cursor_field_name"], "before");
        assert_eq!(
            target["pagination_param_cursor_extraction_path"],
            "next_before"
        );
        let size = target["pagination_param_size_value"].as_i64().unwrap();
        let mut cursor: Option<i64> = None;
        for _ in 0..target["pagination_max_pages"].as_i64().unwrap() {
            let mut page_url = format!("{url}&limit={size}");
            if let Some(before) = cursor {
                page_url.push_str(&format!("&before={before}"));
            }
            let page = get(app, &page_url).await;
            assert!(page.get("next_before").is_some(), "{place}: {page}");
            cursor = page["next_before"].as_i64();
            pages.push(page);
            if cursor.is_none() {
                break;
            }
        }
        assert!(cursor.is_none(), "{place}: more pages than the panel reads");
    } else {
        pages.push(get(app, url).await);
    }
    let mut count = 0;
    for page in &pages {
        for row in rows(page, root) {
            for column in &columns {
                assert!(row.get(*column).is_some(), "{place}: no {column} in {row}");
            }
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn every_panel_and_variable_url_answers_with_the_fields_it_reads() {
    let (app, clock) = fleet_app("*=1h").await;
    clock.set(at("2026-09-01T06:00:00Z"));
    for (group, host) in [
        ("rsyslog-prod", "rsyslog-01"),
        ("rsyslog-prod", "rsyslog-02"),
        ("nginx-prod", "nginx-01"),
    ] {
        deploy(&app, group, host, "abc123", "synced").await;
        cron(&app, group, host, "out_of_sync", "2026-09-01T05:00:00Z").await;
    }
    for n in 0..150 {
        cron(
            &app,
            "rsyslog-prod",
            "rsyslog-01",
            ["synced", "out_of_sync"][n % 2],
            "2026-09-01T05:59:00Z",
        )
        .await;
    }
    let board: Value = serde_json::from_str(DASHBOARD).unwrap();
    let base = format!("http://{}", app.address);
    let to = at("2026-09-01T06:00:00Z").epoch_millis();
    let from = to - 7 * 86_400_000;
    // All, several values, one value, and a choice that selects nothing.
    let choices = [
        ("*", "*"),
        ("rsyslog-prod,nginx-prod", "rsyslog-01,nginx-01"),
        ("rsyslog-prod", "rsyslog-01"),
        ("nothing-here", "*"),
    ];
    let queries = queries(&board);
    assert!(queries.len() >= 10, "{} queries", queries.len());
    for (groups, hosts) in choices {
        let mut read = 0;
        for (place, target) in &queries {
            let url = interpolate(
                target["url"].as_str().unwrap(),
                &base,
                groups,
                hosts,
                from,
                to,
            );
            read += run(&app, place, target, &url).await;
        }
        if groups != "nothing-here" {
            assert!(read > 0, "{groups}/{hosts}: nothing read");
        }
    }
    // The history panel pages: 150+ reports of one host take two pages of 100.
    let (_, history) = queries
        .iter()
        .find(|(place, _)| place.contains("History"))
        .unwrap();
    let url = interpolate(
        history["url"].as_str().unwrap(),
        &base,
        "rsyslog-prod",
        "rsyslog-01",
        from,
        to,
    );
    assert_eq!(run(&app, "history", history, &url).await, 152);
}

#[tokio::test]
async fn a_v1_panel_reads_its_object_from_api_status() {
    let (app, _clock) = fleet_app("*=1h").await;
    let v1 = json!({"repo": "rsyslog", "server": "rsyslog-01", "sync_status": "OUT_OF_SYNC",
                    "drift_count": 1, "files": [{"name": "rsyslog.conf"}]});
    expect(app.v1(v1).await, 200).await;
    // The URL the README's "Migrating from v1" section gives a v1 panel.
    let object = app
        .get_json("/api/status?repo=rsyslog&server=rsyslog-01")
        .await;
    for field in [
        "repo",
        "server",
        "sync_status",
        "drift_count",
        "files",
        "last_check",
    ] {
        assert!(object.get(field).is_some(), "no {field} in {object}");
    }
    assert_eq!(object["sync_status"], json!("OUT_OF_SYNC"));
    assert_eq!(object["drift_count"], json!(1));
}
