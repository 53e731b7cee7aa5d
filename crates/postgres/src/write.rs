//! The writer's statements. A group's rows go in as one JSON array per table
//! (`json_populate_recordset` over the table's own row type), so each statement has one text
//! parameter whatever the group's size, and sqlx checks it like any other.

use sqlx::PgConnection;

/// A stored host as the writer loads it (see the main crate's `group::LoadedHost`).
#[derive(Debug)]
pub struct LoadedHost {
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
    pub last_report_id: i64,
    pub status_id: i64,
    pub files_id: i64,
    pub files_at: String,
    pub pipeline_id: Option<i64>,
    pub cron_id: Option<i64>,
}

/// The stored state and facet heads of the hosts named in `keys`, a JSON array of
/// `[server_group, host]` pairs.
pub async fn load_hosts(tx: &mut PgConnection, keys: &str) -> Result<Vec<LoadedHost>, sqlx::Error> {
    sqlx::query_as!(
        LoadedHost,
        r#"SELECT cs.project_name, cs.repo_name, cs.server_group AS "server_group!",
                  cs.server_type, cs.environment, cs.host AS "host!", cs.status AS "status!",
                  cs.changed_files AS "changed_files!", cs.validation_status,
                  cs.validation_message, cs.last_pipeline_run, cs.last_cron_check,
                  cs.commit_sha, cs.branch, cs.updated_by, cs.timestamp AS "timestamp!",
                  cs.status_observed_at AS "status_observed_at!", cs.reported_drift_count,
                  cs.status_since AS "status_since!", cs.drift_received_at, cs.commit_since,
                  h.last_report_id, h.status_report_id AS status_id,
                  h.files_report_id AS files_id, f.observed_at AS files_at,
                  h.pipeline_report_id AS pipeline_id, h.cron_report_id AS cron_id
           FROM json_array_elements($1::text::json) AS k
           JOIN hosts h ON h.server_group = (k ->> 0) COLLATE "C"
                       AND h.host = (k ->> 1) COLLATE "C"
           JOIN current_status cs ON cs.server_group = h.server_group AND cs.host = h.host
           JOIN reports f ON f.id = h.files_report_id"#,
        keys
    )
    .fetch_all(&mut *tx)
    .await
}

/// Forgets the Idempotency-Keys used before `before`.
pub async fn forget_keys(tx: &mut PgConnection, before: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM idempotency_keys WHERE created_at < $1", before)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Inserts `reports` rows: a JSON array of objects named by column, in chain order.
pub async fn insert_reports(tx: &mut PgConnection, rows: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO reports
         SELECT * FROM json_populate_recordset(NULL::reports, $1::text::json)",
        rows
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Writes hosts' pointers and rows (each host once): a JSON array of `hosts` objects.
pub async fn upsert_hosts(tx: &mut PgConnection, hosts: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO hosts (server_group, host, last_report_id, status_report_id,
                            files_report_id, pipeline_report_id, cron_report_id, status_row,
                            status, changed_files_count, environment, server_type, repo_name,
                            project_name, branch, commit_sha, validation_status, status_since,
                            drift_received_at, commit_since)
         SELECT server_group, host, last_report_id, status_report_id, files_report_id,
                pipeline_report_id, cron_report_id, status_row, status, changed_files_count,
                environment, server_type, repo_name, project_name, branch, commit_sha,
                validation_status, status_since, drift_received_at, commit_since
         FROM json_populate_recordset(NULL::hosts, $1::text::json)
         ON CONFLICT (server_group, host) DO UPDATE SET
             last_report_id = excluded.last_report_id,
             status_report_id = excluded.status_report_id,
             files_report_id = excluded.files_report_id,
             pipeline_report_id = excluded.pipeline_report_id,
             cron_report_id = excluded.cron_report_id,
             status_row = excluded.status_row, status = excluded.status,
             changed_files_count = excluded.changed_files_count,
             environment = excluded.environment, server_type = excluded.server_type,
             repo_name = excluded.repo_name, project_name = excluded.project_name,
             branch = excluded.branch, commit_sha = excluded.commit_sha,
             validation_status = excluded.validation_status,
             status_since = excluded.status_since,
             drift_received_at = excluded.drift_received_at,
             commit_since = excluded.commit_since",
        hosts
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Removes hosts from the current state: a JSON array of `[server_group, host]` pairs.
pub async fn delete_hosts(tx: &mut PgConnection, keys: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"DELETE FROM hosts h USING json_array_elements($1::text::json) AS k
           WHERE h.server_group = (k ->> 0) COLLATE "C" AND h.host = (k ->> 1) COLLATE "C""#,
        keys
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records changes of status: a JSON array of `transitions` objects.
pub async fn insert_transitions(tx: &mut PgConnection, rows: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO transitions
         SELECT * FROM json_populate_recordset(NULL::transitions, $1::text::json)",
        rows
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Notes commits (one object per commit and group): a JSON array of `commits` objects.
pub async fn upsert_commits(tx: &mut PgConnection, rows: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO commits
         SELECT * FROM json_populate_recordset(NULL::commits, $1::text::json)
         ON CONFLICT (server_group, commit_sha) DO UPDATE SET
             branch = excluded.branch, last_reported = excluded.last_reported",
        rows
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores Idempotency-Keys with their answers: a JSON array of `idempotency_keys` objects. A
/// row still there for a key is older than the window: it is replaced.
pub async fn upsert_keys(tx: &mut PgConnection, rows: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO idempotency_keys
         SELECT * FROM json_populate_recordset(NULL::idempotency_keys, $1::text::json)
         ON CONFLICT (principal, key) DO UPDATE SET
             fingerprint = excluded.fingerprint, report_id = excluded.report_id,
             status = excluded.status, body = excluded.body, created_at = excluded.created_at",
        rows
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records imported entries of an old server's file: a JSON array of `imported_entries`
/// objects.
pub async fn insert_imports(tx: &mut PgConnection, rows: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO imported_entries
         SELECT * FROM json_populate_recordset(NULL::imported_entries, $1::text::json)",
        rows
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Rewrites the one row of `writer_probe` with 64 KiB (see the schema).
pub async fn probe(tx: &mut PgConnection, at: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO writer_probe (id, at, headroom) VALUES (1, $1, decode(repeat('00', 65536), 'hex'))
         ON CONFLICT (id) DO UPDATE SET at = excluded.at, headroom = excluded.headroom",
        at
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The rows of a pruning batch still there, oldest first: id, kind, prev_hash, hash, and a
/// retention row's body.
pub async fn prune_rows(
    tx: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<(i64, String, String, String, Option<String>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, kind, prev_hash, hash,
                  CASE WHEN kind = 'retention' THEN raw_body END AS "body?"
           FROM reports WHERE id = ANY($1) ORDER BY id"#,
        ids
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.kind, r.prev_hash, r.hash, r.body))
        .collect())
}

/// Lets this transaction delete the id ranges in `permits`, a JSON array of `[first, last]`.
pub async fn permit(tx: &mut PgConnection, permits: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO prune_permit (first_id, last_id)
         SELECT (p ->> 0)::bigint, (p ->> 1)::bigint
         FROM json_array_elements($1::text::json) AS p",
        permits
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes the reports of a pruning batch and their transitions, then the permits; returns
/// how many reports were deleted.
pub async fn delete_pruned(tx: &mut PgConnection, ids: &[i64]) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!("DELETE FROM reports WHERE id = ANY($1)", ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query!("DELETE FROM transitions WHERE report_id = ANY($1)", ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("DELETE FROM prune_permit")
        .execute(&mut *tx)
        .await?;
    Ok(deleted)
}

/// One row of the history as a pruning pass sees it.
#[derive(Debug)]
pub struct Candidate {
    pub id: i64,
    pub received_at: String,
    pub server_group: Option<String>,
    pub host: Option<String>,
    pub is_change: i64,
}

/// The id of the newest row received before `cutoff`.
pub async fn last_received_before<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    cutoff: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        // Ties in received_at (a clock's resolution) end at the highest id, as SQLite's index
        // (whose rows carry the id) gives them.
        "SELECT id FROM reports WHERE received_at < $1 ORDER BY received_at DESC, id DESC LIMIT 1",
        cutoff
    )
    .fetch_optional(executor)
    .await
}

/// Rows with ids in `after + 1 ..= last`, oldest first, at most `limit`.
pub async fn candidates<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    after: i64,
    last: i64,
    limit: i64,
) -> Result<Vec<Candidate>, sqlx::Error> {
    sqlx::query_as!(
        Candidate,
        "SELECT id, received_at, server_group, host, is_change
         FROM reports WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3",
        after,
        last,
        limit
    )
    .fetch_all(executor)
    .await
}

/// Every host's pointers: group, host, last, status, files, pipeline and cron report ids.
#[allow(clippy::type_complexity)]
pub async fn host_pointers<'e>(
    executor: impl sqlx::PgExecutor<'e>,
) -> Result<Vec<(String, String, i64, i64, i64, Option<i64>, Option<i64>)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT server_group, host, last_report_id, status_report_id, files_report_id,
                pipeline_report_id, cron_report_id
         FROM hosts"
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.server_group,
                r.host,
                r.last_report_id,
                r.status_report_id,
                r.files_report_id,
                r.pipeline_report_id,
                r.cron_report_id,
            )
        })
        .collect())
}

/// The id of a host's report `offset` places from its newest.
pub async fn nth_newest<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    group: &str,
    host: &str,
    offset: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM reports WHERE server_group = $1 AND host = $2
         ORDER BY id DESC LIMIT 1 OFFSET $3",
        group,
        host,
        offset
    )
    .fetch_optional(executor)
    .await
}

/// The highest id `reports` ever held: it moves with every commit of every replica.
pub async fn version<'e>(executor: impl sqlx::PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!("SELECT seq FROM reports_sequence WHERE id = 1")
        .fetch_one(executor)
        .await
}
