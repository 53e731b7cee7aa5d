//! The group-commit writer: reports sent together share transactions, each answer shows the
//! state its own report left, the materialised status rows stay what the reports make of
//! them, and a full queue is refused at once.

use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::helpers::*;

/// Every host's row as the current_status view derives it from the reports, in the shape of
/// GET /status.
async fn rows_from_the_view(app: &TestApp) -> Value {
    let sql = if on_postgres() {
        r#"SELECT coalesce(json_agg(json_build_object(
                 'project_name', project_name, 'repo_name', repo_name,
                 'server_group', server_group, 'server_type', server_type,
                 'environment', environment, 'host', host, 'status', status,
                 'changed_files_count', changed_files_count,
                 'changed_files', changed_files::json,
                 'validation_status', validation_status,
                 'validation_message', validation_message,
                 'last_pipeline_run', last_pipeline_run, 'last_cron_check', last_cron_check,
                 'commit_sha', commit_sha, 'branch', branch, 'updated_by', updated_by,
                 'timestamp', timestamp, 'status_since', status_since,
                 'stale', false,
                 'report_due_by', to_char(drift_received_at::timestamp + interval '3600 seconds',
                                          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                 ORDER BY server_group, host)::text, '[]')
             FROM current_status"#
    } else {
        "SELECT json_group_array(json_object(
                 'project_name', project_name, 'repo_name', repo_name,
                 'server_group', server_group, 'server_type', server_type,
                 'environment', environment, 'host', host, 'status', status,
                 'changed_files_count', changed_files_count,
                 'changed_files', json(changed_files),
                 'validation_status', validation_status,
                 'validation_message', validation_message,
                 'last_pipeline_run', last_pipeline_run, 'last_cron_check', last_cron_check,
                 'commit_sha', commit_sha, 'branch', branch, 'updated_by', updated_by,
                 'timestamp', timestamp, 'status_since', status_since,
                 'stale', json('false'),
                 'report_due_by', strftime('%Y-%m-%dT%H:%M:%fZ', drift_received_at, '+3600 seconds')))
             FROM (SELECT * FROM current_status ORDER BY server_group, host)"
    };
    let text = app.db().text(sql).await;
    serde_json::from_str(&text).unwrap()
}

/// A small deterministic generator (xorshift), so the mix is the same on every run.
struct Mix(u64);

impl Mix {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }

    /// Report `n` of a mix of pipeline, cron and v1 reports for `hosts`: its time runs a
    /// minute ahead per report with up to 40 minutes of jitter, so most reports move some
    /// part of their host's state and many arrive late for another part.
    fn report(&mut self, n: u64, hosts: &[&str]) -> (&'static str, Value) {
        let host = hosts[self.next(hosts.len() as u64) as usize];
        let minute = 600 + n - self.next(40);
        let time = format!("2026-04-26T{:02}:{:02}:00Z", minute / 60, minute % 60);
        let status = ["synced", "out_of_sync", "failed", "unknown"][self.next(4) as usize];
        let files: Vec<String> = (0..self.next(3)).map(|i| format!("/etc/{n}/{i}")).collect();
        match self.next(3) {
            0 => (
                "/status/pipeline",
                json!({"server_group": "g", "host": host, "status": status,
                       "changed_files": files, "commit_sha": format!("c{n}"),
                       "validation_message": "line one\nline \"two\"\t\u{1}",
                       "last_pipeline_run": time}),
            ),
            1 if self.next(4) == 0 => (
                "/status/cron",
                json!({"server_group": "g", "host": host, "last_cron_check": time}),
            ),
            1 => (
                "/status/cron",
                json!({"server_group": "g", "host": host, "status": status,
                       "changed_files": files, "last_cron_check": time}),
            ),
            _ => (
                "/api/status",
                json!({"repo": "g", "server": host, "sync_status": status.to_uppercase(),
                       "files": files, "drift_count": n % 5, "last_check": time}),
            ),
        }
    }
}

#[tokio::test]
async fn concurrent_reports_leave_every_status_row_as_the_reports_make_it() {
    let app = spawn_app().await;
    let hosts = ["a", "b", "c", "d"];
    for host in hosts {
        expect(
            app.pipeline(pipeline_at("g", host, "synced", "2026-04-26T09:00:00Z"))
                .await,
            201,
        )
        .await;
    }
    let mut mix = Mix(0x9e37_79b9_7f4a_7c15);
    let reports: Vec<(&str, Value)> = (0..400).map(|n| mix.report(n, &hosts)).collect();

    // Sent 50 at a time over four hosts: groups hold several reports of one host.
    for wave in reports.chunks(50) {
        let mut posts = JoinSet::new();
        for (path, body) in wave {
            let request = app.client.post(app.url(path)).json(body);
            posts.spawn(async move { request.send().await.unwrap() });
        }
        while let Some(answer) = posts.join_next().await {
            let answer = answer.unwrap();
            assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
        }
        assert_eq!(
            app.get_json("/status").await,
            rows_from_the_view(&app).await
        );
    }
    assert_eq!(app.db().scalar("SELECT count(*) FROM reports").await, 404);
}

#[tokio::test]
async fn each_answer_shows_the_state_its_own_report_left() {
    let app = spawn_app().await;
    expect(
        app.pipeline(pipeline_at("g", "a", "synced", "2026-04-26T09:00:00Z"))
            .await,
        201,
    )
    .await;
    let mut mix = Mix(7);
    for n in 0..80 {
        let (path, body) = mix.report(n, &["a"]);
        let answer = expect(app.post_json(path, &body).await, 200).await;
        let view = rows_from_the_view(&app).await[0].clone();
        if path == "/api/status" {
            let status = view["status"].as_str().unwrap().to_uppercase();
            assert_eq!(answer["status"]["sync_status"], status.as_str());
            assert_eq!(
                answer["status"]["files"].as_array().unwrap().len(),
                view["changed_files_count"].as_u64().unwrap() as usize
            );
        } else {
            assert_eq!(answer["status"], view, "report {n}: {body}");
        }
    }
}

#[tokio::test]
async fn a_full_write_queue_is_refused_at_once_with_retry_after() {
    if sqlite_only("holds SQLite's write lock to stall the writer") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, |settings| settings.write_queue = 1).await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    // An operator's sqlite3 holds the write lock: the writer waits in BEGIN IMMEDIATE with
    // the group it took, one more report fits in the queue, the rest cannot wait.
    let operator = app.db().hold_write_lock().await;

    let mut posts = JoinSet::new();
    for n in 0..6 {
        let mut body = seed_pipeline();
        body["host"] = json!(format!("h{n}"));
        let request = app.client.post(app.url("/status/pipeline")).json(&body);
        posts.spawn(async move { request.send().await.unwrap() });
    }
    // At most three are in the writer's hands (a group of two and one queued): the first
    // three answers come while the lock is still held, and each is a refusal.
    let mut refused = 0;
    while refused < 3 {
        let answer = posts.join_next().await.unwrap().unwrap();
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()["retry-after"], "1");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["success"], false);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("waiting to be written"),
            "{body}"
        );
        refused += 1;
    }

    crate::helpers::db::Db::release_write_lock(operator).await;
    let mut accepted = 0;
    while let Some(answer) = posts.join_next().await {
        match answer.unwrap().status().as_u16() {
            201 => accepted += 1,
            503 => refused += 1,
            other => panic!("answered {other}"),
        }
    }
    assert_eq!(refused + accepted, 6);
    // Exactly the acknowledged reports are stored.
    assert_eq!(
        app.db().scalar("SELECT count(*) FROM reports").await,
        1 + accepted
    );
}
