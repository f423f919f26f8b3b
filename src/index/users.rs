//! People who use the console, and their sessions. Passwords are kept only
//! as Argon2id hashes; a session only as the SHA-256 of its cookie. Every
//! change records its audit event in the same transaction.

use crate::config::Role;
use crate::index::audit;
use crate::index::db::{params, Db, OptionalExtension, Result};

/// A person.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub name: String,
    pub role: Role,
    /// Granted access to restricted records.
    pub restricted: bool,
    pub password_hash: String,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
}

/// A live session and the person it belongs to.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user: UserRow,
    pub csrf: String,
    pub created_at: i64,
    pub seen_at: i64,
}

/// The roles a person may have (case systems use tokens, not the console).
pub fn person_role(s: &str) -> Option<Role> {
    match s {
        "admin" => Some(Role::Admin),
        "auditor" => Some(Role::Auditor),
        "approver" => Some(Role::Approver),
        _ => None,
    }
}

const USER_COLUMNS: &str = "u.name, u.role, u.restricted = 1, u.password_hash, u.disabled_at, u.created_at";

fn user_row(r: &crate::index::db::Row) -> Result<UserRow> {
    let role: String = r.get(1)?;
    Ok(UserRow {
        name: r.get(0)?,
        role: person_role(&role).ok_or_else(|| crate::index::db::Error::other(format!("unknown role {role:?}")))?,
        restricted: r.get(2)?,
        password_hash: r.get(3)?,
        disabled_at: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// Add a person; false when the name is taken.
pub fn add(c: &Db, name: &str, role: Role, restricted: bool, hash: &str, by: &str, now: i64) -> Result<bool> {
    let n = c.execute(
        "INSERT INTO users (name, role, restricted, password_hash, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (name) DO NOTHING",
        params![name, role.as_str(), i64::from(restricted), hash, now],
    )?;
    if n == 1 {
        let grant = if restricted { ", with the grant to restricted records" } else { "" };
        audit::event_by(c, now, by, "user.add", None, Some(format!("user {name} added as {}{grant}", role.as_str())))?;
    }
    Ok(n == 1)
}

pub fn get(c: &Db, name: &str) -> Result<Option<UserRow>> {
    c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?1"))?
        .query_row([name], user_row)
        .optional()
}

pub fn list(c: &Db) -> Result<Vec<UserRow>> {
    c.prepare(&format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"))?.query_map([], user_row)?.collect()
}

/// Replace a person's password; every session of theirs ends.
pub fn set_password(c: &Db, name: &str, hash: &str, by: &str, now: i64) -> Result<bool> {
    let n =
        c.execute("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE name = ?1", params![name, hash, now])?;
    if n == 1 {
        c.execute("DELETE FROM sessions WHERE user_name = ?1", [name])?;
        audit::event_by(c, now, by, "user.passwd", None, Some(format!("password of user {name} replaced")))?;
    }
    Ok(n == 1)
}

/// Disable (or enable again) a person; disabling ends every session.
pub fn set_disabled(c: &Db, name: &str, disabled: bool, by: &str, now: i64) -> Result<bool> {
    let n = if disabled {
        c.execute(
            "UPDATE users SET disabled_at = coalesce(disabled_at, ?2), updated_at = ?2 WHERE name = ?1",
            params![name, now],
        )?
    } else {
        c.execute("UPDATE users SET disabled_at = NULL, updated_at = ?2 WHERE name = ?1", params![name, now])?
    };
    if n == 1 {
        if disabled {
            c.execute("DELETE FROM sessions WHERE user_name = ?1", [name])?;
        }
        let what = if disabled { "user.disable" } else { "user.enable" };
        audit::event_by(c, now, by, what, None, Some(format!("user {name} {}", &what[5..])))?;
    }
    Ok(n == 1)
}

pub fn create_session(c: &Db, id_hash: &str, user: &str, csrf: &str, remote: &str, now: i64) -> Result<()> {
    c.execute(
        "INSERT INTO sessions (id_hash, user_name, csrf, created_at, seen_at, remote) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![id_hash, user, csrf, now, remote],
    )?;
    Ok(())
}

/// The session with this cookie hash, if it is live (its person enabled,
/// used since `idle_after`, made since `made_after`).
pub fn session(c: &Db, id_hash: &str, idle_after: i64, made_after: i64) -> Result<Option<SessionRow>> {
    c.prepare_cached(&format!(
        "SELECT {USER_COLUMNS}, s.csrf, s.created_at, s.seen_at FROM sessions s JOIN users u ON u.name = s.user_name
         WHERE s.id_hash = ?1 AND u.disabled_at IS NULL AND s.seen_at >= ?2 AND s.created_at >= ?3"
    ))?
    .query_row(params![id_hash, idle_after, made_after], |r| {
        Ok(SessionRow { user: user_row(r)?, csrf: r.get(6)?, created_at: r.get(7)?, seen_at: r.get(8)? })
    })
    .optional()
}

pub fn touch_session(c: &Db, id_hash: &str, now: i64) -> Result<()> {
    c.execute("UPDATE sessions SET seen_at = ?2 WHERE id_hash = ?1", params![id_hash, now])?;
    Ok(())
}

pub fn end_session(c: &Db, id_hash: &str) -> Result<bool> {
    Ok(c.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])? == 1)
}

/// Forget sessions idle since `idle_before` or made before `made_before`.
pub fn expire_sessions(c: &Db, idle_before: i64, made_before: i64) -> Result<usize> {
    c.execute("DELETE FROM sessions WHERE seen_at < ?1 OR created_at < ?2", params![idle_before, made_before])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;

    #[test]
    fn sessions_end_when_idle_old_disabled_or_repassworded() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.sqlite3")).unwrap();
        let min = 60_000;
        index
            .call_blocking(|c| {
                assert!(add(c, "ann", Role::Admin, false, "$argon2id$x", "cli", 0)?);
                assert!(!add(c, "ann", Role::Auditor, false, "$argon2id$y", "cli", 0)?, "names are unique");
                create_session(c, "s1", "ann", "csrf1", "127.0.0.1", 0)?;
                Ok(())
            })
            .unwrap();
        let live = |idle_after: i64, made_after: i64| {
            index.read(|c| session(c, "s1", idle_after, made_after)).unwrap().map(|s| s.user.name)
        };
        assert_eq!(live(-30 * min, -720 * min).as_deref(), Some("ann"));
        assert_eq!(live(1, -720 * min), None, "idle since before the limit");
        assert_eq!(live(-30 * min, 1), None, "made before the absolute limit");
        index.call_blocking(move |c| touch_session(c, "s1", 40 * min)).unwrap();
        assert_eq!(live(10 * min, -720 * min).as_deref(), Some("ann"), "touched: alive again");
        index.call_blocking(move |c| set_password(c, "ann", "$argon2id$z", "cli", 41 * min)).unwrap();
        assert_eq!(live(0, -720 * min), None, "a new password ends every session");
        index
            .call_blocking(move |c| {
                create_session(c, "s1", "ann", "csrf2", "127.0.0.1", 42 * min)?;
                set_disabled(c, "ann", true, "cli", 43 * min)
            })
            .unwrap();
        assert_eq!(live(0, 0), None, "disabling ends every session");
        let audit: Vec<String> = index
            .read(|c| c.prepare("SELECT action FROM audit ORDER BY id")?.query_map([], |r| r.get(0))?.collect())
            .unwrap();
        assert_eq!(audit, ["user.add", "user.passwd", "user.disable"]);
        index.close();
    }
}
