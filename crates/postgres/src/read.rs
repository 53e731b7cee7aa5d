//! The read path's fixed SQL: lookups whose text never changes, checked against the schema at
//! compile time. Rows come back as plain structs; the main crate turns them into domain types.

use sqlx::PgExecutor;

/// One row of the `current_status` view, column for column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentStatus {
    pub project_name: Option<String>,
    pub repo_name: Option<String>,
    pub server_group: String,
    pub server_type: Option<String>,
    pub environment: Option<String>,
    pub host: String,
    pub status: String,
    pub changed_files: String,
    pub validation_status: Option<String>,
    pub validation_message: Option<String>,
    pub last_pipeline_run: Option<String>,
    pub last_cron_check: Option<String>,
    pub commit_sha: Option<String>,
    pub branch: Option<String>,
    pub updated_by: Option<String>,
    pub timestamp: String,
    pub status_observed_at: String,
    pub reported_drift_count: Option<i64>,
    pub status_since: String,
    pub drift_received_at: Option<String>,
    pub commit_since: Option<String>,
}

/// The current state of one host (an indexed lookup plus primary-key joins). The view's
/// columns are all nullable to PostgreSQL; the overrides say which the joins always fill.
pub async fn current_status<'e>(
    executor: impl PgExecutor<'e>,
    group: &str,
    host: &str,
) -> Result<Option<CurrentStatus>, sqlx::Error> {
    sqlx::query_as!(
        CurrentStatus,
        r#"SELECT project_name AS "project_name?", repo_name AS "repo_name?",
                  server_group AS "server_group!", server_type AS "server_type?",
                  environment AS "environment?", host AS "host!", status AS "status!",
                  changed_files AS "changed_files!", validation_status AS "validation_status?",
                  validation_message AS "validation_message?",
                  last_pipeline_run AS "last_pipeline_run?",
                  last_cron_check AS "last_cron_check?", commit_sha AS "commit_sha?",
                  branch AS "branch?", updated_by AS "updated_by?",
                  timestamp AS "timestamp!", status_observed_at AS "status_observed_at!",
                  reported_drift_count AS "reported_drift_count?",
                  status_since AS "status_since!", drift_received_at AS "drift_received_at?",
                  commit_since AS "commit_since?"
           FROM current_status
           WHERE server_group = $1 AND host = $2"#,
        group,
        host,
    )
    .fetch_optional(executor)
    .await
}

/// A host's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKey {
    pub server_group: String,
    pub host: String,
}

/// The host of the newest v1 report of a host still in the fleet, sent since it last joined
/// it (in `group`, or with name `host`, when given).
pub async fn latest_legacy_host<'e>(
    executor: impl PgExecutor<'e>,
    group: Option<&str>,
    host: Option<&str>,
) -> Result<Option<HostKey>, sqlx::Error> {
    sqlx::query_as!(
        HostKey,
        r#"SELECT r.server_group AS "server_group!", r.host AS "host!" FROM reports r
           WHERE r.kind = 'legacy' AND ($1::text IS NULL OR r.server_group = $1)
             AND ($2::text IS NULL OR r.host = $2)
             AND EXISTS (SELECT 1 FROM hosts h
                         WHERE h.server_group = r.server_group AND h.host = r.host)
             AND NOT EXISTS (SELECT 1 FROM reports d
                             WHERE d.server_group = r.server_group AND d.host = r.host
                               AND d.kind = 'decommission' AND d.id > r.id)
           ORDER BY r.id DESC LIMIT 1"#,
        group,
        host,
    )
    .fetch_optional(executor)
    .await
}

/// When the oldest row still in the history was received; None for an empty history.
pub async fn oldest_received_at<'e>(
    executor: impl PgExecutor<'e>,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT received_at FROM reports ORDER BY id LIMIT 1")
        .fetch_optional(executor)
        .await
}

/// How many rows the history holds.
pub async fn report_count<'e>(executor: impl PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM reports"#)
        .fetch_one(executor)
        .await
}

/// Whether an old server's entry (by its hash) was imported for this host before.
pub async fn imported_before<'e>(
    executor: impl PgExecutor<'e>,
    group: &str,
    host: &str,
    entry_sha256: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM imported_entries
                          WHERE server_group = $1 AND host = $2 AND entry_sha256 = $3)
           AS "found!""#,
        group,
        host,
        entry_sha256,
    )
    .fetch_one(executor)
    .await
}

/// A host of a group that reported a commit, with the commit it runs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutHost {
    pub server_group: String,
    pub host: String,
    pub commit_sha: Option<String>,
    pub status: String,
    pub commit_since: Option<String>,
}

/// The hosts of every group whose pipelines reported `commit_sha`, by group and host.
/// `status` is NULL only before the copies are derived at start-up: such a row fails to
/// decode, as on SQLite.
pub async fn rollout_hosts<'e>(
    executor: impl PgExecutor<'e>,
    commit_sha: &str,
) -> Result<Vec<RolloutHost>, sqlx::Error> {
    sqlx::query_as!(
        RolloutHost,
        r#"SELECT h.server_group, h.host, h.commit_sha, h.status AS "status!", h.commit_since
           FROM hosts h
           WHERE h.server_group IN (SELECT server_group FROM commits WHERE commit_sha = $1)
           ORDER BY h.server_group, h.host"#,
        commit_sha,
    )
    .fetch_all(executor)
    .await
}

/// The answer stored with an Idempotency-Key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyAnswer {
    /// SHA-256 (hex) of the request the key was first used for.
    pub fingerprint: String,
    /// HTTP status.
    pub status: i64,
    /// JSON body.
    pub body: String,
}

/// The answer stored with `principal`'s `key`, if it was stored at or after `since`.
pub async fn idempotency_answer<'e>(
    executor: impl PgExecutor<'e>,
    principal: &str,
    key: &str,
    since: &str,
) -> Result<Option<IdempotencyAnswer>, sqlx::Error> {
    sqlx::query_as!(
        IdempotencyAnswer,
        "SELECT fingerprint, status, body FROM idempotency_keys
         WHERE principal = $1 AND key = $2 AND created_at >= $3",
        principal,
        key,
        since,
    )
    .fetch_optional(executor)
    .await
}

/// The SQL of `received_at + seconds` (both SQL expressions: a TEXT timestamp and an integer
/// or NULL) as the same fixed-width text, byte for byte what SQLite's
/// `strftime('%Y-%m-%dT%H:%M:%fZ', received_at, '+' || seconds || ' seconds')` gives, since it
/// reaches `GET /status` bodies that must not depend on the backend. Like SQLite's, NULL when
/// either is NULL or the result lies past the year 9999. Through `timestamp` (without time
/// zone), which ignores the `Z` and keeps the session's TimeZone out of the arithmetic;
/// `make_interval(secs => …)` adds exact seconds (no calendar days). COLLATE "C" so that
/// `min()` of it orders like the stored timestamps.
pub fn due_by_sql(received_at: &str, seconds: &str) -> String {
    format!(
        "(SELECT CASE WHEN d.t < '10000-01-01' \
                      THEN to_char(d.t, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END \
          FROM (SELECT ({received_at})::timestamp \
                       + make_interval(secs => ({seconds})) AS t) d) COLLATE \"C\""
    )
}
