//! Validated settings. Building them does no I/O; a bad value fails here, naming its flag and
//! environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cli::{LogFormat, ServeArgs};
use crate::domain::{Clock, Period, RetentionPolicy, StalePolicy};

/// Where the database is, as `--db` names it.
#[derive(Clone, PartialEq, Eq)]
pub enum DbTarget {
    /// A SQLite file (the default).
    Sqlite(PathBuf),
    /// A PostgreSQL database: the URL (which may hold a password; never logged) and the
    /// file holding the password (`--db-password-file`), read when the server connects.
    Postgres {
        url: String,
        password_file: Option<PathBuf>,
    },
}

impl DbTarget {
    /// `--db`: a `postgres://` or `postgresql://` URL, else a file path.
    pub fn parse(db: &std::path::Path, password_file: Option<PathBuf>) -> anyhow::Result<Self> {
        let text = db.to_string_lossy();
        let postgres = ["postgres://", "postgresql://"].iter().any(|scheme| {
            text.get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        });
        if postgres {
            url::Url::parse(&text).map_err(|e| {
                anyhow::anyhow!("--db / GITOPS_STATUS_DB: not a usable PostgreSQL URL: {e}")
            })?;
            return Ok(DbTarget::Postgres {
                url: text.into_owned(),
                password_file,
            });
        }
        if password_file.is_some() {
            bail!(
                "--db-password-file / GITOPS_STATUS_DB_PASSWORD_FILE: only for a PostgreSQL \
                 --db (postgres://…); {} is a SQLite file",
                db.display()
            );
        }
        if db.as_os_str().is_empty() {
            bail!("--db / GITOPS_STATUS_DB: the path is empty");
        }
        Ok(DbTarget::Sqlite(db.to_owned()))
    }
}

impl std::fmt::Display for DbTarget {
    /// The file's path, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbTarget::Sqlite(path) => write!(f, "{}", path.display()),
            DbTarget::Postgres { url, .. } => match url::Url::parse(url) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("*****"));
                    }
                    // sqlx also reads ?password=…
                    let pairs: Vec<(String, String)> = url
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k == "password" { "*****".into() } else { v };
                            (k.into_owned(), v.into_owned())
                        })
                        .collect();
                    if !pairs.is_empty() {
                        url.query_pairs_mut().clear().extend_pairs(pairs);
                    }
                    write!(f, "{url}")
                }
                Err(_) => write!(f, "postgres://…"),
            },
        }
    }
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbTarget({self})")
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub db: DbTarget,
    pub log_format: LogFormat,
    pub read_connections: u32,
    /// None: one per CPU.
    pub workers: Option<usize>,
    pub shutdown_timeout: Duration,
    /// Log the audit chain's head every this many reports (0: never).
    pub chain_log_every: u64,
    /// The token file; None: no authentication.
    pub tokens: Option<PathBuf>,
    pub read_requires_token: bool,
    /// How often to check the token file for changes; None: only on SIGHUP.
    pub tokens_poll_interval: Option<Duration>,
    /// How long a client may take to send a request's head, and again its body.
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
    /// Open connections per worker before the server stops accepting more.
    pub max_connections: usize,
    /// Reports that may wait for the writer before more are refused with 503.
    pub write_queue: usize,
    /// How long history is kept.
    pub retention: RetentionPolicy,
    /// How often retention prunes.
    pub prune_interval: Period,
    /// How long after start the first background retention pass waits (10 s; not an option:
    /// tests that run retention themselves, on a clock they move, set it longer).
    pub first_prune_after: Duration,
    /// When silent hosts turn stale.
    pub stale_policy: StalePolicy,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_window: Period,
    /// The clock every row is stamped with: the system's, except in tests.
    pub clock: Clock,
    /// `/metrics` carries one series per host.
    pub metrics_per_host: bool,
    /// Badges need no token even with --read-requires-token.
    pub public_badges: bool,
    /// Test builds only: the writer panics on a report for this host (an injected fault).
    pub panic_on_host: Option<String>,
    /// Test builds only: the token watcher panics on the first SIGHUP (an injected fault).
    pub token_watcher_panics: bool,
}

/// An injected fault, in test builds only (debug assertions on, as `cargo test` builds the
/// binary), from `GITOPS_STATUS_TEST_FAULT`:
/// - `writer-panics-on-host:NAME`: the writer panics when asked to write a report for host NAME;
/// - `token-watcher-panics-on-first-sighup`: the token watcher panics on the first SIGHUP.
///
/// Release builds do not read the variable.
fn injected_fault() -> Option<String> {
    #[cfg(debug_assertions)]
    {
        std::env::var("GITOPS_STATUS_TEST_FAULT").ok()
    }
    #[cfg(not(debug_assertions))]
    {
        None
    }
}

fn writer_panics_on_host() -> Option<String> {
    injected_fault().and_then(|v| v.strip_prefix("writer-panics-on-host:").map(str::to_owned))
}

fn token_watcher_panics() -> bool {
    injected_fault().as_deref() == Some("token-watcher-panics-on-first-sighup")
}

/// One day: a CI retry, or a rerun of the same pipeline the next morning.
pub const DEFAULT_IDEMPOTENCY_WINDOW: Period = Period::DAY;

impl Settings {
    /// Settings for a server on `listen` with database `db` and every other option at its default.
    pub fn new(listen: SocketAddr, db: PathBuf) -> Self {
        Settings {
            listen,
            db: DbTarget::Sqlite(db),
            log_format: LogFormat::Text,
            read_connections: 4,
            workers: None,
            shutdown_timeout: Duration::from_secs(20),
            chain_log_every: 1000,
            tokens: None,
            read_requires_token: false,
            tokens_poll_interval: Some(Duration::from_secs(30)),
            request_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(5),
            max_connections: 1024,
            write_queue: 1024,
            retention: RetentionPolicy::default(),
            prune_interval: Period::from_secs(600).unwrap_or(Period::MINUTE),
            first_prune_after: Duration::from_secs(10),
            stale_policy: StalePolicy::default(),
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
            clock: Clock::system(),
            metrics_per_host: true,
            public_badges: false,
            panic_on_host: None,
            token_watcher_panics: false,
        }
    }
}

/// A duration option, or the start-up error naming its flag and variable.
fn period(flag: &str, env: &str, text: &str) -> anyhow::Result<Period> {
    Period::parse(text).map_err(|problem| anyhow::anyhow!("{flag} / {env}: {problem}"))
}

/// A duration option that predates the unit form: a bare number is seconds (as before),
/// otherwise a duration (`45s`, `2m`); `0` only where `zero` allows it.
pub(crate) fn seconds(flag: &str, env: &str, text: &str, zero: bool) -> anyhow::Result<Duration> {
    let parsed = match text.parse::<u64>() {
        Ok(0) if !zero => Err("must be at least 1s".to_owned()),
        Ok(n) => Ok(Duration::from_secs(n)),
        Err(_) => Period::parse(text).map(Period::as_duration),
    };
    parsed.map_err(|problem| anyhow::anyhow!("{flag} / {env}: {problem}"))
}

/// A retention limit: a duration, or 0 / off for none.
fn limit(flag: &str, env: &str, text: &str) -> anyhow::Result<Option<Period>> {
    Period::parse_or_off(text).map_err(|problem| anyhow::anyhow!("{flag} / {env}: {problem}"))
}

fn listen_address(args: &ServeArgs) -> anyhow::Result<SocketAddr> {
    if let Some(listen) = &args.listen {
        return listen.parse().with_context(|| {
            format!(
                "--listen / GITOPS_STATUS_LISTEN: {listen:?} is not IP:PORT (e.g. 0.0.0.0:5000)"
            )
        });
    }
    let host = args.api_host.as_deref().unwrap_or("0.0.0.0");
    let port = args.api_port.as_deref().unwrap_or("5000");
    let port: u16 = port
        .parse()
        .with_context(|| format!("API_PORT: {port:?} is not a port number"))?;
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .with_context(|| format!("API_HOST: {host:?} is not an IP address"))?;
    Ok(SocketAddr::new(ip, port))
}

impl TryFrom<ServeArgs> for Settings {
    type Error = anyhow::Error;

    fn try_from(args: ServeArgs) -> anyhow::Result<Self> {
        let listen = listen_address(&args)?;
        let db = DbTarget::parse(&args.db, args.db_password_file.clone())?;
        if args.read_connections == 0 {
            bail!("--read-connections / GITOPS_STATUS_READ_CONNECTIONS: must be at least 1");
        }
        if args.read_requires_token && args.tokens.is_none() {
            bail!(
                "--read-requires-token / GITOPS_STATUS_READ_REQUIRES_TOKEN needs a token file \
                 (--tokens / GITOPS_STATUS_TOKENS)"
            );
        }
        let request_timeout = seconds(
            "--request-timeout",
            "GITOPS_STATUS_REQUEST_TIMEOUT",
            &args.request_timeout,
            false,
        )?;
        let shutdown_timeout = seconds(
            "--shutdown-timeout",
            "GITOPS_STATUS_SHUTDOWN_TIMEOUT",
            &args.shutdown_timeout,
            true,
        )?;
        let keep_alive = seconds(
            "--keep-alive",
            "GITOPS_STATUS_KEEP_ALIVE",
            &args.keep_alive,
            true,
        )?;
        let tokens_poll_interval = seconds(
            "--tokens-poll-interval",
            "GITOPS_STATUS_TOKENS_POLL_INTERVAL",
            &args.tokens_poll_interval,
            true,
        )?;
        if args.max_connections == 0 {
            bail!("--max-connections / GITOPS_STATUS_MAX_CONNECTIONS: must be at least 1");
        }
        if args.write_queue == 0 {
            bail!("--write-queue / GITOPS_STATUS_WRITE_QUEUE: must be at least 1");
        }
        if args.workers == Some(0) {
            bail!("--workers / GITOPS_STATUS_WORKERS: must be at least 1");
        }
        let retention = RetentionPolicy {
            reports: limit(
                "--retain-reports",
                "GITOPS_STATUS_RETAIN_REPORTS",
                &args.retain_reports,
            )?,
            changes: limit(
                "--retain-changes",
                "GITOPS_STATUS_RETAIN_CHANGES",
                &args.retain_changes,
            )?,
            per_host: args.retain_per_host,
        };
        let prune_interval = period(
            "--prune-interval",
            "GITOPS_STATUS_PRUNE_INTERVAL",
            &args.prune_interval,
        )?;
        let stale_policy = StalePolicy::parse(&args.stale_after).map_err(|problem| {
            anyhow::anyhow!("--stale-after / GITOPS_STATUS_STALE_AFTER: {problem}")
        })?;
        let idempotency_window = period(
            "--idempotency-window",
            "GITOPS_STATUS_IDEMPOTENCY_WINDOW",
            &args.idempotency_window,
        )?;
        Ok(Settings {
            listen,
            db,
            log_format: args.log_format,
            read_connections: args.read_connections,
            workers: args.workers,
            shutdown_timeout,
            chain_log_every: args.chain_log_every,
            tokens: args.tokens,
            read_requires_token: args.read_requires_token,
            tokens_poll_interval: (!tokens_poll_interval.is_zero()).then_some(tokens_poll_interval),
            request_timeout,
            keep_alive,
            max_connections: args.max_connections,
            write_queue: args.write_queue,
            retention,
            prune_interval,
            first_prune_after: Duration::from_secs(10),
            stale_policy,
            idempotency_window,
            clock: Clock::system(),
            metrics_per_host: args.metrics_per_host,
            public_badges: args.public_badges,
            panic_on_host: writer_panics_on_host(),
            token_watcher_panics: token_watcher_panics(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        let target = |url: &str| DbTarget::parse(std::path::Path::new(url), None).unwrap();
        let shown = target("postgres://app:s3cret@db:5432/gs?sslmode=require").to_string();
        assert_eq!(shown, "postgres://app:*****@db:5432/gs?sslmode=require");
        let shown = target("postgresql://app@db/gs?password=s3cret&sslmode=require").to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("password=*****"), "{shown}");
        assert!(!format!("{:?}", target("postgres://app:s3cret@db/gs")).contains("s3cret"));
        assert_eq!(
            target("data/x.db"),
            DbTarget::Sqlite(std::path::PathBuf::from("data/x.db"))
        );
    }
    use clap::Parser;

    fn settings(args: &[&str]) -> anyhow::Result<Settings> {
        let cli = crate::cli::Cli::try_parse_from(
            std::iter::once("gitops-status").chain(args.iter().copied()),
        )?;
        Settings::try_from(*cli.serve)
    }

    #[test]
    fn listen_comes_from_the_flag_or_the_seeds_variables() {
        let s = settings(&["--listen", "127.0.0.1:8080"]).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        let s = settings(&["--api-host", "127.0.0.1", "--api-port", "5001"]).unwrap();
        assert_eq!(s.listen, "127.0.0.1:5001".parse().unwrap());
        let s = settings(&["--api-host", "::1"]).unwrap();
        assert_eq!(s.listen, "[::1]:5000".parse().unwrap());
        let s = settings(&["--listen", "127.0.0.1:1", "--api-host", "10.0.0.1"]).unwrap();
        assert_eq!(s.listen.port(), 1, "the project's own option wins");
    }

    #[test]
    fn bad_values_name_flag_and_variable() {
        let err = settings(&["--listen", "localhost"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--listen / GITOPS_STATUS_LISTEN"), "{err}");
        let err = settings(&["--api-port", "http"]).unwrap_err().to_string();
        assert!(err.contains("API_PORT"), "{err}");
        let err = settings(&["--read-connections", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("GITOPS_STATUS_READ_CONNECTIONS"), "{err}");
        let err = settings(&["--retain-reports", "30"])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--retain-reports / GITOPS_STATUS_RETAIN_REPORTS: \"30\""),
            "{err}"
        );
        let err = settings(&["--prune-interval", "off"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--prune-interval / GITOPS_STATUS_PRUNE_INTERVAL"),
            "{err}"
        );
    }

    #[test]
    fn older_duration_options_take_seconds_or_the_unit_form() {
        let s = settings(&["--request-timeout", "1m", "--keep-alive", "0"]).unwrap();
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert_eq!(s.keep_alive, Duration::ZERO);
        let s = settings(&["--shutdown-timeout", "45", "--tokens-poll-interval", "0"]).unwrap();
        assert_eq!(s.shutdown_timeout, Duration::from_secs(45));
        assert_eq!(s.tokens_poll_interval, None);
        let err = settings(&["--request-timeout", "0"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--request-timeout / GITOPS_STATUS_REQUEST_TIMEOUT"),
            "{err}"
        );
        let err = settings(&["--keep-alive", "5 s"]).unwrap_err().to_string();
        assert!(
            err.contains("--keep-alive / GITOPS_STATUS_KEEP_ALIVE"),
            "{err}"
        );
    }

    #[test]
    fn retention_defaults_and_off() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.retention, RetentionPolicy::default());
        assert_eq!(s.prune_interval.to_string(), "10m");
        let s = settings(&["--retain-reports", "36h", "--retain-changes", "off"]).unwrap();
        assert_eq!(s.retention.reports, Period::from_secs(36 * 3600));
        assert_eq!(s.retention.changes, None);
        let s = settings(&["--retain-reports", "0", "--retain-per-host", "0"]).unwrap();
        assert!(s.retention.keeps_everything());
        assert_eq!(s.retention.per_host, 0);
    }

    #[test]
    fn stale_after_defaults_to_an_hour_and_names_itself_when_wrong() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.stale_policy, StalePolicy::default());
        let s = settings(&["--stale-after", "rsyslog-*=10m,*=off"]).unwrap();
        assert_eq!(s.stale_policy.after("rsyslog-prod"), Period::from_secs(600));
        assert_eq!(s.stale_policy.after("nginx"), None);
        let err = settings(&["--stale-after", "rsyslog=10"])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--stale-after / GITOPS_STATUS_STALE_AFTER: "),
            "{err}"
        );
    }
}
