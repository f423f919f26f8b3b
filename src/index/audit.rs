//! The audit log: who (token name, or `bodycamd` itself), what, when, from
//! where, and how it went, for every API request and every custody event
//! (ingest, sighting, link, alert acknowledgement, retention, export,
//! deletion, configuration load).
//!
//! It is a hash chain: each entry's `hash` is BLAKE3 over the previous
//! entry's hash (32 zero bytes for the first) and the entry's canonical
//! encoding, so editing, deleting or reordering any entry breaks every
//! hash after it. SQL triggers refuse updates and deletes as well.

use crate::index::db::{params, Db, OptionalExtension};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub role: Option<String>,
    pub remote: Option<String>,
    /// What was done: `case.put`, `media.original`, `case.link`, …
    pub action: String,
    pub method: Option<String>,
    pub route: Option<String>,
    pub case_id: Option<String>,
    pub media_id: Option<String>,
    pub status: Option<u16>,
    /// `ok`, `denied`, `not_found`, `rejected` or `error`.
    pub outcome: String,
    pub details: Option<String>,
}

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical encoding of an entry: JSON with fixed field order, every
/// field present (null when absent), no whitespace.
pub fn canonical(e: &AuditEntry) -> String {
    serde_json::json!([
        e.id, e.at, e.actor, e.role, e.remote, e.action, e.method, e.route, e.case_id, e.media_id, e.status, e.outcome,
        e.details
    ])
    .to_string()
}

/// The chain hash of `e` after `prev` (hex).
pub fn chain_hash(prev: &str, e: &AuditEntry) -> String {
    let mut h = blake3::Hasher::new();
    let mut prev_bytes = [0u8; 32];
    // A malformed stored prev hash still hashes deterministically (and
    // fails verification elsewhere).
    if hex::decode_to_slice(prev, &mut prev_bytes).is_err() {
        h.update(prev.as_bytes());
    }
    h.update(&prev_bytes);
    h.update(canonical(e).as_bytes());
    h.finalize().to_hex().to_string()
}

/// The last entry's id and hash.
pub fn head(c: &Db) -> crate::index::db::Result<(i64, String)> {
    if c.engine() == crate::index::db::Engine::Postgres {
        return c.query_row("SELECT id, hash FROM audit_head WHERE k = 1", [], |r| Ok((r.get(0)?, r.get(1)?)));
    }
    // By rowid only (NOT INDEXED: otherwise SQLite answers max(id) by
    // scanning the smaller audit_at index, the whole log on every append). Every entry is hashed once the
    // index is open (see `chain_unhashed`).
    c.prepare_cached("SELECT id, coalesce(hash, '') FROM audit WHERE id = (SELECT max(id) FROM audit NOT INDEXED)")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map(|o| o.unwrap_or((0, GENESIS.to_string())))
}

/// Append an entry to the chain, in the caller's transaction. With SQLite
/// the index has one writer, so the entry is chained at once; with
/// PostgreSQL it is chained when the transaction commits, under the head's
/// lock (see `pg::flush_audit`), and its id is not known before (0).
pub fn append(c: &Db, e: &AuditEntry) -> crate::index::db::Result<i64> {
    if let Some(pg) = c.as_pg() {
        pg.borrow_mut().pending_audit.push(e.clone());
        return Ok(0);
    }
    let (last, prev) = head(c)?;
    let mut e = e.clone();
    e.id = last + 1;
    let hash = chain_hash(&prev, &e);
    insert(c, &e, &prev, &hash)?;
    Ok(e.id)
}

/// Write one chained entry.
pub fn insert(c: &Db, e: &AuditEntry, prev: &str, hash: &str) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "INSERT INTO audit (id, at, actor, role, remote, action, method, route, case_id, media_id, status, outcome, details,
                            prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        e.id, e.at, e.actor, e.role, e.remote, e.action, e.method, e.route, e.case_id, e.media_id, e.status, e.outcome,
        e.details, prev, hash
    ])?;
    Ok(())
}

/// A custody event by bodycamd itself (not an API request).
pub fn event(
    c: &Db,
    at: i64,
    action: &str,
    media_id: Option<&str>,
    case_id: Option<&str>,
    details: Option<String>,
) -> crate::index::db::Result<i64> {
    record(c, at, "bodycamd", action, media_id, case_id, details)
}

/// An event by a named person or token (CLI or API), e.g. an
/// acknowledgement.
pub fn event_by(
    c: &Db,
    at: i64,
    actor: &str,
    action: &str,
    media_id: Option<&str>,
    details: Option<String>,
) -> crate::index::db::Result<i64> {
    record(c, at, actor, action, media_id, None, details)
}

/// A custody event (outcome `ok`) by `actor`, about an original and/or a case.
pub fn record(
    c: &Db,
    at: i64,
    actor: &str,
    action: &str,
    media_id: Option<&str>,
    case_id: Option<&str>,
    details: Option<String>,
) -> crate::index::db::Result<i64> {
    append(
        c,
        &AuditEntry {
            at,
            actor: actor.into(),
            action: action.into(),
            media_id: media_id.map(str::to_string),
            case_id: case_id.map(str::to_string),
            outcome: "ok".into(),
            details,
            ..Default::default()
        },
    )
}

/// Chain entries written before the chain existed (after the migration).
pub fn chain_unhashed(c: &Db) -> crate::index::db::Result<usize> {
    let first: Option<i64> = c.query_row("SELECT min(id) FROM audit WHERE hash IS NULL", [], |r| r.get(0))?;
    let Some(first) = first else { return Ok(0) };
    let mut prev: String = c
        .query_row(
            "SELECT hash FROM audit WHERE id = (SELECT max(id) FROM audit NOT INDEXED WHERE id < ?1)",
            [first],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_else(|| GENESIS.to_string());
    let rows: Vec<AuditEntry> = {
        let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM audit WHERE hash IS NULL ORDER BY id"))?;
        st.query_map([], entry)?.collect::<crate::index::db::Result<_>>()?
    };
    for e in &rows {
        let hash = chain_hash(&prev, e);
        c.execute("UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE id = ?1", params![e.id, prev, hash])?;
        prev = hash;
    }
    Ok(rows.len())
}

/// A break in the chain.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChainFault {
    /// The entry where the chain breaks (the first one that does not
    /// follow from its predecessor).
    pub entry: i64,
    pub problem: String,
}

/// Walk the whole chain; returns the number of entries, the head, and
/// every fault (an edited entry, a deleted or reordered one).
pub fn verify_chain(c: &Db) -> crate::index::db::Result<(u64, (i64, String), Vec<ChainFault>)> {
    let mut st = c.prepare(&format!("SELECT {COLUMNS}, prev_hash, hash FROM audit ORDER BY id"))?;
    let (mut prev, mut last_id, mut n, mut faults) = (GENESIS.to_string(), 0i64, 0u64, Vec::new());
    st.for_each([], |r| {
        let e = entry(&r)?;
        let stored_prev: Option<String> = r.get(13)?;
        let stored: Option<String> = r.get(14)?;
        n += 1;
        if e.id != last_id + 1 {
            faults.push(ChainFault {
                entry: e.id,
                problem: format!("entries {}..{} are missing (deleted)", last_id + 1, e.id - 1),
            });
        }
        match (stored_prev, stored) {
            (Some(p), Some(h)) => {
                if p != prev {
                    faults.push(ChainFault {
                        entry: e.id,
                        problem: "does not follow the entry before it (deleted, inserted or reordered)".into(),
                    });
                }
                if chain_hash(&p, &e) != h {
                    faults.push(ChainFault {
                        entry: e.id,
                        problem: "its content does not match its hash (edited)".into(),
                    });
                }
                prev = h;
            }
            _ => faults.push(ChainFault { entry: e.id, problem: "has no hash".into() }),
        }
        last_id = e.id;
        Ok(true)
    })?;
    Ok((n, (last_id, prev), faults))
}

/// The hash stored for entry `id`.
pub fn hash_of(c: &Db, id: i64) -> crate::index::db::Result<Option<String>> {
    c.prepare_cached("SELECT hash FROM audit WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
        .map(Option::flatten)
}

const COLUMNS: &str = "id, at, actor, role, remote, action, method, route, case_id, media_id, status, outcome, details";

fn entry(r: &crate::index::db::Row) -> crate::index::db::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        role: r.get(3)?,
        remote: r.get(4)?,
        action: r.get(5)?,
        method: r.get(6)?,
        route: r.get(7)?,
        case_id: r.get(8)?,
        media_id: r.get(9)?,
        status: r.get(10)?,
        outcome: r.get(11)?,
        details: r.get(12)?,
    })
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub media: Option<String>,
    pub case: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Entries after this id (keyset pagination).
    pub after: Option<i64>,
    /// Entries before this id (pages of the newest first).
    pub before: Option<i64>,
    /// Newest first (the console) rather than oldest first (the API).
    pub newest_first: bool,
    pub limit: u32,
    /// Leave out entries about restricted originals or cases (callers
    /// without the grant).
    pub hide_restricted: bool,
}

/// The statement for `f`: only the conditions given, so that SQLite uses
/// the index of the most selective one (a log that only grows is never
/// scanned whole), and its parameters.
fn query_sql(c: &Db, f: &AuditFilter) -> (String, Vec<crate::index::db::Value>) {
    use crate::index::db::Value;
    let mut cond = vec!["id > ?".to_string()];
    let mut p: Vec<Value> = vec![Value::Int(f.after.unwrap_or(0))];
    for (col, v) in [("media_id", &f.media), ("case_id", &f.case), ("actor", &f.actor), ("action", &f.action)] {
        if let Some(v) = v {
            cond.push(format!("{col} = ?"));
            p.push(Value::Text(v.clone()));
        }
    }
    if let Some(b) = f.before {
        cond.push("id < ?".into());
        p.push(Value::Int(b));
    }
    if let Some(t) = f.from {
        cond.push("at >= ?".into());
        p.push(Value::Int(t));
    }
    if let Some(t) = f.to {
        cond.push("at < ?".into());
        p.push(Value::Int(t));
    }
    if f.hide_restricted {
        cond.push(format!(
            "(media_id IS NULL OR media_id NOT IN {})
             AND (case_id IS NULL OR case_id NOT IN (SELECT id FROM cases WHERE restricted = 1))",
            super::query::RESTRICTED_IDS
        ));
    }
    p.push(Value::Int(i64::from(f.limit)));
    // Without a filter that has an index, walk the log by id (SQLite would
    // otherwise answer the restricted filter's ORs from the media and case
    // indexes, and sort the whole log).
    let unfiltered =
        [&f.media, &f.case, &f.actor, &f.action].iter().all(|v| v.is_none()) && f.from.is_none() && f.to.is_none();
    let by_id = if unfiltered { c.pick("NOT INDEXED", "") } else { "" };
    let sql = format!(
        "SELECT id, at, actor, role, remote, action, method, route, case_id, media_id, status, outcome, details FROM audit {by_id}
         WHERE {} ORDER BY id {} LIMIT ?",
        cond.join(" AND "),
        if f.newest_first { "DESC" } else { "ASC" }
    );
    (sql, p)
}

/// Entries matching `f`, oldest first.
pub fn query(c: &Db, f: &AuditFilter) -> crate::index::db::Result<Vec<AuditEntry>> {
    let (sql, p) = query_sql(c, f);
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(crate::index::db::params_from_iter(p), entry)?;
    rows.collect()
}

/// How SQLite runs [`query`] for `f` (`EXPLAIN QUERY PLAN`, one line per
/// step): for tests and for diagnosing a slow audit search.
pub fn query_plan(c: &Db, f: &AuditFilter) -> crate::index::db::Result<Vec<String>> {
    let (sql, p) = query_sql(c, f);
    let (sql, col) = match c.engine() {
        crate::index::db::Engine::Sqlite => (format!("EXPLAIN QUERY PLAN {sql}"), 3),
        crate::index::db::Engine::Postgres => (format!("EXPLAIN {sql}"), 0),
    };
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map(crate::index::db::params_from_iter(p), |r| r.get::<_, String>(col))?;
    rows.collect()
}
