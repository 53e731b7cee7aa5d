//! Reports arrive late and out of order; the current state follows the newest observation.

use serde_json::json;

use crate::helpers::{cron_at, expect, pipeline_at, spawn_app};

#[tokio::test]
async fn late_cron_report_is_kept_but_does_not_roll_the_state_back() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T10:00:00Z"))
            .await,
        201,
    )
    .await;
    expect(
        app.cron(cron_at(
            "g",
            "h",
            "out_of_sync",
            &["/etc/a"],
            "2026-04-26T11:00:00Z",
        ))
        .await,
        200,
    )
    .await;

    let late = expect(
        app.cron(cron_at("g", "h", "synced", &[], "2026-04-26T10:45:00Z"))
            .await,
        200,
    )
    .await;

    assert!(
        late["message"]
            .as_str()
            .unwrap()
            .contains("newer observation"),
        "{late}"
    );
    let host = app.host("g", "h").await;
    assert_eq!(host["status"], "out_of_sync");
    assert_eq!(host["changed_files"], json!(["/etc/a"]));
    assert_eq!(host["last_cron_check"], "2026-04-26T11:00:00.000Z");
    let history = app.history("").await;
    assert_eq!(history.len(), 3, "the late report is in the history");
    assert_eq!(history[0]["last_cron_check"], "2026-04-26T10:45:00.000Z");
}

#[tokio::test]
async fn late_pipeline_updates_the_deployment_but_not_a_newer_drift_check() {
    let app = spawn_app().await;
    let mut first = pipeline_at("g", "h", "synced", "2026-04-26T10:00:00Z");
    first["commit_sha"] = json!("aaa");
    expect(app.pipeline(first).await, 201).await;
    expect(
        app.cron(cron_at(
            "g",
            "h",
            "out_of_sync",
            &["/etc/a"],
            "2026-04-26T11:00:00Z",
        ))
        .await,
        200,
    )
    .await;

    // A CI retry delivers the 10:30 deployment after the 11:00 drift check.
    let mut retried = pipeline_at("g", "h", "synced", "2026-04-26T10:30:00Z");
    retried["commit_sha"] = json!("bbb");
    expect(app.pipeline(retried).await, 200).await;

    let host = app.host("g", "h").await;
    assert_eq!(host["commit_sha"], "bbb", "the newer deployment");
    assert_eq!(host["last_pipeline_run"], "2026-04-26T10:30:00.000Z");
    assert_eq!(host["status"], "out_of_sync", "the newer drift observation");
}

#[tokio::test]
async fn older_pipeline_report_does_not_replace_a_newer_deployment() {
    let app = spawn_app().await;
    let mut newer = pipeline_at("g", "h", "synced", "2026-04-26T10:30:00Z");
    newer["commit_sha"] = json!("new");
    let mut older = pipeline_at("g", "h", "failed", "2026-04-26T10:00:00Z");
    older["commit_sha"] = json!("old");
    expect(app.pipeline(newer).await, 201).await;

    expect(app.pipeline(older).await, 200).await;

    let host = app.host("g", "h").await;
    assert_eq!(host["commit_sha"], "new");
    assert_eq!(host["status"], "synced");
}

#[tokio::test]
async fn time_zones_are_compared_as_instants() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T10:30:00Z"))
            .await,
        201,
    )
    .await;

    // 12:00+02:00 is 10:00Z: older, although its wall clock reads later.
    expect(
        app.cron(cron_at(
            "g",
            "h",
            "failed",
            &[],
            "2026-04-26T12:00:00+02:00",
        ))
        .await,
        200,
    )
    .await;

    let host = app.host("g", "h").await;
    assert_eq!(
        host["status"], "synced",
        "the pipeline's 10:30 status is newer"
    );
    // The first cron check is the newest cron check there is, whatever its time.
    assert_eq!(host["last_cron_check"], "2026-04-26T10:00:00.000Z");
    assert_eq!(
        app.history("?kind=cron").await[0]["last_cron_check"],
        "2026-04-26T10:00:00.000Z",
        "stored as UTC"
    );
}

#[tokio::test]
async fn equal_observation_times_go_to_the_report_received_last() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T10:00:00Z"))
            .await,
        201,
    )
    .await;

    expect(
        app.cron(cron_at(
            "g",
            "h",
            "out_of_sync",
            &["/a"],
            "2026-04-26T11:00:00Z",
        ))
        .await,
        200,
    )
    .await;
    expect(
        app.cron(cron_at("g", "h", "synced", &[], "2026-04-26T11:00:00Z"))
            .await,
        200,
    )
    .await;

    assert_eq!(app.host("g", "h").await["status"], "synced");
}

#[tokio::test]
async fn shuffled_reports_end_at_the_newest_observation() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T09:00:00Z"))
            .await,
        201,
    )
    .await;
    // Minutes 0..30 in a scrambled order; minute 29 is the newest and drifted.
    let minutes: Vec<u32> = (0..30).map(|i| (i * 7) % 30).collect();
    for minute in &minutes {
        let status = if *minute == 29 {
            "out_of_sync"
        } else {
            "synced"
        };
        let file = format!("/etc/file-{minute}");
        let time = format!("2026-04-26T10:{minute:02}:00Z");
        expect(
            app.cron(cron_at("g", "h", status, &[&file], &time)).await,
            200,
        )
        .await;
    }

    let host = app.host("g", "h").await;
    assert_eq!(host["status"], "out_of_sync");
    assert_eq!(host["changed_files"], json!(["/etc/file-29"]));
    assert_eq!(host["last_cron_check"], "2026-04-26T10:29:00.000Z");
    assert_eq!(app.history("?kind=cron").await.len(), 30);
}

#[tokio::test]
async fn report_without_a_time_counts_as_now() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T10:00:00Z"))
            .await,
        201,
    )
    .await;
    expect(
        app.cron(cron_at(
            "g",
            "h",
            "out_of_sync",
            &["/a"],
            "2026-04-26T11:00:00Z",
        ))
        .await,
        200,
    )
    .await;

    // No last_cron_check: stamped with the server clock, which is after 11:00 on 2026-04-26.
    let body = expect(
        app.cron(
            json!({"server_group": "g", "host": "h", "status": "synced", "changed_files": []}),
        )
        .await,
        200,
    )
    .await;

    assert_eq!(body["status"]["status"], "synced");
    let row = &app.history("").await[0];
    assert_eq!(row["last_cron_check"], json!(null), "as sent");
    assert_eq!(body["status"]["last_cron_check"], row["received_at"]);
}

#[tokio::test]
async fn partly_late_report_says_which_parts_kept_newer_observations() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T10:00:00Z"))
            .await,
        201,
    )
    .await;
    expect(
        app.cron(cron_at(
            "g",
            "h",
            "out_of_sync",
            &["/a"],
            "2026-04-26T11:00:00Z",
        ))
        .await,
        200,
    )
    .await;

    let body = expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T10:30:00Z"))
            .await,
        200,
    )
    .await;

    assert_eq!(
        body["message"],
        "Status updated; newer observations were kept for: status, changed_files"
    );
}

#[tokio::test]
async fn a_time_ahead_of_the_server_clock_counts_as_the_arrival_and_pins_nothing() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "h", "synced", "2026-04-26T10:00:00Z"))
            .await,
        201,
    )
    .await;

    // A cron job on a host whose clock runs decades ahead.
    let skewed = expect(
        app.cron(cron_at(
            "g",
            "h",
            "out_of_sync",
            &["/a"],
            "2099-01-01T00:00:00Z",
        ))
        .await,
        200,
    )
    .await;
    assert!(
        skewed["message"]
            .as_str()
            .unwrap()
            .contains("ahead of the server clock"),
        "{skewed}"
    );
    let row = &app.history("").await[0];
    assert_eq!(
        row["last_cron_check"], "2099-01-01T00:00:00.000Z",
        "kept as sent"
    );
    assert_eq!(
        row["observed_at"], row["received_at"],
        "ordered as of its arrival"
    );
    assert_eq!(skewed["status"]["last_cron_check"], row["received_at"]);

    // A report from a correct clock moves the state again.
    let fixed = json!({"server_group": "g", "host": "h", "status": "synced", "changed_files": []});
    expect(app.cron(fixed).await, 200).await;
    assert_eq!(app.host("g", "h").await["status"], "synced");
}
