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
