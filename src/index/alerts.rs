//! Alerts in the index: open, resolve, acknowledge, reconcile, list; every
//! transition is kept (`alert_events`) with the exact JSON body webhooks
//! receive, and queued for each webhook (`webhook_deliveries`) in the same
//! transaction, so a transition and its delivery are never separated.

use crate::index::db::{params, Db, OptionalExtension, Row};
use serde_json::json;

use crate::clock::{from_ms, rfc3339};
use crate::rules::alerts::{AlertKind, AlertSpec};

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub id: i64,
    pub kind: String,
    pub severity: String,
    pub subject_type: String,
    pub subject: String,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
    pub ack_note: Option<String>,
    pub details: serde_json::Value,
}

impl AlertRow {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "subject_type": self.subject_type,
            "subject": self.subject,
            "opened_at": rfc3339(from_ms(self.opened_at)),
            "resolved_at": self.resolved_at.map(|t| rfc3339(from_ms(t))),
            "state": self.state(),
            "acknowledged": self.acked_at.map(|t| json!({
                "by": self.acked_by, "at": rfc3339(from_ms(t)), "note": self.ack_note,
            })),
            "details": self.details,
        })
    }

    /// `open`, `acked` (open and acknowledged) or `resolved`.
    pub fn state(&self) -> &'static str {
        match (self.resolved_at, self.acked_at) {
            (Some(_), _) => "resolved",
            (None, Some(_)) => "acked",
            (None, None) => "open",
        }
    }
}

/// A change of an alert, to be logged once committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub alert_id: i64,
    pub kind: String,
    pub severity: String,
    pub subject: String,
    /// `opened`, `resolved` or `acknowledged`.
    pub event: &'static str,
    pub details: serde_json::Value,
}

const COLUMNS: &str =
    "id, kind, severity, subject_type, subject, opened_at, resolved_at, acked_by, acked_at, ack_note, details";

fn row(r: &Row) -> crate::index::db::Result<AlertRow> {
    let details: String = r.get(10)?;
    Ok(AlertRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        severity: r.get(2)?,
        subject_type: r.get(3)?,
        subject: r.get(4)?,
        opened_at: r.get(5)?,
        resolved_at: r.get(6)?,
        acked_by: r.get(7)?,
        acked_at: r.get(8)?,
        ack_note: r.get(9)?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
    })
}

pub fn get(c: &Db, id: i64) -> crate::index::db::Result<Option<AlertRow>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"))?.query_row([id], row).optional()
}

/// One alert, unless it is about a restricted record and `hide_restricted`
/// (then it does not exist for the caller).
pub fn get_visible(c: &Db, id: i64, hide_restricted: bool) -> crate::index::db::Result<Option<AlertRow>> {
    let hide = if hide_restricted && super::query::any_restricted(c)? {
        format!(" AND NOT {}", about_restricted())
    } else {
        String::new()
    };
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1{hide}"))?.query_row([id], row).optional()
}

/// The advisory lock that serialises alert transitions on PostgreSQL.
const ALERTS_LOCK: i64 = 0x62_6f_64_79_63_61_6d_03;

/// Take the alerts lock for the rest of this transaction (PostgreSQL; SQLite
/// has one writer). Without it, under READ COMMITTED, a store's transaction
/// could resolve an alert between the evaluator's reading it as open and its
/// deciding to keep it, and the evaluator would open it again from its older
/// view (a spurious open/resolve pair). Re-entrant within a transaction.
fn serialize(c: &Db) -> crate::index::db::Result<()> {
    if c.engine() == crate::index::db::Engine::Postgres {
        c.query_row("SELECT 1 FROM pg_advisory_xact_lock(?1)", [ALERTS_LOCK], |_| Ok(()))?;
    }
    Ok(())
}

fn open_one(c: &Db, kind: &str, subject: &str) -> crate::index::db::Result<Option<AlertRow>> {
    serialize(c)?;
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM alerts WHERE kind = ?1 AND subject = ?2 AND resolved_at IS NULL"))?
        .query_row(params![kind, subject], row)
        .optional()
}

/// Record a transition and queue it for every webhook.
fn record_event(
    c: &Db,
    alert: &AlertRow,
    event: &'static str,
    now_ms: i64,
    hooks: &[String],
) -> crate::index::db::Result<Transition> {
    let body = json!({
        "idempotency_key": format!("bodycamd-alert-{}-{event}", alert.id),
        "event": event,
        "at": rfc3339(from_ms(now_ms)),
        "alert": alert.to_json(),
    })
    .to_string();
    let event_id: i64 = c
        .prepare_cached("INSERT INTO alert_events (alert_id, event, at, body) VALUES (?1, ?2, ?3, ?4) RETURNING id")?
        .query_row(params![alert.id, event, now_ms, body], |r| r.get(0))?;
    for url in hooks {
        c.prepare_cached(
            "INSERT INTO webhook_deliveries (event_id, url, next_try) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![event_id, url, now_ms])?;
    }
    Ok(Transition {
        alert_id: alert.id,
        kind: alert.kind.clone(),
        severity: alert.severity.clone(),
        subject: alert.subject.clone(),
        event,
        details: alert.details.clone(),
    })
}

/// Open an alert unless one of its kind and subject is open.
pub fn open(c: &Db, spec: &AlertSpec, now_ms: i64, hooks: &[String]) -> crate::index::db::Result<Option<Transition>> {
    let kind = spec.kind.as_str();
    if open_one(c, kind, &spec.subject)?.is_some() {
        return Ok(None);
    }
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO alerts (kind, severity, subject_type, subject, opened_at, details)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            params![
                kind,
                spec.kind.severity().as_str(),
                spec.kind.subject_type(),
                spec.subject,
                now_ms,
                spec.details.to_string()
            ],
            |r| r.get(0),
        )?;
    let alert = get(c, id)?.ok_or(crate::index::db::Error::NoRows)?;
    record_event(c, &alert, "opened", now_ms, hooks).map(Some)
}

/// Say what is now known about an open alert: set one field of its details
/// (the alert lists, the API and the console show it). Not a transition:
/// webhooks are told of openings, acknowledgements and resolutions.
pub fn annotate(
    c: &Db,
    kind: AlertKind,
    subject: &str,
    key: &str,
    value: serde_json::Value,
) -> crate::index::db::Result<bool> {
    let Some(mut alert) = open_one(c, kind.as_str(), subject)? else {
        return Ok(false);
    };
    if let Some(o) = alert.details.as_object_mut() {
        o.insert(key.to_string(), value);
    } else {
        alert.details = json!({ key: value });
    }
    c.prepare_cached("UPDATE alerts SET details = ?2 WHERE id = ?1")?
        .execute(params![alert.id, alert.details.to_string()])?;
    Ok(true)
}

/// Resolve the open alert of this kind and subject, if any.
pub fn resolve(
    c: &Db,
    kind: AlertKind,
    subject: &str,
    now_ms: i64,
    hooks: &[String],
) -> crate::index::db::Result<Option<Transition>> {
    let Some(mut alert) = open_one(c, kind.as_str(), subject)? else {
        return Ok(None);
    };
    c.prepare_cached("UPDATE alerts SET resolved_at = ?2 WHERE id = ?1")?.execute(params![alert.id, now_ms])?;
    alert.resolved_at = Some(now_ms);
    record_event(c, &alert, "resolved", now_ms, hooks).map(Some)
}

/// Make the open alerts of `kinds` match `desired`: open what is missing,
/// resolve what no longer holds (except sticky kinds, which stay).
pub fn reconcile(
    c: &Db,
    kinds: &[AlertKind],
    desired: &[AlertSpec],
    now_ms: i64,
    hooks: &[String],
) -> crate::index::db::Result<Vec<Transition>> {
    reconcile_snapshot(c, kinds, desired, None, now_ms, hooks)
}

/// [`reconcile`] for a `desired` set computed from a snapshot read at
/// `snapshot_ms` (before this transaction): an alert resolved since then
/// (a file stored meanwhile resolves its own) is not opened again from the
/// older view; the next evaluation decides it.
pub fn reconcile_snapshot(
    c: &Db,
    kinds: &[AlertKind],
    desired: &[AlertSpec],
    snapshot_ms: Option<i64>,
    now_ms: i64,
    hooks: &[String],
) -> crate::index::db::Result<Vec<Transition>> {
    serialize(c)?;
    let mut out = Vec::new();
    let want: std::collections::HashSet<(&str, &str)> =
        desired.iter().map(|d| (d.kind.as_str(), d.subject.as_str())).collect();
    let mut open_before = std::collections::HashSet::new();
    for kind in kinds {
        if kind.sticky() {
            continue;
        }
        let open_now: Vec<String> = c
            .prepare_cached("SELECT subject FROM alerts WHERE kind = ?1 AND resolved_at IS NULL")?
            .query_map([kind.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for subject in open_now {
            if !want.contains(&(kind.as_str(), subject.as_str())) {
                out.extend(resolve(c, *kind, &subject, now_ms, hooks)?);
            } else {
                open_before.insert((kind.as_str(), subject));
            }
        }
    }
    for d in desired {
        if let Some(since) = snapshot_ms {
            if !open_before.contains(&(d.kind.as_str(), d.subject.clone())) && resolved_since(c, d, since)? {
                continue;
            }
        }
        out.extend(open(c, d, now_ms, hooks)?);
    }
    Ok(out)
}

fn resolved_since(c: &Db, d: &AlertSpec, since_ms: i64) -> crate::index::db::Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM alerts WHERE kind = ?1 AND subject = ?2 AND resolved_at IS NOT NULL AND resolved_at >= ?3 LIMIT 1",
    )?
    .query_map(params![d.kind.as_str(), d.subject, since_ms], |_| Ok(()))?
    .next()
    .is_some())
}

#[derive(Debug, Clone, PartialEq)]
pub enum AckOutcome {
    Acked(Transition),
    NotFound,
    AlreadyAcked(AlertRow),
}

/// Acknowledge an alert (once): who, when, and a note.
pub fn ack(
    c: &Db,
    id: i64,
    by: &str,
    note: Option<&str>,
    now_ms: i64,
    hooks: &[String],
) -> crate::index::db::Result<AckOutcome> {
    let Some(mut alert) = get(c, id)? else {
        return Ok(AckOutcome::NotFound);
    };
    if alert.acked_at.is_some() {
        return Ok(AckOutcome::AlreadyAcked(alert));
    }
    c.prepare_cached("UPDATE alerts SET acked_by = ?2, acked_at = ?3, ack_note = ?4 WHERE id = ?1")?
        .execute(params![id, by, now_ms, note])?;
    alert.acked_by = Some(by.to_string());
    alert.acked_at = Some(now_ms);
    alert.ack_note = note.map(str::to_string);
    // Named by its subject, so that an entry about a restricted record is
    // hidden with it.
    let media = (alert.subject_type == "media").then_some(alert.subject.as_str());
    let case = (alert.subject_type == "case").then_some(alert.subject.as_str());
    super::audit::record(
        c,
        now_ms,
        by,
        "alert.ack",
        media,
        case,
        Some(format!(
            "alert #{id} {} {}{}",
            alert.kind,
            alert.subject,
            note.map(|n| format!(": {n}")).unwrap_or_default()
        )),
    )?;
    record_event(c, &alert, "acknowledged", now_ms, hooks).map(AckOutcome::Acked)
}

/// Open an `object_damaged` alert (sticky) and audit it, in the caller's
/// transaction.
pub fn object_damaged(
    c: &Db,
    media_id: &str,
    aside: &str,
    how: &str,
    now: i64,
    hooks: &[String],
) -> crate::index::db::Result<Option<Transition>> {
    super::audit::event(
        c,
        now,
        "object.damaged",
        Some(media_id),
        None,
        Some(format!("{how}; the damaged copy was moved to {aside} and a good copy stored in its place")),
    )?;
    let spec = AlertSpec {
        kind: AlertKind::ObjectDamaged,
        subject: media_id.to_string(),
        details: json!({
            "detected": how,
            "damaged_copy": aside,
            "what_to_do": "check the archive's disk; the damaged copy is kept for investigation",
        }),
    };
    open(c, &spec, now, hooks)
}

/// Which alerts to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Not resolved (acknowledged or not).
    Open,
    Acked,
    Resolved,
    All,
}

/// SQL: the alert is about a restricted record (an original, itself or
/// through its cases, or a case). Callers without the grant never see
/// those, not even in a count.
fn about_restricted() -> String {
    format!(
        "((subject_type = 'media' AND subject IN {ids})
          OR (subject_type = 'case' AND subject IN (SELECT id FROM cases WHERE restricted = 1)))",
        ids = super::query::RESTRICTED_IDS
    )
}

pub fn list(
    c: &Db,
    state: StateFilter,
    kind: Option<&str>,
    before: Option<(i64, i64)>,
    limit: Option<u32>,
    hide_restricted: bool,
) -> crate::index::db::Result<Vec<AlertRow>> {
    use crate::index::db::{params_from_iter, ToValue};
    let cond = match state {
        StateFilter::Open => "resolved_at IS NULL",
        StateFilter::Acked => "resolved_at IS NULL AND acked_at IS NOT NULL",
        StateFilter::Resolved => "resolved_at IS NOT NULL",
        StateFilter::All => "TRUE",
    };
    // Each filter is its own SQL text (no `coalesce(?, kind)`), so that a
    // page is a range of an index: `alerts_open_time` for open alerts,
    // `alerts_kind_time` for one kind, `alerts_opened` otherwise.
    let mut sql = format!("SELECT {COLUMNS} FROM alerts WHERE {cond}");
    let mut args = Vec::new();
    if let Some(k) = kind {
        args.push(k.to_value());
        sql += &format!(" AND kind = ?{}", args.len());
    }
    let (t, id) = before.unwrap_or((i64::MAX, i64::MAX));
    args.push(t.to_value());
    args.push(id.to_value());
    sql += &format!(" AND (opened_at, id) < (?{}, ?{})", args.len() - 1, args.len());
    if hide_restricted && super::query::any_restricted(c)? {
        sql += &format!(" AND NOT {}", about_restricted());
    }
    args.push(limit.map(i64::from).unwrap_or(i64::MAX).to_value());
    sql += &format!(" ORDER BY opened_at DESC, id DESC LIMIT ?{}", args.len());
    let rows = c.prepare_cached(&sql)?.query_map(params_from_iter(args), row)?.collect();
    rows
}

/// Every event of one alert (opened, acknowledged, resolved), oldest first.
pub fn events_of(c: &Db, alert_id: i64) -> crate::index::db::Result<Vec<(String, i64, serde_json::Value)>> {
    c.prepare_cached("SELECT event, at, body FROM alert_events WHERE alert_id = ?1 ORDER BY id")?
        .query_map([alert_id], |r| {
            let body: String = r.get(2)?;
            Ok((r.get(0)?, r.get(1)?, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)))
        })?
        .collect()
}

/// Open alerts by kind and severity (for metrics).
pub fn open_counts(c: &Db, include_restricted: bool) -> crate::index::db::Result<Vec<(String, String, u64)>> {
    let hide = if !include_restricted && super::query::any_restricted(c)? {
        format!("AND NOT {}", about_restricted())
    } else {
        String::new()
    };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT kind, severity, count(*) FROM alerts WHERE resolved_at IS NULL {hide} GROUP BY 1, 2"
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?;
    rows.collect()
}

/// Open or resolve `sequence_gap` alerts of one device after its sequence
/// numbers changed.
pub fn sync_sequence_gaps(
    c: &Db,
    device: &str,
    now_ms: i64,
    hooks: &[String],
) -> crate::index::db::Result<Vec<Transition>> {
    // In the order they were recorded, so that a wrapped counter or a new
    // card starts a new run (see rules::sequence).
    let recs: Vec<(i64, i64)> = c
        .prepare_cached("SELECT start_at, seq FROM originals WHERE device = ?1 AND seq IS NOT NULL")?
        .query_map([device], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let gaps = crate::rules::sequence::missing_in_runs(&recs);
    // The same number missing in two runs: the later ones name their run.
    let mut seen = std::collections::HashSet::new();
    let missing: Vec<(String, crate::rules::sequence::Gap)> = gaps
        .into_iter()
        .map(|g| {
            let base = crate::rules::alerts::gap_subject(device, g.seq);
            let subject = if seen.insert(g.seq) { base } else { format!("{base}@{}", g.run_start) };
            (subject, g)
        })
        .collect();
    let prefix = format!("{device}#");
    let mut out = Vec::new();
    let open_now: Vec<String> = c
        .prepare_cached("SELECT subject FROM alerts WHERE kind = 'sequence_gap' AND resolved_at IS NULL AND subject >= ?1 AND subject < ?2")?
        .query_map(params![prefix, format!("{device}$")], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let want: std::collections::HashSet<&str> = missing.iter().map(|(s, _)| s.as_str()).collect();
    for subject in open_now {
        if !want.contains(subject.as_str()) {
            out.extend(resolve(c, AlertKind::SequenceGap, &subject, now_ms, hooks)?);
        }
    }
    for (subject, g) in &missing {
        let spec = AlertSpec {
            kind: AlertKind::SequenceGap,
            subject: subject.clone(),
            details: json!({
                "device": device, "missing_seq": g.seq,
                "run_started": rfc3339(from_ms(g.run_start)),
                "note": "a recording with this sequence number never reached a station; it may have been deleted before docking",
            }),
        };
        match open(c, &spec, now_ms, hooks)? {
            Some(t) => out.push(t),
            // Open already: what is known about it may have changed (a
            // recording stored late moves the start of its run earlier).
            None => refresh_details(c, &spec)?,
        }
    }
    Ok(out)
}

/// Keep an open alert's details as they are now known.
fn refresh_details(c: &Db, spec: &AlertSpec) -> crate::index::db::Result<()> {
    let details = spec.details.to_string();
    c.prepare_cached(
        "UPDATE alerts SET details = ?3 WHERE kind = ?1 AND subject = ?2 AND resolved_at IS NULL AND details != ?3",
    )?
    .execute(params![spec.kind.as_str(), spec.subject, details])?;
    Ok(())
}

/// A webhook delivery that is due.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub url: String,
    pub body: String,
    pub attempts: u32,
    pub event: String,
}

pub fn due_deliveries(c: &Db, now_ms: i64, limit: u32) -> crate::index::db::Result<Vec<Delivery>> {
    let mut stmt = c.prepare_cached(
        "SELECT d.id, d.url, e.body, d.attempts, e.event FROM webhook_deliveries d JOIN alert_events e ON e.id = d.event_id
         WHERE d.delivered_at IS NULL AND d.next_try <= ?1 ORDER BY d.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now_ms, limit], |r| {
        Ok(Delivery { id: r.get(0)?, url: r.get(1)?, body: r.get(2)?, attempts: r.get(3)?, event: r.get(4)? })
    })?;
    rows.collect()
}

/// When the next undelivered delivery is due.
pub fn next_delivery(c: &Db) -> crate::index::db::Result<Option<i64>> {
    c.prepare_cached("SELECT min(next_try) FROM webhook_deliveries WHERE delivered_at IS NULL")?
        .query_row([], |r| r.get(0))
}

pub fn delivered(c: &Db, id: i64, now_ms: i64) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "UPDATE webhook_deliveries SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, now_ms])?;
    Ok(())
}

pub fn delivery_failed(c: &Db, id: i64, next_try_ms: i64, error: &str) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, next_try = ?2, last_error = ?3 WHERE id = ?1",
    )?
    .execute(params![id, next_try_ms, error])?;
    Ok(())
}

/// Webhook deliveries not accepted yet.
pub fn undelivered(c: &Db) -> crate::index::db::Result<i64> {
    c.query_row("SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NULL", [], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;

    fn spec(kind: AlertKind, subject: &str) -> AlertSpec {
        AlertSpec { kind, subject: subject.into(), details: json!({"x": 1}) }
    }

    #[tokio::test]
    async fn an_evaluation_from_an_older_snapshot_does_not_reopen_what_was_resolved_since() {
        let d = tempfile::tempdir().unwrap();
        let idx = Index::open(&d.path().join("i.sqlite3")).unwrap();
        let (stale, fresh, kept) = idx
            .call(move |c| {
                let want = [spec(AlertKind::Overdue, "dock/a.mp4"), spec(AlertKind::Overdue, "dock/b.mp4")];
                open(c, &want[0], 1000, &[])?;
                open(c, &want[1], 1000, &[])?;
                // a.mp4 is stored at 2500 (its alert resolved) after an
                // evaluation read the pending files at 2000.
                resolve(c, AlertKind::Overdue, "dock/a.mp4", 2500, &[])?;
                let stale = reconcile_snapshot(c, &[AlertKind::Overdue], &want, Some(2000), 3000, &[])?;
                // A later snapshot that still shows it does reopen it.
                let fresh = reconcile_snapshot(c, &[AlertKind::Overdue], &want[..1], Some(2600), 3100, &[])?;
                let kept = c.query_row(
                    "SELECT count(*) FROM alerts WHERE subject = 'dock/b.mp4' AND resolved_at IS NULL",
                    [],
                    |r| r.get::<_, i64>(0),
                )?;
                Ok((stale, fresh, kept))
            })
            .await
            .unwrap();
        assert!(stale.is_empty(), "not reopened from the older view: {stale:?}");
        assert_eq!(fresh.len(), 2, "b resolved (no longer wanted), a opened: {fresh:?}");
        assert_eq!(kept, 0);
    }

    #[tokio::test]
    async fn one_open_alert_per_kind_and_subject_and_every_transition_is_queued() {
        let d = tempfile::tempdir().unwrap();
        let idx = Index::open(&d.path().join("i.sqlite3")).unwrap();
        let hooks = vec!["http://127.0.0.1:1/a".to_string(), "http://127.0.0.1:1/b".to_string()];
        let h = hooks.clone();
        let (t1, t2, t3) = idx
            .call(move |c| {
                let t1 = open(c, &spec(AlertKind::Overdue, "dock/a.mp4"), 1000, &h)?;
                let t2 = open(c, &spec(AlertKind::Overdue, "dock/a.mp4"), 2000, &h)?;
                let t3 = reconcile(c, &[AlertKind::Overdue], &[], 3000, &h)?;
                Ok((t1, t2, t3))
            })
            .await
            .unwrap();
        assert_eq!(t1.unwrap().event, "opened");
        assert_eq!(t2, None, "already open");
        assert_eq!(t3.len(), 1);
        assert_eq!(t3[0].event, "resolved");
        let h = hooks.clone();
        let (again, acked, twice, missing) = idx
            .call(move |c| {
                let again = open(c, &spec(AlertKind::Overdue, "dock/a.mp4"), 4000, &h)?.unwrap();
                let acked = ack(c, again.alert_id, "admin", Some("looking"), 5000, &h)?;
                let twice = ack(c, again.alert_id, "admin", None, 6000, &h)?;
                let missing = ack(c, 999, "admin", None, 6000, &h)?;
                Ok((again, acked, twice, missing))
            })
            .await
            .unwrap();
        assert!(matches!(acked, AckOutcome::Acked(_)));
        assert!(matches!(twice, AckOutcome::AlreadyAcked(_)));
        assert_eq!(missing, AckOutcome::NotFound);
        let conn = crate::index::sqlite::open_reader(&d.path().join("i.sqlite3")).unwrap();
        let c = Db::sqlite(&conn);
        let all = list(&c, StateFilter::All, None, None, None, false).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(list(&c, StateFilter::Acked, None, None, None, false).unwrap()[0].id, again.alert_id);
        assert_eq!(list(&c, StateFilter::Resolved, None, None, None, false).unwrap().len(), 1);
        // opened, resolved, opened, acknowledged: four events, two hooks each.
        let due = due_deliveries(&c, 10_000, 100).unwrap();
        assert_eq!(due.len(), 8);
        let body: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
        assert_eq!(body["event"], "opened");
        assert_eq!(body["alert"]["kind"], "overdue");
        assert!(body["idempotency_key"].as_str().unwrap().ends_with("-opened"));
        drop(conn);
        idx.close();
    }

    #[tokio::test]
    async fn pages_of_alerts_cover_every_alert_once_even_when_opened_at_ties() {
        let d = tempfile::tempdir().unwrap();
        let idx = Index::open(&d.path().join("i.sqlite3")).unwrap();
        idx.call(|c| {
            for i in 0..25 {
                // Five alerts share each opening time.
                open(c, &spec(AlertKind::Overdue, &format!("dock/{i:02}.mp4")), 1000 + i / 5, &[])?;
                open(c, &spec(AlertKind::IngestFailed, &format!("dock/{i:02}.mp4")), 1000 + i / 5, &[])?;
            }
            ack(c, 1, "ann", Some("seen"), 2000, &[])?;
            Ok(())
        })
        .await
        .unwrap();
        let conn = crate::index::sqlite::open_reader(&d.path().join("i.sqlite3")).unwrap();
        let c = Db::sqlite(&conn);
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = list(&c, StateFilter::Open, Some("overdue"), before, Some(7), false).unwrap();
            assert!(page.iter().all(|a| a.kind == "overdue"));
            seen.extend(page.iter().map(|a| a.id));
            if page.len() < 7 {
                break;
            }
            before = page.last().map(|a| (a.opened_at, a.id));
        }
        assert_eq!(seen.len(), 25, "every overdue alert once: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats");
        assert_eq!(list(&c, StateFilter::All, None, None, Some(100), false).unwrap().len(), 50);
        let events = events_of(&c, 1).unwrap();
        assert_eq!(events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["opened", "acknowledged"]);
        assert_eq!(events[1].2["alert"]["acknowledged"]["note"], "seen");
        drop(conn);
        idx.close();
    }

    #[tokio::test]
    async fn sticky_violations_are_never_reconciled_away() {
        let d = tempfile::tempdir().unwrap();
        let idx = Index::open(&d.path().join("i.sqlite3")).unwrap();
        let t = idx
            .call(|c| {
                open(c, &spec(AlertKind::LateDocking, "abc"), 1, &[])?;
                reconcile(c, &[AlertKind::LateDocking], &[], 2, &[])
            })
            .await
            .unwrap();
        assert!(t.is_empty());
        idx.close();
    }
}
