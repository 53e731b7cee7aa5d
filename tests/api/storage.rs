//! What an operator sees with sqlite3: names, modes and the guarantees the schema enforces.

use serde_json::json;

use crate::helpers::{cron_at, expect, seed_pipeline, spawn_app, sqlite_only};

#[tokio::test]
async fn schema_has_the_documented_names_and_wal() {
    if sqlite_only(
        "SQLite's names, PRAGMAs and WAL; tests/postgres/schema.sh checks the PostgreSQL schema",
    ) {
        return;
    }
    let app = spawn_app().await;
    let db = app.db();

    for (kind, name) in [
        ("table", "reports"),
        ("table", "hosts"),
        ("view", "current_status"),
    ] {
        let sql =
            format!("SELECT count(*) FROM sqlite_schema WHERE type = '{kind}' AND name = '{name}'");
        assert_eq!(db.scalar(&sql).await, 1, "{kind} {name}");
    }
    assert_eq!(db.text("PRAGMA journal_mode").await, "wal");
}

#[tokio::test]
async fn reports_are_append_only() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    let db = app.db();

    let update = db
        .execute("UPDATE reports SET status = 'failed'")
        .await
        .unwrap_err();
    assert!(update.contains("append-only"), "{update}");
    let delete = db.execute("DELETE FROM reports").await.unwrap_err();
    assert!(delete.contains("append-only"), "{delete}");
    assert_eq!(db.scalar("SELECT count(*) FROM reports").await, 1);
}

/// A well-formed chain hash for rows written by hand.
const PLACEHOLDER: &str = "'0000000000000000000000000000000000000000000000000000000000000000'";

/// An INSERT of a valid pipeline row, with some columns replaced or added.
fn insert(changes: &[(&str, &str)]) -> String {
    let mut columns = vec![
        "received_at",
        "kind",
        "server_group",
        "host",
        "status",
        "observed_at",
        "raw_body",
        "prev_hash",
        "hash",
    ];
    let mut values = vec![
        "'2026-04-26T10:00:00.000Z'",
        "'pipeline'",
        "'g'",
        "'h'",
        "'synced'",
        "'2026-04-26T10:00:00.000Z'",
        "'{}'",
        PLACEHOLDER,
        PLACEHOLDER,
    ];
    for (column, value) in changes {
        match columns.iter().position(|c| c == column) {
            Some(i) => values[i] = value,
            None => {
                columns.push(column);
                values.push(value);
            }
        }
    }
    format!(
        "INSERT INTO reports ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    )
}

#[tokio::test]
async fn schema_refuses_values_the_api_would_refuse() {
    if sqlite_only("SQLite's CHECKs; tests/postgres/schema.sh checks PostgreSQL's") {
        return;
    }
    let app = spawn_app().await;
    let db = app.db();

    assert!(db.execute(&insert(&[])).await.is_ok(), "a valid row");
    // A retention row belongs to no host, and only it.
    let retention = [
        ("kind", "'retention'"),
        ("status", "NULL"),
        ("principal", "'retention'"),
    ];
    assert!(db.execute(&insert(&retention)).await.is_err(), "a host");
    let no_host = [("server_group", "NULL"), ("host", "NULL")];
    let row: Vec<(&str, &str)> = retention.iter().chain(&no_host).copied().collect();
    assert!(db.execute(&insert(&row)).await.is_ok(), "a retention row");
    assert!(
        db.execute(&insert(&no_host)).await.is_err(),
        "a pipeline without a host"
    );
    for change in [
        ("raw_body", "'not json'"),
        ("changed_files", "'not json'"),
        ("changed_files", "'{\"a\": 1}'"),
        ("drift_count", "-1"),
        ("last_pipeline_run", "'2026-04-26 10:00'"),
        ("server_group", "'a b'"),
        ("status", "'green'"),
        ("hash", "'ABC'"),
        ("prev_hash", "'not hex'"),
        ("kind", "'cron'"),
        ("kind", "'retention'"),
        ("is_change", "2"),
        ("is_change", "0"),
        ("chain_format", "0"),
        ("chain_format", "NULL"),
    ] {
        let refused = match change.0 {
            // A cron row may not carry pipeline-only members.
            "kind" if change.1 == "'cron'" => insert(&[change, ("commit_sha", "'x'")]),
            _ => insert(&[change]),
        };
        assert!(
            db.execute(&refused).await.is_err(),
            "{change:?} must be refused"
        );
    }
}

#[tokio::test]
async fn current_status_view_matches_the_api() {
    if sqlite_only(
        "compares SQLite's view through json_object; on PostgreSQL writer::concurrent_reports_leave_every_status_row_as_the_reports_make_it compares its view",
    ) {
        return;
    }
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
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

    let db = app.db();
    let row = db
        .text(
            "SELECT json_object('status', status, 'changed_files', json(changed_files), \
               'count', changed_files_count, 'commit', commit_sha, 'cron', last_cron_check, \
               'timestamp', timestamp) FROM current_status",
        )
        .await;
    let host = app.host("rsyslog-prod", "rsyslog-01").await;
    let row: serde_json::Value = serde_json::from_str(&row).unwrap();
    assert_eq!(
        row,
        json!({
            "status": host["status"], "changed_files": host["changed_files"],
            "count": host["changed_files_count"], "commit": host["commit_sha"],
            "cron": host["last_cron_check"], "timestamp": host["timestamp"]
        })
    );
}

#[tokio::test]
async fn an_acknowledged_report_is_visible_to_another_connection_at_once() {
    let app = spawn_app().await;

    let body = expect(app.pipeline(seed_pipeline()).await, 201).await;

    let id = body["report_id"].as_i64().unwrap();
    let sql =
        format!("SELECT count(*) FROM reports WHERE id = {id} AND commit_sha = 'abc1234567890'");
    assert_eq!(app.db().scalar(&sql).await, 1);
}

#[tokio::test]
async fn current_status_never_scans_the_history() {
    if sqlite_only("SQLite's query plans") {
        return;
    }
    let app = spawn_app().await;
    let db = app.db();

    for sql in [
        "SELECT * FROM current_status ORDER BY server_group, host",
        "SELECT * FROM current_status WHERE server_group = 'g' AND host = 'h'",
    ] {
        let plan = db.query_plan(sql).await;
        // Only `hosts` is walked; every report is found by primary key.
        let reports: Vec<&String> = plan
            .iter()
            .filter(|d| !d.contains(" h ") && !d.ends_with(" h"))
            .collect();
        assert_eq!(reports.len(), 5, "{plan:?}");
        assert!(
            reports
                .iter()
                .all(|d| d.contains("USING INTEGER PRIMARY KEY")),
            "{sql}: {plan:?}"
        );
    }
}
