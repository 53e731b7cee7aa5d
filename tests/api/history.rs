use serde_json::{json, Value};

use crate::helpers::{
    cron_at, expect, expect_error, pipeline_at, seed_pipeline, spawn_app, TestApp,
};

/// The members of every history row.
const HISTORY_FIELDS: [&str; 29] = [
    "id",
    "received_at",
    "kind",
    "server_group",
    "host",
    "status",
    "changed_files_count",
    "changed_files",
    "project_name",
    "repo_name",
    "server_type",
    "environment",
    "validation_status",
    "validation_message",
    "commit_sha",
    "branch",
    "updated_by",
    "last_pipeline_run",
    "last_cron_check",
    "drift_count",
    "observed_at",
    "principal",
    "client_addr",
    "forwarded_for",
    "user_agent",
    "raw_body",
    "prev_hash",
    "hash",
    "chain_format",
];

/// A well-formed chain hash for rows written by hand.
const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

/// 3 hosts in 2 groups: pipeline, cron and v1 reports; returns the number of reports.
async fn mixed_history(app: &TestApp) -> usize {
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    expect(
        app.pipeline(pipeline_at(
            "rsyslog-prod",
            "rsyslog-02",
            "failed",
            "2026-04-26T10:00:00Z",
        ))
        .await,
        201,
    )
    .await;
    expect(
        app.cron(cron_at(
            "rsyslog-prod",
            "rsyslog-01",
            "out_of_sync",
            &["/etc/a"],
            "2026-04-26T11:00:00Z",
        ))
        .await,
        200,
    )
    .await;
    expect(
        app.cron(cron_at(
            "rsyslog-prod",
            "rsyslog-02",
            "synced",
            &[],
            "2026-04-26T11:00:00Z",
        ))
        .await,
        200,
    )
    .await;
    expect(app.v1(json!({"repo": "rsyslog", "server": "rsyslog-lab", "sync_status": "OUT_OF_SYNC", "files": ["x"]})).await, 200).await;
    // Refused reports are not history.
    expect_error(
        app.cron(cron_at(
            "rsyslog-prod",
            "nope",
            "synced",
            &[],
            "2026-04-26T11:00:00Z",
        ))
        .await,
        404,
    )
    .await;
    expect_error(app.pipeline(json!({"host": "x"})).await, 422).await;
    5
}

#[tokio::test]
async fn history_lists_every_accepted_report_newest_first() {
    let app = spawn_app().await;
    let count = mixed_history(&app).await;

    let rows = app.history("").await;

    assert_eq!(ids(&rows), [5, 4, 3, 2, 1]);
    assert_eq!(rows.len(), count);
    for row in &rows {
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, HISTORY_FIELDS.to_vec());
    }
    assert!(rows
        .windows(2)
        .all(|w| w[0]["received_at"].as_str() >= w[1]["received_at"].as_str()));
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["legacy", "cron", "cron", "pipeline", "pipeline"]);
    assert_eq!(rows[2]["changed_files"], json!(["/etc/a"]));
    assert_eq!(rows[2]["changed_files_count"], 1);
    assert_eq!(rows[4]["commit_sha"], "abc1234567890");
    assert_eq!(rows[4]["client_addr"], "127.0.0.1");
}

#[tokio::test]
async fn history_filters_combine() {
    let app = spawn_app().await;
    mixed_history(&app).await;

    assert_eq!(
        ids(&app.history("?server_group=rsyslog-prod").await),
        [4, 3, 2, 1]
    );
    assert_eq!(ids(&app.history("?host=rsyslog-01").await), [3, 1]);
    assert_eq!(ids(&app.history("?kind=cron").await), [4, 3]);
    assert_eq!(ids(&app.history("?kind=legacy").await), [5]);
    assert_eq!(ids(&app.history("?status=out_of_sync").await), [5, 3]);
    assert_eq!(
        ids(&app.history("?status=OUT_OF_SYNC&kind=cron").await),
        [3]
    );
    assert_eq!(
        ids(&app
            .history("?server_group=rsyslog-prod&host=rsyslog-02&kind=pipeline")
            .await),
        [2]
    );
    assert_eq!(
        app.history("?server_group=unknown").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn host_history_is_the_same_for_one_host() {
    let app = spawn_app().await;
    mixed_history(&app).await;

    let rows = app
        .get_json("/status/rsyslog-prod/rsyslog-01/history")
        .await;
    assert_eq!(ids(rows.as_array().unwrap()), [3, 1]);
    let rows = app
        .get_json("/status/rsyslog-prod/rsyslog-01/history?kind=pipeline")
        .await;
    assert_eq!(ids(rows.as_array().unwrap()), [1]);
    assert_eq!(
        app.get_json("/status/rsyslog-prod/unknown/history").await,
        json!([])
    );
    expect_error(app.get("/status/rsyslog-prod/a%20b/history").await, 422).await;
}

/// Reports received an hour apart, written straight into the file so their received_at is
/// known (their chain hashes are placeholders); returns their ids.
async fn hourly_reports(app: &TestApp) -> Vec<i64> {
    let db = app.db();
    for hour in 10..15 {
        let sql = format!(
            "INSERT INTO reports (id, received_at, kind, server_group, host, status,
                                  observed_at, raw_body, prev_hash, hash)
             SELECT coalesce(max(id), 0) + 1, '2026-04-26T{hour}:00:00.000Z', 'pipeline', 'g',
                    'h', 'synced', '2026-04-26T{hour}:00:00.000Z', '{{}}', '{PLACEHOLDER}',
                    '{PLACEHOLDER}'
             FROM reports"
        );
        db.execute(&sql).await.unwrap();
    }
    ids(&app.history("").await)
}

#[tokio::test]
async fn time_range_bounds_received_at_inclusively_in_rfc3339_or_epoch_ms() {
    let app = spawn_app().await;
    let ids_newest_first = hourly_reports(&app).await;
    assert_eq!(
        ids_newest_first,
        [5, 4, 3, 2, 1],
        "10:00 is id 1 … 14:00 is id 5"
    );

    let range = |query: &str| {
        let app = &app;
        let query = query.to_owned();
        async move { ids(&app.history(&query).await) }
    };
    assert_eq!(
        range("?from=2026-04-26T11:00:00Z&to=2026-04-26T13:00:00Z").await,
        [4, 3, 2]
    );
    assert_eq!(range("?from=2026-04-26T11:00:00.001Z").await, [5, 4, 3]);
    assert_eq!(range("?to=2026-04-26T10:59:59.999Z").await, [1]);
    // 13:00+02:00 is 11:00Z; `+` URL-encoded, and unencoded (it arrives as a space).
    assert_eq!(
        range("?from=2026-04-26T13:00:00%2B02:00&to=2026-04-26T11:00:00Z").await,
        [2]
    );
    assert_eq!(
        range("?from=2026-04-26T13:00:00+02:00&to=2026-04-26T11:00:00Z").await,
        [2]
    );
    // Grafana's ${__timeFrom}/${__timeTo}: 11:00Z and 13:00Z in epoch milliseconds.
    assert_eq!(
        range("?from=1777201200000&to=1777208400000").await,
        [4, 3, 2]
    );
    assert_eq!(
        range("?from=1777201200000&to=2026-04-26T13:00:00Z&kind=pipeline").await,
        [4, 3, 2]
    );
    assert_eq!(range("?to=2000-01-01T00:00:00Z").await, Vec::<i64>::new());
}

#[tokio::test]
async fn empty_parameters_mean_no_filter() {
    let app = spawn_app().await;
    let all = hourly_reports(&app).await;

    let query = "?kind=&status=&from=&to=&limit=&offset=&before=&envelope=";
    assert_eq!(
        ids(&app.history(&format!("{query}&server_group=&host=")).await),
        all
    );
    let host = app.get_json(&format!("/status/g/h/history{query}")).await;
    assert_eq!(ids(host.as_array().unwrap()), all);
}

#[tokio::test]
async fn timestamps_pushed_out_of_range_by_their_offset_are_422() {
    let app = spawn_app().await;

    let details = expect_error(
        app.get("/history?from=9999-12-31T23:30:00-01:00").await,
        422,
    )
    .await;

    assert_eq!(details[0].0, "from");
}

#[tokio::test]
async fn offset_paging_walks_everything_and_ends_with_an_empty_page() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T10:00:00Z"))
            .await,
        201,
    )
    .await;
    for minute in 1..10 {
        let time = format!("2026-04-26T10:{minute:02}:00Z");
        expect(app.cron(cron_at("g", "h", "synced", &[], &time)).await, 200).await;
    }
    let all = ids(&app.history("").await);
    assert_eq!(all.len(), 10);

    let mut walked = Vec::new();
    for offset in (0..).step_by(3) {
        let page = app.history(&format!("?limit=3&offset={offset}")).await;
        if page.is_empty() {
            break;
        }
        walked.extend(ids(&page));
    }
    assert_eq!(walked, all);
    let past = app.get("/history?limit=3&offset=100").await;
    assert_eq!(past.status(), 200);
    assert_eq!(past.json::<Value>().await.unwrap(), json!([]));
}

#[tokio::test]
async fn keyset_paging_with_before_walks_everything() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T10:00:00Z"))
            .await,
        201,
    )
    .await;
    for minute in 1..10 {
        let time = format!("2026-04-26T10:{minute:02}:00Z");
        expect(app.cron(cron_at("g", "h", "synced", &[], &time)).await, 200).await;
    }
    let all = ids(&app.history("").await);

    let mut walked = Vec::new();
    let mut query = "?limit=4".to_owned();
    loop {
        let page = ids(&app.history(&query).await);
        let Some(last) = page.last().copied() else {
            break;
        };
        walked.extend(page);
        query = format!("?limit=4&before={last}");
    }

    assert_eq!(walked, all);
}

#[tokio::test]
async fn limit_defaults_to_100_and_is_capped_at_1000() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T09:00:00Z"))
            .await,
        201,
    )
    .await;
    for i in 0..104 {
        let time = format!("2026-04-26T10:{:02}:{:02}Z", i / 60, i % 60);
        expect(app.cron(cron_at("g", "h", "synced", &[], &time)).await, 200).await;
    }

    assert_eq!(app.history("").await.len(), 100);
    assert_eq!(app.history("?limit=1000").await.len(), 105);
    let details = expect_error(app.get("/history?limit=1001").await, 422).await;
    assert_eq!(details[0].0, "limit");
    expect_error(app.get("/history?limit=0").await, 422).await;
}

#[tokio::test]
async fn invalid_history_parameters_are_each_named() {
    let app = spawn_app().await;

    let details = expect_error(
        app.get("/history?kind=deploy&status=green&from=yesterday&to=x&limit=-1&offset=a&before=0&server_group=a%20b&host=a/b")
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
            "kind",
            "status",
            "from",
            "to",
            "limit",
            "offset",
            "before"
        ]
    );

    // A range that ends before it starts selects nothing.
    let empty = app
        .get_json("/history?from=2026-04-27T00:00:00Z&to=2026-04-26T00:00:00Z")
        .await;
    assert_eq!(empty, json!([]));
    let details = expect_error(app.get("/history?offset=9223372036854775808").await, 422).await;
    assert_eq!(details[0].0, "offset");
}
