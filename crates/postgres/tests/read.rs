//! The read path's checked queries, and the `report_due_by` expression, on a real PostgreSQL
//! server named by GITOPS_STATUS_TEST_POSTGRES_URL (`tests/postgres/with-server.sh` starts a
//! throwaway one). Each test migrates a database of its own.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use gitops_status_postgres::{
    current_status, due_by_sql, idempotency_answer, imported_before, latest_legacy_host,
    oldest_received_at, report_count, rollout_hosts, HostKey, IdempotencyAnswer, RolloutHost,
    MIGRATOR,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

async fn fresh_database() -> PgPool {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = std::env::var("GITOPS_STATUS_TEST_POSTGRES_URL").expect(
        "GITOPS_STATUS_TEST_POSTGRES_URL must name a PostgreSQL server to test against \
         (tests/postgres/server.sh start DIR prints one)",
    );
    let name = format!(
        "read_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = PgConnection::connect(&url).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let options = PgConnectOptions::from_str(&url).unwrap().database(&name);
    let pool = PgPoolOptions::new().connect_with(options).await.unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    pool
}

/// A pipeline report and a v1 report for g-a/h1 (still in the fleet); a v1 report for
/// g-b/h2, decommissioned since; h1's commit in `commits`.
async fn small_fleet(pool: &PgPool) {
    let hash = |n: u32| format!("{n:064x}");
    let reports = [
        format!(
            "(1, '2026-12-07T10:00:00.000Z', 'pipeline', 'g-a', 'h1', 'synced', '[]', 'proj', \
             'abc', 'main', NULL, '2026-12-07T10:00:00.000Z', '{}', '{}')",
            hash(0),
            hash(1)
        ),
        format!(
            "(2, '2026-12-07T10:05:00.000Z', 'legacy', 'g-a', 'h1', 'out_of_sync', '[\"a\"]', \
             NULL, NULL, NULL, 1, '2026-12-07T10:05:00.000Z', '{}', '{}')",
            hash(1),
            hash(2)
        ),
        format!(
            "(3, '2026-12-07T10:06:00.000Z', 'legacy', 'g-b', 'h2', 'synced', '[]', NULL, NULL, \
             NULL, 0, '2026-12-07T10:06:00.000Z', '{}', '{}')",
            hash(2),
            hash(3)
        ),
        format!(
            "(4, '2026-12-07T10:07:00.000Z', 'decommission', 'g-b', 'h2', NULL, NULL, NULL, \
             NULL, NULL, NULL, '2026-12-07T10:07:00.000Z', '{}', '{}')",
            hash(3),
            hash(4)
        ),
    ];
    pool.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO reports (id, received_at, kind, server_group, host, status, changed_files, \
         project_name, commit_sha, branch, drift_count, observed_at, prev_hash, hash, raw_body) \
         SELECT v.*, '{{}}' FROM (VALUES {}) v",
        reports.join(", ")
    )))
    .await
    .unwrap();
    pool.execute(
        "INSERT INTO hosts (server_group, host, last_report_id, status_report_id,
                            files_report_id, pipeline_report_id, status_row, status,
                            changed_files_count, commit_sha, branch, status_since,
                            drift_received_at, commit_since)
         VALUES ('g-a', 'h1', 2, 2, 2, 1, '{\"host\":\"h1\"}', 'out_of_sync', 1, 'abc', 'main',
                 '2026-12-07T10:05:00.000Z', '2026-12-07T10:05:00.000Z',
                 '2026-12-07T10:00:00.000Z');
         INSERT INTO commits VALUES ('g-a', 'abc', 'main', '2026-12-07T10:00:00.000Z',
                                     '2026-12-07T10:00:00.000Z');",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_hosts_current_status_merges_its_reports() {
    let pool = fresh_database().await;
    small_fleet(&pool).await;
    let row = current_status(&pool, "g-a", "h1").await.unwrap().unwrap();
    assert_eq!(row.status, "out_of_sync");
    assert_eq!(row.changed_files, r#"["a"]"#);
    assert_eq!(row.project_name.as_deref(), Some("proj"));
    assert_eq!(row.commit_sha.as_deref(), Some("abc"));
    assert_eq!(
        row.last_pipeline_run.as_deref(),
        Some("2026-12-07T10:00:00.000Z")
    );
    assert_eq!(row.last_cron_check, None);
    assert_eq!(row.timestamp, "2026-12-07T10:05:00.000Z");
    assert_eq!(row.status_since, "2026-12-07T10:05:00.000Z");
    assert_eq!(row.reported_drift_count, Some(1));
    assert_eq!(current_status(&pool, "g-b", "h2").await.unwrap(), None);
}

#[tokio::test]
async fn the_latest_legacy_host_skips_decommissioned_hosts() {
    let pool = fresh_database().await;
    small_fleet(&pool).await;
    let h1 = Some(HostKey {
        server_group: "g-a".to_owned(),
        host: "h1".to_owned(),
    });
    assert_eq!(latest_legacy_host(&pool, None, None).await.unwrap(), h1);
    assert_eq!(
        latest_legacy_host(&pool, None, Some("h1")).await.unwrap(),
        h1
    );
    assert_eq!(
        latest_legacy_host(&pool, Some("g-b"), None).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn the_history_has_a_size_and_an_age() {
    let pool = fresh_database().await;
    assert_eq!(report_count(&pool).await.unwrap(), 0);
    assert_eq!(oldest_received_at(&pool).await.unwrap(), None);
    small_fleet(&pool).await;
    assert_eq!(report_count(&pool).await.unwrap(), 4);
    assert_eq!(
        oldest_received_at(&pool).await.unwrap().as_deref(),
        Some("2026-12-07T10:00:00.000Z")
    );
}

#[tokio::test]
async fn imports_rollouts_and_keys_are_found() {
    let pool = fresh_database().await;
    small_fleet(&pool).await;
    let sha = "e".repeat(64);
    pool.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO imported_entries VALUES ('g-a', 'h1', '{sha}', 2);
         INSERT INTO idempotency_keys VALUES ('ci', 'k-1', '{sha}', 2, 201, '{{\"ok\":true}}',
                                              '2026-12-07T10:05:00.000Z');"
    )))
    .await
    .unwrap();
    assert!(imported_before(&pool, "g-a", "h1", &sha).await.unwrap());
    assert!(!imported_before(&pool, "g-a", "h2", &sha).await.unwrap());

    assert_eq!(
        rollout_hosts(&pool, "abc").await.unwrap(),
        vec![RolloutHost {
            server_group: "g-a".to_owned(),
            host: "h1".to_owned(),
            commit_sha: Some("abc".to_owned()),
            status: "out_of_sync".to_owned(),
            commit_since: Some("2026-12-07T10:00:00.000Z".to_owned()),
        }]
    );
    assert_eq!(rollout_hosts(&pool, "def").await.unwrap(), vec![]);

    let answer = idempotency_answer(&pool, "ci", "k-1", "2026-12-07T10:05:00.000Z")
        .await
        .unwrap();
    assert_eq!(
        answer,
        Some(IdempotencyAnswer {
            fingerprint: sha.clone(),
            status: 201,
            body: r#"{"ok":true}"#.to_owned(),
        })
    );
    let expired = idempotency_answer(&pool, "ci", "k-1", "2026-12-07T10:05:00.001Z");
    assert_eq!(expired.await.unwrap(), None);
    let other = idempotency_answer(&pool, "", "k-1", "2026-12-07T00:00:00.000Z");
    assert_eq!(other.await.unwrap(), None);
}

/// `due_by_sql` against what SQLite's
/// `strftime('%Y-%m-%dT%H:%M:%fZ', t, '+' || s || ' seconds')` gives (sqlite3 3.40.1),
/// under a session time zone with summer time, which must not matter.
#[tokio::test]
async fn due_by_is_sqlites_text() {
    let pool = fresh_database().await;
    let mut conn = pool.acquire().await.unwrap();
    conn.execute("SET TIME ZONE 'Europe/Berlin'").await.unwrap();
    let cases: [(Option<&str>, Option<i64>, Option<&str>); 11] = [
        (
            Some("2026-04-26T10:30:00.123Z"),
            Some(3600),
            Some("2026-04-26T11:30:00.123Z"),
        ),
        (
            Some("2024-02-28T23:59:59.999Z"),
            Some(1),
            Some("2024-02-29T00:00:00.999Z"),
        ),
        (
            Some("2025-12-31T23:59:59.500Z"),
            Some(86400),
            Some("2026-01-01T23:59:59.500Z"),
        ),
        // 100 years of 366 days, the longest period a policy takes.
        (
            Some("1970-01-01T00:00:00.000Z"),
            Some(3_162_240_000),
            Some("2070-03-17T00:00:00.000Z"),
        ),
        (
            Some("0999-06-30T12:00:00.001Z"),
            Some(600),
            Some("0999-06-30T12:10:00.001Z"),
        ),
        // Across Berlin's switch to summer time.
        (
            Some("2026-03-29T00:30:00.000Z"),
            Some(7200),
            Some("2026-03-29T02:30:00.000Z"),
        ),
        (
            Some("9999-12-31T22:59:59.999Z"),
            Some(3600),
            Some("9999-12-31T23:59:59.999Z"),
        ),
        // Past the year 9999 SQLite has no date: NULL.
        (Some("9999-12-31T23:00:00.000Z"), Some(3600), None),
        (Some("2026-04-26T10:30:00.123Z"), None, None),
        (None, Some(3600), None),
        (None, None, None),
    ];
    let sql = format!("SELECT {}", due_by_sql("$1::text", "$2::bigint"));
    for (received_at, seconds, expected) in cases {
        let due: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .bind(received_at)
            .bind(seconds)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(due.as_deref(), expected, "{received_at:?} + {seconds:?} s");
    }
}
