//! Retention: what each tier keeps over a generated history of weeks, written through the
//! server with a clock the test sets; the chain verifying across what it removed; a row
//! deleted by hand still named; the file no longer growing once the policy holds.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use gitops_status::domain::{Clock, Period, RetentionPolicy, Timestamp};
use serde_json::{json, Value};

use crate::helpers::{binary, expect, spawn_app_with, sqlite_only, TestApp};

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn days(n: u64) -> Period {
    Period::from_secs(n * 86_400).unwrap()
}

fn hours(n: u64) -> Period {
    Period::from_secs(n * 3_600).unwrap()
}

/// `gitops-status verify --db PATH`: exit code and stdout.
pub fn verify(db: &Path) -> (i32, String) {
    let output = Command::new(binary())
        .args(["verify", "--db"])
        .arg(db)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Where the generated histories begin.
const START: &str = "2026-09-01T00:00:00Z";

/// Routine reports kept `reports` days, changes `changes` days, the newest `per_host`.
fn keep(reports: u64, changes: u64, per_host: u32) -> RetentionPolicy {
    RetentionPolicy {
        reports: Some(days(reports)),
        changes: Some(days(changes)),
        per_host,
    }
}

/// A server with `policy` whose clock reads `START` until the test moves it; the clock and
/// its start.
async fn app_with(policy: RetentionPolicy) -> (TestApp, Clock, Timestamp) {
    let start = at(START);
    let clock = Clock::manual(start);
    let server_clock = clock.clone();
    let app = spawn_app_with(tempfile::tempdir().unwrap(), move |s| {
        s.clock = server_clock;
        s.retention = policy;
        // The tests run each pass themselves (POST /admin/prune), on the clock they move: a
        // background pass in between (10 s after start on a loaded machine) would prune a
        // history they have not finished writing.
        s.first_prune_after = std::time::Duration::from_secs(86_400);
    })
    .await;
    (app, clock, start)
}

/// Every row of the history, oldest first.
async fn all_rows(app: &TestApp) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut before = String::new();
    loop {
        let page = app.history(&format!("?limit=1000{before}")).await;
        let Some(last) = page.last() else { break };
        before = format!("&before={}", last["id"]);
        rows.extend(page);
    }
    rows.reverse();
    rows
}

async fn prune(app: &TestApp) -> Value {
    expect(app.post_json("/admin/prune", &json!({})).await, 200).await
}

/// The rows the policy must keep, worked out from the whole history before pruning (in id
/// order) and the hosts' current report pointers, independently of the server's code.
fn expected_kept(
    rows: &[Value],
    pointers: &HashSet<i64>,
    fleet: &HashSet<String>,
    now: Timestamp,
    policy: RetentionPolicy,
) -> HashSet<i64> {
    let routine_cutoff = now
        .checked_sub(policy.reports.unwrap())
        .unwrap()
        .to_string();
    let change_cutoff = now
        .checked_sub(policy.reports.unwrap().max(policy.changes.unwrap()))
        .unwrap()
        .to_string();
    let mut per_host: HashMap<String, Vec<i64>> = HashMap::new();
    let mut last: HashMap<String, (Option<String>, Option<Vec<String>>)> = HashMap::new();
    let mut changes = HashSet::new();
    for row in rows {
        let id = row["id"].as_i64().unwrap();
        let kind = row["kind"].as_str().unwrap();
        let Some(group) = row["server_group"].as_str() else {
            changes.insert(id);
            continue;
        };
        let host = format!("{group}/{}", row["host"].as_str().unwrap());
        per_host.entry(host.clone()).or_default().push(id);
        let said = last.entry(host).or_default();
        if kind == "decommission" {
            *said = (None, None);
            changes.insert(id);
            continue;
        }
        let status = row["status"].as_str().map(str::to_owned);
        let files = (status.is_some() || !row["changed_files"].is_null()).then(|| {
            let mut files: Vec<String> = row["changed_files"]
                .as_array()
                .map(|f| f.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            files.sort();
            files.dedup();
            files
        });
        let changed =
            (status.is_some() && status != said.0) || (files.is_some() && files != said.1);
        if status.is_some() {
            said.0 = status;
        }
        if files.is_some() {
            said.1 = files;
        }
        if changed || !matches!(kind, "cron" | "legacy") {
            changes.insert(id);
        }
    }
    let mut newest: HashSet<i64> = HashSet::new();
    for (host, ids) in &per_host {
        if fleet.contains(host) {
            newest.extend(ids.iter().rev().take(policy.per_host as usize));
        }
    }
    rows.iter()
        .map(|row| {
            (
                row["id"].as_i64().unwrap(),
                row["received_at"].as_str().unwrap(),
            )
        })
        .filter(|(id, received)| {
            pointers.contains(id)
                || newest.contains(id)
                || *received >= routine_cutoff.as_str()
                || (changes.contains(id) && *received >= change_cutoff.as_str())
        })
        .map(|(id, _)| id)
        .collect()
}

async fn pointers_and_fleet(app: &TestApp) -> (HashSet<i64>, HashSet<String>) {
    let rows = app
        .db()
        .texts(
            "SELECT server_group || '/' || host || ' ' || last_report_id || ' ' ||
                    status_report_id || ' ' || files_report_id || ' ' ||
                    coalesce(pipeline_report_id, 0) || ' ' || coalesce(cron_report_id, 0)
             FROM hosts",
        )
        .await;
    let mut pointers = HashSet::new();
    let mut fleet = HashSet::new();
    for row in rows {
        let mut parts = row.split(' ');
        fleet.insert(parts.next().unwrap().to_owned());
        // 0: the host has no such report.
        pointers.extend(
            parts
                .map(|id| id.parse::<i64>().unwrap())
                .filter(|id| *id != 0),
        );
    }
    (pointers, fleet)
}

/// Eight weeks of history, every six hours, for hosts that behave differently.
async fn eight_weeks(app: &TestApp, clock: &Clock, start: Timestamp) {
    let post = |path: &'static str, body: Value| async move {
        let response = app.post_json(path, &body).await;
        assert!(response.status().is_success(), "{path} {body}");
    };
    for step in 0..(8 * 7 * 4) {
        let day = step / 4;
        let millis = start.epoch_millis() + step as i64 * 6 * 3_600_000;
        clock.set(Timestamp::from_epoch_millis(millis).unwrap());
        if step == 0 {
            for host in ["steady", "flappy", "silent", "retired"] {
                post("/status/pipeline", json!({"server_group": "g", "host": host, "status": "synced", "commit_sha": "c0"})).await;
            }
            continue;
        }
        // steady: routine checks; a second deployment on day 30.
        if step == 30 * 4 {
            post("/status/pipeline", json!({"server_group": "g", "host": "steady", "status": "synced", "commit_sha": "c1"})).await;
        } else {
            post("/status/cron", json!({"server_group": "g", "host": "steady", "status": "synced", "changed_files": []})).await;
        }
        // flappy: drifts on days 5, 20 and 40, back in sync two days later (not after 40);
        // on day 21 one file is fixed (only its files change); the order of its files changes
        // on day 41 (the same set: routine).
        let (status, files): (&str, Vec<&str>) = match day {
            5..=6 | 20 => ("out_of_sync", vec!["/etc/a", "/etc/b"]),
            21 => ("out_of_sync", vec!["/etc/a"]),
            40 => ("out_of_sync", vec!["/etc/a", "/etc/b"]),
            41.. => ("out_of_sync", vec!["/etc/b", "/etc/a"]),
            _ => ("synced", vec![]),
        };
        post("/status/cron", json!({"server_group": "g", "host": "flappy", "status": status, "changed_files": files})).await;
        // silent: its cron stops on day 3.
        if day < 3 {
            post(
                "/status/cron",
                json!({"server_group": "g", "host": "silent", "status": "synced"}),
            )
            .await;
        }
        // retired: checks until day 20, then decommissioned.
        if day < 20 {
            post(
                "/status/cron",
                json!({"server_group": "g", "host": "retired", "status": "synced"}),
            )
            .await;
        } else if step == 20 * 4 {
            let response = app
                .client
                .delete(app.url("/status/g/retired"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        // v1 heartbeats from a second group, with a heartbeat cron (no status) in between.
        post(
            "/api/status",
            json!({"repo": "v1", "server": "lab", "sync_status": "SYNCED"}),
        )
        .await;
        post("/status/cron", json!({"server_group": "v1", "host": "lab"})).await;
    }
}

#[tokio::test]
async fn each_tier_keeps_what_the_policy_says_and_the_chain_still_verifies() {
    let policy = keep(14, 42, 5);
    let (app, clock, start) = app_with(policy).await;
    eight_weeks(&app, &clock, start).await;
    let now = start.checked_add(days(56)).unwrap();
    clock.set(now);
    let before = all_rows(&app).await;
    let status_before = app.get_json("/status").await;
    let (pointers, fleet) = pointers_and_fleet(&app).await;
    let expected = expected_kept(&before, &pointers, &fleet, now, policy);
    assert!(
        before.len() > 900 && expected.len() < before.len() / 2,
        "{}",
        expected.len()
    );

    let pass = prune(&app).await;

    let after = all_rows(&app).await;
    let kept: HashSet<i64> = after
        .iter()
        .filter(|r| r["kind"] != "retention")
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let mut missing: Vec<_> = expected.difference(&kept).collect();
    let mut extra: Vec<_> = kept.difference(&expected).collect();
    missing.sort();
    extra.sort();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "removed but to keep: {missing:?}; kept but removable: {extra:?}"
    );
    let removed = before.len() - kept.len();
    assert_eq!(pass["removed"], removed as u64, "{pass}");
    assert_eq!(
        app.get_json("/status").await,
        status_before,
        "current state untouched"
    );

    // Spot checks on what the tiers mean.
    let by_id: HashMap<i64, &Value> = before
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r))
        .collect();
    let kept_rows = |host: &str| -> Vec<&Value> {
        let mut rows: Vec<&Value> = kept
            .iter()
            .map(|id| by_id[id])
            .filter(|r| r["host"] == host)
            .collect();
        rows.sort_by_key(|r| r["id"].as_i64());
        rows
    };
    let flappy = kept_rows("flappy");
    let flips: Vec<&str> = flappy
        .iter()
        .filter(|r| r["kind"] == "cron" && r["received_at"].as_str().unwrap() < "2026-10-13")
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        flips,
        ["out_of_sync", "out_of_sync", "synced", "out_of_sync"],
        "the changes of days 20, 21 (files only), 22 and 40 are kept; day 5's are past 42 days"
    );
    let silent = kept_rows("silent");
    assert_eq!(
        silent.len(),
        6,
        "a silent host keeps its newest 5 however old, and the deployment its state rests on"
    );
    let retired = kept_rows("retired");
    assert_eq!(
        retired.len(),
        1,
        "a retired host keeps no newest-N: only its decommission"
    );
    assert_eq!(retired[0]["kind"], "decommission");
    let steady_pipelines: Vec<&str> = kept_rows("steady")
        .iter()
        .filter(|r| r["kind"] == "pipeline")
        .map(|r| r["commit_sha"].as_str().unwrap())
        .collect();
    assert_eq!(
        steady_pipelines,
        ["c1"],
        "day 0's deployment is past 42 days; day 30's is kept"
    );

    // The passes left their records in the chain, belonging to no host.
    let records = app.history("?kind=retention").await;
    assert!(!records.is_empty());
    let record = &records[0];
    assert!(record["server_group"].is_null() && record["host"].is_null());
    assert_eq!(record["principal"], "retention");
    assert!(
        record["raw_body"]["runs"][0]["first_id"].is_i64(),
        "{record}"
    );
    let status = app.get_json("/status").await;
    assert!(status
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["host"] != Value::Null));

    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(", {removed} rows removed by retention;")),
        "{out}"
    );

    // A second pass finds nothing more.
    assert_eq!(prune(&app).await["removed"], 0);

    // A row deleted by hand is still named, by id, among the gaps retention made.
    let victim = *kept
        .iter()
        .filter(|id| !pointers.contains(id))
        .max()
        .unwrap();
    app.db()
        .execute(if crate::helpers::on_postgres() {
            "DROP TRIGGER reports_are_append_only_delete ON reports"
        } else {
            "DROP TRIGGER reports_are_append_only_delete"
        })
        .await
        .unwrap();
    app.db()
        .execute(&format!("DELETE FROM reports WHERE id = {victim}"))
        .await
        .unwrap();
    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 1);
    assert_eq!(
        out.trim(),
        format!("row {victim}: deleted outside retention: no retention record covers it")
    );
}

#[tokio::test]
async fn an_ad_hoc_delete_is_still_refused_after_pruning() {
    let (app, clock, _) = app_with(keep(1, 1, 1)).await;
    for _ in 0..10 {
        let response = app
            .pipeline(json!({"server_group": "g", "host": "h", "status": "synced"}))
            .await;
        assert!(response.status().is_success());
        clock.advance(hours(1));
    }
    clock.advance(days(3));
    assert!(prune(&app).await["removed"].as_u64().unwrap() > 0);

    let db = app.db();
    let oldest: i64 = db.scalar("SELECT min(id) FROM reports").await;
    let delete = db
        .execute(&format!("DELETE FROM reports WHERE id = {oldest}"))
        .await
        .unwrap_err();
    assert!(delete.contains("append-only"), "{delete}");
    // Not even by listing the row as retention would: the permit needs the writer's own
    // transaction, and the chain would still lack a retention row covering the gap.
    let update = db
        .execute("UPDATE reports SET status = 'failed' WHERE kind = 'retention'")
        .await
        .unwrap_err();
    assert!(update.contains("append-only"), "{update}");
    assert_eq!(verify(&app.db_path).0, 0);
}

#[tokio::test]
async fn retention_rows_that_age_out_are_restated_and_every_gap_stays_proven() {
    let (app, clock, _) = app_with(keep(1, 2, 2)).await;
    for day in 0..12 {
        for hour in 0..12 {
            let status = if (day + hour) % 5 == 0 {
                "out_of_sync"
            } else {
                "synced"
            };
            for host in ["a", "b"] {
                let body = json!({"server_group": "g", "host": host, "status": status});
                assert!(app.pipeline(body).await.status().is_success());
            }
            clock.advance(hours(2));
        }
        // A pass a day, as the background loop would run them.
        prune(&app).await;
    }
    let records = app.history("?kind=retention&limit=1000").await;
    let restating: Vec<&Value> = records
        .iter()
        .filter(|r| !r["raw_body"]["restates"].as_array().unwrap().is_empty())
        .collect();
    assert!(
        !restating.is_empty(),
        "old retention rows were removed and restated"
    );
    let ids: HashSet<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    for record in &restating {
        for restated in record["raw_body"]["restates"].as_array().unwrap() {
            assert!(
                !ids.contains(&restated.as_i64().unwrap()),
                "{restated} is gone"
            );
        }
    }
    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 0, "{out}");
    let last_id: i64 = app.db().scalar("SELECT max(id) FROM reports").await;
    let present: i64 = app.db().scalar("SELECT count(*) FROM reports").await;
    assert!(
        out.contains(&format!("{} rows removed by retention", last_id - present)),
        "every missing row is accounted for: {out}"
    );
}

#[tokio::test]
async fn the_file_stops_growing_once_the_policy_holds() {
    if sqlite_only("measures the SQLite file and its free pages") {
        return;
    }
    let (app, clock, _) = app_with(keep(1, 1, 3)).await;
    let app = std::sync::Arc::new(app);
    let mut sizes = Vec::new();
    for cycle in 0..6 {
        // A day of reports from 20 hosts, 32 at a time.
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..32 {
            let app = std::sync::Arc::clone(&app);
            tasks.spawn(async move {
                for n in (worker..1600).step_by(32) {
                    let body = json!({"server_group": "g", "host": format!("h{}", n % 20),
                                      "status": "synced", "changed_files": [],
                                      "validation_message": "x".repeat(200)});
                    let response = app.pipeline(body).await;
                    assert!(response.status().is_success());
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        clock.advance(days(2));
        let pass = prune(&app).await;
        assert!(
            pass["removed"].as_u64().unwrap() >= 1500,
            "cycle {cycle}: {pass}"
        );
        // What the file holds once the WAL is written back.
        app.db()
            .execute("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .unwrap();
        sizes.push(std::fs::metadata(&app.db_path).unwrap().len());
    }
    let (first, last) = (sizes[1], *sizes.last().unwrap());
    assert!(
        last <= first + first / 10,
        "the file keeps growing: {sizes:?} bytes after each cycle"
    );
    let free: i64 = app.db().scalar("PRAGMA freelist_count").await;
    assert!(free > 0, "freed pages wait for reuse");
    assert_eq!(verify(&app.db_path).0, 0);
}

#[tokio::test]
async fn the_index_says_how_much_history_is_kept() {
    let (app, _clock, _) = app_with(RetentionPolicy::default()).await;
    let index = app.get_json("/").await;
    assert_eq!(
        index["retention"]["policy"],
        json!({"retain_reports": "30d", "retain_changes": "400d", "retain_per_host": 100,
               "prune_interval": "10m"})
    );
    assert!(index["retention"]["oldest_report"].is_null());
    assert!(index["retention"]["last_prune"].is_null());
    expect(
        app.pipeline(json!({"server_group": "g", "host": "h", "status": "synced"}))
            .await,
        201,
    )
    .await;
    prune(&app).await;
    let index = app.get_json("/").await;
    assert_eq!(
        index["retention"]["oldest_report"],
        "2026-09-01T00:00:00.000Z"
    );
    assert_eq!(index["retention"]["last_prune"]["removed"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_stops_cleanly_on_sigterm_and_the_next_start_finishes_it() {
    // A backlog: 20,000 routine drift checks from September, written through a server whose
    // clock reads then.
    let started = std::time::Instant::now();
    let (app, _clock, _) = app_with(RetentionPolicy::default()).await;
    let app = std::sync::Arc::new(app);
    for host in 0..50 {
        let body = json!({"server_group": "g", "host": format!("h{host}"), "status": "synced"});
        expect(app.pipeline(body).await, 201).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let app = std::sync::Arc::clone(&app);
        tasks.spawn(async move {
            for n in (worker..20_000).step_by(32) {
                let body = json!({"server_group": "g", "host": format!("h{}", n % 50), "status": "synced"});
                assert!(app.cron(body).await.status().is_success());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let app = std::sync::Arc::into_inner(app).expect("the only handle");
    let db = app.db_path.clone();
    let _dir = app.stop().await;
    eprintln!("backlog written in {:?}", started.elapsed());

    // The real binary, on the system clock: everything from September is past 30 days.
    let mut server = crate::helpers::ServerProcess::start(&db);
    let client = reqwest::Client::new();
    let url = server.url("/admin/prune");
    let pass = tokio::spawn(async move { client.post(url).send().await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !server
        .logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("retention removed reports"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no pruning transaction"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    server.signal(nix::sys::signal::Signal::SIGTERM);

    assert_eq!(server.wait(), Some(0));
    let answered = pass
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(answered.status(), 200);
    let summary: Value = answered.json().await.unwrap();
    assert_eq!(summary["interrupted"], true, "{summary}");
    let removed = summary["removed"].as_u64().unwrap();
    assert!(removed > 0 && removed < 19_000, "{summary}");
    let (code, out) = verify(&db);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(", {removed} rows removed by retention;")),
        "{out}"
    );

    // The next start picks up where it stopped.
    let server = crate::helpers::ServerProcess::start(&db);
    let rest: Value = reqwest::Client::new()
        .post(server.url("/admin/prune"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["interrupted"], false);
    assert!(rest["removed"].as_u64().unwrap() > 0, "{rest}");
    assert_eq!(verify(&db).0, 0);
}

/// A change keeps its tier after an older change of its host is removed: tiers are decided
/// when a report is written, not by comparing with whatever rows are left.
#[tokio::test]
async fn a_change_stays_a_change_after_the_change_before_it_is_removed() {
    let (app, clock, start) = app_with(keep(1, 10, 1)).await;
    // Day 0: the deployment the host's state keeps resting on (synced, no files).
    expect(
        app.pipeline(json!({"server_group": "g", "host": "h", "status": "synced"}))
            .await,
        201,
    )
    .await;
    // Day 1: a drift (a change); day 8: back in sync (a change, against day 1).
    clock.advance(days(1));
    let drift =
        json!({"server_group": "g", "host": "h", "status": "out_of_sync", "changed_files": ["/a"]});
    let drift_id = expect(app.cron(drift).await, 200).await["report_id"]
        .as_i64()
        .unwrap();
    clock.advance(days(7));
    let fixed = json!({"server_group": "g", "host": "h", "status": "synced", "changed_files": []});
    let fixed_id = expect(app.cron(fixed.clone()).await, 200).await["report_id"]
        .as_i64()
        .unwrap();
    // Routine checks after it, so no pointer rests on day 8's report.
    for _ in 0..4 {
        clock.advance(days(1));
        expect(app.cron(fixed.clone()).await, 200).await;
    }
    clock.set(start.checked_add(days(13)).unwrap());

    prune(&app).await;
    let ids: HashSet<i64> = all_rows(&app)
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert!(!ids.contains(&drift_id), "day 1's change is past 10 days");
    assert!(ids.contains(&fixed_id), "day 8's change is 5 days old");
    // Next pass: day 8's report now follows day 0's (synced, no files) among the rows left;
    // it is still the change it was when written.
    clock.advance(hours(12));
    prune(&app).await;
    let ids: HashSet<i64> = all_rows(&app)
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert!(
        ids.contains(&fixed_id),
        "a change younger than --retain-changes is kept"
    );
    assert_eq!(verify(&app.db_path).0, 0);
}
