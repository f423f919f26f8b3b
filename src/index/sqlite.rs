//! The SQLite engine: numbered embedded migrations, one writer thread that
//! batches concurrent requests into one transaction (one fsync for many
//! files) with a savepoint per request, and a pool of readers (WAL: readers
//! never wait for the writer). A background connection checkpoints the WAL.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::db::{self, Db};
use super::IndexError;

/// Migrations, applied in order; `PRAGMA user_version` counts those applied.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_init.sql"),
    include_str!("migrations/sqlite/0002_alerts.sql"),
    include_str!("migrations/sqlite/0003_cases.sql"),
    include_str!("migrations/sqlite/0004_renditions.sql"),
    include_str!("migrations/sqlite/0005_custody.sql"),
    include_str!("migrations/sqlite/0006_faults.sql"),
    include_str!("migrations/sqlite/0007_district.sql"),
    include_str!("migrations/sqlite/0008_console.sql"),
    include_str!("migrations/sqlite/0009_compliance.sql"),
    include_str!("migrations/sqlite/0010_console_lists.sql"),
    include_str!("migrations/sqlite/0011_recovery.sql"),
    include_str!("migrations/sqlite/0012_fewer_indexes.sql"),
];

/// Requests per transaction at most.
const MAX_BATCH: usize = 512;

type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One request to the writer.
trait Request: Send {
    /// Run it in the batch's transaction: whether it succeeded, and what to
    /// tell its caller once the commit is known.
    fn run(self: Box<Self>, c: &Connection) -> (bool, Done);
    /// Tell its caller it was not run.
    fn refuse(self: Box<Self>, why: String);
}

type Op = Box<dyn Request>;

struct Call<F, T> {
    f: F,
    tx: oneshot::Sender<Result<T, IndexError>>,
}

impl<F, T> Request for Call<F, T>
where
    F: FnOnce(&Db) -> db::Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, c: &Connection) -> (bool, Done) {
        let Call { f, tx } = *self;
        match f(&Db::sqlite(c)) {
            Ok(v) => (
                true,
                Box::new(move |commit: Result<(), String>| {
                    let _ = tx.send(commit.map(|()| v).map_err(IndexError::Commit));
                }),
            ),
            Err(e) => (
                false,
                Box::new(move |_| {
                    let _ = tx.send(Err(IndexError::Db(e)));
                }),
            ),
        }
    }

    fn refuse(self: Box<Self>, why: String) {
        let _ = self.tx.send(Err(IndexError::Commit(why)));
    }
}

/// The SQLite index. Cloning shares the one writer and the pool of read
/// connections.
#[derive(Clone)]
pub struct Sqlite {
    path: PathBuf,
    tx: std_mpsc::Sender<Op>,
    writer: std::sync::Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
    readers: std::sync::Arc<std::sync::Mutex<Vec<Connection>>>,
    /// Dropping the last clone stops the checkpointer.
    _checkpointer: std::sync::Arc<std_mpsc::Sender<()>>,
    /// Fault injection for tests: the next batches cannot begin, or their
    /// commit fails (after every request in them ran).
    fail_begin: Arc<AtomicBool>,
    fail_commit: Arc<AtomicBool>,
}

/// How often the WAL is folded back into the database, outside the writer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoint the WAL from its own connection, so that no commit (and no
/// request waiting on one, like an audited API call) pays for it.
fn checkpointer(path: PathBuf, stop: std_mpsc::Receiver<()>) {
    let Ok(conn) = Connection::open(&path) else { return };
    let _ = configure(&conn);
    loop {
        match stop.recv_timeout(CHECKPOINT_EVERY) {
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
            _ => return,
        }
    }
}

/// Read connections kept for reuse (opening one parses the schema).
const READER_POOL: usize = 16;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(128);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Open a connection for reading an existing index (the CLI's commands).
pub fn open_reader(path: &Path) -> Result<Connection, IndexError> {
    if !path.exists() {
        return Err(IndexError::Missing(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    configure(&conn)?;
    let found: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > MIGRATIONS.len() {
        return Err(IndexError::TooNew { path: path.into(), found, known: MIGRATIONS.len() });
    }
    if found < MIGRATIONS.len() {
        return Err(IndexError::TooOld { path: path.into(), found, known: MIGRATIONS.len() });
    }
    Ok(conn)
}

/// Run one short write transaction on an existing index from another
/// process (the CLI's `alerts ack`), next to a running daemon's writer:
/// SQLite serialises the two, waiting up to the busy timeout.
pub fn write_once<T>(path: &Path, f: impl FnOnce(&Db) -> db::Result<T>) -> Result<T, IndexError> {
    if !path.exists() {
        return Err(IndexError::Missing(path.to_path_buf()));
    }
    let mut conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    configure(&conn)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let found: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found != MIGRATIONS.len() {
        return Err(if found > MIGRATIONS.len() {
            IndexError::TooNew { path: path.into(), found, known: MIGRATIONS.len() }
        } else {
            IndexError::TooOld { path: path.into(), found, known: MIGRATIONS.len() }
        });
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let v = f(&Db::sqlite(&tx))?;
    tx.commit()?;
    Ok(v)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), IndexError> {
    let found: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > MIGRATIONS.len() {
        return Err(IndexError::TooNew { path: path.into(), found, known: MIGRATIONS.len() });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "index migrated");
    }
    Ok(())
}

impl Sqlite {
    /// Open (creating and migrating) the index and start its writer.
    pub fn open(path: &Path) -> Result<Sqlite, IndexError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| IndexError::Commit(format!("{}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Evidence: a commit is on disk when it returns.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Each request runs in a savepoint (one failing request does not
        // undo its neighbours); the pages a savepoint may have to restore
        // are kept in memory rather than written to a temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        configure(&conn)?;
        migrate(&mut conn, path)?;
        let chained = super::audit::chain_unhashed(&Db::sqlite(&conn))?;
        if chained > 0 {
            tracing::info!(entries = chained, "audit entries from before the chain were chained");
        }
        // Checkpoints happen in the checkpointer thread, not in commits.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (stop_tx, stop_rx) = std_mpsc::channel::<()>();
        let cp_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("index-checkpoint".into())
            .spawn(move || checkpointer(cp_path, stop_rx))
            .map_err(|e| IndexError::Commit(e.to_string()))?;
        let (tx, rx) = std_mpsc::channel::<Op>();
        let fail_begin = Arc::new(AtomicBool::new(false));
        let fail_commit = Arc::new(AtomicBool::new(false));
        let faults = (fail_begin.clone(), fail_commit.clone());
        let handle = std::thread::Builder::new()
            .name("index-writer".into())
            .spawn(move || writer_loop(conn, rx, faults))
            .map_err(|e| IndexError::Commit(e.to_string()))?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            tx,
            writer: std::sync::Arc::new(std::sync::Mutex::new(Some(handle))),
            readers: std::sync::Arc::new(std::sync::Mutex::new(Vec::new())),
            _checkpointer: std::sync::Arc::new(stop_tx),
            fail_begin,
            fail_commit,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make the writer's transactions fail to begin (tests of the
    /// pipeline's behaviour while the index is unavailable).
    pub fn inject_begin_failure(&self, fail: bool) {
        self.fail_begin.store(fail, Ordering::SeqCst);
    }

    /// Make the writer's commits fail (after the requests ran): nothing they
    /// wrote may stay, and nothing may act as if it had.
    pub fn inject_commit_failure(&self, fail: bool) {
        self.fail_commit.store(fail, Ordering::SeqCst);
    }

    /// A new read connection (WAL: readers never wait for the writer).
    pub fn reader(&self) -> Result<Connection, IndexError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(conn)
    }

    /// Run `f` on a pooled read connection (blocking: call it from a
    /// blocking context).
    pub fn read<T>(&self, f: impl FnOnce(&Db) -> db::Result<T>) -> Result<T, IndexError> {
        let conn = self.readers.lock().unwrap().pop();
        let conn = match conn {
            Some(c) => c,
            None => self.reader()?,
        };
        let out = f(&Db::sqlite(&conn));
        let mut pool = self.readers.lock().unwrap();
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        Ok(out?)
    }

    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> db::Result<T> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, IndexError>>, IndexError> {
        let (tx, rx) = oneshot::channel();
        let op: Op = Box::new(Call { f, tx });
        self.tx.send(op).map_err(|_| IndexError::Closed)?;
        Ok(rx)
    }

    /// Run `f` in the writer's transaction; resolves after the commit.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> db::Result<T> + Send + 'static,
    ) -> Result<T, IndexError> {
        self.submit(f)?.await.map_err(|_| IndexError::Closed)?
    }

    /// [`Index::call`] for code outside the async runtime.
    pub fn call_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> db::Result<T> + Send + 'static,
    ) -> Result<T, IndexError> {
        self.submit(f)?.blocking_recv().map_err(|_| IndexError::Closed)?
    }

    /// Stop the writer after the requests already sent, and wait for it.
    /// Other clones must be dropped first for the writer to stop.
    pub fn close(self) {
        let handle = self.writer.lock().unwrap().take();
        drop(self.tx);
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

fn begin(conn: &Connection, fail: &AtomicBool) -> rusqlite::Result<()> {
    // Tests make `BEGIN` fail on demand (a full disk, a lock held elsewhere).
    if fail.load(Ordering::Relaxed) {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("injected".into()),
        ));
    }
    conn.execute_batch("BEGIN IMMEDIATE")
}

fn writer_loop(
    conn: Connection,
    rx: std_mpsc::Receiver<Op>,
    (fail_begin, fail_commit): (Arc<AtomicBool>, Arc<AtomicBool>),
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // A batch that cannot begin its transaction fails as a whole: its
        // requests are never run outside one (they would commit one by one,
        // unseen, or fail half-way), and nobody hears "committed".
        if let Err(e) = begin(&conn, &fail_begin) {
            let why = format!("cannot begin a transaction: {e}");
            tracing::error!(error = %why, "index batch refused");
            for op in batch {
                op.refuse(why.clone());
            }
            continue;
        }
        let mut dones = Vec::with_capacity(batch.len());
        let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
        for op in batch {
            let _ = run("SAVEPOINT op");
            let (ok, done) = op.run(&conn);
            if !ok {
                let _ = run("ROLLBACK TO op");
            }
            let _ = run("RELEASE op");
            dones.push(done);
        }
        let commit = if fail_commit.load(Ordering::Relaxed) {
            let _ = conn.execute_batch("ROLLBACK");
            Err("injected commit failure".to_string())
        } else {
            conn.execute_batch("COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                e.to_string()
            })
        };
        if let Err(e) = &commit {
            tracing::error!(error = %e, "index commit failed");
        }
        for done in dones {
            done(commit.clone());
        }
    }
    // Fold the WAL back into the database on a clean stop.
    let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;

    #[tokio::test]
    async fn failed_request_does_not_undo_its_neighbours() {
        let d = tempfile::tempdir().unwrap();
        let idx = Index::open(&d.path().join("i.sqlite3")).unwrap();
        let a = idx.call(|c| c.execute("INSERT INTO devices VALUES ('A', 1, 1)", []));
        let b = idx.call(|c| c.execute("INSERT INTO devices VALUES ('A', 2, 2)", []));
        let c = idx.call(|c| c.execute("INSERT INTO devices VALUES ('C', 3, 3)", []));
        let (a, b, c) = tokio::join!(a, b, c);
        assert!(a.is_ok() && b.is_err() && c.is_ok());
        let n: i64 = idx.read(|c| c.query_row("SELECT count(*) FROM devices", [], |r| r.get(0))).unwrap();
        assert_eq!(n, 2);
        idx.close();
    }

    #[tokio::test]
    async fn a_batch_that_cannot_begin_fails_and_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let idx = Index::open(&d.path().join("i.sqlite3")).unwrap();
        idx.inject_begin_failure(true);
        let r = idx.call(|c| c.execute("INSERT INTO devices VALUES ('X', 1, 1)", [])).await;
        idx.inject_begin_failure(false);
        assert!(matches!(r, Err(IndexError::Commit(ref m)) if m.contains("cannot begin")), "{r:?}");
        let n: i64 = idx.read(|c| c.query_row("SELECT count(*) FROM devices", [], |r| r.get(0))).unwrap();
        assert_eq!(n, 0, "nothing of a refused batch is written");
        idx.call(|c| c.execute("INSERT INTO devices VALUES ('Y', 1, 1)", [])).await.unwrap();
        idx.close();
    }

    #[test]
    fn migrations_are_idempotent_and_readers_check_the_version() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("i.sqlite3");
        assert!(matches!(open_reader(&p), Err(IndexError::Missing(_))));
        Index::open(&p).unwrap().close();
        Index::open(&p).unwrap().close();
        let c = open_reader(&p).unwrap();
        let v: usize = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len());
        drop(c);
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(Index::open(&p), Err(IndexError::TooNew { .. })));
    }
}
