//! Silent hosts: `stale`, `report_due_by` and `status_since` on every current-state row,
//! computed at read time from the server's receive times.

use gitops_status::domain::{Clock, Period, StalePolicy, Timestamp};
use serde_json::{json, Value};

use crate::helpers::{expect, spawn_app_with, TestApp};

pub const START: &str = "2026-09-01T00:00:00Z";

pub fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

/// A server on a manual clock at START with `--stale-after stale_after`.
pub async fn fleet_app(stale_after: &str) -> (TestApp, Clock) {
    let clock = Clock::manual(at(START));
    let server_clock = clock.clone();
    let policy = StalePolicy::parse(stale_after).unwrap();
    let app = spawn_app_with(tempfile::tempdir().unwrap(), move |s| {
        s.clock = server_clock;
        s.stale_policy = policy;
    })
    .await;
    (app, clock)
}

pub fn minutes(n: u64) -> Period {
    Period::from_secs(n * 60).unwrap()
}

/// A drift check observed at `time`: a cron report, or for a host not in the fleet yet (cron
/// reports cannot create one), the v1 report that does.
pub async fn cron(app: &TestApp, group: &str, host: &str, status: &str, time: &str) -> Value {
    let body = json!({"server_group": group, "host": host, "status": status,
                      "last_cron_check": time});
    let mut answer = app.cron(body).await;
    if answer.status() == 404 {
        let v1 = json!({"repo": group, "server": host, "sync_status": status,
                        "last_check": time});
        answer = app.v1(v1).await;
    }
    let code = answer.status().as_u16();
    assert!(
        code == 200 || code == 201,
        "drift check {group}/{host}: {code}"
    );
    answer.json().await.unwrap()
}

pub async fn deploy(app: &TestApp, group: &str, host: &str, commit: &str, status: &str) -> Value {
    let body = json!({"server_group": group, "host": host, "status": status,
                      "commit_sha": commit, "branch": "main"});
    post_deploy(app, group, host, body).await
}

/// A deployment that says when it ran.
pub async fn deploy_at(app: &TestApp, group: &str, host: &str, commit: &str, time: &str) -> Value {
    let body = json!({"server_group": group, "host": host, "status": "synced",
                      "commit_sha": commit, "branch": "main", "last_pipeline_run": time});
    post_deploy(app, group, host, body).await
}

async fn post_deploy(app: &TestApp, group: &str, host: &str, body: Value) -> Value {
    let answer = app.pipeline(body).await;
    let code = answer.status().as_u16();
    assert!(
        code == 200 || code == 201,
        "pipeline {group}/{host}: {code}"
    );
    answer.json().await.unwrap()
}

fn row<'a>(rows: &'a Value, host: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == host)
        .unwrap_or_else(|| panic!("no row for {host} in {rows}"))
}

#[tokio::test]
async fn a_host_without_drift_checks_turns_stale_after_its_groups_allowance() {
    let (app, clock) = fleet_app("fast-*=10m,*=1h").await;
    cron(&app, "fast-a", "h1", "synced", START).await;
    cron(&app, "slow", "h2", "synced", START).await;

    let rows = app.get_json("/status").await;
    assert_eq!(row(&rows, "h1")["stale"], json!(false));
    assert_eq!(
        row(&rows, "h1")["report_due_by"],
        json!("2026-09-01T00:10:00.000Z")
    );
    assert_eq!(
        row(&rows, "h2")["report_due_by"],
        json!("2026-09-01T01:00:00.000Z")
    );

    // At the deadline it is not stale yet; a millisecond later it is, with nothing written
    // in between (the cached rendering follows the clock).
    clock.set(at("2026-09-01T00:10:00Z"));
    assert_eq!(
        row(&app.get_json("/status").await, "h1")["stale"],
        json!(false)
    );
    clock.set(at("2026-09-01T00:10:00.001Z"));
    for path in ["/status", "/status.json", "/status/fast-a"] {
        let rows = app.get_json(path).await;
        assert_eq!(row(&rows, "h1")["stale"], json!(true), "{path}");
    }
    assert_eq!(app.host("fast-a", "h1").await["stale"], json!(true));
    assert_eq!(
        row(&app.get_json("/status").await, "h2")["stale"],
        json!(false)
    );

    // Flagged, never removed; the next drift check makes it fresh again.
    let answer = cron(&app, "fast-a", "h1", "synced", "2026-09-01T00:10:00Z").await;
    assert_eq!(answer["status"]["stale"], json!(false));
    assert_eq!(
        answer["status"]["report_due_by"],
        json!("2026-09-01T00:20:00.001Z")
    );
    assert_eq!(
        row(&app.get_json("/status").await, "h1")["stale"],
        json!(false)
    );
}

#[tokio::test]
async fn staleness_counts_from_the_servers_receive_time_not_the_clients() {
    let (app, _clock) = fleet_app("*=1h").await;
    // The client's clock is a year behind; the host reported just now.
    cron(&app, "g", "h", "synced", "2025-09-01T00:00:00Z").await;
    let host = app.host("g", "h").await;
    assert_eq!(host["stale"], json!(false));
    assert_eq!(host["report_due_by"], json!("2026-09-01T01:00:00.000Z"));
}

#[tokio::test]
async fn hosts_that_only_deploy_and_groups_switched_off_are_never_stale() {
    let (app, clock) = fleet_app("lab-*=off").await;
    deploy(&app, "prod", "deploy-only", "c1", "synced").await;
    cron(&app, "lab-1", "bench", "synced", START).await;
    let heartbeat = json!({"server_group": "prod", "host": "deploy-only"});
    clock.advance(Period::from_secs(100 * 86_400).unwrap());

    let rows = app.get_json("/status").await;
    for host in ["deploy-only", "bench"] {
        assert_eq!(row(&rows, host)["stale"], json!(false), "{host}");
        assert_eq!(row(&rows, host)["report_due_by"], Value::Null, "{host}");
    }
    // A heartbeat (cron without status) is a drift check: from then on it can go stale.
    expect(app.cron(heartbeat).await, 200).await;
    clock.advance(Period::from_secs(3601).unwrap());
    assert_eq!(app.host("prod", "deploy-only").await["stale"], json!(true));
    let stale = app.get_json("/status?stale=true").await;
    assert_eq!(stale.as_array().unwrap().len(), 1);
    assert_eq!(stale[0]["host"], json!("deploy-only"));
    let fresh = app.get_json("/status?stale=false").await;
    assert_eq!(fresh.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn status_since_is_when_the_current_run_of_a_status_began() {
    let (app, clock) = fleet_app("*=1h").await;
    cron(&app, "g", "h", "synced", "2026-08-31T23:00:00Z").await;
    cron(&app, "g", "h", "synced", "2026-08-31T23:30:00Z").await;
    let host = app.host("g", "h").await;
    assert_eq!(host["status_since"], json!("2026-08-31T23:00:00.000Z"));

    clock.advance(minutes(1));
    let drifted = cron(&app, "g", "h", "out_of_sync", "2026-08-31T23:45:00Z").await;
    assert_eq!(
        drifted["status"]["status_since"],
        json!("2026-08-31T23:45:00.000Z")
    );
    // A late report of the old status changes nothing.
    cron(&app, "g", "h", "synced", "2026-08-31T23:40:00Z").await;
    let host = app.host("g", "h").await;
    assert_eq!(host["status"], json!("out_of_sync"));
    assert_eq!(host["status_since"], json!("2026-08-31T23:45:00.000Z"));
    // A deployment that fixes it starts a new run.
    deploy(&app, "g", "h", "c2", "synced").await;
    let host = app.host("g", "h").await;
    assert_eq!(host["status_since"], host["last_pipeline_run"]);
}
