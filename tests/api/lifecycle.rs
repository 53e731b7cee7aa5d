//! The real binary: configuration, signals, restarts and kill -9.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::helpers::{binary, seed_pipeline, ServerProcess};

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(url).send().await.expect("GET");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> reqwest::Response {
    client.post(url).json(body).send().await.expect("POST")
}

/// Waits (bounded) until a log line contains `needle`.
fn wait_for_log(server: &ServerProcess, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains(needle))
    {
        assert!(Instant::now() < deadline, "no log line with {needle:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn bare_binary_serves_with_the_default_database_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(binary());
    command
        .current_dir(dir.path())
        .env("GITOPS_STATUS_LISTEN", "127.0.0.1:0")
        .env_remove("GITOPS_STATUS_DB");
    let server = ServerProcess::start_command(command);
    let client = reqwest::Client::new();

    let response = post(&client, server.url("/status/pipeline"), &seed_pipeline()).await;

    assert_eq!(response.status(), 201);
    assert!(dir.path().join("data/gitops-status.db").exists());
}

#[tokio::test]
async fn seed_api_host_and_api_port_are_honoured() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .env_remove("GITOPS_STATUS_LISTEN")
        .env("API_HOST", "127.0.0.1")
        .env("API_PORT", port.to_string())
        .env("GITOPS_STATUS_DB", dir.path().join("x.db"));

    let server = ServerProcess::start_command(command);

    assert_eq!(server.address.port(), port);
    let health = get_json(&reqwest::Client::new(), server.url("/health")).await;
    assert_eq!(health, json!({"status": "ok"}));
}

#[test]
fn bad_configuration_stops_start_up_naming_the_option() {
    let output = Command::new(binary())
        .args(["serve", "--listen", "nonsense"])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--listen / GITOPS_STATUS_LISTEN"),
        "{stderr}"
    );
    // A retention duration from the environment, as the chart sets it.
    let output = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("GITOPS_STATUS_RETAIN_REPORTS", "30days")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "--retain-reports / GITOPS_STATUS_RETAIN_REPORTS: \"30days\" is not a duration"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn restart_keeps_state_and_sigterm_closes_the_database_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/folders/state.db");
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start(&db);
    assert_eq!(
        post(&client, server.url("/status/pipeline"), &seed_pipeline())
            .await
            .status(),
        201
    );
    let cron = json!({"server_group": "rsyslog-prod", "host": "rsyslog-01", "status": "out_of_sync",
                      "changed_files": ["/etc/rsyslog.conf"], "last_cron_check": "2026-04-26T11:00:00Z"});
    assert_eq!(
        post(&client, server.url("/status/cron"), &cron)
            .await
            .status(),
        200
    );
    let status = get_json(&client, server.url("/status")).await;
    let history = get_json(&client, server.url("/history")).await;

    server.signal(Signal::SIGTERM);

    assert_eq!(server.wait(), Some(0));
    let wal = db.with_extension("db-wal");
    assert!(
        !wal.exists(),
        "a clean close checkpoints and removes the WAL"
    );
    let server = ServerProcess::start(&db);
    assert_eq!(get_json(&client, server.url("/status")).await, status);
    assert_eq!(get_json(&client, server.url("/history")).await, history);
}

#[tokio::test]
async fn sigint_also_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(&dir.path().join("x.db"));

    server.signal(Signal::SIGINT);

    assert_eq!(server.wait(), Some(0));
}

/// Reads one HTTP/1.1 response (headers and Content-Length body) from a blocking stream.
fn read_response(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "connection closed mid-response: {}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let mut server = ServerProcess::start(&db);
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = seed_pipeline().to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    // With `Expect: 100-continue` the server says when the handler has started reading the
    // body: from then on the request is in flight.
    let request = format!(
        "POST /status/pipeline HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();

    server.signal(Signal::SIGTERM);
    wait_for_log(&server, "shutting down");
    // The listener is closed: new clients are refused while the request is still open.
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(server.address).is_ok() {
        assert!(Instant::now() < deadline, "listener still accepting");
        std::thread::sleep(Duration::from_millis(5));
    }
    stream.write_all(tail.as_bytes()).unwrap();

    let response = read_response(&mut stream);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    drop(stream);
    assert_eq!(server.wait(), Some(0));
    let server = ServerProcess::start(&db);
    let history = get_json(&reqwest::Client::new(), server.url("/history")).await;
    assert_eq!(history.as_array().unwrap().len(), 1);
}

#[test]
fn the_writer_runs_with_wal_and_synchronous_full() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("x.db"));

    let logs = server.logs.lock().unwrap().clone();
    let opened: Value = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["message"] == "database opened")
        .expect("a 'database opened' log line");
    assert_eq!(opened["journal_mode"], "wal");
    assert_eq!(opened["synchronous"], "full");
    assert_eq!(opened["foreign_keys"], true);
    assert_eq!(opened["busy_timeout_ms"], 5000);
}

/// Runs 8 writers against the server until `acks` reports are acknowledged, then kills the
/// server with SIGKILL while they are still writing. Returns every acknowledged (id, commit).
async fn write_until_killed(
    server: &mut ServerProcess,
    cycle: usize,
    acks: usize,
) -> Vec<(i64, String)> {
    let url = server.url("/status/pipeline");
    let acknowledged: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let (progress, mut progressed) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut writers = Vec::new();
    for writer in 0..8 {
        let (url, acknowledged, progress) = (url.clone(), acknowledged.clone(), progress.clone());
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0.. {
                let commit = format!("c{cycle}-w{writer}-{i}");
                let body = json!({"server_group": "load", "host": format!("h{writer}"),
                                  "status": "synced", "commit_sha": commit});
                let Ok(response) = client.post(&url).json(&body).send().await else {
                    break;
                };
                if !response.status().is_success() {
                    break;
                }
                let Ok(answer) = response.json::<Value>().await else {
                    break;
                };
                let id = answer["report_id"].as_i64().expect("report id");
                acknowledged.lock().await.push((id, commit));
                let _ = progress.send(());
            }
        }));
    }
    drop(progress);
    for _ in 0..acks {
        progressed.recv().await.expect("writers are acknowledged");
    }
    server.signal(Signal::SIGKILL);
    assert_eq!(server.wait(), None, "killed by a signal");
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await.clone();
    acknowledged
}

/// Every report in the history, by id: its commit_sha.
async fn stored_commits(server: &ServerProcess) -> std::collections::HashMap<i64, String> {
    let client = reqwest::Client::new();
    let mut stored = std::collections::HashMap::new();
    let mut before = i64::MAX;
    loop {
        let page = get_json(
            &client,
            server.url(&format!("/history?limit=1000&before={before}")),
        )
        .await;
        let rows = page.as_array().unwrap();
        let Some(last) = rows.last() else { break };
        before = last["id"].as_i64().unwrap();
        for row in rows {
            stored.insert(
                row["id"].as_i64().unwrap(),
                row["commit_sha"].as_str().unwrap_or_default().to_owned(),
            );
        }
    }
    stored
}

/// Proves that a 2xx comes after the commit, over several crash cycles on one database:
/// kill -9 under concurrent write load, restart, check every acknowledged report, repeat.
/// (kill -9 leaves the OS page cache intact, so this cannot tell synchronous=FULL from NORMAL;
/// power loss could. The pragma is asserted above.) The chain must verify after every crash.
#[tokio::test]
async fn kill_9_under_write_load_loses_no_acknowledged_report() {
    const CYCLES: usize = 5;
    const ACKS_PER_CYCLE: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let mut acknowledged = Vec::new();

    for cycle in 0..CYCLES {
        let mut server = ServerProcess::start(&db);
        if cycle > 0 {
            // What the previous crash left is all there before new writes start.
            let stored = stored_commits(&server).await;
            for (id, commit) in &acknowledged {
                assert_eq!(
                    stored.get(id),
                    Some(commit),
                    "cycle {cycle}: report {id} lost"
                );
            }
        }
        acknowledged.extend(write_until_killed(&mut server, cycle, ACKS_PER_CYCLE).await);
        let verify = std::process::Command::new(binary())
            .args(["verify", "--db"])
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "cycle {cycle}: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }

    let server = ServerProcess::start(&db);
    let stored = stored_commits(&server).await;
    for (id, commit) in &acknowledged {
        assert_eq!(
            stored.get(id),
            Some(commit),
            "acknowledged report {id} lost"
        );
    }
    assert!(acknowledged.len() >= CYCLES * ACKS_PER_CYCLE);
    eprintln!(
        "kill -9: {CYCLES} crash cycles, {} acknowledged reports checked, {} rows stored",
        acknowledged.len(),
        stored.len()
    );
}
