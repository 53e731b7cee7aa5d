//! Several replicas on one PostgreSQL database (the real binary, twice): writers through both
//! make one chain, every acknowledged report is there exactly once even when a replica is
//! killed with SIGKILL under load, and a read on one replica sees what the other just wrote.
//! On SQLite a second server on the same file is refused instead (import's tests).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::helpers::{binary, db_for, on_postgres, ServerProcess};

/// A pipeline report whose `ci_run` (an unknown member, kept verbatim in raw_body) names it.
fn report(run: &str, host: usize) -> Value {
    json!({
        "server_group": "replicas",
        "host": format!("h{host:02}"),
        "status": if host.is_multiple_of(3) { "out_of_sync" } else { "synced" },
        "changed_files": if host.is_multiple_of(3) { json!(["/etc/app.conf"]) } else { json!([]) },
        "commit_sha": format!("c{}", host % 4),
        "ci_run": run,
    })
}

/// Whether writer `run` (named `w{writer}-{n}`) posted through replica b (the odd writers).
fn through_b(run: &str) -> bool {
    ["w1-", "w3-", "w5-"].iter().any(|w| run.starts_with(w))
}

/// Posts a report; Some(report id) when it was acknowledged (2xx).
async fn send(client: &reqwest::Client, base: &str, run: &str, host: usize) -> Option<i64> {
    let response = client
        .post(format!("{base}/status/pipeline"))
        .json(&report(run, host))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    body["report_id"].as_i64()
}

fn verify(db: &Path) -> (i32, String) {
    let output = std::process::Command::new(binary())
        .arg("verify")
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn two_replicas_keep_one_chain_and_lose_nothing_acknowledged_when_one_is_killed() {
    if !on_postgres() {
        // One SQLite file has one writer: a second server is refused
        // (import::one_writer_per_file_a_running_server_blocks_an_import_and_a_second_server).
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = db_for(dir.path()).await;
    let a = ServerProcess::start(&db);
    let b = ServerProcess::start(&db);
    let (url_a, url_b) = (a.url(""), b.url(""));
    let client = reqwest::Client::new();

    // Writers through both replicas at once, the same hosts from both sides.
    let acked: Arc<std::sync::Mutex<HashMap<String, i64>>> = Arc::default();
    let mut writers = JoinSet::new();
    for writer in 0..6 {
        let (client, acked) = (client.clone(), Arc::clone(&acked));
        let base = if writer % 2 == 0 {
            url_a.clone()
        } else {
            url_b.clone()
        };
        writers.spawn(async move {
            for n in 0..60 {
                let run = format!("w{writer}-{n}");
                if let Some(id) = send(&client, &base, &run, (writer * 7 + n) % 20).await {
                    acked.lock().unwrap().insert(run, id);
                }
            }
        });
    }
    // Kill replica b once it has acknowledged some of its writers' reports, while they go on.
    let killer = {
        let acked = Arc::clone(&acked);
        async move {
            loop {
                let from_b = acked
                    .lock()
                    .unwrap()
                    .keys()
                    .filter(|run| through_b(run))
                    .count();
                if from_b >= 40 {
                    break;
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            b.signal(nix::sys::signal::Signal::SIGKILL);
            b
        }
    };
    let mut b = killer.await;
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    b.wait();

    let acked = acked.lock().unwrap().clone();
    let through_b_acked = acked.keys().filter(|run| through_b(run)).count();
    assert!(
        (40..180).contains(&through_b_acked),
        "b acknowledged {through_b_acked} of its 180 before it was killed"
    );
    // Replica a went on through b's death and the lock b held: every one of its 180 writes
    // was acknowledged.
    assert_eq!(acked.len() - through_b_acked, 180);

    // Every acknowledged report is stored once, under the id it was answered with; nothing is
    // stored twice (a report b wrote but never answered may be there, once).
    let app = crate::helpers::db::Db::Postgres(db.to_string_lossy().into_owned());
    let stored = app
        .texts(
            "SELECT (raw_body::json ->> 'ci_run') || ' ' || id FROM reports
             WHERE kind = 'pipeline' ORDER BY id",
        )
        .await;
    let mut by_run: HashMap<String, Vec<i64>> = HashMap::new();
    for line in &stored {
        let (run, id) = line.split_once(' ').unwrap();
        by_run
            .entry(run.to_owned())
            .or_default()
            .push(id.parse().unwrap());
    }
    for (run, id) in &acked {
        assert_eq!(by_run.get(run), Some(&vec![*id]), "{run}");
    }
    assert!(by_run.values().all(|ids| ids.len() == 1));
    // One chain: ids 1..=n with no gap, in commit order, each linked to the one before.
    let (rows, max) = (
        app.scalar("SELECT count(*) FROM reports").await,
        app.scalar("SELECT max(id) FROM reports").await,
    );
    assert_eq!(rows, max, "no id was skipped");
    let (code, out) = verify(&db);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{rows} rows")), "{out}");

    // The surviving replica serves what both wrote.
    let status: Vec<Value> = client
        .get(format!("{url_a}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status.len(), 20);
    drop(a);
}

#[tokio::test]
async fn a_read_on_one_replica_sees_what_the_other_just_wrote() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = db_for(dir.path()).await;
    let a = ServerProcess::start(&db);
    let b = ServerProcess::start(&db);
    let client = reqwest::Client::new();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            body
        }
    };

    send(&client, &a.url(""), "first", 1).await.unwrap();
    // b renders (and caches) the fleet as it is now.
    assert_eq!(get(b.url("/status")).await.as_array().unwrap().len(), 1);
    send(&client, &a.url(""), "second", 2).await.unwrap();
    // Its cached rendering is older than the database: b renders again.
    assert_eq!(get(b.url("/status")).await.as_array().unwrap().len(), 2);

    // An Idempotency-Key used on a holds on b: the same answer, no second row.
    let keyed = |base: String| {
        let client = client.clone();
        async move {
            let response = client
                .post(format!("{base}/status/pipeline"))
                .header("Idempotency-Key", "deploy-7")
                .json(&report("keyed", 3))
                .send()
                .await
                .unwrap();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|v| v == "true");
            let body: Value = response.json().await.unwrap();
            (replayed, body)
        }
    };
    // Both at once: whichever replica's writer takes the key second finds it, inside its
    // locked transaction or on its read pool's fast path.
    let ((first_replayed, first), (again_replayed, again)) =
        tokio::join!(keyed(a.url("")), keyed(b.url("")));
    assert!(
        first_replayed != again_replayed,
        "one was written, one replayed: {first_replayed} {again_replayed}"
    );
    assert_eq!(first, again);
    let rows = crate::helpers::db::Db::Postgres(db.to_string_lossy().into_owned())
        .scalar("SELECT count(*) FROM reports")
        .await;
    assert_eq!(rows, 3);
}

#[tokio::test]
async fn a_replica_whose_clock_runs_behind_never_orders_a_report_before_an_earlier_one() {
    use gitops_status::domain::{Clock, Period, Timestamp};
    if !on_postgres() {
        return;
    }
    // Two replicas on one database (in-process, each with a clock the test sets): a's runs
    // ten minutes ahead of b's.
    let start = Timestamp::parse_rfc3339("2026-12-07T10:00:00Z").unwrap();
    let (ahead, behind) = (
        Clock::manual(start.checked_add(Period::from_secs(600).unwrap()).unwrap()),
        Clock::manual(start),
    );
    let dir_a = tempfile::tempdir().unwrap();
    let db = db_for(dir_a.path()).await;
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::write(
        dir_b.path().join("postgres-url"),
        db.to_string_lossy().as_bytes(),
    )
    .unwrap();
    let a = crate::helpers::spawn_app_with(dir_a, move |s| s.clock = ahead).await;
    let b = crate::helpers::spawn_app_with(dir_b, move |s| s.clock = behind).await;

    let body = |status: &str| json!({"server_group": "g", "host": "h", "status": status});
    crate::helpers::expect(a.pipeline(body("synced")).await, 201).await;
    // Sent after a's report, through b: it must win, though b's clock says it came first.
    let answer = crate::helpers::expect(b.pipeline(body("failed")).await, 200).await;
    assert_eq!(answer["status"]["status"], "failed", "{answer}");
    assert_eq!(a.host("g", "h").await["status"], "failed");
    let history = a.history("").await;
    assert!(
        history[0]["received_at"].as_str() >= history[1]["received_at"].as_str(),
        "the chain's times never go backwards: {history:?}"
    );
}
