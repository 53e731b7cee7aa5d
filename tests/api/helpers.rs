//! The test harness: a real server over HTTP on a free port, with a fresh database per test: a
//! SQLite file, or with `GITOPS_STATUS_TEST_BACKEND=postgres` a new database on the PostgreSQL
//! server at `GITOPS_STATUS_TEST_POSTGRES_URL` (tests/postgres/with-server.sh starts one).
//! `spawn_app` runs the server in this process; `ServerProcess` runs the real binary, for
//! signals, kill -9 and restarts.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitops_status::app::Application;
use gitops_status::config::{DbTarget, Settings};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    /// What `--db` names: the SQLite file, or on PostgreSQL the test database's URL (commands
    /// such as `verify --db` take either).
    pub db_path: PathBuf,
    /// The test's PostgreSQL database, when the suite runs on PostgreSQL.
    pub db_url: Option<String>,
    /// Keeps the temporary folder alive for the life of the app.
    pub _dir: TempDir,
    stopper: gitops_status::app::Stopper,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the server in-process on 127.0.0.1:0 with a new database in a temp folder.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_in(dir).await
}

pub async fn spawn_app_in(dir: TempDir) -> TestApp {
    spawn_app_with(dir, |_| {}).await
}

/// Whether the suite runs on PostgreSQL (`GITOPS_STATUS_TEST_BACKEND=postgres`) instead of
/// SQLite (unset, or `sqlite`).
pub fn on_postgres() -> bool {
    match std::env::var("GITOPS_STATUS_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("GITOPS_STATUS_TEST_BACKEND={other}: expected sqlite or postgres"),
    }
}

/// Ends a test that exercises what only SQLite has (its file, its locks, its query planner),
/// saying so, when the suite runs on PostgreSQL: `if sqlite_only("why") { return; }`.
pub fn sqlite_only(why: &str) -> bool {
    if on_postgres() {
        eprintln!("SQLite only, not run on PostgreSQL: {why}");
    }
    on_postgres()
}

/// The URL of a new, empty database on the test PostgreSQL server.
pub async fn fresh_postgres_database() -> String {
    use sqlx::{Connection, Executor};
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = std::env::var("GITOPS_STATUS_TEST_POSTGRES_URL").expect(
        "GITOPS_STATUS_TEST_BACKEND=postgres needs GITOPS_STATUS_TEST_POSTGRES_URL \
         (tests/postgres/with-server.sh runs a command with a throwaway server)",
    );
    let name = format!(
        "api_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .expect("the test PostgreSQL server answers");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("a test database is created");
    let _ = admin.close().await;
    let (server, _) = url.rsplit_once('/').expect("the URL names a database");
    format!("{server}/{name}")
}

/// What `--db` names for the server whose folder is `dir`: its SQLite file, or on PostgreSQL
/// the URL of the database that belongs to `dir` (made on first use and remembered in the
/// folder, so a server started again in it finds its data).
pub async fn db_for(dir: &Path) -> PathBuf {
    if !on_postgres() {
        return dir.join("data").join("gitops-status.db");
    }
    let remembered = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return PathBuf::from(url);
    }
    let url = fresh_postgres_database().await;
    std::fs::write(&remembered, &url).expect("remember the test database");
    PathBuf::from(url)
}

/// Starts the server with settings adjusted by `configure` (tokens, limits, …).
pub async fn spawn_app_with(dir: TempDir, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db_path = db_for(dir.path()).await;
    let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), db_path.clone());
    let db_url = if on_postgres() {
        let url = db_path.to_string_lossy().into_owned();
        settings.db = DbTarget::Postgres {
            url: url.clone(),
            password_file: None,
        };
        Some(url)
    } else {
        None
    };
    settings.workers = Some(2);
    configure(&mut settings);
    let app = Application::build(&settings).await.expect("server starts");
    let address = app.address();
    let stopper = app.stopper();
    let running = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        db_path,
        db_url,
        _dir: dir,
        stopper,
        running,
    }
}

impl TestApp {
    /// Stops the server as SIGTERM would (background tasks, in-flight requests, then the
    /// database is closed) and gives back its folder.
    pub async fn stop(self) -> TempDir {
        self.stopper.stop().await;
        self.running
            .await
            .expect("the server task ends")
            .expect("the server stops cleanly");
        self._dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// POST with `Authorization: Bearer <token>`.
    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// GET with `Authorization: Bearer <token>`.
    pub async fn get_as(&self, token: &str, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: &str) -> Response {
        let mut request = self.client.post(self.url(path)).body(body.to_owned());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("JSON body")
    }

    pub async fn pipeline(&self, body: Value) -> Response {
        self.post_json("/status/pipeline", &body).await
    }

    pub async fn cron(&self, body: Value) -> Response {
        self.post_json("/status/cron", &body).await
    }

    pub async fn v1(&self, body: Value) -> Response {
        self.post_json("/api/status", &body).await
    }

    /// The current state of one host (must exist).
    pub async fn host(&self, group: &str, host: &str) -> Value {
        self.get_json(&format!("/status/{group}/{host}")).await
    }

    pub async fn history(&self, query: &str) -> Vec<Value> {
        let value = self.get_json(&format!("/history{query}")).await;
        value.as_array().expect("history is an array").clone()
    }

    /// Direct access to the database, as an operator with sqlite3 (or psql) would have.
    pub fn db(&self) -> db::Db {
        match &self.db_url {
            Some(url) => db::Db::Postgres(url.clone()),
            None => db::Db::open(&self.db_path),
        }
    }
}

/// Expects a status code and returns the JSON body.
pub async fn expect(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Expects the uniform error body with this status and returns the (field, problem) pairs.
pub async fn expect_error(response: Response, status: u16) -> Vec<(String, String)> {
    let body = expect(response, status).await;
    assert_eq!(body["success"], json!(false), "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body["details"]
        .as_array()
        .unwrap_or_else(|| panic!("details is an array: {body}"))
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap().to_owned(),
                d["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The seed 003 pipeline example.
pub fn seed_pipeline() -> Value {
    json!({
        "project_name": "gitops-for-servers",
        "repo_name": "rsyslog",
        "server_group": "rsyslog-prod",
        "server_type": "rsyslog",
        "environment": "prod",
        "host": "rsyslog-01",
        "status": "synced",
        "changed_files": [],
        "validation_status": "passed",
        "validation_message": "rsyslog syntax validation passed",
        "commit_sha": "abc1234567890",
        "branch": "master",
        "updated_by": "woodpecker",
        "last_pipeline_run": "2026-04-26T10:30:00Z"
    })
}

/// A minimal pipeline report for a host at a time.
pub fn pipeline_at(group: &str, host: &str, status: &str, time: &str) -> Value {
    json!({"server_group": group, "host": host, "status": status, "last_pipeline_run": time})
}

/// A cron report for a host at a time.
pub fn cron_at(group: &str, host: &str, status: &str, files: &[&str], time: &str) -> Value {
    json!({
        "server_group": group, "host": host, "status": status,
        "changed_files": files, "last_cron_check": time
    })
}

/// The real binary, started with `--log-format json` and a listen address of 127.0.0.1:0.
pub struct ServerProcess {
    pub child: Child,
    pub address: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_gitops-status")
}

impl ServerProcess {
    /// Starts `gitops-status serve` on `db` and waits for its "listening" log line.
    pub fn start(db: &Path) -> ServerProcess {
        let mut command = Command::new(binary());
        command.args(["serve", "--listen", "127.0.0.1:0", "--workers", "2", "--db"]);
        command.arg(db);
        Self::start_command(command)
    }

    /// Starts a prepared command (it must log JSON to stdout) and waits until it listens.
    pub fn start_command(mut command: Command) -> ServerProcess {
        command
            .env("GITOPS_STATUS_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        // Drain stdout for the whole life of the process so the pipe never fills up.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    if event["message"] == "listening" {
                        let addr = event["addr"].as_str().unwrap_or_default().to_owned();
                        let _ = tx.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not log 'listening'; logs: {:?}",
                    logs.lock().unwrap()
                );
            }
        };
        ServerProcess {
            child,
            address: addr.parse().expect("listen address"),
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("signal delivered");
    }

    /// Waits for the process to exit (bounded) and returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not exit; logs: {:?}",
                self.logs.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// sqlite3-like (or psql-like) access to the test's database for assertions and sabotage,
/// through sqlx so no second SQLite library is linked. The SQL the tests send is portable
/// between the two; what only SQLite has (its write lock, query plans, PRAGMAs) is only
/// asked of a SQLite database.
pub mod db {
    use std::path::{Path, PathBuf};

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{Connection, PgConnection, SqliteConnection};

    pub enum Db {
        Sqlite(PathBuf),
        Postgres(String),
    }

    enum Conn {
        Sqlite(SqliteConnection),
        Postgres(PgConnection),
    }

    impl Db {
        pub fn open(path: &Path) -> Db {
            Db::Sqlite(path.to_owned())
        }

        fn path(&self) -> &Path {
            match self {
                Db::Sqlite(path) => path,
                Db::Postgres(_) => panic!("this test reads the SQLite file itself"),
            }
        }

        /// A connection to the SQLite file (SQLite only).
        pub async fn connect(&self) -> SqliteConnection {
            let options = SqliteConnectOptions::new()
                .filename(self.path())
                .foreign_keys(false);
            SqliteConnection::connect_with(&options)
                .await
                .expect("open the database file")
        }

        async fn any(&self) -> Conn {
            match self {
                Db::Sqlite(_) => Conn::Sqlite(self.connect().await),
                Db::Postgres(url) => Conn::Postgres(
                    PgConnection::connect(url)
                        .await
                        .expect("connect to the test database"),
                ),
            }
        }

        /// An operator's sqlite3 session holding the write lock (`BEGIN IMMEDIATE`) until
        /// `release_write_lock` (SQLite only).
        pub async fn hold_write_lock(&self) -> SqliteConnection {
            let mut operator = self.connect().await;
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut operator)
                .await
                .expect("take the write lock");
            operator
        }

        pub async fn release_write_lock(mut operator: SqliteConnection) {
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut operator)
                .await
                .expect("release the write lock");
            operator.close().await.expect("close the connection");
        }

        /// Runs statements, returning the error message on failure.
        pub async fn execute(&self, sql: &str) -> Result<(), String> {
            let sql = sqlx::AssertSqlSafe(sql.to_owned());
            let result = match self.any().await {
                Conn::Sqlite(mut conn) => sqlx::raw_sql(sql).execute(&mut conn).await.map(drop),
                Conn::Postgres(mut conn) => sqlx::raw_sql(sql).execute(&mut conn).await.map(drop),
            };
            result.map_err(|e| e.to_string())
        }

        /// A single integer from a query.
        pub async fn scalar(&self, sql: &str) -> i64 {
            let sql = sqlx::AssertSqlSafe(sql.to_owned());
            match self.any().await {
                Conn::Sqlite(mut conn) => sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("scalar query"),
                Conn::Postgres(mut conn) => sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("scalar query"),
            }
        }

        /// The `detail` lines of `EXPLAIN QUERY PLAN sql` (SQLite only).
        pub async fn query_plan(&self, sql: &str) -> Vec<String> {
            use sqlx::Row;
            let mut conn = self.connect().await;
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&mut conn)
                .await
                .expect("query plan")
                .iter()
                .map(|row| row.get::<String, _>("detail"))
                .collect()
        }

        /// The text of every row of a one-column query.
        pub async fn texts(&self, sql: &str) -> Vec<String> {
            let sql = sqlx::AssertSqlSafe(sql.to_owned());
            match self.any().await {
                Conn::Sqlite(mut conn) => sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(&mut conn)
                    .await
                    .expect("text query"),
                Conn::Postgres(mut conn) => sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(&mut conn)
                    .await
                    .expect("text query"),
            }
        }

        /// A single text value from a query.
        pub async fn text(&self, sql: &str) -> String {
            let sql = sqlx::AssertSqlSafe(sql.to_owned());
            match self.any().await {
                Conn::Sqlite(mut conn) => sqlx::query_scalar::<_, String>(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("text query"),
                Conn::Postgres(mut conn) => sqlx::query_scalar::<_, String>(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("text query"),
            }
        }
    }
}

/// A token file in `dir` holding one fresh token per (name, scopes); returns its path and the
/// tokens by name.
pub fn token_file(
    dir: &Path,
    tokens: &[(&str, &[&str])],
) -> (PathBuf, std::collections::HashMap<String, String>) {
    let mut lines = vec!["# test tokens".to_owned()];
    let mut secrets = std::collections::HashMap::new();
    for (name, scopes) in tokens {
        let token = gitops_status::auth::generate().unwrap();
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        lines.push(gitops_status::auth::file_line(name, &token, &scopes).unwrap());
        secrets.insert(name.to_string(), token);
    }
    let path = dir.join("tokens");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, secrets)
}
