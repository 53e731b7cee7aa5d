//! One writer per database file. `serve` and `import` hold an exclusive advisory lock on
//! `<db>.lock` (flock) while they have the database open, so a second server or an import
//! against a running server refuses to start instead of forking the audit chain. The kernel
//! drops the lock when the process ends, however it ends. Readers (`verify`, `backup`) do not
//! take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The lock file of the database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Held while this process writes the database.
#[derive(Clone, Debug)]
pub(crate) struct WriterLock(Arc<Mutex<Option<File>>>);

impl WriterLock {
    /// Takes the lock of the database at `db` (its folder must exist), or says who holds it.
    pub(crate) fn acquire(db: &Path) -> anyhow::Result<WriterLock> {
        let path = lock_path(db);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the database {}: cannot create its lock file {}: {e}",
                    db.display(),
                    path.display()
                )
            })?;
        match file.try_lock() {
            Ok(()) => Ok(WriterLock(Arc::new(Mutex::new(Some(file))))),
            Err(TryLockError::WouldBlock) => Err(anyhow::anyhow!(
                "the database {} is in use: another gitops-status process (a server or an \
                 import) holds {}; stop it first, since two writers would fork the audit chain",
                db.display(),
                path.display()
            )),
            Err(TryLockError::Error(e)) => {
                Err(anyhow::anyhow!("cannot lock {}: {e}", path.display()))
            }
        }
    }

    /// Lets go of the lock (also when the last clone is dropped, or the process ends).
    pub(super) fn release(&self) {
        if let Ok(mut file) = self.0.lock() {
            if let Some(file) = file.take() {
                let _ = file.unlock();
            }
        }
    }
}
