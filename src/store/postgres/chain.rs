//! Reading the audit chain back from PostgreSQL, for `store::chain`'s walk: in one
//! REPEATABLE READ, READ ONLY transaction (one snapshot, whatever the replicas append
//! meanwhile). The transitions are checked against the history as the SQLite side does, in
//! PostgreSQL's SQL (`DERIVED_TRANSITIONS` is `sqlite::derive`'s, translated).

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::store::chain::{host_row_problem, Gaps, Verification, Walk, BATCH};

use super::record::{column_list, StoredRow};
use super::StoreError;

/// The transitions the history makes, as `sqlite::derive::DERIVED_TRANSITIONS` derives them.
const DERIVED_TRANSITIONS: &str = r#"
WITH marked AS (
    SELECT id, server_group, host, kind, status, observed_at, changed_files,
           count(*) FILTER (WHERE kind = 'decommission') OVER byhost AS life,
           CASE WHEN kind = 'pipeline' THEN observed_at || lpad(id::text, 19, '0')
                WHEN kind = 'import' AND coalesce(last_pipeline_run, commit_sha, branch,
                        project_name, repo_name, server_type, environment, validation_status,
                        validation_message, updated_by) IS NOT NULL
                THEN coalesce(CASE WHEN last_pipeline_run IS NOT NULL
                                   THEN least(last_pipeline_run, received_at) END,
                              observed_at)
                     || lpad(id::text, 19, '0')
           END COLLATE "C" AS deployment_key
    FROM reports
    WHERE server_group IS NOT NULL AND (status IS NOT NULL OR kind = 'decommission')
    WINDOW byhost AS (PARTITION BY server_group, host ORDER BY id)
), heads AS (
    SELECT *,
           max(observed_at) OVER (PARTITION BY server_group, host, life ORDER BY id
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS head_before,
           substr(max(deployment_key)
                      OVER (PARTITION BY server_group, host, life ORDER BY id), 25)::bigint
               AS deployment_id
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
            THEN round(extract(epoch FROM c.observed_at::timestamp - c.since::timestamp)
                       * 1000)::bigint
       END AS previous_duration_ms,
       d.commit_sha,
       json_array_length(coalesce(c.changed_files, '[]')::json)::bigint AS changed_files_count
FROM changes c
LEFT JOIN reports d ON d.id = c.deployment_id"#;

/// Walks the whole chain, then checks every host's status row against the reports it derives
/// from (rendered with `render`) and every transition, read-only.
pub(crate) async fn verify(
    options: &PgConnectOptions,
    render: super::super::RenderRow,
) -> anyhow::Result<Verification> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .context("cannot connect to the database")?;
    super::check_schema(&mut conn).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let records: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, raw_body FROM reports WHERE kind = 'retention' ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
    let mut walk = match Gaps::from_records(records) {
        Ok(gaps) => Walk::new(gaps),
        Err((id, problem)) => return Ok(Verification::Broken { id, problem }),
    };
    let sql = format!(
        "SELECT {} FROM reports WHERE id > $1 ORDER BY id LIMIT $2",
        column_list()
    );
    loop {
        let batch = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(walk.after())
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        if batch.is_empty() {
            break;
        }
        for row in &batch {
            if let Err(broken) = walk.row(&StoredRow::read(row)?) {
                return Ok(broken);
            }
        }
    }
    if let Err(broken) = walk.end() {
        return Ok(broken);
    }
    let hosts = sqlx::query_as::<_, (String, String, Option<String>)>(
        "SELECT server_group, host, status_row FROM hosts ORDER BY server_group, host",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (group, host, stored) in &hosts {
        let name = format!("{group}/{host}");
        let state = super::read::fetch_host_state(&mut *tx, group, host)
            .await
            .with_context(|| format!("cannot read the current state of {name}"))?;
        let expected = state.map(|state| render(&state)).transpose()?;
        let Some(problem) = host_row_problem(stored.as_deref(), expected.as_deref()) else {
            continue;
        };
        return Ok(Verification::StaleHostRow {
            host: name,
            problem: problem.to_owned(),
        });
    }
    let transitions = match check_transitions(&mut tx, &walk.removed_runs()).await? {
        Ok(checked) => checked,
        Err((report_id, problem)) => {
            return Ok(Verification::Transition { report_id, problem });
        }
    };
    tx.rollback().await?;
    Ok(Verification::Intact {
        rows: walk.rows,
        first_id: walk.first_id,
        removed_by_retention: walk.removed_by_retention(),
        head: walk.previous,
        hosts: hosts.len() as u64,
        transitions,
    })
}

/// Whether the stored transitions are what the history makes (see
/// `sqlite::derive::check_transitions`, whose checks these are): the first one that is not is
/// named; else how many were checked.
async fn check_transitions(
    conn: &mut PgConnection,
    removed: &[(i64, i64)],
) -> Result<Result<u64, (i64, String)>, StoreError> {
    let first_removed = removed.iter().map(|(first, _)| *first).min();
    let mismatch: Option<(i64, String)> = sqlx::query_as(
        "SELECT t.report_id,
                CASE WHEN r.id IS NULL THEN 'its report is not in the history'
                     ELSE 'it differs from its report (host, kind, status or time)' END
         FROM transitions t LEFT JOIN reports r ON r.id = t.report_id
         WHERE r.id IS NULL OR r.server_group IS DISTINCT FROM t.server_group
            OR r.host IS DISTINCT FROM t.host OR r.kind IS DISTINCT FROM t.kind
            OR r.status IS DISTINCT FROM t.to_status OR r.observed_at IS DISTINCT FROM t.at
         ORDER BY t.report_id LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(found) = mismatch {
        return Ok(Err(found));
    }
    let unlinked: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT report_id, before_id FROM (
             SELECT report_id, from_status, at, previous_duration_ms,
                    lag(report_id) OVER w AS before_id,
                    lag(to_status) OVER w AS before_status, lag(at) OVER w AS before_at
             FROM transitions
             WINDOW w AS (PARTITION BY server_group, host ORDER BY report_id)) x
         WHERE from_status IS NOT NULL AND before_status IS NOT NULL
           AND (from_status IS DISTINCT FROM before_status
                OR previous_duration_ms IS DISTINCT FROM
                   round(extract(epoch FROM at::timestamp - before_at::timestamp) * 1000)::bigint)
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
         WHERE t.to_status IS DISTINCT FROM h.status OR t.at IS DISTINCT FROM h.status_since
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
         WHERE d.from_status IS NOT NULL AND d.report_id < $1
           AND (t.report_id IS NULL OR t.commit_sha IS DISTINCT FROM d.commit_sha)
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
