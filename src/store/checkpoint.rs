//! `WalCheckpointer`: SQLite WAL checkpoints on a thread of their own, off the commit path.
//!
//! Owns: a second connection to the store's SQLite file and the thread that runs a PASSIVE
//! checkpoint on it every `CHECKPOINT_INTERVAL`. Left to itself, SQLite checkpoints inside
//! whichever commit takes the WAL past 1,000 pages, and every request waiting for that commit
//! stalls with it. A passive checkpoint copies committed pages into
//! the database beside the writer without blocking it. The writer keeps its own automatic
//! checkpoint, much later (`WRITER_AUTOCHECKPOINT_PAGES`): by then this thread has copied
//! nearly every page, so that checkpoint is short, and it lets the WAL start over (a passive
//! checkpoint that commits overtake never does). Should this thread fail, the writer's own
//! checkpoint still bounds the WAL. Created by the `StoreWorker` of a SQLite store; stops and
//! is joined when dropped. Must not: write rows or change the journal mode.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use log::{info, warn};

/// How often committed pages are copied from the WAL into the database.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// The writer's own automatic checkpoint, in WAL pages (4 KiB each): the WAL's bound.
pub const WRITER_AUTOCHECKPOINT_PAGES: u32 = 8000;

/// The checkpoint thread; dropping it stops the thread.
pub struct WalCheckpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WalCheckpointer {
    /// Starts checkpointing the SQLite database at `path`.
    pub fn start(path: PathBuf) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || run(&path, &stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread at once.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why a checkpoint failed.
#[derive(Debug, thiserror::Error)]
enum CheckpointError {
    #[error("cannot open the database: {0}")]
    Open(#[from] diesel::ConnectionError),
    #[error("{0}")]
    Query(#[from] diesel::result::Error),
}

fn run(path: &std::path::Path, stopped: &mpsc::Receiver<()>) {
    let mut conn: Option<SqliteConnection> = None;
    let mut failing = false;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_INTERVAL) {
        match checkpoint(path, &mut conn) {
            Ok(()) if failing => {
                info!("store: WAL checkpoints work again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    warn!("store: WAL checkpoint failed, the writer checkpoints itself meanwhile: {e}");
                    failing = true;
                }
                conn = None;
            }
        }
    }
}

fn checkpoint(
    path: &std::path::Path,
    conn: &mut Option<SqliteConnection>,
) -> Result<(), CheckpointError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(SqliteConnection::establish(&path.to_string_lossy())?),
    };
    // PASSIVE: copies what it can without waiting for, or blocking, the writer or readers.
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").execute(c)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_pages_reach_the_database_file_without_the_writers_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut writer = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        for sql in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA wal_autocheckpoint = 100000",
            "CREATE TABLE t (x BLOB)",
        ] {
            diesel::sql_query(sql).execute(&mut writer).unwrap();
        }
        let db_size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let _checkpointer = WalCheckpointer::start(path.clone()).unwrap();
        // About 4 MB, all of it in the WAL until a checkpoint copies it.
        for _ in 0..200 {
            diesel::sql_query("INSERT INTO t VALUES (randomblob(20000))")
                .execute(&mut writer)
                .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db_size() < 4_000_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            db_size() >= 4_000_000,
            "the database file holds {} bytes",
            db_size()
        );
    }
}
