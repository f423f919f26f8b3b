//! The PostgreSQL engine: a district's one index for every host.
//!
//! A pool of connections, one READ COMMITTED transaction per request
//! (`synchronous_commit = on`), retried a few times on a serialization
//! failure or a deadlock (so a request's closure must only touch the
//! database). Audit entries written in a transaction are chained at its
//! commit, under the lock of the one-row `audit_head`: the chain is one
//! serial chain across every host, with gapless ids.
//!
//! Migrations are numbered per engine (`migrations/postgres/`), applied under
//! an advisory lock so that hosts starting together do not race, and
//! recorded in `schema_migrations`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::db::{self, Db, PgConn};
use super::IndexError;

pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_init.sql"),
    include_str!("migrations/postgres/0002_console.sql"),
    include_str!("migrations/postgres/0003_compliance.sql"),
    include_str!("migrations/postgres/0004_console_lists.sql"),
    include_str!("migrations/postgres/0005_recovery.sql"),
    include_str!("migrations/postgres/0006_fewer_indexes.sql"),
];

/// Connections in use at most (more requests wait for one).
const POOL_MAX: usize = 24;
/// Attempts of a transaction that meets serialization failures.
const RETRIES: usize = 5;
/// The advisory lock key for migrations.
const MIGRATION_LOCK: i64 = 0x62_6f_64_79_63_61_6d_01;

struct Pool {
    idle: Vec<PgConn>,
    in_use: usize,
}

struct Inner {
    url: String,
    pool: Mutex<Pool>,
    freed: Condvar,
    fail_begin: AtomicBool,
    fail_commit: AtomicBool,
    /// Audit entries waiting for the next group commit (started on first use).
    audit_q: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<AuditRequest>>,
}

/// One audit entry to append, and who waits for its commit.
type AuditRequest = (super::audit::AuditEntry, tokio::sync::oneshot::Sender<Result<(), (bool, String)>>);

/// Most entries in one group commit.
const AUDIT_BATCH: usize = 256;

/// The PostgreSQL index. Cheap to clone.
#[derive(Clone)]
pub struct Pg {
    inner: Arc<Inner>,
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "postgres://(unparsable URL)".into(),
    }
}

fn unavailable(url: &str, e: impl std::fmt::Display) -> IndexError {
    IndexError::Unavailable(format!("PostgreSQL at {} cannot be reached: {e}", redact(url)))
}

/// Run blocking PostgreSQL work from wherever the caller is: the sync
/// client drives a small runtime of its own, which cannot start on a
/// thread that is running the daemon's (async) runtime, so such a caller
/// hands its thread over to blocking work first.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A new connection, configured for evidence.
pub fn connect(url: &str) -> Result<PgConn, IndexError> {
    blocking(|| connect_now(url))
}

fn connect_now(url: &str) -> Result<PgConn, IndexError> {
    let mut cfg: postgres::Config = url
        .parse()
        .map_err(|e| IndexError::Unavailable(format!("index.url {} is not a PostgreSQL URL: {e}", redact(url))))?;
    cfg.connect_timeout(Duration::from_secs(5));
    cfg.application_name("bodycamd");
    // A host that vanishes (power, network) loses its sessions, and with
    // them its leadership, within seconds.
    cfg.keepalives(true);
    cfg.keepalives_idle(Duration::from_secs(5));
    cfg.keepalives_interval(Duration::from_secs(2));
    cfg.keepalives_retries(3);
    let mut client = cfg.connect(postgres::NoTls).map_err(|e| unavailable(url, e))?;
    client
        .batch_execute("SET synchronous_commit = on; SET statement_timeout = '10min'; SET lock_timeout = '60s'")
        .map_err(|e| unavailable(url, e))?;
    Ok(PgConn::new(client))
}

/// The schema version a database has (0 when it has none yet).
fn version(c: &mut postgres::Client) -> Result<usize, IndexError> {
    let exists: bool = c
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .map(|r| r.get(0))
        .map_err(IndexError::from)?;
    if !exists {
        return Ok(0);
    }
    let v: i64 = c.query_one("SELECT coalesce(max(version), 0)::bigint FROM schema_migrations", &[])?.get(0);
    Ok(v as usize)
}

/// Connect and check that the schema is the one this bodycamd knows (for
/// readers and `check-config`, which never migrate).
pub fn connect_checked(url: &str) -> Result<PgConn, IndexError> {
    let mut c = connect(url)?;
    let found = blocking(|| version(&mut c.client))?;
    let path = std::path::PathBuf::from(redact(url));
    if found == 0 {
        return Err(IndexError::Missing(path));
    }
    if found > MIGRATIONS.len() {
        return Err(IndexError::TooNew { path, found, known: MIGRATIONS.len() });
    }
    if found < MIGRATIONS.len() {
        return Err(IndexError::TooOld { path, found, known: MIGRATIONS.len() });
    }
    Ok(c)
}

fn migrate(c: &mut postgres::Client, url: &str) -> Result<(), IndexError> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )?;
    let found: i64 = tx.query_one("SELECT coalesce(max(version), 0)::bigint FROM schema_migrations", &[])?.get(0);
    let found = found as usize;
    if found > MIGRATIONS.len() {
        return Err(IndexError::TooNew { path: redact(url).into(), found, known: MIGRATIONS.len() });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        tx.batch_execute(sql)?;
        let now = chrono::Utc::now().timestamp_millis();
        tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", &[&((i + 1) as i64), &now])?;
        tracing::info!(version = i + 1, "index migrated (PostgreSQL)");
    }
    tx.commit()?;
    Ok(())
}

/// What `check-config` says about an index URL: reachable, the schema
/// version, and whether this role may write.
pub fn check(url: &str) -> Result<String, IndexError> {
    let mut c = connect(url)?;
    let found = version(&mut c.client)?;
    let privileges: bool = c
        .client
        .query_one(
            "SELECT has_database_privilege(current_database(), 'CREATE')
                 OR (to_regclass('originals') IS NOT NULL AND has_table_privilege('originals', 'INSERT'))",
            &[],
        )?
        .get(0);
    if !privileges {
        return Err(IndexError::Unavailable(format!(
            "the role connecting to {} may neither create the schema nor write to it (grant CREATE on the \
             database, or INSERT/UPDATE/SELECT on its tables)",
            redact(url)
        )));
    }
    match found {
        0 => Ok("reachable; empty (the schema is created at the daemon's first start)".into()),
        v if v == MIGRATIONS.len() => Ok(format!("reachable; schema version {v}")),
        v if v > MIGRATIONS.len() => {
            Err(IndexError::TooNew { path: redact(url).into(), found: v, known: MIGRATIONS.len() })
        }
        v => Ok(format!("reachable; schema version {v}, migrated to {} at the daemon's next start", MIGRATIONS.len())),
    }
}

/// Chain the audit entries of the open transaction (see `audit::append`):
/// lock the head, give each entry the next id and its hash, insert them,
/// move the head. Called just before the commit.
fn flush_audit(conn: &RefCell<PgConn>) -> db::Result<()> {
    let pending = std::mem::take(&mut conn.borrow_mut().pending_audit);
    if pending.is_empty() {
        return Ok(());
    }
    let db = Db::pg(conn);
    let (mut last, mut prev): (i64, String) =
        db.query_row("SELECT id, hash FROM audit_head WHERE k = 1 FOR UPDATE", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    for e in pending {
        let mut e = e;
        e.id = last + 1;
        let hash = super::audit::chain_hash(&prev, &e);
        super::audit::insert(&db, &e, &prev, &hash)?;
        last = e.id;
        prev = hash;
    }
    db.execute("UPDATE audit_head SET id = ?1, hash = ?2 WHERE k = 1", crate::params![last, prev])?;
    Ok(())
}

impl Pg {
    /// Connect, create or migrate the schema, and keep a pool.
    pub fn open(url: &str) -> Result<Pg, IndexError> {
        let mut first = connect(url)?;
        blocking(|| migrate(&mut first.client, url))?;
        Ok(Pg {
            inner: Arc::new(Inner {
                url: url.to_string(),
                pool: Mutex::new(Pool { idle: vec![first], in_use: 0 }),
                freed: Condvar::new(),
                fail_begin: AtomicBool::new(false),
                fail_commit: AtomicBool::new(false),
                audit_q: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn describe(&self) -> String {
        redact(&self.inner.url)
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    fn take(&self) -> Result<PgConn, IndexError> {
        let mut pool = self.inner.pool.lock().unwrap();
        loop {
            if let Some(c) = pool.idle.pop() {
                pool.in_use += 1;
                return Ok(c);
            }
            if pool.in_use < POOL_MAX {
                pool.in_use += 1;
                drop(pool);
                return connect(&self.inner.url).inspect_err(|_| {
                    let mut p = self.inner.pool.lock().unwrap();
                    p.in_use -= 1;
                    self.inner.freed.notify_one();
                });
            }
            pool = self.inner.freed.wait(pool).unwrap();
        }
    }

    /// Give a connection back (`broken`: it failed; drop it).
    fn give(&self, c: PgConn, broken: bool) {
        let mut pool = self.inner.pool.lock().unwrap();
        pool.in_use -= 1;
        if !broken && !c.client.is_closed() {
            pool.idle.push(c);
        }
        self.inner.freed.notify_one();
    }

    /// One transaction, retried on serialization failures and deadlocks.
    pub fn call_blocking<T>(&self, f: impl FnMut(&Db) -> db::Result<T>) -> Result<T, IndexError> {
        blocking(|| self.call_now(f))
    }

    fn call_now<T>(&self, mut f: impl FnMut(&Db) -> db::Result<T>) -> Result<T, IndexError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = RefCell::new(self.take()?);
            let r = self.transaction(&conn, &mut f);
            let broken = matches!(&r, Err(IndexError::Db(e)) if e.is_connection())
                || matches!(&r, Err(IndexError::Unavailable(_)));
            self.give(conn.into_inner(), broken);
            match r {
                Err(IndexError::Db(e)) if e.is_retryable() && attempt < RETRIES => {
                    std::thread::sleep(Duration::from_millis(5 * attempt as u64));
                    continue;
                }
                Err(IndexError::Db(e)) if e.is_connection() => return Err(unavailable(&self.inner.url, e)),
                r => return r,
            }
        }
    }

    fn transaction<T>(
        &self,
        conn: &RefCell<PgConn>,
        f: &mut impl FnMut(&Db) -> db::Result<T>,
    ) -> Result<T, IndexError> {
        if self.inner.fail_begin.load(Ordering::Relaxed) {
            return Err(IndexError::Commit("cannot begin a transaction: injected".into()));
        }
        conn.borrow_mut().pending_audit.clear();
        conn.borrow_mut().client.batch_execute("BEGIN")?;
        let out = f(&Db::pg(conn)).and_then(|v| flush_audit(conn).map(|()| v));
        match out {
            Ok(v) => {
                if self.inner.fail_commit.load(Ordering::Relaxed) {
                    let _ = conn.borrow_mut().client.batch_execute("ROLLBACK");
                    return Err(IndexError::Commit("injected commit failure".into()));
                }
                match conn.borrow_mut().client.batch_execute("COMMIT") {
                    Ok(()) => Ok(v),
                    Err(e) => Err(IndexError::Db(e.into())),
                }
            }
            Err(e) => {
                let _ = conn.borrow_mut().client.batch_execute("ROLLBACK");
                Err(IndexError::Db(e))
            }
        }
    }

    pub async fn call<T, F>(&self, f: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnMut(&Db) -> db::Result<T> + Send + 'static,
    {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.call_blocking(f)).await.map_err(|_| IndexError::Closed)?
    }

    /// Append one audit entry, committed before this returns. Entries from
    /// concurrent requests on this host are committed together: one lock of
    /// the chain's head and one commit for all that arrived while the
    /// previous group was committing (every API request is audited, and
    /// the head is the district's one serial point).
    pub async fn append_audit(&self, entry: super::audit::AuditEntry) -> Result<(), IndexError> {
        let q = self.inner.audit_q.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(audit_committer(self.clone(), rx));
            tx
        });
        let (done, wait) = tokio::sync::oneshot::channel();
        q.send((entry, done)).map_err(|_| IndexError::Closed)?;
        match wait.await.map_err(|_| IndexError::Closed)? {
            Ok(()) => Ok(()),
            Err((true, msg)) => Err(IndexError::Unavailable(msg)),
            Err((false, msg)) => Err(IndexError::Commit(msg)),
        }
    }

    /// Run `f` on a pooled connection, outside a transaction.
    pub fn read<T>(&self, f: impl FnOnce(&Db) -> db::Result<T>) -> Result<T, IndexError> {
        blocking(|| self.read_now(f))
    }

    fn read_now<T>(&self, f: impl FnOnce(&Db) -> db::Result<T>) -> Result<T, IndexError> {
        let conn = RefCell::new(self.take()?);
        let r = f(&Db::pg(&conn)).map_err(IndexError::Db);
        let broken = matches!(&r, Err(IndexError::Db(e)) if e.is_connection());
        self.give(conn.into_inner(), broken);
        match r {
            Err(IndexError::Db(e)) if e.is_connection() => Err(unavailable(&self.inner.url, e)),
            r => r,
        }
    }

    pub fn close(self) {
        self.inner.pool.lock().unwrap().idle.clear();
    }

    pub fn inject_begin_failure(&self, fail: bool) {
        self.inner.fail_begin.store(fail, Ordering::SeqCst);
    }

    pub fn inject_commit_failure(&self, fail: bool) {
        self.inner.fail_commit.store(fail, Ordering::SeqCst);
    }
}

/// Commits queued audit entries in groups: whatever arrived while the
/// last group was being committed goes in the next one.
async fn audit_committer(pg: Pg, mut rx: tokio::sync::mpsc::UnboundedReceiver<AuditRequest>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < AUDIT_BATCH {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let entries: Vec<super::audit::AuditEntry> = group.iter().map(|(e, _)| e.clone()).collect();
        let me = pg.clone();
        let r = tokio::task::spawn_blocking(move || {
            me.call_blocking(|c| {
                for e in &entries {
                    super::audit::append(c, e)?;
                }
                Ok(())
            })
        })
        .await
        .unwrap_or(Err(IndexError::Closed));
        let r = r.map_err(|e| (e.is_unavailable(), e.to_string()));
        for (_, done) in group {
            let _ = done.send(r.clone());
        }
    }
}

/// One transaction from another process (the CLI).
pub fn write_once<T>(url: &str, f: impl FnMut(&Db) -> db::Result<T>) -> Result<T, IndexError> {
    blocking(|| write_once_now(url, f))
}

fn write_once_now<T>(url: &str, mut f: impl FnMut(&Db) -> db::Result<T>) -> Result<T, IndexError> {
    let conn = RefCell::new(connect_checked(url)?);
    conn.borrow_mut().client.batch_execute("BEGIN")?;
    match f(&Db::pg(&conn)).and_then(|v| flush_audit(&conn).map(|()| v)) {
        Ok(v) => {
            conn.borrow_mut().client.batch_execute("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.borrow_mut().client.batch_execute("ROLLBACK");
            Err(IndexError::Db(e))
        }
    }
}

/// The advisory lock whose holder is the district's leader.
const LEADER_LOCK: i64 = 0x62_6f_64_79_63_61_6d_02;

/// A session holding the district's leadership: the work that must happen
/// once per district runs on its host. The lock goes with the session, so
/// a host that dies (or loses PostgreSQL) gives it up by itself.
pub struct Leadership {
    conn: PgConn,
}

impl Leadership {
    /// Take the leadership if nobody holds it.
    pub fn try_acquire(url: &str) -> Result<Option<Leadership>, IndexError> {
        let mut c = connect(url)?;
        let got: bool = c.client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])?.get(0);
        Ok(got.then_some(Leadership { conn: c }))
    }

    /// Whether the session (and so the lock) is still there.
    pub fn alive(&mut self) -> bool {
        self.conn.client.simple_query("SELECT 1").is_ok()
    }
}
