//! The index: what is stored, where it was seen, what it is, cases,
//! alerts, the audit chain, rendition jobs. One interface, two engines:
//!
//! - [`sqlite`] (the embedded default): one writer thread batching requests
//!   into transactions (one fsync for many files), readers in WAL mode;
//! - [`pg`] (a district): PostgreSQL, a pool of connections, one
//!   transaction per request, retried on serialization failures.
//!
//! Everything above speaks [`db::Db`] through the typed functions of the
//! submodules; the statements are written once for both engines.
//!
//! **Invariant:** every write goes through [`Index::call`], which runs its
//! closure in a transaction and answers only after the commit: "indexed"
//! always means durable (`synchronous = FULL` / `synchronous_commit = on`).
//! A closure may run more than once (a PostgreSQL retry): it must not act
//! outside the database.
//!
//! - [`ingest`]: what the pipeline writes (stations, pending files, sightings,
//!   descriptions).
//! - [`query`]: typed reads for the CLI and the API.

pub mod alerts;
pub mod audit;
pub mod cases;
pub mod custody;
pub mod db;
pub mod ingest;
pub mod pg;
pub mod query;
pub mod renditions;
pub mod retention;
pub mod screens;
pub mod sqlite;
pub mod users;

use std::path::{Path, PathBuf};

pub use db::{Db, Engine};
pub use sqlite::open_reader as open_sqlite_reader;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index: {0}")]
    Db(#[from] db::Error),
    #[error("index commit failed: {0}")]
    Commit(String),
    #[error("the index writer has stopped")]
    Closed,
    #[error("no index at {0} yet (has the daemon run with this state_dir?)")]
    Missing(PathBuf),
    #[error("the index at {path} has schema version {found}; this bodycamd knows up to {known}")]
    TooNew { path: PathBuf, found: usize, known: usize },
    #[error("the index at {path} has schema version {found}, older than {known}; start the daemon once to migrate it")]
    TooOld { path: PathBuf, found: usize, known: usize },
    #[error("{0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for IndexError {
    fn from(e: rusqlite::Error) -> IndexError {
        IndexError::Db(db::Error::Sqlite(e))
    }
}

impl From<postgres::Error> for IndexError {
    fn from(e: postgres::Error) -> IndexError {
        IndexError::Db(db::Error::Pg(e))
    }
}

impl IndexError {
    /// The index cannot be reached (a PostgreSQL outage): not a problem of
    /// the request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            IndexError::Unavailable(_) | IndexError::Closed => true,
            IndexError::Db(e) => e.is_connection(),
            _ => false,
        }
    }
}

/// Where the index is, from the configuration.
pub use crate::config::IndexLocation as Location;

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(pg::Pg),
}

/// A handle on the index. Cheap to clone.
#[derive(Clone)]
pub struct Index {
    backend: Backend,
}

impl Index {
    /// Open (creating and migrating) an embedded SQLite index.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        Ok(Index { backend: Backend::Sqlite(sqlite::Sqlite::open(path)?) })
    }

    /// Open the index the configuration names (creating and migrating it).
    pub fn connect(loc: &Location) -> Result<Index, IndexError> {
        match loc {
            Location::Sqlite(p) => Index::open(p),
            Location::Postgres(url) => Ok(Index { backend: Backend::Postgres(pg::Pg::open(url)?) }),
        }
    }

    pub fn engine(&self) -> Engine {
        match &self.backend {
            Backend::Sqlite(_) => Engine::Sqlite,
            Backend::Postgres(_) => Engine::Postgres,
        }
    }

    /// Where it is (for messages).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.path().display().to_string(),
            Backend::Postgres(p) => p.describe(),
        }
    }

    /// The PostgreSQL URL, for a district.
    pub fn pg_url(&self) -> Option<String> {
        match &self.backend {
            Backend::Postgres(p) => Some(p.url().to_string()),
            Backend::Sqlite(_) => None,
        }
    }

    /// The SQLite file, for the embedded engine.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// Run `f` in a write transaction; resolves after the commit. `f` may
    /// run again if PostgreSQL asks for a retry: it must only use the
    /// database.
    pub async fn call<T, F>(&self, f: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnMut(&Db) -> db::Result<T> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(s) => {
                let mut f = f;
                s.call(move |c| f(c)).await
            }
            Backend::Postgres(p) => p.call(f).await,
        }
    }

    /// Append one audit entry (an API request's), committed before this
    /// returns. Concurrent appends share a commit: SQLite's writer batches
    /// every call; PostgreSQL groups audit appends on this host.
    pub async fn append_audit(&self, entry: audit::AuditEntry) -> Result<(), IndexError> {
        match &self.backend {
            Backend::Sqlite(s) => s.call(move |c| audit::append(c, &entry).map(|_| ())).await,
            Backend::Postgres(p) => p.append_audit(entry).await,
        }
    }

    /// [`Index::call`] for code outside the async runtime.
    pub fn call_blocking<T, F>(&self, f: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnMut(&Db) -> db::Result<T> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(s) => {
                let mut f = f;
                s.call_blocking(move |c| f(c))
            }
            Backend::Postgres(p) => p.call_blocking(f),
        }
    }

    /// Run `f` on a read connection (blocking: call it from a blocking
    /// context, e.g. `spawn_blocking`).
    pub fn read<T>(&self, f: impl FnOnce(&Db) -> db::Result<T>) -> Result<T, IndexError> {
        match &self.backend {
            Backend::Sqlite(s) => s.read(f),
            Backend::Postgres(p) => p.read(f),
        }
    }

    /// [`Index::read`] for work that fails in other ways too (files, libs).
    pub fn read_any<T>(&self, f: impl FnOnce(&Db) -> anyhow::Result<T>) -> anyhow::Result<T> {
        self.read(|c| Ok(f(c)))?
    }

    /// Stop after the requests already sent. Other clones must be dropped
    /// first for the SQLite writer to stop.
    pub fn close(self) {
        match self.backend {
            Backend::Sqlite(s) => s.close(),
            Backend::Postgres(p) => p.close(),
        }
    }

    /// Make the next transactions fail to begin (tests of the pipeline's
    /// behaviour while the index is unavailable).
    pub fn inject_begin_failure(&self, fail: bool) {
        match &self.backend {
            Backend::Sqlite(s) => s.inject_begin_failure(fail),
            Backend::Postgres(p) => p.inject_begin_failure(fail),
        }
    }

    /// Make the next commits fail (after the requests ran): nothing they
    /// wrote may stay, and nothing may act as if it had.
    pub fn inject_commit_failure(&self, fail: bool) {
        match &self.backend {
            Backend::Sqlite(s) => s.inject_commit_failure(fail),
            Backend::Postgres(p) => p.inject_commit_failure(fail),
        }
    }
}

/// A read-only connection for the CLI (next to a running daemon).
pub enum Reader {
    Sqlite(rusqlite::Connection),
    Postgres(Box<std::cell::RefCell<db::PgConn>>),
}

impl Reader {
    pub fn db(&self) -> Db<'_> {
        match self {
            Reader::Sqlite(c) => Db::sqlite(c),
            Reader::Postgres(c) => Db::pg(c),
        }
    }

    pub fn engine(&self) -> Engine {
        self.db().engine()
    }

    pub fn query_row<T>(
        &self,
        sql: &str,
        p: impl db::Params,
        f: impl FnOnce(&db::Row) -> db::Result<T>,
    ) -> db::Result<T> {
        self.db().query_row(sql, p, f)
    }

    pub fn execute(&self, sql: &str, p: impl db::Params) -> db::Result<usize> {
        self.db().execute(sql, p)
    }

    pub fn execute_batch(&self, sql: &str) -> db::Result<()> {
        self.db().execute_batch(sql)
    }

    /// Every row, mapped.
    pub fn query_all<T>(
        &self,
        sql: &str,
        p: impl db::Params,
        f: impl FnMut(&db::Row) -> db::Result<T>,
    ) -> db::Result<Vec<T>> {
        self.db().prepare(sql)?.query_map(p, f)?.collect()
    }
}

/// A direct read-write connection, with no schema check (tools and tests
/// that look inside the index; the daemon never uses it).
pub fn open_direct(loc: &Location) -> Result<Reader, IndexError> {
    match loc {
        Location::Sqlite(p) => Ok(Reader::Sqlite(rusqlite::Connection::open(p)?)),
        Location::Postgres(url) => Ok(Reader::Postgres(Box::new(std::cell::RefCell::new(pg::connect(url)?)))),
    }
}

/// Open the index for reading (the CLI's commands): it must exist and have
/// the schema this bodycamd knows.
pub fn open_reader(loc: &Location) -> Result<Reader, IndexError> {
    match loc {
        Location::Sqlite(p) => Ok(Reader::Sqlite(sqlite::open_reader(p)?)),
        Location::Postgres(url) => Ok(Reader::Postgres(Box::new(std::cell::RefCell::new(pg::connect_checked(url)?)))),
    }
}

/// Run one short write transaction from another process (the CLI's
/// `alerts ack`, `retry`, `retention run`), next to a running daemon.
pub fn write_once<T>(loc: &Location, mut f: impl FnMut(&Db) -> db::Result<T>) -> Result<T, IndexError> {
    match loc {
        Location::Sqlite(p) => sqlite::write_once(p, |c| f(c)),
        Location::Postgres(url) => pg::write_once(url, f),
    }
}
