//! What the writer keeps beside each report (a host's status_since, its newest drift check,
//! its transitions, the commits its pipelines reported), derived again from the history: once
//! after the migration that introduced them, and after a bulk load. The writer's rules
//! (src/domain/merge.rs) are followed where the history allows it: a status row moves a
//! host's status only when it observed at least as late as the row before it that did; a
//! decommission starts the host anew.

use sqlx::SqliteConnection;

use super::StoreError;

/// Every change of status in the history, in the shape of the `transitions` table. The
/// deployed commit at a change is the one of the deployment the host was on right after it:
/// of the pipeline reports and imports with a deployment at or before it, the one with the
/// newest deployment time (equal times: the later arrival), as the writer's pipeline facet
/// moves.
pub(super) const DERIVED_TRANSITIONS: &str = "
WITH marked AS (
    SELECT id, server_group, host, kind, status, observed_at, changed_files,
           sum(kind = 'decommission') OVER byhost AS life,
           -- A deployment's time (24 characters) then its id: the greatest is the deployment
           -- the host is on.
           CASE WHEN kind = 'pipeline' THEN observed_at || printf('%019d', id)
                WHEN kind = 'import' AND coalesce(last_pipeline_run, commit_sha, branch,
                        project_name, repo_name, server_type, environment, validation_status,
                        validation_message, updated_by) IS NOT NULL
                THEN coalesce(min(last_pipeline_run, received_at), observed_at)
                     || printf('%019d', id)
           END AS deployment_key
    FROM reports
    WHERE server_group IS NOT NULL AND (status IS NOT NULL OR kind = 'decommission')
    WINDOW byhost AS (PARTITION BY server_group, host ORDER BY id)
), heads AS (
    SELECT *,
           max(observed_at) OVER (PARTITION BY server_group, host, life ORDER BY id
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS head_before,
           CAST(substr(max(deployment_key)
                           OVER (PARTITION BY server_group, host, life ORDER BY id), 25)
                AS INTEGER) AS deployment_id
    FROM marked
    WHERE status IS NOT NULL
), moved AS (
    SELECT *, lag(status) OVER (PARTITION BY server_group, host, life ORDER BY id) AS from_status
    FROM heads
    WHERE head_before IS NULL OR observed_at >= head_before
), changes AS (
    SELECT *, lag(observed_at) OVER (PARTITION BY server_group, host, life ORDER BY id) AS since
    FROM moved
    WHERE from_status IS NULL OR from_status <> status
)
SELECT c.id AS report_id, c.server_group, c.host, c.from_status, c.status AS to_status,
       c.observed_at AS at, c.kind,
       CASE WHEN c.from_status IS NOT NULL
            THEN CAST(round((julianday(c.observed_at) - julianday(c.since)) * 86400000) AS INTEGER)
       END AS previous_duration_ms,
       d.commit_sha, json_array_length(coalesce(c.changed_files, '[]')) AS changed_files_count
FROM changes c
LEFT JOIN reports d ON d.id = c.deployment_id";

/// Fills transitions, commits and the hosts' copies of their state from the history, in the
/// caller's transaction; the hosts' status rows are left to be rendered again.
pub(super) async fn derive(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM transitions")
        .execute(&mut *conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO transitions (report_id, server_group, host, from_status, to_status, at,
                                  kind, previous_duration_ms, commit_sha, changed_files_count)
         {DERIVED_TRANSITIONS}"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM commits")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO commits (server_group, commit_sha, branch, first_reported, last_reported)
         SELECT g.server_group, g.commit_sha, r.branch, g.first_reported, g.last_reported
         FROM (SELECT server_group, commit_sha, max(id) AS last_id,
                      min(received_at) AS first_reported, max(received_at) AS last_reported
               FROM reports WHERE kind = 'pipeline' AND commit_sha IS NOT NULL
               GROUP BY server_group, commit_sha) g
         JOIN reports r ON r.id = g.last_id",
    )
    .execute(&mut *conn)
    .await?;
    // status_since: the newest transition's time when it led to the current status;
    // drift_received_at: the newest arrival of a drift check since the host last joined the
    // fleet (an import's at its own time); commit_since: the first pipeline report of the
    // current commit after the last one of another commit.
    sqlx::query(
        "UPDATE hosts SET
             status = cs.status,
             changed_files_count = cs.changed_files_count,
             environment = cs.environment,
             server_type = cs.server_type,
             repo_name = cs.repo_name,
             project_name = cs.project_name,
             branch = cs.branch,
             commit_sha = cs.commit_sha,
             validation_status = cs.validation_status,
             status_since = coalesce(
                 (SELECT t.at FROM transitions t
                  WHERE t.server_group = hosts.server_group AND t.host = hosts.host
                    AND t.report_id <= hosts.status_report_id
                  ORDER BY t.report_id DESC LIMIT 1),
                 cs.status_observed_at),
             drift_received_at = (
                 SELECT max(CASE WHEN c.kind IN ('cron', 'legacy') THEN c.received_at
                                 WHEN c.kind = 'import'
                                 THEN min(c.last_cron_check, c.received_at) END)
                 FROM reports c
                 WHERE c.server_group = hosts.server_group AND c.host = hosts.host
                   AND c.id > coalesce((SELECT max(d.id) FROM reports d
                                        WHERE d.kind = 'decommission'
                                          AND d.server_group = hosts.server_group
                                          AND d.host = hosts.host), 0)),
             commit_since = CASE WHEN cs.commit_sha IS NULL THEN cs.last_pipeline_run ELSE coalesce(
                 (SELECT min(p.observed_at) FROM reports p
                  WHERE p.server_group = hosts.server_group AND p.host = hosts.host
                    AND p.kind = 'pipeline' AND p.commit_sha = cs.commit_sha
                    AND p.id > coalesce((SELECT max(q.id) FROM reports q
                                         WHERE q.server_group = hosts.server_group
                                           AND q.host = hosts.host
                                           AND (q.kind = 'decommission'
                                                OR (q.kind = 'pipeline'
                                                    AND q.commit_sha IS NOT cs.commit_sha))),
                                        0)),
                 cs.last_pipeline_run) END,
             status_row = NULL
         FROM current_status cs
         WHERE cs.server_group = hosts.server_group AND cs.host = hosts.host",
    )
    .execute(&mut *conn)
    .await?;
    // A current status that the transitions do not end in (a history written out of order
    // before transitions were kept) begins at its own report.
    sqlx::query(
        "UPDATE hosts SET status_since = (SELECT observed_at FROM reports WHERE id = status_report_id)
         WHERE status IS NOT (SELECT t.to_status FROM transitions t
                              WHERE t.server_group = hosts.server_group AND t.host = hosts.host
                              ORDER BY t.report_id DESC LIMIT 1)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Runs the work a migration left for the next start (`store_tasks`), in one transaction.
/// Returns whether there was any.
pub(super) async fn run_pending(conn: &mut SqliteConnection) -> Result<bool, StoreError> {
    use sqlx::Connection;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let pending: Option<String> =
        sqlx::query_scalar("SELECT name FROM store_tasks WHERE name = 'derive'")
            .fetch_optional(&mut *tx)
            .await?;
    if pending.is_none() {
        return Ok(false);
    }
    tracing::info!(
        "deriving status_since, transitions and commits from the history (once, after \
         migration 0004): about 90 s per 5 million reports"
    );
    derive(&mut tx).await?;
    sqlx::query("DELETE FROM store_tasks WHERE name = 'derive'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// `verify`'s check of the stored transitions against the reports, in the caller's snapshot:
/// each matches the report it names (which exists: retention removes both together); each
/// starts from the status the host's transition before it ended in, and its previous
/// duration is the time between them; each host's newest one ends in its current status at
/// its status_since; and every change of status the remaining history shows is there (before
/// the first id retention removed: past it, a change's predecessor may be gone). `removed` lists the id ranges retention removed. Returns how many it checked, or the first report id found wrong and why.
pub(super) async fn check_transitions(
    conn: &mut SqliteConnection,
    removed: &[(i64, i64)],
) -> Result<Result<u64, (i64, String)>, StoreError> {
    let first_removed = removed.iter().map(|(first, _)| *first).min();
    let mismatch: Option<(i64, String)> = sqlx::query_as(
        "SELECT t.report_id,
                CASE WHEN r.id IS NULL THEN 'its report is not in the history'
                     ELSE 'it differs from its report (host, kind, status or time)' END
         FROM transitions t LEFT JOIN reports r ON r.id = t.report_id
         WHERE r.id IS NULL OR r.server_group IS NOT t.server_group OR r.host IS NOT t.host
            OR r.kind IS NOT t.kind OR r.status IS NOT t.to_status OR r.observed_at IS NOT t.at
         ORDER BY t.report_id LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(found) = mismatch {
        return Ok(Err(found));
    }
    // A transition whose predecessor retention removed starts where that one ended, not
    // where the one still there before it did: only pairs with no removed ids between them
    // are held to each other.
    let unlinked: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT report_id, before_id FROM (
             SELECT report_id, from_status, at, previous_duration_ms,
                    lag(report_id) OVER w AS before_id,
                    lag(to_status) OVER w AS before_status, lag(at) OVER w AS before_at
             FROM transitions
             WINDOW w AS (PARTITION BY server_group, host ORDER BY report_id))
         WHERE from_status IS NOT NULL AND before_status IS NOT NULL
           AND (from_status IS NOT before_status
                OR previous_duration_ms IS NOT
                   CAST(round((julianday(at) - julianday(before_at)) * 86400000) AS INTEGER))
         ORDER BY report_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let across_gap = |after: i64, before: i64| {
        removed
            .iter()
            .any(|(first, last)| *first < before && *last > after)
    };
    if let Some((report_id, _)) = unlinked
        .into_iter()
        .find(|(report_id, before_id)| !across_gap(*before_id, *report_id))
    {
        return Ok(Err((
            report_id,
            "it does not start where the transition before it ended".to_owned(),
        )));
    }
    let current: Option<(i64, String)> = sqlx::query_as(
        "SELECT t.report_id, 'the host''s current status or status_since is not where it ends'
         FROM hosts h
         JOIN transitions t ON t.report_id = (
             SELECT max(report_id) FROM transitions x
             WHERE x.server_group = h.server_group AND x.host = h.host)
         WHERE t.to_status IS NOT h.status OR t.at IS NOT h.status_since
         ORDER BY t.report_id LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(found) = current {
        return Ok(Err(found));
    }
    let missing: Option<(i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT d.report_id, t.report_id IS NULL FROM ({DERIVED_TRANSITIONS}) d
         LEFT JOIN transitions t ON t.report_id = d.report_id
         WHERE d.from_status IS NOT NULL AND d.report_id < ?1
           AND (t.report_id IS NULL OR t.commit_sha IS NOT d.commit_sha)
         ORDER BY d.report_id LIMIT 1"
    )))
    .bind(first_removed.unwrap_or(i64::MAX))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((report_id, absent)) = missing {
        let problem = if absent {
            "its report changed the host's status but no transition records it"
        } else {
            "its commit_sha is not the deployment the host was on"
        };
        return Ok(Err((report_id, problem.to_owned())));
    }
    let checked: i64 = sqlx::query_scalar("SELECT count(*) FROM transitions")
        .fetch_one(&mut *conn)
        .await?;
    Ok(Ok(u64::try_from(checked).unwrap_or(0)))
}
