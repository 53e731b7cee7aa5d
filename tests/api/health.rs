use serde_json::json;

use crate::helpers::{expect, expect_error, on_postgres, seed_pipeline, spawn_app, sqlite_only};

#[tokio::test]
async fn health_and_ready_answer_200() {
    let app = spawn_app().await;

    assert_eq!(
        expect(app.get("/health").await, 200).await,
        json!({"status": "ok"})
    );
    assert_eq!(
        expect(app.get("/ready").await, 200).await,
        json!({"status": "ready"})
    );
    let index = expect(app.get("/").await, 200).await;
    assert_eq!(index["service"], "gitops-status");
}

#[tokio::test]
async fn sabotaged_database_gives_clean_json_errors_and_not_ready() {
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;

    // Someone with sqlite3 drops the schema under the running server.
    app.db()
        .execute("DROP VIEW current_status; DROP TABLE hosts; DROP TABLE reports;")
        .await
        .expect("sabotage");

    let details = expect_error(app.get("/status").await, 500).await;
    assert!(details.is_empty());
    let body = expect(app.get("/history").await, 500).await;
    assert_eq!(
        body["error"], "internal error; the server log has the details",
        "no SQL detail leaks to clients"
    );
    expect_error(app.pipeline(seed_pipeline()).await, 500).await;
    expect_error(app.get("/status/rsyslog-prod/rsyslog-01").await, 500).await;
    let ready = expect(app.get("/ready").await, 503).await;
    assert_eq!(ready["success"], json!(false));
    assert!(
        ready["error"].as_str().unwrap().contains(if on_postgres() {
            "does not exist"
        } else {
            "no such table"
        }),
        "{ready}"
    );
    assert_eq!(
        expect(app.get("/health").await, 200).await,
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let settings = gitops_status::config::Settings::new("127.0.0.1:0".parse().unwrap(), path);

    let err = match gitops_status::app::Application::build(&settings).await {
        Ok(_) => panic!("started on garbage"),
        Err(err) => format!("{err:#}"),
    };

    assert!(err.contains("not a database"), "{err}");
}

#[tokio::test]
async fn writes_wait_for_an_outside_lock_then_answer_503_while_reads_go_on() {
    if sqlite_only("holds SQLite's write lock") {
        return;
    }
    let app = spawn_app().await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    // An operator's sqlite3 session holds the write lock past the 5 s busy timeout.
    let operator = app.db().hold_write_lock().await;

    let details = expect_error(app.pipeline(seed_pipeline()).await, 503).await;
    assert!(details.is_empty());
    assert_eq!(app.get_json("/status").await.as_array().unwrap().len(), 1);

    crate::helpers::db::Db::release_write_lock(operator).await;
    expect(app.pipeline(seed_pipeline()).await, 200).await;
    assert_eq!(app.db().scalar("SELECT count(*) FROM reports").await, 2);
}

/// A fault injected into a test build (`GITOPS_STATUS_TEST_FAULT`, read only with debug
/// assertions): the writer panics on a report for one host. The writer holds the chain's tip
/// and the queue, so it is not restarted: `/ready` turns 503 naming the cause, and the process
/// exits non-zero for its orchestrator to restart it. Nothing was acknowledged that is not
/// stored.
#[tokio::test]
async fn a_writer_that_panics_fails_ready_with_the_cause_and_the_process_exits_non_zero() {
    use crate::helpers::{binary, ServerProcess};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let mut command = std::process::Command::new(binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2", "--db"])
        .arg(&db)
        .env("GITOPS_STATUS_TEST_FAULT", "writer-panics-on-host:doomed");
    let mut server = ServerProcess::start_command(command);
    let client = reqwest::Client::new();
    let post = |host: &str| {
        let mut body = seed_pipeline();
        body["host"] = json!(host);
        client
            .post(server.url("/status/pipeline"))
            .json(&body)
            .send()
    };
    assert_eq!(post("fine").await.unwrap().status(), 201);

    // The writer panics with this report in hand: the request is refused, not acknowledged.
    let answer = post("doomed").await.unwrap();
    assert_eq!(answer.status(), 503);

    // Until the process is gone, /ready says why (the server finishes in-flight requests
    // first, so it may already have stopped listening).
    if let Ok(ready) = client.get(server.url("/ready")).send().await {
        assert_eq!(ready.status(), 503);
        let body: serde_json::Value = ready.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        // The cause once the supervisor has recorded it; in the moment before, that the
        // writer stopped (its queue is closed).
        assert!(
            error.contains("the writer task panicked: injected fault")
                || error.contains("the writer task has stopped"),
            "{body}"
        );
    }
    assert_eq!(server.wait(), Some(1), "a non-zero exit status");
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("a background task the service cannot run without ended"),
        "{logs}"
    );
    assert!(
        logs.contains("injected fault"),
        "the cause is logged: {logs}"
    );
    // What was acknowledged is stored, and the chain verifies.
    let verify = std::process::Command::new(binary())
        .args(["verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(out.starts_with("verified 1 row "), "{out}");
}
