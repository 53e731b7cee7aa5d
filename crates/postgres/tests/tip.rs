//! The chain's tip lock on a real PostgreSQL server, named by GITOPS_STATUS_TEST_POSTGRES_URL
//! (`tests/postgres/server.sh start DIR` prints the URL of a throwaway one; .ci/run starts
//! one). Each test migrates a database of its own.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use gitops_status_postgres::{lock_tip, Tip, MIGRATOR};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

const HASH: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

async fn fresh_database() -> PgPool {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = std::env::var("GITOPS_STATUS_TEST_POSTGRES_URL").expect(
        "GITOPS_STATUS_TEST_POSTGRES_URL must name a PostgreSQL server to test against \
         (tests/postgres/server.sh start DIR prints one)",
    );
    let name = format!(
        "tip_{}_{}",
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

#[tokio::test]
async fn an_empty_history_has_no_tip() {
    let pool = fresh_database().await;
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        lock_tip(&mut tx).await.unwrap(),
        Tip {
            seq: 0,
            hash: None,
            received_at: None
        }
    );
}

#[tokio::test]
async fn a_second_writer_waits_for_the_first_and_appends_after_its_row() {
    let pool = fresh_database().await;
    let mut first = pool.begin().await.unwrap();
    lock_tip(&mut first).await.unwrap();

    // Another writer (another replica) cannot take the tip while the first holds it.
    let mut second = pool.begin().await.unwrap();
    second
        .execute("SET LOCAL lock_timeout = '200ms'")
        .await
        .unwrap();
    let err = lock_tip(&mut second).await.unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("55P03"), "{err}");
    second.rollback().await.unwrap();

    // The first appends and commits; the next writer sees its row as the tip.
    first
        .execute(sqlx::AssertSqlSafe(format!(
            "INSERT INTO reports (id, received_at, kind, server_group, host, status, \
             observed_at, raw_body, prev_hash, hash) VALUES (1, '2026-12-07T10:00:00.000Z', \
             'pipeline', 'g', 'h', 'synced', '2026-12-07T10:00:00.000Z', '{{}}', '{GENESIS}', \
             '{HASH}')"
        )))
        .await
        .unwrap();
    first.commit().await.unwrap();
    let mut third = pool.begin().await.unwrap();
    assert_eq!(
        lock_tip(&mut third).await.unwrap(),
        Tip {
            seq: 1,
            hash: Some(HASH.to_owned()),
            received_at: Some("2026-12-07T10:00:00.000Z".to_owned())
        }
    );
}
