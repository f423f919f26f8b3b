//! `bodycamd verify`: re-hash every stored original and rendition (or a
//! random sample), walk the audit chain, and check the signed head that
//! guards against truncation.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::index::db::Db;
use serde::{Deserialize, Serialize};

use super::key::{parse_public, verify_hex, HostKey};
use crate::domain::MediaId;
use crate::index::audit;
use crate::store::Archive;

/// What failed, named exactly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    /// `original`, `rendition`, `audit` or `head`.
    pub what: String,
    /// The object's id (original or rendition hash), or the audit entry id.
    pub id: String,
    pub problem: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub originals_checked: u64,
    pub renditions_checked: u64,
    pub audit_entries: u64,
    pub audit_head: Option<i64>,
    pub faults: Vec<Fault>,
}

/// BLAKE3 of a file, read sequentially.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

fn check_object(path: &Path, id: &str, what: &str, faults: &mut Vec<Fault>) {
    let problem = match hash_file(path) {
        Ok(h) if h == id => return,
        Ok(h) => format!("{} has changed: its BLAKE3 is now {h}", path.display()),
        Err(e) => format!("{} cannot be read: {e}", path.display()),
    };
    faults.push(Fault { what: what.into(), id: id.into(), problem });
}

/// Where an original's bytes are: the archive, or the trash.
pub fn original_path(state_dir: &Path, id: &MediaId, trashed: bool) -> PathBuf {
    if trashed {
        state_dir.join("trash").join(id.to_hex())
    } else {
        Archive::object_path_in(&state_dir.join("archive"), id)
    }
}

/// The signed audit head, written beside the index at intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedHead {
    pub entry: i64,
    pub hash: String,
    pub at: String,
    pub signature: String,
}

pub const HEAD_FILE: &str = "audit-head.json";

fn head_message(entry: i64, hash: &str, at: &str) -> Vec<u8> {
    format!("bodycamd-audit-head/1 {entry} {hash} {at}").into_bytes()
}

/// Write the current head (signed) to `state_dir/audit-head.json`,
/// atomically. Returns it.
pub fn write_head(state_dir: &Path, c: &Db, key: &HostKey) -> anyhow::Result<SignedHead> {
    let (entry, hash) = audit::head(c)?;
    let at = crate::clock::rfc3339(chrono::Utc::now());
    let signature = key.sign_hex(&head_message(entry, &hash, &at));
    let head = SignedHead { entry, hash, at, signature };
    let tmp = state_dir.join(format!(".{HEAD_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(&head)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, state_dir.join(HEAD_FILE))?;
    Ok(head)
}

/// Check an object in the bucket: read back whole and hashed; an original
/// must also be under a lock (or legal hold) that is in force.
fn check_remote(
    s3: &crate::store::S3Store,
    tree: crate::store::s3::Tree,
    id: &str,
    what: &str,
    faults: &mut Vec<Fault>,
) {
    let key = id.parse::<MediaId>().map(|m| crate::store::s3::key(tree, &m));
    let problem = match id.parse::<MediaId>() {
        Err(e) => e.to_string(),
        Ok(mid) => match s3.hash_remote(tree, &mid) {
            Ok(h) if h != mid => {
                format!("{} in bucket {} has changed: its BLAKE3 is now {h}", key.unwrap_or_default(), s3.bucket())
            }
            Err(e) => format!("cannot be read from the bucket: {e}"),
            Ok(_) if tree == crate::store::s3::Tree::Originals => match s3.head(tree, &mid) {
                Ok(Some(h))
                    if h.legal_hold || h.retain_until_ms.is_some_and(|t| t > chrono::Utc::now().timestamp_millis()) =>
                {
                    return
                }
                Ok(Some(_)) => {
                    format!("{} is in bucket {} without a lock in force", key.unwrap_or_default(), s3.bucket())
                }
                Ok(None) => "is gone from the bucket".into(),
                Err(e) => e.to_string(),
            },
            Ok(_) => return,
        },
    };
    faults.push(Fault { what: what.into(), id: id.into(), problem });
}

/// Verify. `sample`: check only this many random originals and renditions.
/// `bucket`: the archive is this S3 bucket (checked there, not in the
/// local cache).
pub fn run(
    state_dir: &Path,
    c: &Db,
    sample: Option<u32>,
    pubkey: Option<&str>,
    bucket: Option<&crate::store::S3Store>,
) -> anyhow::Result<Report> {
    use crate::store::s3::Tree;
    let mut r = Report::default();
    let originals = crate::index::custody::originals_to_verify(c, sample)?;
    for (id, trashed) in &originals {
        match (id.parse::<MediaId>(), bucket) {
            (Ok(_), Some(s3)) => check_remote(s3, Tree::Originals, id, "original", &mut r.faults),
            (Ok(mid), None) => check_object(&original_path(state_dir, &mid, *trashed), id, "original", &mut r.faults),
            (Err(e), _) => r.faults.push(Fault { what: "original".into(), id: id.clone(), problem: e.to_string() }),
        }
        r.originals_checked += 1;
    }
    // Renditions of purged originals went with them.
    let renditions = crate::index::custody::renditions_to_verify(c, sample)?;
    for id in &renditions {
        if let Some(s3) = bucket {
            check_remote(s3, Tree::Renditions, id, "rendition", &mut r.faults);
        } else if let Ok(mid) = id.parse::<MediaId>() {
            check_object(&Archive::object_path_in(&state_dir.join("renditions"), &mid), id, "rendition", &mut r.faults);
        }
        r.renditions_checked += 1;
    }
    let (n, (last, _), faults) = audit::verify_chain(c)?;
    r.audit_entries = n;
    r.audit_head = Some(last);
    r.faults.extend(faults.into_iter().map(|f| Fault {
        what: "audit".into(),
        id: f.entry.to_string(),
        problem: f.problem,
    }));
    // Truncation: the signed head must still be in the chain, unchanged.
    let head_path = state_dir.join(HEAD_FILE);
    match std::fs::read(&head_path) {
        Ok(bytes) => match serde_json::from_slice::<SignedHead>(&bytes) {
            Ok(h) => {
                // Never create a key here: a missing one is a fault, not a
                // reason to mint one the head cannot have been signed with.
                let key = match pubkey {
                    Some(k) => parse_public(k).ok(),
                    None => HostKey::load(state_dir).ok().flatten().and_then(|k| parse_public(&k.public_hex()).ok()),
                };
                let signed = key.is_some_and(|k| verify_hex(&k, &head_message(h.entry, &h.hash, &h.at), &h.signature));
                let fault = |problem: String| Fault { what: "head".into(), id: h.entry.to_string(), problem };
                if key.is_none() {
                    r.faults.push(fault(format!(
                        "no host key to check {} with (give --pubkey, or restore {})",
                        head_path.display(),
                        state_dir.join("host-key.ed25519").display()
                    )));
                } else if !signed {
                    r.faults.push(fault(format!("{}: the signature does not match", head_path.display())));
                } else if h.entry > last {
                    r.faults.push(fault(format!(
                        "the log was truncated: the head signed at {} is entry {}, the log ends at {last}",
                        h.at, h.entry
                    )));
                } else if h.entry > 0 && audit::hash_of(c, h.entry)?.as_deref() != Some(h.hash.as_str()) {
                    r.faults.push(fault(format!("entry {} is not the one signed at {}", h.entry, h.at)));
                }
            }
            Err(e) => r.faults.push(Fault {
                what: "head".into(),
                id: "-".into(),
                problem: format!("{}: {e}", head_path.display()),
            }),
        },
        // Without a head, truncation cannot be ruled out: once the log has
        // entries, the daemon has written one (at start and at intervals).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if n > 0 {
                r.faults.push(Fault {
                    what: "head".into(),
                    id: "-".into(),
                    problem: format!(
                        "{} is missing: the log has {n} entries, so a signed head was written and has been removed \
                         (truncation cannot be ruled out)",
                        head_path.display()
                    ),
                });
            }
        }
        Err(e) => r.faults.push(Fault { what: "head".into(), id: "-".into(), problem: e.to_string() }),
    }
    Ok(r)
}
