//! Backups while the server writes (`gitops-status backup`, `GET /admin/backup`), the
//! README's restore drill, and who may use the admin endpoints.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::helpers::{
    binary, expect, expect_error, on_postgres, spawn_app, spawn_app_with, sqlite_only, token_file,
    ServerProcess,
};
use crate::retention::verify;

fn report(n: u64) -> Value {
    json!({"server_group": format!("group-{}", n % 3), "host": format!("host-{}", n % 40),
           "status": if n.is_multiple_of(7) { "out_of_sync" } else { "synced" },
           "changed_files": if n.is_multiple_of(7) { json!(["/etc/a"]) } else { json!([]) },
           "validation_message": "x".repeat(300)})
}

/// Rows in a copy, read with sqlite3 as an operator would.
async fn rows_in(db: &Path) -> i64 {
    crate::helpers::db::Db::open(db)
        .scalar("SELECT count(*) FROM reports")
        .await
}

#[tokio::test]
async fn backups_taken_while_reports_are_written_verify() {
    if sqlite_only("copies the SQLite file; backup_on_postgres_points_at_pg_dump is PostgreSQL's") {
        return;
    }
    let app = Arc::new(spawn_app().await);
    for n in 0..200 {
        assert!(app.pipeline(report(n)).await.status().is_success());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(200));
    let mut writers = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (app, stop, written) = (Arc::clone(&app), Arc::clone(&stop), Arc::clone(&written));
        writers.spawn(async move {
            let mut n = 1000 * (worker + 1);
            while !stop.load(Ordering::Relaxed) {
                assert!(app.pipeline(report(n)).await.status().is_success());
                written.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let by_command = dir.path().join("by-command.db");
    let by_http = dir.path().join("by-http.db");

    let output = Command::new(binary())
        .args(["backup", "--db"])
        .arg(&app.db_path)
        .arg("--out")
        .arg(&by_command)
        .output()
        .unwrap();
    let response = app.get("/admin/backup").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.sqlite3"
    );
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"gitops-status-"));
    let length: u64 = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.bytes().await.unwrap();
    std::fs::write(&by_http, &body).unwrap();
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(body.len() as u64, length);
    let total = written.load(Ordering::Relaxed) as i64;
    assert!(total > 200);
    for copy in [&by_command, &by_http] {
        let (code, out) = verify(copy);
        assert_eq!(code, 0, "{}: {out}", copy.display());
        let rows = rows_in(copy).await;
        assert!((200..=total).contains(&rows), "{rows} of {total}");
        // A copy stands alone: no -wal or -shm needed.
        assert!(!copy.with_extension("db-wal").exists());
    }
    // The command refuses to overwrite a file.
    let again = Command::new(binary())
        .args(["backup", "--db"])
        .arg(&app.db_path)
        .arg("--out")
        .arg(&by_command)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_restore_drill_of_the_readme() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gitops-status.db");
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start(&db);
    for n in 0..50 {
        let response = client
            .post(server.url("/status/pipeline"))
            .json(&report(n))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    let status_at_backup = get(&client, server.url("/status")).await;
    let history_at_backup = get(&client, server.url("/history?limit=1000")).await;
    // The CronJob's download.
    let backup = dir.path().join("backup.db");
    let copy = client
        .get(server.url("/admin/backup"))
        .send()
        .await
        .unwrap();
    assert_eq!(copy.status(), 200);
    std::fs::write(&backup, copy.bytes().await.unwrap()).unwrap();
    // Later reports, which the restore will lose.
    for n in 50..60 {
        client
            .post(server.url("/status/pipeline"))
            .json(&report(n))
            .send()
            .await
            .unwrap();
    }
    assert_ne!(get(&client, server.url("/status")).await, status_at_backup);

    // 1. Stop the server.
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait(), Some(0));
    // 2. Replace the database file with the copy; drop any -wal and -shm of the old one.
    std::fs::copy(&backup, &db).unwrap();
    for companion in ["gitops-status.db-wal", "gitops-status.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(companion));
    }
    // 3. Check the copy, and start.
    assert_eq!(verify(&db).0, 0);
    let server = ServerProcess::start(&db);

    assert_eq!(get(&client, server.url("/status")).await, status_at_backup);
    assert_eq!(
        get(&client, server.url("/history?limit=1000")).await,
        history_at_backup
    );
    let response = client
        .post(server.url("/status/pipeline"))
        .json(&report(99))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "the chain goes on from the copy's head"
    );
    assert_eq!(verify(&db).0, 0);
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_scope_when_there_are_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (file, tokens) = token_file(
        dir.path(),
        &[
            ("ci", &["write:*"]),
            ("grafana", &["read"]),
            ("ops", &["admin"]),
        ],
    );
    let app = spawn_app_with(dir, |s| s.tokens = Some(file)).await;

    for (method, path) in [
        (reqwest::Method::POST, "/admin/prune"),
        (reqwest::Method::GET, "/admin/backup"),
    ] {
        let send = |token: Option<&str>| {
            let mut request = app.client.request(method.clone(), app.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        expect_error(send(None).await.unwrap(), 401).await;
        for token in ["ci", "grafana"] {
            let response = send(Some(&tokens[token])).await.unwrap();
            assert!(response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("scope=\"admin\""));
            expect_error(response, 403).await;
        }
        let response = send(Some(&tokens["ops"])).await.unwrap();
        // A PostgreSQL database is backed up with pg_dump: the endpoint says so.
        let expected = if path == "/admin/backup" && on_postgres() {
            501
        } else {
            200
        };
        assert_eq!(response.status(), expected, "{method} {path}");
    }
    let pass = expect(
        app.post_as(&tokens["ops"], "/admin/prune", &json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(pass["removed"], 0);
    assert_eq!(pass["policy"]["retain_reports"], "30d");
}

#[tokio::test]
async fn backup_on_postgres_points_at_pg_dump() {
    let app = spawn_app().await;
    if !on_postgres() {
        // The SQLite file is streamed: backups_taken_while_reports_are_written_verify.
        return;
    }
    let body = expect(app.get("/admin/backup").await, 501).await;
    assert!(
        body["error"].as_str().unwrap().contains("pg_dump"),
        "{body}"
    );
}
