//! Consistent copies of the database while the server writes it. One read transaction holds
//! a snapshot; SQLite's `sqlite_dbpage` table gives that snapshot's pages (the WAL's newer
//! frames applied), which are streamed in order as a database file. The copy is as large as
//! the database (page count × page size, free pages included), needs no temporary file, and
//! is marked as a rollback-journal database so it stands alone without `-wal` or `-shm`; the
//! server switches it back to WAL when it opens it.

use std::path::Path;

use anyhow::Context;
use sqlx::{Connection, SqliteConnection};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use super::{SqliteStore, StoreError};

/// Pages read per query: 1 MiB at the default page size.
const PAGES_PER_CHUNK: i64 = 256;
/// Chunks in flight between the reader and a slow client.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Streams the pages of one snapshot through `chunks`, after sending its size in bytes
/// through `size`. Ends early, rolling back, when the receiver goes away.
async fn stream_pages(
    conn: &mut SqliteConnection,
    size: oneshot::Sender<u64>,
    chunks: mpsc::Sender<Vec<u8>>,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    // The first read starts the snapshot: page_count and every page come from it.
    let (pages, page_size): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT page_count FROM pragma_page_count()),
                (SELECT page_size FROM pragma_page_size())",
    )
    .fetch_one(&mut *tx)
    .await?;
    let total = u64::try_from(pages.saturating_mul(page_size)).unwrap_or(0);
    if size.send(total).is_err() {
        return Ok(());
    }
    let mut first = 1i64;
    while first <= pages {
        let last = (first + PAGES_PER_CHUNK - 1).min(pages);
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT pgno, data FROM sqlite_dbpage WHERE pgno BETWEEN ?1 AND ?2 ORDER BY pgno",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?;
        let expected = usize::try_from(last - first + 1).unwrap_or(0);
        if rows.len() != expected {
            return Err(StoreError::Corrupt(format!(
                "pages {first}..{last} of the snapshot could not all be read"
            )));
        }
        let mut chunk = Vec::with_capacity(expected * usize::try_from(page_size).unwrap_or(0));
        for (number, mut data) in rows {
            if number == 1 && data.len() > 19 {
                // File format versions: 1 (rollback journal) instead of 2 (WAL).
                data[18] = 1;
                data[19] = 1;
            }
            chunk.extend_from_slice(&data);
        }
        if chunks.send(chunk).await.is_err() {
            return Ok(());
        }
        first = last + 1;
    }
    tx.rollback().await?;
    Ok(())
}

/// A copy being streamed: its size and its chunks, in order. The chunks end early (and the
/// copy must be thrown away) if reading fails; the failure is logged.
pub struct BackupStream {
    pub size: u64,
    pub chunks: mpsc::Receiver<Vec<u8>>,
}

impl SqliteStore {
    /// Starts a consistent copy of the database, read through a connection of the read
    /// pool; writers go on meanwhile (the WAL grows until the copy ends).
    pub async fn backup(&self) -> Result<BackupStream, StoreError> {
        let mut conn = self.readers.acquire().await?;
        let (size_tx, size_rx) = oneshot::channel();
        let (chunks_tx, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (failed_tx, failed_rx) = oneshot::channel();
        // Ends with the copy, or when the client goes away; nothing waits for it.
        tokio::spawn(async move {
            if let Err(err) = stream_pages(&mut conn, size_tx, chunks_tx).await {
                tracing::error!(error = %err, "backup failed; the copy sent is incomplete");
                let _ = failed_tx.send(err);
            }
        });
        match size_rx.await {
            Ok(size) => Ok(BackupStream { size, chunks }),
            Err(_) => Err(failed_rx.await.unwrap_or(StoreError::Closed)),
        }
    }
}

/// Writes a consistent copy of the database at `db` to `out` (which must not exist), while a
/// server may be writing it. Returns the copy's size in bytes.
pub async fn backup_file(db: &Path, out: &Path) -> anyhow::Result<u64> {
    anyhow::ensure!(
        !out.exists(),
        "{} already exists; choose another name or remove it",
        out.display()
    );
    let mut conn = super::connect_read_only(db).await?;
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let (size_tx, size_rx) = oneshot::channel();
    let (chunks_tx, mut chunks) = mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let writer = async {
        let mut written = 0u64;
        while let Some(chunk) = chunks.recv().await {
            file.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        file.sync_all().await?;
        Ok::<u64, std::io::Error>(written)
    };
    let (read, written) = tokio::join!(stream_pages(&mut conn, size_tx, chunks_tx), writer);
    let outcome = async {
        read.with_context(|| format!("cannot read {}", db.display()))?;
        let written = written.with_context(|| format!("cannot write {}", partial.display()))?;
        let size = size_rx.await.unwrap_or(0);
        anyhow::ensure!(
            written == size,
            "wrote {written} of {size} bytes to {}",
            partial.display()
        );
        tokio::fs::rename(&partial, out)
            .await
            .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
        Ok(size)
    }
    .await;
    if outcome.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    conn.close().await?;
    outcome
}
