//! `gitops-status report`, the CI client: the real binary against a real server. Each test
//! counts the history rows the client's report left: exactly one, or none when it was refused
//! before sending.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::helpers::{
    binary, expect, seed_pipeline, spawn_app, spawn_app_with, sqlite_only, token_file,
    ServerProcess, TestApp,
};

/// The client with a clean environment (no CI variables leak in from whoever runs the tests),
/// pointed at `base`.
fn client(base: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .env_clear()
        .arg("report")
        .args(["--url", base])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(output: Output) -> Self {
        Ran {
            code: output.status.code().expect("exited"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs the client to its end off the runtime's thread (the server shares that runtime).
async fn run(mut command: Command) -> Ran {
    tokio::task::spawn_blocking(move || command.output().expect("client runs").into())
        .await
        .unwrap()
}

fn base(app: &TestApp) -> String {
    format!("http://{}", app.address)
}

async fn rows(app: &TestApp) -> i64 {
    app.db().scalar("SELECT count(*) FROM reports").await
}

/// Runs the client in the background; its stderr lines arrive on the channel as they are
/// written, so a test can wait for "retrying" before it changes the server.
fn spawn_client(mut command: Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = command.spawn().expect("client starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Waits (bounded) for a stderr line containing `text`; returns the lines seen.
fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let found = line.contains(text);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => panic!("no stderr line with {text:?}; saw {seen:?}"),
        }
    }
}

async fn finish(child: Child) -> Ran {
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("client ends").into())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_woodpecker_deployment_then_its_drift_check_are_stored_once_each() {
    let app = spawn_app().await;
    let woodpecker = [
        ("CI", "woodpecker"),
        ("CI_COMMIT_SHA", "abc1234567890"),
        ("CI_COMMIT_BRANCH", "master"),
        ("CI_REPO_NAME", "rsyslog"),
        (
            "CI_PIPELINE_URL",
            "https://ci.example.com/repos/7/pipeline/4711",
        ),
    ];
    let mut deploy = client(
        &base(&app),
        &[
            "--server-group",
            "rsyslog-prod",
            "--host",
            "rsyslog-01",
            "--status",
            "synced",
            "--validation-status",
            "passed",
        ],
    );
    deploy.envs(woodpecker);
    let ran = run(deploy).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        "accepted pipeline report_id=1 host=rsyslog-prod/rsyslog-01 status=synced \
         changed=yes previous=none\n"
    );
    let host = app.host("rsyslog-prod", "rsyslog-01").await;
    assert_eq!(host["commit_sha"], "abc1234567890");
    assert_eq!(host["branch"], "master");
    assert_eq!(host["repo_name"], "rsyslog");
    assert_eq!(host["updated_by"], "woodpecker");
    assert_eq!(host["validation_status"], "passed");

    // The cron pipeline: scheduled, so a drift check, read from the drift check's output
    // among Ansible's own lines.
    let mut check = client(
        &base(&app),
        &[
            "--server-group",
            "rsyslog-prod",
            "--host",
            "rsyslog-01",
            "--drift-output",
            "-",
        ],
    );
    check
        .envs(woodpecker)
        .env("CI_PIPELINE_EVENT", "cron")
        .stdin(Stdio::piped());
    let ran = tokio::task::spawn_blocking(move || {
        let mut child = check.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(
                b"PLAY [drift] ***\nTASK [compare] ***\nchanged: [rsyslog-01]\n\
                  SYNC_STATUS=OUT_OF_SYNC\nDRIFTED_FILES=/etc/rsyslog.conf,/etc/rsyslog.d/50-default.conf\n\
                  PLAY RECAP ***\n",
            )
            .unwrap();
        Ran::from(child.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        "accepted cron report_id=2 host=rsyslog-prod/rsyslog-01 status=out_of_sync \
         changed=yes previous=synced\n"
    );
    let host = app.host("rsyslog-prod", "rsyslog-01").await;
    assert_eq!(
        host["changed_files"],
        json!(["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"])
    );
    // The drift check did not touch the deployment.
    assert_eq!(host["commit_sha"], "abc1234567890");
    assert_eq!(rows(&app).await, 2);
    // Both reports can be found by their CI run, as the forensics recipe does.
    let by_run = app
        .db()
        .scalar(if crate::helpers::on_postgres() {
            "SELECT count(*) FROM reports WHERE raw_body::json ->> 'ci_run' = \
             'https://ci.example.com/repos/7/pipeline/4711'"
        } else {
            "SELECT count(*) FROM reports WHERE json_extract(raw_body, '$.ci_run') = \
             'https://ci.example.com/repos/7/pipeline/4711'"
        })
        .await;
    assert_eq!(by_run, 2);
}

/// A host, the CI's variables, and what the host must show: commit, branch, repo, updated_by
/// and the run's link.
type CiCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    [&'static str; 5],
);

#[tokio::test]
async fn each_ci_system_fills_commit_branch_repo_and_run_from_its_own_variables() {
    let app = spawn_app().await;
    let systems: [CiCase; 4] = [
        (
            "h-gitlab",
            &[
                ("GITLAB_CI", "true"),
                ("CI_COMMIT_SHA", "1111"),
                ("CI_COMMIT_REF_NAME", "v1.2"),
                ("CI_PROJECT_PATH", "infra/rsyslog"),
                (
                    "CI_PIPELINE_URL",
                    "https://gitlab.example/infra/rsyslog/-/pipelines/9",
                ),
                ("CI_PIPELINE_SOURCE", "push"),
            ],
            [
                "1111",
                "v1.2",
                "infra/rsyslog",
                "gitlab",
                "https://gitlab.example/infra/rsyslog/-/pipelines/9",
            ],
        ),
        (
            "h-github",
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_SHA", "2222"),
                ("GITHUB_REF_NAME", "main"),
                ("GITHUB_REPOSITORY", "acme/rsyslog"),
                ("GITHUB_SERVER_URL", "https://github.com"),
                ("GITHUB_RUN_ID", "42"),
                ("GITHUB_EVENT_NAME", "push"),
            ],
            [
                "2222",
                "main",
                "acme/rsyslog",
                "github-actions",
                "https://github.com/acme/rsyslog/actions/runs/42",
            ],
        ),
        (
            "h-jenkins",
            &[
                ("JENKINS_URL", "https://jenkins.example/"),
                ("GIT_COMMIT", "3333"),
                ("GIT_BRANCH", "origin/main"),
                ("BUILD_URL", "https://jenkins.example/job/rsyslog/3/"),
            ],
            [
                "3333",
                "origin/main",
                "",
                "jenkins",
                "https://jenkins.example/job/rsyslog/3/",
            ],
        ),
        (
            "h-woodpecker",
            &[
                ("CI", "woodpecker"),
                ("CI_COMMIT_SHA", "4444"),
                ("CI_COMMIT_BRANCH", "master"),
                ("CI_REPO_NAME", "rsyslog"),
                (
                    "CI_PIPELINE_URL",
                    "https://ci.example.com/repos/7/pipeline/1",
                ),
            ],
            [
                "4444",
                "master",
                "rsyslog",
                "woodpecker",
                "https://ci.example.com/repos/7/pipeline/1",
            ],
        ),
    ];
    for (host, vars, [sha, branch, repo, by, run_url]) in systems {
        let mut command = client(
            &base(&app),
            &["--server-group", "ci", "--host", host, "--status", "synced"],
        );
        command.envs(vars.iter().copied());
        let ran = run(command).await;
        assert_eq!(ran.code, 0, "{host}: {}", ran.stderr);
        let state = app.host("ci", host).await;
        assert_eq!(state["commit_sha"], sha, "{host}");
        assert_eq!(state["branch"], branch, "{host}");
        if repo.is_empty() {
            assert_eq!(state["repo_name"], Value::Null, "{host}");
        } else {
            assert_eq!(state["repo_name"], repo, "{host}");
        }
        assert_eq!(state["updated_by"], by, "{host}");
        let history = app.history(&format!("?server_group=ci&host={host}")).await;
        assert_eq!(history.len(), 1, "{host}");
        assert_eq!(history[0]["raw_body"]["ci_run"], run_url, "{host}");
    }
    // Without CI: a plain deployment, the fields left out.
    let ran = run(client(
        &base(&app),
        &[
            "--server-group",
            "ci",
            "--host",
            "h-none",
            "--status",
            "synced",
        ],
    ))
    .await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let state = app.host("ci", "h-none").await;
    assert_eq!(state["commit_sha"], Value::Null);
    assert_eq!(state["updated_by"], Value::Null);
}

#[tokio::test]
async fn v1_mode_sends_the_old_servers_body() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("drift.txt");
    std::fs::write(
        &output,
        "SYNC_STATUS=OUT_OF_SYNC\nDRIFTED_FILES=rsyslog.conf,rsyslog.d/30-lab.conf\n",
    )
    .unwrap();
    let ran = run(client(
        &base(&app),
        &[
            "v1",
            "--server-group",
            "rsyslog",
            "--host",
            "rsyslog-lab",
            "--drift-output",
            output.to_str().unwrap(),
        ],
    ))
    .await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        "accepted v1 report_id=1 host=rsyslog/rsyslog-lab status=out_of_sync changed=yes \
         previous=none\n"
    );
    let v1 = app
        .get_json("/api/status?repo=rsyslog&server=rsyslog-lab")
        .await;
    assert_eq!(v1["sync_status"], "OUT_OF_SYNC");
    assert_eq!(v1["drift_count"], 2);
    assert_eq!(
        v1["files"],
        json!([{"name": "rsyslog.conf"}, {"name": "rsyslog.d/30-lab.conf"}])
    );
}

#[tokio::test]
async fn usage_errors_exit_2_and_send_nothing() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.txt");
    std::fs::write(&noise, "PLAY RECAP\nrsyslog-01 : ok=3 changed=0\n").unwrap();
    let cases: [&[&str]; 5] = [
        // The drift check printed no markers.
        &[
            "--server-group",
            "g",
            "--host",
            "h",
            "--drift-output",
            noise.to_str().unwrap(),
        ],
        // A deployment needs a status.
        &["--server-group", "g", "--host", "h"],
        // Not a status.
        &["--server-group", "g", "--host", "h", "--status", "green"],
        // A deployment's field on a drift check.
        &[
            "cron",
            "--server-group",
            "g",
            "--host",
            "h",
            "--commit-sha",
            "abc",
        ],
        // A key the server could not take.
        &[
            "--server-group",
            "g",
            "--host",
            "h",
            "--status",
            "synced",
            "--idempotency-key",
            "",
        ],
    ];
    for args in cases {
        let ran = run(client(&base(&app), args)).await;
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
        assert!(
            ran.stderr.starts_with("gitops-status report: "),
            "{}",
            ran.stderr
        );
        assert!(ran.stdout.is_empty());
    }
    let ran = run(client(
        &base(&app),
        &[
            "--server-group",
            "g",
            "--host",
            "h",
            "--drift-output",
            noise.to_str().unwrap(),
        ],
    ))
    .await;
    assert!(
        ran.stderr.contains("no SYNC_STATUS= line"),
        "{}",
        ran.stderr
    );
    let mut no_url = client("", &["--server-group", "g", "--status", "synced"]);
    no_url.env_remove("GITOPS_STATUS_URL");
    let ran = run(no_url).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert_eq!(rows(&app).await, 0);
}

#[tokio::test]
async fn dry_run_prints_the_request_with_the_token_masked_and_sends_nothing() {
    let app = spawn_app().await;
    let mut command = client(
        &base(&app),
        &[
            "--dry-run",
            "--server-group",
            "rsyslog-prod",
            "--host",
            "rsyslog-01",
            "--status",
            "out_of_sync",
            "--changed-file",
            "/etc/rsyslog.conf",
            "--idempotency-key",
            "deploy-4711-rsyslog-01",
        ],
    );
    command.env("GITOPS_STATUS_TOKEN", "s3cr3t-token-value");
    let ran = run(command).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(!ran.stdout.contains("s3cr3t"), "{}", ran.stdout);
    let (head, body) = ran.stdout.split_once("\n\n").unwrap();
    let head: Vec<&str> = head.lines().collect();
    assert_eq!(head[0], format!("POST {}/status/pipeline", base(&app)));
    assert!(head.contains(&"Authorization: Bearer ********"), "{head:?}");
    assert!(
        head.contains(&"Idempotency-Key: deploy-4711-rsyslog-01"),
        "{head:?}"
    );
    assert!(head.contains(&"Content-Type: application/json"), "{head:?}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["status"], "out_of_sync");
    assert_eq!(body["changed_files"], json!(["/etc/rsyslog.conf"]));
    // A key of the caller's own: no time of the client's, so a re-run sends the same body.
    assert_eq!(body["last_pipeline_run"], Value::Null);
    assert_eq!(rows(&app).await, 0);
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_prints_the_servers_problems() {
    let app = spawn_app().await;
    // Someone used the key for another report: 422, once.
    let mut first = seed_pipeline();
    first["host"] = json!("other");
    let answer = app
        .client
        .post(app.url("/status/pipeline"))
        .header("Idempotency-Key", "shared-key")
        .json(&first)
        .send()
        .await
        .unwrap();
    expect(answer, 201).await;
    let ran = run(client(
        &base(&app),
        &[
            "--server-group",
            "rsyslog-prod",
            "--host",
            "rsyslog-01",
            "--status",
            "synced",
            "--idempotency-key",
            "shared-key",
        ],
    ))
    .await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("refused, 422"), "{}", ran.stderr);
    assert!(ran.stderr.contains("Idempotency-Key:"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("retrying"), "{}", ran.stderr);
    // Invalid fields: each problem on its own line.
    let ran = run(client(
        &base(&app),
        &[
            "--server-group",
            "rsyslog-prod",
            "--host",
            "rsyslog-01",
            "--status",
            "synced",
            "--commit-sha",
            &"x".repeat(300),
        ],
    ))
    .await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("  commit_sha: must be at most 256"),
        "{}",
        ran.stderr
    );
    // A drift check of a host nobody deployed: 404.
    let ran = run(client(
        &base(&app),
        &[
            "cron",
            "--server-group",
            "g",
            "--host",
            "nobody",
            "--status",
            "synced",
        ],
    ))
    .await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("refused, 404"), "{}", ran.stderr);
    assert_eq!(rows(&app).await, 1);
}

#[tokio::test]
async fn a_rerun_with_the_same_key_is_answered_from_the_stored_report() {
    let app = spawn_app().await;
    let args = [
        "--server-group",
        "rsyslog-prod",
        "--host",
        "rsyslog-01",
        "--status",
        "synced",
        "--idempotency-key",
        "woodpecker-4711-rsyslog-01",
    ];
    let ran = run(client(&base(&app), &args)).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(!ran.stdout.contains("replayed"), "{}", ran.stdout);
    // The step runs again (a CI restart): with a key of its own and no time of its own, the
    // body is the same, and the server answers from the stored report.
    let again = run(client(&base(&app), &args)).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, ran.stdout.replace('\n', " replayed=yes\n"));
    // With --at the report carries that time, so another --at is another body: refused.
    let mut other = client(&base(&app), &args);
    other.args(["--at", "2026-12-01T10:00:00Z"]);
    let ran = run(other).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert_eq!(rows(&app).await, 1);
}

#[tokio::test]
async fn the_client_waits_for_a_server_that_starts_late() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let (child, lines) = spawn_client(client(
        &base,
        &[
            "--server-group",
            "rsyslog-prod",
            "--host",
            "rsyslog-01",
            "--status",
            "synced",
            "--retry-for",
            "90s",
        ],
    ));
    let seen = wait_for_line(&lines, "retrying");
    assert!(seen[0].contains("attempt 1: no answer"), "{seen:?}");
    let db = dir.path().join("gitops-status.db");
    let mut command = Command::new(binary());
    command.args([
        "serve",
        "--workers",
        "2",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--db",
    ]);
    command.arg(&db);
    let server = ServerProcess::start_command(command);
    let ran = finish(child).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.starts_with("accepted pipeline report_id=1 "),
        "{}",
        ran.stdout
    );
    let history: Value = reqwest::get(server.url("/history"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
}

#[tokio::test]
async fn a_refusing_writer_is_retried_until_it_drains_and_stores_one_row() {
    if sqlite_only("holds SQLite's write lock to stall the writer") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, |settings| settings.write_queue = 1).await;
    expect(app.pipeline(seed_pipeline()).await, 201).await;
    // An operator's sqlite3 holds the write lock; six reports fill the writer's hands and its
    // queue, and at least three of them are refused. The client's first attempt is then
    // answered 503: "too many reports are waiting" when the queue is still full, or "the
    // database is locked" when the writer picked its group up only after the six arrived (it
    // runs on this test's thread) and so queued the client behind it; within busy_timeout
    // twice, hence the 30 s attempt timeout. Either 503 is retried with the same key.
    let operator = app.db().hold_write_lock().await;
    let mut posts = JoinSet::new();
    for n in 0..6 {
        let mut body = seed_pipeline();
        body["host"] = json!(format!("h{n}"));
        let request = app.client.post(app.url("/status/pipeline")).json(&body);
        posts.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let mut refused = 0;
    while refused < 3 {
        assert_eq!(posts.join_next().await.unwrap().unwrap(), 503);
        refused += 1;
    }
    let (child, lines) = spawn_client(client(
        &base(&app),
        &[
            "--server-group",
            "rsyslog-prod",
            "--host",
            "client-host",
            "--status",
            "synced",
            "--retry-for",
            "90s",
            "--timeout",
            "30s",
        ],
    ));
    let seen = tokio::task::spawn_blocking(move || (wait_for_line(&lines, "retrying"), lines))
        .await
        .unwrap()
        .0;
    assert!(seen[0].contains("attempt 1: answered 503"), "{seen:?}");
    crate::helpers::db::Db::release_write_lock(operator).await;
    let ran = finish(child).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    while posts.join_next().await.is_some() {}
    let mine = app
        .db()
        .scalar("SELECT count(*) FROM reports WHERE host = 'client-host'")
        .await;
    assert_eq!(mine, 1);
}

#[tokio::test]
async fn it_gives_up_with_exit_3_when_patience_runs_out() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let args = ["--server-group", "g", "--host", "h", "--status", "synced"];
    let mut no_retry = client(&base, &args);
    no_retry.args(["--retry-for", "0"]);
    let ran = run(no_retry).await;
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("gave up after 1 attempt: no answer"),
        "{}",
        ran.stderr
    );
    let mut two = client(&base, &args);
    two.args(["--retries", "2"]);
    let ran = run(two).await;
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("gave up after 3 attempts"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        ran.stderr.matches("retrying in").count(),
        2,
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn tokens_come_from_a_file_or_a_file_prefix_and_a_wrong_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, tokens) = token_file(dir.path(), &[("rsyslog-ci", &["write:rsyslog-*"])]);
    let secret = tokens["rsyslog-ci"].clone();
    let app = spawn_app_with(dir, |s| s.tokens = Some(path)).await;
    let stash = tempfile::tempdir().unwrap();
    let token_path = stash.path().join("token");
    std::fs::write(&token_path, format!("{secret}\n")).unwrap();
    let args = [
        "--server-group",
        "rsyslog-prod",
        "--host",
        "rsyslog-01",
        "--status",
        "synced",
    ];

    let mut by_file = client(&base(&app), &args);
    by_file.arg("--token-file").arg(&token_path);
    let ran = run(by_file).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);

    let mut by_prefix = client(&base(&app), &args);
    by_prefix.env(
        "GITOPS_STATUS_TOKEN",
        format!("file:{}", token_path.display()),
    );
    let ran = run(by_prefix).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);

    let mut wrong = client(&base(&app), &args);
    wrong.env("GITOPS_STATUS_TOKEN", "not-the-token");
    let ran = run(wrong).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("refused, 401"), "{}", ran.stderr);

    let mut missing = client(&base(&app), &args);
    // A token pasted where the file's name belongs is not printed back into the CI log.
    missing.env("GITOPS_STATUS_TOKEN", format!("file:{secret}"));
    let ran = run(missing).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(!ran.stderr.contains(&secret), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("cannot read the token file"),
        "{}",
        ran.stderr
    );
    assert_eq!(rows(&app).await, 2);
}

#[tokio::test]
async fn the_report_image_reads_woodpecker_plugin_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (path, tokens) = token_file(dir.path(), &[("rsyslog-ci", &["write:rsyslog-*"])]);
    let app = spawn_app_with(dir, |s| s.tokens = Some(path)).await;
    // What Woodpecker hands the step: its settings as PLUGIN_*, and its own CI_* variables.
    let mut step = Command::new(binary());
    step.env_clear()
        .args(["report", "--plugin"])
        .env("PLUGIN_URL", base(&app))
        .env("PLUGIN_TOKEN", &tokens["rsyslog-ci"])
        .env("PLUGIN_SERVER_GROUP", "rsyslog-prod")
        .env("PLUGIN_HOST", "rsyslog-01")
        .env("PLUGIN_STATUS", "OUT_OF_SYNC")
        .env(
            "PLUGIN_CHANGED_FILES",
            "/etc/rsyslog.conf,/etc/rsyslog.d/50-default.conf",
        )
        .env("CI", "woodpecker")
        .env("CI_COMMIT_SHA", "abc1234567890")
        .env(
            "CI_PIPELINE_URL",
            "https://ci.example.com/repos/7/pipeline/4711",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let ran = run(step).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let host = app.host("rsyslog-prod", "rsyslog-01").await;
    assert_eq!(host["status"], "out_of_sync");
    assert_eq!(host["changed_files_count"], 2);
    assert_eq!(host["commit_sha"], "abc1234567890");
    // A setting the report does not know is a usage error, not ignored.
    let mut typo = Command::new(binary());
    typo.env_clear()
        .args(["report", "--plugin"])
        .env("PLUGIN_URL", base(&app))
        .env("PLUGIN_SERVERGROUP", "rsyslog-prod")
        .env("PLUGIN_STATUS", "synced")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let ran = run(typo).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("PLUGIN_SERVERGROUP"), "{}", ran.stderr);
    assert_eq!(rows(&app).await, 1);
}
