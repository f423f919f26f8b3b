//! The archive of an approved export: one tar with the originals, their
//! renditions, their signed receipts, the audit entries that concern them,
//! and a manifest of every file's BLAKE3 and size (signed by the host key).

use std::path::{Path, PathBuf};

use crate::index::db::Db;
use serde::Serialize;

use super::key::HostKey;
use super::receipt;
use super::verify::original_path;
use crate::domain::MediaId;
use crate::index::{query, renditions as rx};
use crate::store::Archive;
use crate::views::MediaJson;

/// Who asked and who decided, as named in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ExportInfo {
    pub id: String,
    pub case_id: Option<String>,
    pub case_file: bool,
    /// The handler: the token that asked.
    pub requester: String,
    pub reviewer: Option<String>,
    pub approver: Option<String>,
    pub reason: String,
    pub approved_at: Option<String>,
    pub media: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub blake3: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub format: &'static str,
    pub export: ExportInfo,
    pub host_key: String,
    pub created_at: String,
    pub files: Vec<ManifestFile>,
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// An object that does not match its name: never signed into a manifest.
#[derive(Debug, thiserror::Error)]
#[error("{what} {id} is damaged: its bytes no longer match their BLAKE3 ({found}); the export is refused")]
pub struct Damaged {
    pub what: &'static str,
    pub id: String,
    pub found: String,
}

/// Add a stored object, hashing the very bytes that go into the archive:
/// they must be the object's content address (`expect`), or the export
/// fails.
fn add_object(
    tar: &mut tar::Builder<std::fs::File>,
    files: &mut Vec<ManifestFile>,
    name: String,
    src: &Path,
    what: &'static str,
    expect: &str,
) -> anyhow::Result<()> {
    let f = std::fs::File::open(src)?;
    let size = f.metadata()?.len();
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o444);
    h.set_mtime(0);
    let mut r = Hashing { inner: std::io::Read::take(f, size), hasher: blake3::Hasher::new() };
    tar.append_data(&mut h, &name, &mut r)?;
    let blake3 = r.hasher.finalize().to_hex().to_string();
    if blake3 != expect {
        return Err(Damaged { what, id: expect.to_string(), found: blake3 }.into());
    }
    files.push(ManifestFile { path: name, size, blake3 });
    Ok(())
}

fn add_bytes(
    tar: &mut tar::Builder<std::fs::File>,
    files: Option<&mut Vec<ManifestFile>>,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o444);
    h.set_mtime(0);
    tar.append_data(&mut h, name, bytes)?;
    if let Some(files) = files {
        files.push(ManifestFile {
            path: name.to_string(),
            size: bytes.len() as u64,
            blake3: blake3::hash(bytes).to_hex().to_string(),
        });
    }
    Ok(())
}

/// Build the archive at `out` (via a temporary file of its own beside it,
/// renamed into place only when complete). Every original and rendition is
/// re-hashed as it is written: a damaged one fails the build.
pub fn build(c: &Db, state: &Path, info: &ExportInfo, key: &HostKey, out: &Path) -> anyhow::Result<PathBuf> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().prefix(".export-").suffix(".partial").tempfile_in(dir)?;
    let (file, tmp) = tmp.into_parts();
    let mut tar = tar::Builder::new(file);
    let mut files = Vec::new();
    let mut audit_lines = String::new();
    for id in &info.media {
        let Some(row) = query::media_get(c, id)? else { anyhow::bail!("media {id} is not in the index") };
        let trashed = crate::index::custody::in_trash(c, id)?;
        let mid: MediaId = id.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        add_object(
            &mut tar,
            &mut files,
            format!("originals/{id}"),
            &original_path(state, &mid, trashed),
            "original",
            id,
        )?;
        for r in rx::of_original(c, id)? {
            let ext = match (r.kind.as_str(), r.mime.as_str()) {
                ("thumbnail", _) => "jpg",
                (_, "audio/mp4") => "m4a",
                _ => "mp4",
            };
            if let Ok(rid) = r.id.parse::<MediaId>() {
                let p = Archive::object_path_in(&state.join("renditions"), &rid);
                add_object(&mut tar, &mut files, format!("renditions/{id}.{}.{ext}", r.kind), &p, "rendition", &r.id)?;
            }
        }
        let m = MediaJson::from_row(&row, &state.join("archive"));
        let rc = receipt::issue(&m, key);
        add_bytes(&mut tar, Some(&mut files), &format!("receipts/{id}.json"), &serde_json::to_vec_pretty(&rc)?)?;
    }
    // The audit entries about these media (and the case), in chain order,
    // with their hashes so they can be checked against the host's log.
    // Entries about the case that name an original not in the export (a
    // restricted one, say) are left out: the excerpt reveals nothing the
    // export does not hold.
    audit_lines.push_str(&crate::index::custody::audit_excerpt(c, &info.media, info.case_id.as_deref())?);
    add_bytes(&mut tar, Some(&mut files), "audit.jsonl", audit_lines.as_bytes())?;
    let manifest = Manifest {
        format: "bodycamd-export/1",
        export: info.clone(),
        host_key: key.public_hex(),
        created_at: crate::clock::rfc3339(chrono::Utc::now()),
        files,
    };
    let mbytes = serde_json::to_vec_pretty(&manifest)?;
    add_bytes(&mut tar, None, "manifest.json", &mbytes)?;
    add_bytes(&mut tar, None, "manifest.json.sig", key.sign_hex(&mbytes).as_bytes())?;
    let f = tar.into_inner()?;
    f.sync_all()?;
    tmp.persist(out)?;
    Ok(out.to_path_buf())
}

/// A manifest as read back from an archive (what `Manifest` writes).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ManifestIn {
    pub format: String,
    pub export: serde_json::Value,
    pub host_key: String,
    pub created_at: String,
    pub files: Vec<ManifestFileIn>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct ManifestFileIn {
    pub path: String,
    pub size: u64,
    pub blake3: String,
}

/// What checking an export archive found wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("not a bodycamd export archive: {0}")]
    Malformed(String),
    #[error("{0}")]
    Key(String),
    #[error("the manifest names host key {named}, not the key given ({given})")]
    OtherKey { named: String, given: String },
    #[error("the manifest's signature does not match: it was changed or was not signed by this key")]
    BadSignature,
    #[error("{0}: listed in the manifest but missing from the archive")]
    Missing(String),
    #[error("{path}: {what} (the file was changed after the export was made)")]
    Altered { path: String, what: String },
    #[error("{0}: in the archive but not in the manifest")]
    Unlisted(String),
    #[error("{path}: {error}")]
    Receipt { path: String, error: super::receipt::ReceiptError },
}

/// What a sound export archive holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveCheck {
    pub export_id: String,
    pub files: usize,
    pub originals: usize,
    pub receipts: usize,
}

/// Check a manifest's text and signature against a public key (hex, or a
/// file holding it), then the archive's files (path → size and BLAKE3)
/// against the manifest: every listed file present and unchanged, nothing
/// unlisted.
pub fn verify_manifest(
    manifest: &[u8],
    signature: &[u8],
    pubkey: &str,
    files: &std::collections::BTreeMap<String, (u64, String)>,
) -> Result<ManifestIn, ManifestError> {
    use super::key::{parse_public, verify_hex};
    let m: ManifestIn = serde_json::from_slice(manifest).map_err(|e| ManifestError::Malformed(e.to_string()))?;
    if m.format != "bodycamd-export/1" {
        return Err(ManifestError::Malformed(format!("unknown format {:?}", m.format)));
    }
    let key = parse_public(pubkey).map_err(|e| ManifestError::Key(e.to_string()))?;
    let given = hex::encode(key.as_bytes());
    if m.host_key != given {
        return Err(ManifestError::OtherKey { named: m.host_key.clone(), given });
    }
    let sig = std::str::from_utf8(signature).map_err(|_| ManifestError::BadSignature)?.trim();
    if !verify_hex(&key, manifest, sig) {
        return Err(ManifestError::BadSignature);
    }
    for f in &m.files {
        match files.get(&f.path) {
            None => return Err(ManifestError::Missing(f.path.clone())),
            Some((size, _)) if *size != f.size => {
                return Err(ManifestError::Altered {
                    path: f.path.clone(),
                    what: format!("{size} bytes, the manifest says {}", f.size),
                })
            }
            Some((_, hash)) if *hash != f.blake3 => {
                return Err(ManifestError::Altered {
                    path: f.path.clone(),
                    what: format!("BLAKE3 {hash}, the manifest says {}", f.blake3),
                })
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = files.keys().find(|p| !m.files.iter().any(|f| &f.path == *p)) {
        return Err(ManifestError::Unlisted(extra.clone()));
    }
    Ok(m)
}

/// Check an export archive as a recipient gets it (`bodycamd receipt verify
/// EXPORT.tar`): the manifest's signature, every file's size and BLAKE3,
/// nothing added, and every receipt in it.
pub fn verify_archive(archive: impl std::io::Read, pubkey: &str) -> Result<ArchiveCheck, ManifestError> {
    let bad = |e: std::io::Error| ManifestError::Malformed(e.to_string());
    let mut tar = tar::Archive::new(archive);
    let (mut manifest, mut signature) = (None, None);
    let mut files = std::collections::BTreeMap::new();
    let mut receipts = Vec::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        if path == "manifest.json" || path == "manifest.json.sig" || path.starts_with("receipts/") {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(bad)?;
            match path.as_str() {
                "manifest.json" => manifest = Some(bytes),
                "manifest.json.sig" => signature = Some(bytes),
                _ => {
                    files.insert(path.clone(), (bytes.len() as u64, blake3::hash(&bytes).to_hex().to_string()));
                    receipts.push((path, bytes));
                }
            }
            continue;
        }
        let mut h = Hashing { inner: &mut entry, hasher: blake3::Hasher::new() };
        let size = std::io::copy(&mut h, &mut std::io::sink()).map_err(bad)?;
        files.insert(path, (size, h.hasher.finalize().to_hex().to_string()));
    }
    let manifest = manifest.ok_or_else(|| ManifestError::Malformed("no manifest.json".into()))?;
    let signature = signature.ok_or_else(|| ManifestError::Malformed("no manifest.json.sig".into()))?;
    let m = verify_manifest(&manifest, &signature, pubkey, &files)?;
    for (path, bytes) in &receipts {
        super::receipt::verify(bytes, pubkey).map_err(|error| ManifestError::Receipt { path: path.clone(), error })?;
    }
    Ok(ArchiveCheck {
        export_id: m.export["id"].as_str().unwrap_or("").to_string(),
        files: m.files.len(),
        originals: files.keys().filter(|p| p.starts_with("originals/")).count(),
        receipts: receipts.len(),
    })
}
