//! The command line. Every option has a flag and an environment variable; `gitops-status`
//! without a subcommand serves, as `gitops-status serve` does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "gitops-status",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: Box<ServeArgs>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve(Box<ServeArgs>),
    /// Print the OpenAPI document as YAML.
    Openapi,
    /// Check the database and walk the audit chain: exit 0 with the number of rows verified,
    /// exit 1 naming the first row whose content, order or presence was changed.
    Verify(VerifyArgs),
    /// Import the last state of the old servers' files (v2 status.json, v1 status object):
    /// one report per host, all or nothing. Refuses while a server has the database open.
    Import(ImportArgs),
    /// Write a consistent copy of the database (safe while the server runs).
    Backup(BackupArgs),
    /// Copy a SQLite history into an empty PostgreSQL database, then verify it there. Stop
    /// the server first: the file must not be written meanwhile.
    MigrateDb(MigrateDbArgs),
    /// Send one report to a gitops-status server, from CI or cron: retried with one
    /// Idempotency-Key until accepted. Exit 0 accepted, 1 refused by the server, 2 usage
    /// error, 3 gave up.
    Report(Box<ReportArgs>),
    /// Fill a database with a generated history, for bench/run (built with --features bench).
    #[cfg(feature = "bench")]
    BenchFill(BenchFillArgs),
    /// Manage write tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT [default: API_HOST:API_PORT when set, else 0.0.0.0:5000]
    #[arg(long, env = "GITOPS_STATUS_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// The seeds' listen host, used when --listen and GITOPS_STATUS_LISTEN are unset.
    #[arg(long, env = "API_HOST", hide = true)]
    pub api_host: Option<String>,

    /// The seeds' listen port, used when --listen and GITOPS_STATUS_LISTEN are unset.
    #[arg(long, env = "API_PORT", hide = true)]
    pub api_port: Option<String>,

    /// The database: a SQLite file (parent folders are created), or a PostgreSQL
    /// `postgres://` URL.
    #[arg(
        long,
        env = "GITOPS_STATUS_DB",
        value_name = "PATH|URL",
        default_value = "data/gitops-status.db"
    )]
    pub db: PathBuf,

    /// A file holding the PostgreSQL password (a mounted Secret), for a `postgres://` --db
    /// without one; else the URL's, or PGPASSWORD's.
    #[arg(long, env = "GITOPS_STATUS_DB_PASSWORD_FILE", value_name = "PATH")]
    pub db_password_file: Option<PathBuf>,

    /// Log format (the level comes from RUST_LOG, default info).
    #[arg(long, env = "GITOPS_STATUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Read-only database connections serving GET requests.
    #[arg(
        long,
        env = "GITOPS_STATUS_READ_CONNECTIONS",
        value_name = "N",
        default_value_t = 4
    )]
    pub read_connections: u32,

    /// HTTP worker threads [default: the number of CPUs available to the process]
    #[arg(long, env = "GITOPS_STATUS_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// How long in-flight requests may finish after SIGTERM/SIGINT (45s, 2m; a bare number
    /// is seconds).
    #[arg(
        long,
        env = "GITOPS_STATUS_SHUTDOWN_TIMEOUT",
        value_name = "DURATION",
        default_value = "20"
    )]
    pub shutdown_timeout: String,

    /// Token file (`NAME SHA256_HEX SCOPES` per line). Without it anyone who can reach the
    /// service may write.
    #[arg(long, env = "GITOPS_STATUS_TOKENS", value_name = "PATH")]
    pub tokens: Option<PathBuf>,

    /// Reads need a token with the read or admin scope too (needs --tokens).
    #[arg(
        long,
        env = "GITOPS_STATUS_READ_REQUIRES_TOKEN",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub read_requires_token: bool,

    /// How often to check the token file for changes (30s, 5m; a bare number is seconds);
    /// 0: reload only on SIGHUP.
    #[arg(
        long,
        env = "GITOPS_STATUS_TOKENS_POLL_INTERVAL",
        value_name = "DURATION",
        default_value = "30"
    )]
    pub tokens_poll_interval: String,

    /// How long a client may take to send a request's head, and again its body (then 408;
    /// 10s; a bare number is seconds).
    #[arg(
        long,
        env = "GITOPS_STATUS_REQUEST_TIMEOUT",
        value_name = "DURATION",
        default_value = "10"
    )]
    pub request_timeout: String,

    /// How long an idle keep-alive connection stays open (5s; a bare number is seconds; 0:
    /// no keep-alive).
    #[arg(
        long,
        env = "GITOPS_STATUS_KEEP_ALIVE",
        value_name = "DURATION",
        default_value = "5"
    )]
    pub keep_alive: String,

    /// Open connections per worker; beyond it new connections wait in the listen backlog.
    #[arg(
        long,
        env = "GITOPS_STATUS_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 1024
    )]
    pub max_connections: usize,

    /// Reports that may wait for the writer; when that many wait, more are answered 503 with
    /// Retry-After until it catches up.
    #[arg(
        long,
        env = "GITOPS_STATUS_WRITE_QUEUE",
        value_name = "N",
        default_value_t = 1024
    )]
    pub write_queue: usize,

    /// Log the audit chain's head (id and hash) every N reports, so it is published outside
    /// the database; 0 turns it off.
    #[arg(
        long,
        env = "GITOPS_STATUS_CHAIN_LOG_EVERY",
        value_name = "N",
        default_value_t = 1000
    )]
    pub chain_log_every: u64,

    /// Reports older than this are removed, unless a rule keeps them (45s, 90m, 36h, 30d;
    /// 0 or off: never).
    #[arg(
        long,
        env = "GITOPS_STATUS_RETAIN_REPORTS",
        value_name = "DURATION",
        default_value = "30d"
    )]
    pub retain_reports: String,

    /// Reports that changed something (every deployment, a drift check that changed a host's
    /// status or files, decommissions, imports, retention's records) are kept this long
    /// (0 or off: forever).
    #[arg(
        long,
        env = "GITOPS_STATUS_RETAIN_CHANGES",
        value_name = "DURATION",
        default_value = "400d"
    )]
    pub retain_changes: String,

    /// The newest N reports of every host are always kept.
    #[arg(
        long,
        env = "GITOPS_STATUS_RETAIN_PER_HOST",
        value_name = "N",
        default_value_t = 100
    )]
    pub retain_per_host: u32,

    /// How often retention prunes the history (the first pass runs shortly after start).
    #[arg(
        long,
        env = "GITOPS_STATUS_PRUNE_INTERVAL",
        value_name = "DURATION",
        default_value = "10m"
    )]
    pub prune_interval: String,

    /// How long a host may go without a drift check (cron or v1) before it is stale:
    /// GLOB=DURATION pairs, matched on server_group, first match wins (a group none matches:
    /// 1h; DURATION off: never stale). Hosts that never had a drift check are never stale.
    #[arg(
        long,
        env = "GITOPS_STATUS_STALE_AFTER",
        value_name = "GLOB=DURATION,...",
        default_value = "*=1h"
    )]
    pub stale_after: String,

    /// How long an Idempotency-Key is remembered: a repeat within it writes nothing and gets
    /// the first answer again (45s, 90m, 36h, 30d).
    #[arg(
        long,
        env = "GITOPS_STATUS_IDEMPOTENCY_WINDOW",
        value_name = "DURATION",
        default_value = "24h"
    )]
    pub idempotency_window: String,

    /// `/metrics` carries one series per host (in sync, stale, last report, status); turn off
    /// for very large fleets: the totals by status stay.
    #[arg(
        long,
        env = "GITOPS_STATUS_METRICS_PER_HOST",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "true"
    )]
    pub metrics_per_host: bool,

    /// Badges (/badge/…) need no token even with --read-requires-token: READMEs and chat
    /// previews cannot send one. They show a host's or group's status to anyone who can reach
    /// the service.
    #[arg(
        long,
        env = "GITOPS_STATUS_PUBLIC_BADGES",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub public_badges: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random token, then the line to append to the token file.
    New {
        /// The token's name, stored with every report it writes (letters, digits, . _ -).
        name: String,
        /// What it may do: read, admin, write:<server_group glob>; comma-separated or repeated.
        #[arg(long, value_delimiter = ',', required = true, value_name = "SCOPE")]
        scope: Vec<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The database to verify: a SQLite file or a `postgres://` URL (read-only; safe while
    /// the server runs).
    #[arg(
        long,
        env = "GITOPS_STATUS_DB",
        value_name = "PATH|URL",
        default_value = "data/gitops-status.db"
    )]
    pub db: PathBuf,
    /// A file holding the PostgreSQL password, for a `postgres://` --db without one.
    #[arg(long, env = "GITOPS_STATUS_DB_PASSWORD_FILE", value_name = "PATH")]
    pub db_password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The database to import into: a SQLite file (created if missing) or a `postgres://`
    /// URL.
    #[arg(
        long,
        env = "GITOPS_STATUS_DB",
        value_name = "PATH|URL",
        default_value = "data/gitops-status.db"
    )]
    pub db: PathBuf,
    /// A file holding the PostgreSQL password, for a `postgres://` --db without one.
    #[arg(long, env = "GITOPS_STATUS_DB_PASSWORD_FILE", value_name = "PATH")]
    pub db_password_file: Option<PathBuf>,
    /// The old servers' files: v2 status.json or v1 status objects.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateDbArgs {
    /// The SQLite database file to copy (the server must be stopped; the file is not changed).
    #[arg(long, env = "GITOPS_STATUS_MIGRATE_FROM", value_name = "PATH")]
    pub from: PathBuf,
    /// The empty PostgreSQL database to copy into: a `postgres://` URL.
    #[arg(long, env = "GITOPS_STATUS_MIGRATE_TO", value_name = "URL")]
    pub to: PathBuf,
    /// A file holding the target's password, for a --to URL without one.
    #[arg(long, env = "GITOPS_STATUS_DB_PASSWORD_FILE", value_name = "PATH")]
    pub db_password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// SQLite database file to copy (read-only; safe while the server runs).
    #[arg(
        long,
        env = "GITOPS_STATUS_DB",
        value_name = "PATH",
        default_value = "data/gitops-status.db"
    )]
    pub db: PathBuf,
    /// Where to write the copy; it must not exist.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[cfg(feature = "bench")]
#[derive(Debug, Clone, Args)]
pub struct BenchFillArgs {
    /// SQLite database file to fill (created if missing; an existing one is extended).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Hosts the reports are spread over (host-00000 … in group-00 … group-09).
    #[arg(long, value_name = "N")]
    pub hosts: u64,
    /// Reports the database holds when done.
    #[arg(long, value_name = "N")]
    pub rows: u64,
}

/// What `gitops-status report` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportMode {
    /// A deployment: POST /status/pipeline.
    Pipeline,
    /// A drift check of an existing host: POST /status/cron.
    Cron,
    /// The old servers' report: POST /api/status.
    V1,
}

#[derive(Debug, Clone, Args)]
#[command(args_override_self = true)]
pub struct ReportArgs {
    /// What to send [default: cron in a scheduled CI run, otherwise pipeline]
    #[arg(value_enum, env = "GITOPS_STATUS_MODE")]
    pub mode: Option<ReportMode>,

    /// The server's base URL, e.g. http://gitops-status.observability-stack.svc:5000
    #[arg(long, env = "GITOPS_STATUS_URL", value_name = "URL")]
    pub url: Option<String>,

    /// The write token; `file:PATH` reads it from a file. Prefer the environment variable or
    /// --token-file: a flag's value is visible to other users in `ps`.
    #[arg(
        long,
        env = "GITOPS_STATUS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Read the write token from this file (surrounding whitespace is ignored).
    #[arg(long, env = "GITOPS_STATUS_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// The host's group (`repo` in v1).
    #[arg(long, env = "GITOPS_STATUS_SERVER_GROUP", value_name = "NAME")]
    pub server_group: Option<String>,

    /// The host (`server` in v1) [default: this machine's hostname]
    #[arg(long, env = "GITOPS_STATUS_HOST", value_name = "NAME")]
    pub host: Option<String>,

    /// synced, out_of_sync, failed or unknown (any case; SYNCED and OUT_OF_SYNC as the drift
    /// check prints them).
    #[arg(long, env = "GITOPS_STATUS_STATUS", value_name = "STATUS")]
    pub status: Option<String>,

    /// A file that differs from Git; repeat it, or separate paths with commas.
    #[arg(
        long = "changed-file",
        env = "GITOPS_STATUS_CHANGED_FILES",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub changed_files: Vec<String>,

    /// Read the status and changed files from the drift check's output (its SYNC_STATUS= and
    /// DRIFTED_FILES= lines; other lines are ignored); `-` reads standard input.
    #[arg(long, env = "GITOPS_STATUS_DRIFT_OUTPUT", value_name = "FILE|-")]
    pub drift_output: Option<String>,

    /// Validation result: passed, failed, skipped, … (pipeline)
    #[arg(long, env = "GITOPS_STATUS_VALIDATION_STATUS", value_name = "TEXT")]
    pub validation_status: Option<String>,

    /// Validator output (pipeline).
    #[arg(long, env = "GITOPS_STATUS_VALIDATION_MESSAGE", value_name = "TEXT")]
    pub validation_message: Option<String>,

    /// prod, staging, dev, … (pipeline)
    #[arg(long, env = "GITOPS_STATUS_ENVIRONMENT", value_name = "TEXT")]
    pub environment: Option<String>,

    /// rsyslog, nginx, splunk, … (pipeline)
    #[arg(long, env = "GITOPS_STATUS_SERVER_TYPE", value_name = "TEXT")]
    pub server_type: Option<String>,

    /// Project identifier (pipeline).
    #[arg(long, env = "GITOPS_STATUS_PROJECT_NAME", value_name = "TEXT")]
    pub project_name: Option<String>,

    /// Repository name (pipeline) [default: from the CI's variables]
    #[arg(long, env = "GITOPS_STATUS_REPO_NAME", value_name = "TEXT")]
    pub repo_name: Option<String>,

    /// Commit deployed (pipeline) [default: from the CI's variables]
    #[arg(long, env = "GITOPS_STATUS_COMMIT_SHA", value_name = "SHA")]
    pub commit_sha: Option<String>,

    /// Branch deployed (pipeline) [default: from the CI's variables]
    #[arg(long, env = "GITOPS_STATUS_BRANCH", value_name = "NAME")]
    pub branch: Option<String>,

    /// Who sent the deployment (pipeline) [default: the CI system's name]
    #[arg(long, env = "GITOPS_STATUS_UPDATED_BY", value_name = "TEXT")]
    pub updated_by: Option<String>,

    /// A link to the CI run, sent as `ci_run` [default: the run's URL from the CI's variables]
    #[arg(long, env = "GITOPS_STATUS_CI_RUN", value_name = "URL")]
    pub ci_run: Option<String>,

    /// The time the report describes (RFC 3339) [default: when the command started; with
    /// --idempotency-key: none, the server's arrival time counts, so a re-run sends the same
    /// body]
    #[arg(long, env = "GITOPS_STATUS_AT", value_name = "TIME")]
    pub at: Option<String>,

    /// How long one attempt may take (10s, 1m; a bare number is seconds).
    #[arg(
        long,
        env = "GITOPS_STATUS_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub timeout: String,

    /// Keep retrying a report that was not answered, or answered 408, 429, 500, 502, 503 or
    /// 504, for this long (2m, 90s; 0: no retries).
    #[arg(
        long,
        env = "GITOPS_STATUS_RETRY_FOR",
        value_name = "DURATION",
        default_value = "2m"
    )]
    pub retry_for: String,

    /// Retry at most this many times (as well as within --retry-for).
    #[arg(long, env = "GITOPS_STATUS_RETRIES", value_name = "N")]
    pub retries: Option<u32>,

    /// The Idempotency-Key for the report and its retries [default: a new random key per
    /// invocation]. A key derived from the CI run (e.g. pipeline number and host) makes a
    /// re-run of the step safe too.
    #[arg(long, env = "GITOPS_STATUS_IDEMPOTENCY_KEY", value_name = "KEY")]
    pub idempotency_key: Option<String>,

    /// Trust only the CA certificates in this PEM file for https URLs [default: the Mozilla
    /// roots built in].
    #[arg(long, env = "GITOPS_STATUS_CA_CERT", value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,

    /// Print the request that would be sent (the token masked) and send nothing.
    #[arg(
        long,
        env = "GITOPS_STATUS_DRY_RUN",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub dry_run: bool,

    /// Read the settings from Woodpecker's PLUGIN_* variables (the report image's
    /// entrypoint): PLUGIN_URL, PLUGIN_TOKEN, PLUGIN_SERVER_GROUP, … as the flags above.
    #[arg(long, env = "GITOPS_STATUS_PLUGIN",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub plugin: bool,
}
