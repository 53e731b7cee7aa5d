//! `GET /transitions`: every change of a host's status, kept with the report that made it.

use gitops_status::domain::{Clock, Period};
use serde_json::{json, Value};

use crate::helpers::{expect, expect_error, sqlite_only, TestApp};
use crate::retention::verify;
use crate::staleness::{at, cron, deploy, deploy_at, fleet_app};

fn summary(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {}->{}",
                t["host"].as_str().unwrap(),
                t["from_status"].as_str().unwrap_or("null"),
                t["to_status"].as_str().unwrap()
            )
        })
        .collect()
}

/// Reports observed between 00:00 and 03:00, received at 04:00 (times ahead of the server's
/// clock would count as their arrival).
async fn story(app: &TestApp, clock: &Clock) {
    clock.set(at("2026-09-01T04:00:00Z"));
    deploy_at(app, "g", "a", "c1", "2026-09-01T00:00:00Z").await;
    cron(app, "g", "a", "synced", "2026-09-01T00:10:00Z").await;
    cron(app, "g", "a", "out_of_sync", "2026-09-01T01:00:00Z").await;
    // Late: observed before the drift, so it changes nothing.
    cron(app, "g", "a", "synced", "2026-09-01T00:30:00Z").await;
    cron(app, "g", "a", "out_of_sync", "2026-09-01T01:10:00Z").await;
    cron(app, "g", "b", "failed", "2026-09-01T00:20:00Z").await;
    cron(app, "g", "a", "synced", "2026-09-01T03:00:00Z").await;
}

#[tokio::test]
async fn each_change_of_status_is_listed_newest_first_with_how_long_the_last_lasted() {
    let (app, clock) = fleet_app("*=1h").await;
    story(&app, &clock).await;

    let rows = app.get_json("/transitions").await;
    assert_eq!(
        summary(&rows),
        [
            "a out_of_sync->synced",
            "b null->failed",
            "a synced->out_of_sync",
            "a null->synced"
        ]
    );
    let latest = &rows[0];
    assert_eq!(latest["at"], json!("2026-09-01T03:00:00.000Z"));
    assert_eq!(latest["kind"], json!("cron"));
    assert_eq!(latest["report_id"], json!(7));
    assert_eq!(latest["previous_duration_seconds"], json!(7200.0));
    assert_eq!(latest["commit_sha"], json!("c1"));
    assert_eq!(latest["changed_files_count"], json!(0));
    let first = &rows[3];
    assert_eq!(first["previous_duration_seconds"], Value::Null);
    assert_eq!(first["kind"], json!("pipeline"));
    assert_eq!(rows[1]["commit_sha"], Value::Null);

    // Filters.
    let only_a = app.get_json("/transitions?host=a&to_status=synced").await;
    assert_eq!(
        summary(&only_a),
        ["a out_of_sync->synced", "a null->synced"]
    );
    let window = app
        .get_json("/transitions?from=2026-09-01T00:15:00Z&to=1788228000000")
        .await;
    assert_eq!(
        summary(&window),
        ["b null->failed", "a synced->out_of_sync"]
    );
    let from_synced = app.get_json("/transitions?from_status=synced,failed").await;
    assert_eq!(summary(&from_synced), ["a synced->out_of_sync"]);
    let details = expect_error(app.get("/transitions?to_status=green").await, 422).await;
    assert_eq!(details[0].0, "to_status");

    // verify checks them against the reports.
    let dir = app.stop().await;
    let (code, out) = verify(&crate::helpers::db_for(dir.path()).await);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 transitions match their reports"), "{out}");
}

#[tokio::test]
async fn cursor_paging_walks_every_transition_and_ends_with_a_null_cursor() {
    let (app, clock) = fleet_app("*=1h").await;
    for n in 0..7 {
        let status = if n % 2 == 0 { "synced" } else { "failed" };
        clock.advance(Period::MINUTE);
        deploy(&app, "g", "h", &format!("c{n}"), status).await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .get_json(&format!("/transitions?envelope=true&limit=3{cursor}"))
            .await;
        pages += 1;
        let rows = page["rows"].as_array().unwrap();
        seen.extend(rows.iter().map(|r| r["report_id"].as_i64().unwrap()));
        match page["next_before"].as_i64() {
            Some(next) => cursor = format!("&before={next}"),
            None => {
                assert!(page.as_object().unwrap().contains_key("next_before"));
                break;
            }
        }
    }
    assert_eq!(seen, [7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(pages, 3);
    // Exactly a page's worth left: the last page is full and says so.
    let page = app.get_json("/transitions?envelope=true&limit=7").await;
    assert_eq!(page["next_before"], Value::Null);
    // The same envelope on /history.
    let page = app.get_json("/history?envelope=true&limit=4").await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 4);
    assert_eq!(page["next_before"], json!(4));
    let page = app
        .get_json("/history?envelope=true&limit=4&before=4")
        .await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 3);
    assert_eq!(page["next_before"], Value::Null);
}

#[tokio::test]
async fn a_host_decommissioned_and_reported_again_starts_from_null() {
    let (app, _clock) = fleet_app("*=1h").await;
    cron(&app, "g", "h", "synced", "2026-09-01T00:00:00Z").await;
    expect(
        app.client
            .delete(app.url("/status/g/h"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    deploy(&app, "g", "h", "c1", "synced").await;
    let rows = app.get_json("/transitions?server_group=g").await;
    assert_eq!(summary(&rows), ["h null->synced", "h null->synced"]);
    assert_eq!(app.host("g", "h").await["status_since"], rows[0]["at"]);
}

async fn read(app: &TestApp) -> (Value, Value, Value) {
    (
        app.get_json("/transitions").await,
        app.get_json("/commits").await,
        app.get_json("/status").await,
    )
}

#[tokio::test]
async fn derived_again_from_the_history_they_are_what_the_writer_kept() {
    if sqlite_only(
        "derives what SQLite migration 0004 left underived; a PostgreSQL database starts derived (migrate-db copies what SQLite derived)",
    ) {
        return;
    }
    let (app, clock) = fleet_app("*=1h").await;
    story(&app, &clock).await;
    // A late deployment (observed before the host's current one): the host stays on c1, so
    // the next change records c1.
    deploy_at(&app, "g", "a", "c0", "2026-08-31T23:00:00Z").await;
    clock.advance(Period::MINUTE);
    cron(&app, "g", "a", "failed", "2026-09-01T03:30:00Z").await;
    // A drift check observed long ago but received last: staleness counts from its arrival.
    clock.advance(Period::MINUTE);
    cron(&app, "g", "b", "failed", "2026-09-01T00:21:00Z").await;
    clock.advance(Period::MINUTE);
    deploy(&app, "g", "b", "c2", "synced").await;
    let kept = read(&app).await;
    assert_eq!(kept.0[1]["commit_sha"], json!("c1"), "{}", kept.0);
    let dir = app.stop().await;
    // What migration 0004 leaves for the next start: nothing derived yet.
    let db = crate::helpers::db::Db::open(&dir.path().join("data").join("gitops-status.db"));
    db.execute(
        "DELETE FROM transitions; DELETE FROM commits;
         UPDATE hosts SET status = NULL, status_since = NULL, drift_received_at = NULL,
                          commit_since = NULL, commit_sha = NULL, status_row = NULL;
         INSERT INTO store_tasks (name) VALUES ('derive');",
    )
    .await
    .unwrap();
    let app = crate::helpers::spawn_app_in(dir).await;
    let derived = read(&app).await;
    assert_eq!(derived.0, kept.0, "transitions");
    assert_eq!(derived.1, kept.1, "commits");
    // The clock differs (this server runs on the system clock): compare without staleness.
    let strip = |rows: &Value| {
        let mut rows = rows.clone();
        for row in rows.as_array_mut().unwrap() {
            let row = row.as_object_mut().unwrap();
            row.remove("stale");
        }
        rows
    };
    assert_eq!(strip(&derived.2), strip(&kept.2), "status rows");
}
