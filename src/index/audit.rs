//! The access audit: who (token name), what, when, from where, and how it
//! went, for every API request.

use rusqlite::{params, Connection};

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

pub fn append(c: &Connection, e: &AuditEntry) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO audit (at, actor, role, remote, action, method, route, case_id, media_id, status, outcome, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        e.at, e.actor, e.role, e.remote, e.action, e.method, e.route, e.case_id, e.media_id, e.status, e.outcome, e.details
    ])?;
    Ok(c.last_insert_rowid())
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub media: Option<String>,
    pub case: Option<String>,
    pub actor: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Entries after this id (keyset pagination).
    pub after: Option<i64>,
    pub limit: u32,
}

/// Entries matching `f`, oldest first.
pub fn query(c: &Connection, f: &AuditFilter) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, at, actor, role, remote, action, method, route, case_id, media_id, status, outcome, details FROM audit
         WHERE (?1 IS NULL OR media_id = ?1) AND (?2 IS NULL OR case_id = ?2) AND (?3 IS NULL OR actor = ?3)
           AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5) AND id > ?6
         ORDER BY id LIMIT ?7",
    )?;
    let rows = stmt.query_map(params![f.media, f.case, f.actor, f.from, f.to, f.after.unwrap_or(0), f.limit], |r| {
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
    })?;
    rows.collect()
}
