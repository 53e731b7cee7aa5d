//! Who may write what: bearer tokens from a token file, scoped by server_group.

use std::collections::HashMap;
use std::process::Command;

use serde_json::json;

use crate::helpers::{
    binary, expect, expect_error, seed_pipeline, spawn_app, spawn_app_with, token_file, TestApp,
};

/// A server with tokens: `rsyslog-ci` (write:rsyslog-*), `splunk-ci` (write:splunk-*),
/// `grafana` (read), `ops` (admin).
async fn spawn_with_tokens(read_requires_token: bool) -> (TestApp, HashMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let (path, tokens) = token_file(
        dir.path(),
        &[
            ("rsyslog-ci", &["write:rsyslog-*"]),
            ("splunk-ci", &["write:splunk-*"]),
            ("grafana", &["read"]),
            ("ops", &["admin"]),
        ],
    );
    let app = spawn_app_with(dir, |s| {
        s.tokens = Some(path);
        s.read_requires_token = read_requires_token;
    })
    .await;
    (app, tokens)
}

async fn reports(app: &TestApp) -> i64 {
    app.db().scalar("SELECT count(*) FROM reports").await
}

#[tokio::test]
async fn without_a_token_file_writes_are_open_and_have_no_principal() {
    let app = spawn_app().await;

    expect(app.pipeline(seed_pipeline()).await, 201).await;

    assert_eq!(app.history("").await[0]["principal"], json!(null));
}

#[tokio::test]
async fn writes_without_a_token_are_401_with_a_challenge() {
    let (app, _) = spawn_with_tokens(false).await;

    for (path, body) in [
        ("/status/pipeline", seed_pipeline()),
        (
            "/status/cron",
            json!({"server_group": "rsyslog-prod", "host": "rsyslog-01"}),
        ),
        (
            "/api/status",
            json!({"repo": "rsyslog", "server": "lab", "sync_status": "SYNCED"}),
        ),
    ] {
        let response = app.post_json(path, &body).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="gitops-status""#,
            "{path}"
        );
        expect_error(response, 401).await;
    }
    assert_eq!(reports(&app).await, 0);
}

#[tokio::test]
async fn unknown_token_is_401_invalid_token() {
    let (app, _) = spawn_with_tokens(false).await;

    let response = app
        .post_as("gst_not-a-real-token", "/status/pipeline", &seed_pipeline())
        .await;

    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="gitops-status", error="invalid_token""#
    );
    expect_error(response, 401).await;
    assert_eq!(reports(&app).await, 0);
}

#[tokio::test]
async fn authentication_comes_before_validation() {
    let (app, _) = spawn_with_tokens(false).await;

    let response = app.post_json("/status/pipeline", &json!({"host": 5})).await;

    expect_error(response, 401).await;
}

#[tokio::test]
async fn a_token_writes_only_the_groups_its_scope_matches() {
    let (app, tokens) = spawn_with_tokens(false).await;
    let rsyslog = &tokens["rsyslog-ci"];

    expect(
        app.post_as(rsyslog, "/status/pipeline", &seed_pipeline())
            .await,
        201,
    )
    .await;
    let splunk = json!({"server_group": "splunk-prod", "host": "idx-01", "status": "synced"});
    let response = app.post_as(rsyslog, "/status/pipeline", &splunk).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="gitops-status", error="insufficient_scope", scope="write:splunk-prod""#
    );
    let body = expect(response, 403).await;
    assert!(
        body["error"].as_str().unwrap().contains("rsyslog-ci"),
        "{body}"
    );
    // A read-only token cannot write either.
    expect_error(
        app.post_as(&tokens["grafana"], "/status/pipeline", &seed_pipeline())
            .await,
        403,
    )
    .await;

    assert_eq!(reports(&app).await, 1);
    let history = app.history("").await;
    assert_eq!(history[0]["principal"], "rsyslog-ci", "who wrote it");
    assert_eq!(
        app.db()
            .text("SELECT principal FROM reports WHERE id = 1")
            .await,
        "rsyslog-ci"
    );
}

#[tokio::test]
async fn cron_and_v1_reports_are_scoped_the_same_way() {
    let (app, tokens) = spawn_with_tokens(false).await;
    let rsyslog = &tokens["rsyslog-ci"];
    expect(
        app.post_as(rsyslog, "/status/pipeline", &seed_pipeline())
            .await,
        201,
    )
    .await;

    let cron = json!({"server_group": "rsyslog-prod", "host": "rsyslog-01", "status": "synced"});
    expect(app.post_as(rsyslog, "/status/cron", &cron).await, 200).await;
    expect_error(
        app.post_as(&tokens["splunk-ci"], "/status/cron", &cron)
            .await,
        403,
    )
    .await;
    // v1: the repo is the server_group.
    let v1 = json!({"repo": "rsyslog-lab", "server": "lab-01", "sync_status": "SYNCED"});
    expect(app.post_as(rsyslog, "/api/status", &v1).await, 200).await;
    let v1_other = json!({"repo": "nginx", "server": "web-01", "sync_status": "SYNCED"});
    expect_error(app.post_as(rsyslog, "/api/status", &v1_other).await, 403).await;

    let principals: Vec<_> = app
        .history("")
        .await
        .iter()
        .map(|r| r["principal"].clone())
        .collect();
    assert_eq!(principals, vec![json!("rsyslog-ci"); 3]);
}

#[tokio::test]
async fn admin_writes_any_group() {
    let (app, tokens) = spawn_with_tokens(false).await;
    let body = json!({"server_group": "anything", "host": "h", "status": "synced"});

    expect(
        app.post_as(&tokens["ops"], "/status/pipeline", &body).await,
        201,
    )
    .await;

    assert_eq!(app.history("").await[0]["principal"], "ops");
}

#[tokio::test]
async fn reads_stay_open_unless_read_requires_token() {
    let (app, tokens) = spawn_with_tokens(false).await;
    expect(
        app.post_as(&tokens["ops"], "/status/pipeline", &seed_pipeline())
            .await,
        201,
    )
    .await;

    for path in [
        "/status",
        "/status.json",
        "/history",
        "/status/rsyslog-prod/rsyslog-01",
    ] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn read_requires_token_needs_the_read_scope() {
    let (app, tokens) = spawn_with_tokens(true).await;
    expect(
        app.post_as(&tokens["ops"], "/status/pipeline", &seed_pipeline())
            .await,
        201,
    )
    .await;
    let reads = [
        "/status",
        "/status.json",
        "/status/rsyslog-prod",
        "/status/rsyslog-prod/rsyslog-01",
        "/status/rsyslog-prod/rsyslog-01/history",
        "/history",
        "/api/status?repo=rsyslog-prod&server=rsyslog-01",
    ];

    for path in reads {
        expect_error(app.get(path).await, 401).await;
        expect_error(app.get_as(&tokens["rsyslog-ci"], path).await, 403).await;
        assert_eq!(
            app.get_as(&tokens["grafana"], path).await.status(),
            200,
            "{path}"
        );
        assert_eq!(
            app.get_as(&tokens["ops"], path).await.status(),
            200,
            "{path}"
        );
    }
    // Probes, the index and the API description stay open.
    for path in [
        "/health",
        "/ready",
        "/",
        "/api-docs/openapi.json",
        "/swagger-ui/",
    ] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
}

#[test]
fn token_new_prints_the_token_then_its_file_line() {
    let output = Command::new(binary())
        .args([
            "token",
            "new",
            "rsyslog-ci",
            "--scope",
            "write:rsyslog-*,read",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();

    assert_eq!(lines.len(), 2, "exactly two lines: {stdout}");
    let token = lines[0];
    assert!(
        token.len() >= 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    let fields: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(fields[0], "rsyslog-ci");
    assert_eq!(fields[1], gitops_status::auth::digest_hex(token));
    assert_eq!(fields[2], "write:rsyslog-*,read");
    let set = gitops_status::auth::TokenSet::parse(lines[1]).unwrap();
    assert_eq!(set.authenticate(token).unwrap().name, "rsyslog-ci");

    let again = Command::new(binary())
        .args(["token", "new", "rsyslog-ci", "--scope", "write:rsyslog-*"])
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&again.stdout).lines().next(),
        Some(token)
    );
}

#[test]
fn token_new_refuses_bad_scopes() {
    let output = Command::new(binary())
        .args(["token", "new", "ci", "--scope", "root"])
        .output()
        .unwrap();

    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing on stdout");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scope"));
}

mod process {
    //! The real binary: start-up checks, logging and reloading the token file.

    use std::process::Command;
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;
    use serde_json::{json, Value};

    use crate::helpers::{binary, seed_pipeline, token_file, ServerProcess};

    fn wait_for_log(server: &ServerProcess, needle: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = server
                .logs
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e.to_string().contains(needle));
            if let Some(event) = found {
                return event;
            }
            assert!(Instant::now() < deadline, "no log line with {needle:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn start_with_tokens(
        dir: &std::path::Path,
        tokens: &std::path::Path,
        extra: &[&str],
    ) -> ServerProcess {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2", "--db"])
            .arg(dir.join("x.db"))
            .arg("--tokens")
            .arg(tokens)
            .args(extra);
        ServerProcess::start_command(command)
    }

    /// The server's /metrics page.
    async fn metrics_text(server: &ServerProcess) -> String {
        let response = reqwest::get(server.url("/metrics")).await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    async fn post(server: &ServerProcess, token: &str) -> u16 {
        reqwest::Client::new()
            .post(server.url("/status/pipeline"))
            .bearer_auth(token)
            .json(&seed_pipeline())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[test]
    fn a_malformed_token_file_stops_start_up_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# ok\nci not-a-digest write:a\n").unwrap();

        let output = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("x.db"))
            .arg("--tokens")
            .arg(&path)
            .output()
            .unwrap();

        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("line 2"), "{stderr}");
        assert!(stderr.contains("64 lower-case hex"), "{stderr}");
    }

    #[test]
    fn read_requires_token_without_a_token_file_is_refused() {
        let output = Command::new(binary())
            .args(["serve", "--read-requires-token"])
            .output()
            .unwrap();

        assert_eq!(output.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&output.stderr).contains("needs a token file"));
    }

    #[test]
    fn without_a_token_file_start_up_warns() {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(&dir.path().join("x.db"));

        let event = wait_for_log(&server, "no token file");

        assert_eq!(event["level"], "WARN");
    }

    #[tokio::test]
    async fn failed_authentication_is_logged_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (path, tokens) = token_file(dir.path(), &[("rsyslog-ci", &["write:rsyslog-*"])]);
        let server = start_with_tokens(dir.path(), &path, &[]);
        let token = &tokens["rsyslog-ci"];

        assert_eq!(post(&server, "gst_guessed").await, 401);
        let splunk = json!({"server_group": "splunk", "host": "h", "status": "synced"});
        let status = reqwest::Client::new()
            .post(server.url("/status/pipeline"))
            .bearer_auth(token)
            .json(&splunk)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 403);

        let unknown = wait_for_log(&server, "unknown token");
        assert_eq!(unknown["client"], "127.0.0.1");
        let forbidden = wait_for_log(&server, "forbidden");
        assert_eq!(forbidden["token"], "rsyslog-ci");
        assert_eq!(forbidden["client"], "127.0.0.1");
        let logs = server.logs.lock().unwrap().join("\n");
        assert!(!logs.contains(token.as_str()), "a token was logged");
        assert!(
            !logs.contains("gst_guessed"),
            "a presented token was logged"
        );
    }

    #[tokio::test]
    async fn sighup_reloads_the_token_file_without_dropping_requests() {
        let dir = tempfile::tempdir().unwrap();
        let (path, old) = token_file(dir.path(), &[("old", &["write:rsyslog-*"])]);
        let mut server = start_with_tokens(dir.path(), &path, &["--tokens-poll-interval", "0"]);
        let new_token = gitops_status::auth::generate().unwrap();
        assert_eq!(post(&server, &new_token).await, 401);

        // Writers keep posting with the old token while the file is reloaded.
        let url = server.url("/status/pipeline");
        let old_token = old["old"].clone();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (url, token) = (url.clone(), old_token.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut statuses = Vec::new();
                    for _ in 0..50 {
                        let response = client
                            .post(&url)
                            .bearer_auth(&token)
                            .json(&seed_pipeline())
                            .send()
                            .await
                            .unwrap();
                        statuses.push(response.status().as_u16());
                    }
                    statuses
                })
            })
            .collect();
        let mut text = std::fs::read_to_string(&path).unwrap();
        let line =
            gitops_status::auth::file_line("new", &new_token, &["write:rsyslog-*".into()]).unwrap();
        text.push_str(&line);
        text.push('\n');
        std::fs::write(&path, &text).unwrap();
        server.signal(Signal::SIGHUP);
        wait_for_log(&server, "token file reloaded");

        for writer in writers {
            let statuses = writer.await.unwrap();
            assert!(
                statuses.iter().all(|s| *s == 200 || *s == 201),
                "{statuses:?}"
            );
        }
        assert_eq!(post(&server, &new_token).await, 200);

        // A broken file fails closed: no token is accepted until a good file loads (a
        // revocation that did not load must not leave the revoked token working), and
        // readiness and the metrics say why.
        std::fs::write(&path, "broken line\n").unwrap();
        server.signal(Signal::SIGHUP);
        let event = wait_for_log(&server, "token file not reloaded");
        assert!(
            event["error"].as_str().unwrap().contains("line 1"),
            "{event}"
        );
        let client = reqwest::Client::new();
        let refused = client
            .post(server.url("/status/pipeline"))
            .bearer_auth(&new_token)
            .json(&seed_pipeline())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.headers()["retry-after"], "1");
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("could not be reloaded"),
            "{body}"
        );
        // The instance stays in its Service (open reads go on); /ready says why tokens fail.
        let ready = client.get(server.url("/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let ready: Value = ready.json().await.unwrap();
        let warning = ready["warnings"][0].as_str().unwrap();
        assert!(warning.contains("line 1"), "{ready}");
        assert!(warning.contains("no token is accepted"), "{ready}");
        assert_eq!(
            client
                .get(server.url("/status"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let metrics = metrics_text(&server).await;
        assert!(
            metrics.contains("\ngitops_status_token_file_loaded 0\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("gitops_status_token_reloads_total{result=\"failed\"} 1\n"),
            "{metrics}"
        );

        // Deleted: the same. Restored: tokens work again, and so does readiness.
        std::fs::remove_file(&path).unwrap();
        server.signal(Signal::SIGHUP);
        assert_eq!(post(&server, &new_token).await, 503);
        std::fs::write(&path, &text).unwrap();
        server.signal(Signal::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(30);
        while post(&server, &new_token).await != 200 {
            assert!(
                Instant::now() < deadline,
                "the restored file was not loaded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ready: Value = client
            .get(server.url("/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready, json!({"status": "ready"}));
        server.signal(Signal::SIGTERM);
        assert_eq!(server.wait(), Some(0));
    }

    #[tokio::test]
    async fn a_good_file_put_back_with_its_old_time_is_picked_up_after_a_failed_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (path, tokens) = token_file(dir.path(), &[("ci", &["write:rsyslog-*"])]);
        let server = start_with_tokens(dir.path(), &path, &["--tokens-poll-interval", "1"]);
        let token = &tokens["ci"];
        // A backup as `cp -p` keeps it: the same bytes and the same modification time.
        let backup = dir.path().join("tokens.bak");
        std::fs::copy(&path, &backup).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&backup)
            .unwrap()
            .set_modified(modified)
            .unwrap();

        std::fs::write(&path, "broken line\n").unwrap();
        wait_for_log(&server, "token file not reloaded");
        assert_eq!(post(&server, token).await, 503);
        std::fs::rename(&backup, &path).unwrap();

        let deadline = Instant::now() + Duration::from_secs(30);
        while post(&server, token).await != 200 {
            assert!(
                Instant::now() < deadline,
                "the restored file was not picked up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The broken file was read once, not at every poll.
        let failures = server
            .logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("token file not reloaded"))
            .count();
        assert_eq!(failures, 1);
    }

    #[tokio::test]
    async fn a_changed_token_file_is_picked_up_without_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = token_file(dir.path(), &[("old", &["write:rsyslog-*"])]);
        let server = start_with_tokens(dir.path(), &path, &["--tokens-poll-interval", "1"]);
        let token = gitops_status::auth::generate().unwrap();

        let line = gitops_status::auth::file_line("rotated", &token, &["admin".into()]).unwrap();
        // Replaced in one step, as a Secret's mount is: an in-place write could be polled
        // half-written, and its first reload would then load part of the file.
        let next = dir.path().join("tokens.next");
        std::fs::write(&next, format!("# rotated by a new Secret\n{line}\n")).unwrap();
        std::fs::rename(&next, &path).unwrap();
        let event = wait_for_log(&server, "token file reloaded");

        assert_eq!(event["trigger"], "file changed");
        assert_eq!(post(&server, &token).await, 201);
    }
    /// A fault injected into a test build (`GITOPS_STATUS_TEST_FAULT`, read only with debug
    /// assertions): the token watcher panics on the first SIGHUP. It keeps nothing but the
    /// file's stamp, so the supervisor restarts it after a pause instead of stopping the
    /// process; the restarted watcher reloads the file the signal was for, and watches on.
    #[tokio::test]
    async fn a_token_watcher_that_panics_is_restarted_and_reloads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = token_file(dir.path(), &[("old", &["write:rsyslog-*"])]);
        let mut command = Command::new(binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2", "--db"])
            .arg(dir.path().join("x.db"))
            .arg("--tokens")
            .arg(&path)
            .args(["--tokens-poll-interval", "0"])
            .env(
                "GITOPS_STATUS_TEST_FAULT",
                "token-watcher-panics-on-first-sighup",
            );
        let mut server = ServerProcess::start_command(command);
        let token = gitops_status::auth::generate().unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(
            &gitops_status::auth::file_line("new", &token, &["write:rsyslog-*".into()]).unwrap(),
        );
        text.push('\n');
        std::fs::write(&path, &text).unwrap();

        server.signal(Signal::SIGHUP);
        let ended = wait_for_log(&server, "a background task ended");
        assert_eq!(ended["level"], "ERROR");
        assert_eq!(ended["task"], "token watcher");
        assert!(
            ended["problem"]
                .as_str()
                .unwrap()
                .contains("the token watcher task panicked: injected fault"),
            "{ended}"
        );
        let restarted = wait_for_log(&server, "background task restarted");
        assert_eq!(restarted["task"], "token watcher");
        // The SIGHUP the watcher died on reloaded nothing; its successor loads the file.
        let reloaded = wait_for_log(&server, "token file reloaded");
        assert_eq!(reloaded["trigger"], "restart");
        assert_eq!(post(&server, &token).await, 201);
        let client = reqwest::Client::new();
        let ready = client.get(server.url("/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let metrics = metrics_text(&server).await;
        assert!(
            metrics.contains("gitops_status_task_restarts_total{task=\"token watcher\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("gitops_status_task_up{task=\"token watcher\"} 1\n"),
            "{metrics}"
        );

        // The restarted watcher took the signal over: the next SIGHUP reloads again (the fault
        // fired once).
        std::fs::write(&path, "broken line\n").unwrap();
        server.signal(Signal::SIGHUP);
        wait_for_log(&server, "token file not reloaded");
        assert_eq!(post(&server, &token).await, 503);
        assert_eq!(server.child.try_wait().unwrap(), None, "still running");
        server.signal(Signal::SIGTERM);
        assert_eq!(server.wait(), Some(0));
    }
}
