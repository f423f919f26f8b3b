//! Cases and their links to originals. Matching runs both ways: when a case
//! is registered or changed (its rule links are recomputed), and when an
//! original is stored or described (the cases it belongs to are found).
//! Rule links follow the rule; manual links and removals made by hand are
//! never undone by it.

use std::collections::HashSet;

use crate::index::db::{params, Db, OptionalExtension};
use chrono::Duration;

use crate::clock::{from_ms, to_ms};
use crate::rules::cases::{Case, CaseStatus, Window};

/// Who made rule links when an original arrives (no person did).
pub const RULE_ACTOR: &str = "bodycamd";

#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    pub case: Case,
    pub created_at: i64,
    pub updated_at: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkRecord {
    pub case_id: String,
    pub media_id: String,
    /// `rule` or `manual`.
    pub how: String,
    /// `linked` or `removed`.
    pub state: String,
    pub linked_by: String,
    pub linked_at: i64,
    pub note: Option<String>,
    pub removed_by: Option<String>,
    pub removed_at: Option<i64>,
}

/// What registering a case did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Relinked {
    pub created: bool,
    /// Rule links added.
    pub linked: usize,
    /// Rule links dropped because the case no longer covers the original.
    pub unlinked: usize,
    /// Originals linked to the case now (by rule or by hand).
    pub total: usize,
}

pub fn get_case(c: &Db, id: &str) -> crate::index::db::Result<Option<CaseRecord>> {
    let head = c
        .prepare_cached(
            "SELECT title, status, closed_at, buffer_minutes, created_at, updated_at, updated_by FROM cases WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .optional()?;
    let Some((title, status, closed_at, buffer_minutes, created_at, updated_at, updated_by)) = head else {
        return Ok(None);
    };
    let list = |sql: &str| -> crate::index::db::Result<Vec<String>> {
        c.prepare_cached(sql)?.query_map([id], |r| r.get(0))?.collect()
    };
    let officers = list("SELECT officer FROM case_officers WHERE case_id = ?1 ORDER BY officer")?;
    let devices = list("SELECT device FROM case_devices WHERE case_id = ?1 ORDER BY device")?;
    let windows = c
        .prepare_cached("SELECT start, \"end\" FROM case_windows WHERE case_id = ?1 ORDER BY start, id")?
        .query_map([id], |r| Ok(Window { start: from_ms(r.get(0)?), end: from_ms(r.get(1)?) }))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(CaseRecord {
        case: Case {
            id: id.to_string(),
            title,
            status: CaseStatus::parse(&status).unwrap_or(CaseStatus::Open),
            closed_at: closed_at.map(from_ms),
            officers,
            devices,
            windows,
            buffer_minutes,
        },
        created_at,
        updated_at,
        updated_by,
    }))
}

/// The originals the case's rule covers now.
fn rule_matches(c: &Db, case: &Case) -> crate::index::db::Result<HashSet<String>> {
    let mut out = HashSet::new();
    let b = Duration::minutes(case.buffer_minutes);
    for w in &case.windows {
        let (from, to) = (to_ms(w.start - b), to_ms(w.end + b));
        for (column, values) in [("officer", &case.officers), ("device", &case.devices)] {
            let sql = format!(
                "SELECT id FROM originals WHERE {column} = ?1 AND start_at BETWEEN ?2 AND ?3
                   AND coalesce(recorded_start, name_start) IS NOT NULL"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            for v in values {
                for id in stmt.query_map(params![v, from, to], |r| r.get::<_, String>(0))? {
                    out.insert(id?);
                }
            }
        }
    }
    Ok(out)
}

fn links_of_case(c: &Db, case_id: &str) -> crate::index::db::Result<Vec<(String, String, String)>> {
    c.prepare_cached("SELECT media_id, how, state FROM case_links WHERE case_id = ?1")?
        .query_map([case_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

fn add_rule_link(c: &Db, case_id: &str, media_id: &str, by: &str, now_ms: i64) -> crate::index::db::Result<bool> {
    let added = c
        .prepare_cached(
            "INSERT INTO case_links (case_id, media_id, how, state, linked_by, linked_at) VALUES (?1, ?2, 'rule', 'linked', ?3, ?4)
         ON CONFLICT (case_id, media_id) DO NOTHING",
        )?
        .execute(params![case_id, media_id, by, now_ms])?
        == 1;
    if added {
        super::audit::event(
            c,
            now_ms,
            "case.rule_link",
            Some(media_id),
            Some(case_id),
            Some(format!("by the case rule, after {by}")),
        )?;
    }
    Ok(added)
}

fn drop_rule_link(c: &Db, case_id: &str, media_id: &str, now_ms: i64) -> crate::index::db::Result<bool> {
    let dropped = c
        .prepare_cached(
            "DELETE FROM case_links WHERE case_id = ?1 AND media_id = ?2 AND how = 'rule' AND state = 'linked'",
        )?
        .execute(params![case_id, media_id])?
        == 1;
    if dropped {
        super::audit::event(
            c,
            now_ms,
            "case.rule_unlink",
            Some(media_id),
            Some(case_id),
            Some("the case rule no longer matches".into()),
        )?;
    }
    Ok(dropped)
}

/// Recompute a case's rule links.
pub fn relink_case(c: &Db, case: &Case, by: &str, now_ms: i64) -> crate::index::db::Result<Relinked> {
    let want = rule_matches(c, case)?;
    let have = links_of_case(c, &case.id)?;
    let mut r = Relinked::default();
    let known: HashSet<&str> = have.iter().map(|(m, _, _)| m.as_str()).collect();
    for (media, how, state) in &have {
        if how == "rule" && state == "linked" && !want.contains(media) && drop_rule_link(c, &case.id, media, now_ms)? {
            r.unlinked += 1;
        }
    }
    for media in &want {
        if !known.contains(media.as_str()) && add_rule_link(c, &case.id, media, by, now_ms)? {
            r.linked += 1;
        }
    }
    r.total = c
        .prepare_cached("SELECT count(*) FROM case_links WHERE case_id = ?1 AND state = 'linked'")?
        .query_row([&case.id], |row| row.get::<_, i64>(0))? as usize;
    Ok(r)
}

/// Register or replace a case (validated by the caller), then relink it.
pub fn upsert_case(c: &Db, case: &Case, by: &str, now_ms: i64) -> crate::index::db::Result<Relinked> {
    let created =
        c.prepare_cached(
            "INSERT INTO cases (id, title, status, closed_at, buffer_minutes, created_at, updated_at, updated_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            case.id,
            case.title,
            case.status.as_str(),
            case.closed_at.map(to_ms),
            case.buffer_minutes,
            now_ms,
            by
        ])? == 1;
    if !created {
        c.prepare_cached(
            "UPDATE cases SET title = ?2, status = ?3, closed_at = ?4, buffer_minutes = ?5, updated_at = ?6, updated_by = ?7
             WHERE id = ?1",
        )?
        .execute(params![
            case.id,
            case.title,
            case.status.as_str(),
            case.closed_at.map(to_ms),
            case.buffer_minutes,
            now_ms,
            by
        ])?;
        for table in ["case_officers", "case_devices", "case_windows"] {
            c.prepare_cached(&format!("DELETE FROM {table} WHERE case_id = ?1"))?.execute([&case.id])?;
        }
    }
    for o in dedup(&case.officers) {
        c.prepare_cached("INSERT INTO case_officers (case_id, officer) VALUES (?1, ?2)")?
            .execute(params![case.id, o])?;
    }
    for d in dedup(&case.devices) {
        c.prepare_cached("INSERT INTO case_devices (case_id, device) VALUES (?1, ?2)")?.execute(params![case.id, d])?;
    }
    for w in &case.windows {
        c.prepare_cached("INSERT INTO case_windows (case_id, start, \"end\") VALUES (?1, ?2, ?3)")?
            .execute(params![case.id, to_ms(w.start), to_ms(w.end)])?;
    }
    let mut r = relink_case(c, case, by, now_ms)?;
    r.created = created;
    Ok(r)
}

fn dedup(v: &[String]) -> Vec<&String> {
    let mut seen = HashSet::new();
    v.iter().filter(|x| seen.insert(x.as_str())).collect()
}

/// Find the cases an original belongs to now, after it was stored or its
/// start became known: add missing rule links, drop rule links the rule no
/// longer gives. Returns the case ids newly linked.
pub fn match_media(c: &Db, media_id: &str, now_ms: i64) -> crate::index::db::Result<Vec<String>> {
    let row = c
        .prepare_cached("SELECT officer, device, coalesce(recorded_start, name_start) FROM originals WHERE id = ?1")?
        .query_row([media_id], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<i64>>(2)?))
        })
        .optional()?;
    let Some((officer, device, start)) = row else {
        return Ok(Vec::new());
    };
    let mut candidates: HashSet<String> = HashSet::new();
    if let Some(o) = &officer {
        for id in
            c.prepare_cached("SELECT case_id FROM case_officers WHERE officer = ?1")?.query_map([o], |r| r.get(0))?
        {
            candidates.insert(id?);
        }
    }
    if let Some(d) = &device {
        for id in
            c.prepare_cached("SELECT case_id FROM case_devices WHERE device = ?1")?.query_map([d], |r| r.get(0))?
        {
            candidates.insert(id?);
        }
    }
    let mut want = HashSet::new();
    if let Some(start) = start {
        for case_id in &candidates {
            let hit: Option<i64> = c
                .prepare_cached(
                    "SELECT 1 FROM case_windows w JOIN cases k ON k.id = w.case_id
                     WHERE w.case_id = ?1 AND ?2 BETWEEN w.start - k.buffer_minutes * 60000 AND w.\"end\" + k.buffer_minutes * 60000
                     LIMIT 1",
                )?
                .query_row(params![case_id, start], |r| r.get(0))
                .optional()?;
            if hit.is_some() {
                want.insert(case_id.clone());
            }
        }
    }
    let have: Vec<(String, String, String)> = c
        .prepare_cached("SELECT case_id, how, state FROM case_links WHERE media_id = ?1")?
        .query_map([media_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (case_id, how, state) in &have {
        if how == "rule" && state == "linked" && !want.contains(case_id) {
            drop_rule_link(c, case_id, media_id, now_ms)?;
        }
    }
    let known: HashSet<&str> = have.iter().map(|(k, _, _)| k.as_str()).collect();
    let mut added = Vec::new();
    for case_id in want {
        if !known.contains(case_id.as_str()) && add_rule_link(c, &case_id, media_id, RULE_ACTOR, now_ms)? {
            added.push(case_id);
        }
    }
    added.sort();
    Ok(added)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    /// It was linked already (by rule or by hand); nothing changed.
    AlreadyLinked,
    NoSuchCase,
    NoSuchMedia,
}

/// Link an original to a case by hand. This also restores a link that was
/// removed by hand.
pub fn link_manual(
    c: &Db,
    case_id: &str,
    media_id: &str,
    by: &str,
    note: Option<&str>,
    now_ms: i64,
) -> crate::index::db::Result<LinkOutcome> {
    let exists = |sql: &str, id: &str| -> crate::index::db::Result<bool> {
        Ok(c.prepare_cached(sql)?.query_row([id], |_| Ok(())).optional()?.is_some())
    };
    if !exists("SELECT 1 FROM cases WHERE id = ?1", case_id)? {
        return Ok(LinkOutcome::NoSuchCase);
    }
    if !exists("SELECT 1 FROM originals WHERE id = ?1", media_id)? {
        return Ok(LinkOutcome::NoSuchMedia);
    }
    let state: Option<String> = c
        .prepare_cached("SELECT state FROM case_links WHERE case_id = ?1 AND media_id = ?2")?
        .query_row(params![case_id, media_id], |r| r.get(0))
        .optional()?;
    match state.as_deref() {
        Some("linked") => Ok(LinkOutcome::AlreadyLinked),
        Some(_) => {
            c.prepare_cached(
                "UPDATE case_links SET how = 'manual', state = 'linked', linked_by = ?3, linked_at = ?4, note = ?5,
                    removed_by = NULL, removed_at = NULL WHERE case_id = ?1 AND media_id = ?2",
            )?
            .execute(params![case_id, media_id, by, now_ms, note])?;
            Ok(LinkOutcome::Linked)
        }
        None => {
            c.prepare_cached(
                "INSERT INTO case_links (case_id, media_id, how, state, linked_by, linked_at, note)
                 VALUES (?1, ?2, 'manual', 'linked', ?3, ?4, ?5)",
            )?
            .execute(params![case_id, media_id, by, now_ms, note])?;
            Ok(LinkOutcome::Linked)
        }
    }
}

/// Remove a link by hand. It is kept as `removed`, so the rule does not
/// bring it back. Returns whether a link was removed.
pub fn unlink(c: &Db, case_id: &str, media_id: &str, by: &str, now_ms: i64) -> crate::index::db::Result<bool> {
    Ok(c.prepare_cached(
        "UPDATE case_links SET state = 'removed', removed_by = ?3, removed_at = ?4
         WHERE case_id = ?1 AND media_id = ?2 AND state = 'linked'",
    )?
    .execute(params![case_id, media_id, by, now_ms])?
        == 1)
}

fn link_row(r: &crate::index::db::Row) -> crate::index::db::Result<LinkRecord> {
    Ok(LinkRecord {
        case_id: r.get(0)?,
        media_id: r.get(1)?,
        how: r.get(2)?,
        state: r.get(3)?,
        linked_by: r.get(4)?,
        linked_at: r.get(5)?,
        note: r.get(6)?,
        removed_by: r.get(7)?,
        removed_at: r.get(8)?,
    })
}

const LINK_COLUMNS: &str =
    "l.case_id, l.media_id, l.how, l.state, l.linked_by, l.linked_at, l.note, l.removed_by, l.removed_at";

/// The originals linked to a case, by recording start.
pub fn case_media(c: &Db, case_id: &str) -> crate::index::db::Result<Vec<LinkRecord>> {
    c.prepare_cached(&format!(
        "SELECT {LINK_COLUMNS} FROM case_links l JOIN originals o ON o.id = l.media_id
         WHERE l.case_id = ?1 AND l.state = 'linked' ORDER BY o.start_at, o.id"
    ))?
    .query_map([case_id], link_row)?
    .collect()
}

/// Every link of an original (linked and removed).
pub fn media_links(c: &Db, media_id: &str) -> crate::index::db::Result<Vec<LinkRecord>> {
    c.prepare_cached(&format!("SELECT {LINK_COLUMNS} FROM case_links l WHERE l.media_id = ?1 ORDER BY l.case_id"))?
        .query_map([media_id], link_row)?
        .collect()
}

/// Every link (linked and removed) of each of `ids`, by original.
pub fn media_links_many(
    c: &Db,
    ids: &[String],
) -> crate::index::db::Result<std::collections::HashMap<String, Vec<LinkRecord>>> {
    let mut out: std::collections::HashMap<String, Vec<LinkRecord>> = std::collections::HashMap::new();
    let sql =
        format!("SELECT {LINK_COLUMNS} FROM case_links l WHERE l.media_id IN ({{ids}}) ORDER BY l.media_id, l.case_id");
    crate::index::query::for_ids(c, &sql, ids, |r| {
        let link = link_row(r)?;
        out.entry(link.media_id.clone()).or_default().push(link);
        Ok(())
    })?;
    Ok(out)
}

/// What registering `case` as a new case would answer (the originals it
/// would link that nobody restricted), without keeping anything: the write
/// is played in a savepoint under a private id and rolled back.
pub fn as_if_new(c: &Db, case: &Case, by: &str, now_ms: i64) -> crate::index::db::Result<(usize, Relinked)> {
    c.execute_batch("SAVEPOINT as_if_new")?;
    let mut sim = case.clone();
    sim.id = format!("\u{1}as-if-new:{}", case.id);
    let counted = upsert_case(c, &sim, by, now_ms)
        .and_then(|r| Ok((crate::index::query::visible_case_media(c, &sim.id, false)?.len(), r)));
    c.execute_batch("ROLLBACK TO SAVEPOINT as_if_new; RELEASE SAVEPOINT as_if_new")?;
    counted
}
