//! The PostgreSQL backend's SQL that sqlx checks at compile time, and its migrations. A crate
//! of its own because sqlx checks the query macros of one crate against one database, and the
//! main crate's are SQLite's (README, Development). The backend's logic stays in the main
//! crate; what is here is the SQL that needs PostgreSQL to check it.

mod read;
pub mod write;

use sqlx::PgConnection;

pub use read::{
    current_status, due_by_sql, idempotency_answer, imported_before, latest_legacy_host,
    oldest_received_at, report_count, rollout_hosts, CurrentStatus, HostKey, IdempotencyAnswer,
    RolloutHost,
};

/// `migrations/postgres/`, run at start-up like SQLite's `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The chain's tip as a writer about to append sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tip {
    /// The highest id `reports` ever held (0: none yet); the next row gets `seq + 1`.
    pub seq: i64,
    /// The newest row's hash; None while `reports` is empty.
    pub hash: Option<String>,
    /// When the newest row was received (by whichever replica); None while `reports` is
    /// empty.
    pub received_at: Option<String>,
}

/// Locks the chain's tip for the rest of the caller's transaction and reads it. Every group
/// of reports, from whichever replica, takes this row lock first: the groups commit one after
/// the other, each appending after the tip the one before it committed, so the chain has one
/// order and no fork, and ids increase in commit order. A replica that dies mid-group holds
/// the lock until PostgreSQL ends its session, and its group rolls back.
pub async fn lock_tip(tx: &mut PgConnection) -> Result<Tip, sqlx::Error> {
    let seq = sqlx::query_scalar!("SELECT seq FROM reports_sequence WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let newest = sqlx::query!("SELECT hash, received_at FROM reports ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (hash, received_at) = match newest {
        Some(row) => (Some(row.hash), Some(row.received_at)),
        None => (None, None),
    };
    Ok(Tip {
        seq,
        hash,
        received_at,
    })
}
