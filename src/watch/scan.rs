//! Listing a station folder: every regular file below it, with its
//! signature, without ever following a symbolic link or leaving the folder.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use globset::GlobSet;

use super::filter::is_excluded_name;
use crate::domain::FileSig;

/// Folders deeper than this are not entered (no dock nests this deep; a
/// hostile tree cannot make a scan run away).
pub const MAX_DEPTH: usize = 32;

/// A regular file on a station, by its path relative to the station folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rel: PathBuf,
    pub sig: FileSig,
}

/// Something on a station that will not be ingested, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub rel: PathBuf,
    pub reason: String,
}

/// Everything a full scan found.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<Entry>,
    pub rejected: Vec<Rejected>,
    /// Folders that could not be read: files known below them are not gone,
    /// only out of sight.
    pub unreadable_dirs: Vec<PathBuf>,
}

/// What one path is now.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    File(Entry),
    Dir,
    Gone,
    /// A name that is never taken (temporary, hidden, ignored).
    Excluded,
    Rejected(Rejected),
    /// It exists but could not be examined (the station may be going away).
    Error(String),
}

pub fn sig_of(m: &Metadata) -> FileSig {
    FileSig {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
    }
}

/// Check that a station folder is there and readable. Returns its
/// (device, inode), which changes when something else is mounted there.
pub fn check_root(root: &Path) -> Result<(u64, u64), String> {
    let m = fs::metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if !m.is_dir() {
        return Err(format!("{} is not a folder", root.display()));
    }
    fs::read_dir(root).map_err(|e| format!("{}: cannot list: {e}", root.display()))?;
    Ok((m.dev(), m.ino()))
}

fn excluded(rel: &Path, ignore: &GlobSet) -> bool {
    rel.components().any(|c| is_excluded_name(c.as_os_str())) || ignore.is_match(rel)
}

fn describe_type(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    }
}

fn classify(root: &Path, rel: PathBuf, m: &Metadata) -> Probe {
    let t = m.file_type();
    if t.is_symlink() {
        let target = fs::read_link(root.join(&rel)).map(|t| t.display().to_string()).unwrap_or_else(|_| "?".into());
        Probe::Rejected(Rejected {
            rel,
            reason: format!("symbolic link to {target}; links in a dock are never followed"),
        })
    } else if t.is_dir() {
        Probe::Dir
    } else if t.is_file() {
        Probe::File(Entry { rel, sig: sig_of(m) })
    } else {
        let what = describe_type(m);
        Probe::Rejected(Rejected { rel, reason: format!("{what}, not a regular file") })
    }
}

/// Examine one path (relative to the station folder) without following it.
pub fn probe_path(root: &Path, rel: &Path, ignore: &GlobSet) -> Probe {
    if rel.as_os_str().is_empty()
        || rel.is_absolute()
        || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Probe::Excluded;
    }
    if excluded(rel, ignore) {
        return Probe::Excluded;
    }
    // A parent that became a symlink would lead out of the station.
    let mut parent = root.to_path_buf();
    if let Some(dir) = rel.parent() {
        for c in dir.components() {
            parent.push(c);
            match fs::symlink_metadata(&parent) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Probe::Excluded,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Probe::Gone,
                Err(e) => return Probe::Error(e.to_string()),
            }
        }
    }
    match fs::symlink_metadata(root.join(rel)) {
        Ok(m) => classify(root, rel.to_path_buf(), &m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Probe::Gone,
        Err(e) => Probe::Error(e.to_string()),
    }
}

/// List everything below `rel_dir` (relative to `root`; empty for all).
pub fn scan_dir(root: &Path, rel_dir: &Path, ignore: &GlobSet, out: &mut Listing) {
    let mut stack = vec![(rel_dir.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let rd = match fs::read_dir(root.join(&dir)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.as_os_str().is_empty() => continue,
            Err(_) => {
                out.unreadable_dirs.push(dir);
                continue;
            }
        };
        for entry in rd {
            let Ok(entry) = entry else {
                out.unreadable_dirs.push(dir.clone());
                break;
            };
            let rel = dir.join(entry.file_name());
            if excluded(&rel, ignore) {
                continue;
            }
            // DirEntry::metadata does not follow symbolic links.
            let m = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    out.rejected.push(Rejected { rel, reason: format!("cannot examine: {e}") });
                    continue;
                }
            };
            match classify(root, rel, &m) {
                Probe::File(e) => out.files.push(e),
                Probe::Rejected(r) => out.rejected.push(r),
                Probe::Dir => {
                    let rel = dir.join(entry.file_name());
                    if depth + 1 < MAX_DEPTH {
                        stack.push((rel, depth + 1));
                    } else {
                        out.rejected.push(Rejected {
                            rel,
                            reason: format!("folder nested deeper than {MAX_DEPTH} levels is not scanned"),
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

/// A full scan of a station folder. Fails only when the folder itself is
/// missing or unreadable (the station is then unavailable, not empty).
pub fn scan(root: &Path, ignore: &GlobSet) -> Result<Listing, String> {
    check_root(root)?;
    let mut out = Listing::default();
    scan_dir(root, Path::new(""), ignore, &mut out);
    if out.unreadable_dirs.iter().any(|d| d.as_os_str().is_empty()) {
        return Err(format!("{}: cannot list", root.display()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn lists_regular_files_rejects_links_and_skips_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("CAM1/sub")).unwrap();
        fs::create_dir_all(r.join(".Trash-1000")).unwrap();
        fs::write(r.join("CAM1/a.mp4"), b"a").unwrap();
        fs::write(r.join("CAM1/sub/b.mp4"), b"bb").unwrap();
        fs::write(r.join("CAM1/c.mp4.part"), b"c").unwrap();
        fs::write(r.join(".Trash-1000/d.mp4"), b"d").unwrap();
        symlink("/etc/passwd", r.join("CAM1/passwd.mp4")).unwrap();
        symlink("/etc", r.join("etc")).unwrap();
        let l = scan(r, &GlobSet::empty()).unwrap();
        let mut files: Vec<_> = l.files.iter().map(|e| e.rel.to_str().unwrap().to_string()).collect();
        files.sort();
        assert_eq!(files, ["CAM1/a.mp4", "CAM1/sub/b.mp4"]);
        let mut rejected: Vec<_> = l.rejected.iter().map(|r| r.rel.to_str().unwrap().to_string()).collect();
        rejected.sort();
        assert_eq!(rejected, ["CAM1/passwd.mp4", "etc"]);
        assert!(l.rejected[0].reason.contains("never followed"));
    }

    #[test]
    fn missing_root_is_an_error_not_an_empty_listing() {
        let d = tempfile::tempdir().unwrap();
        assert!(scan(&d.path().join("gone"), &GlobSet::empty()).is_err());
    }

    #[test]
    fn probe_never_leaves_the_station() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("dock");
        fs::create_dir_all(&r).unwrap();
        fs::write(d.path().join("outside.mp4"), b"x").unwrap();
        symlink(d.path(), r.join("up")).unwrap();
        let none = GlobSet::empty();
        assert_eq!(probe_path(&r, Path::new("../outside.mp4"), &none), Probe::Excluded);
        assert_eq!(probe_path(&r, Path::new("up/outside.mp4"), &none), Probe::Excluded);
        assert_eq!(probe_path(&r, Path::new("/etc/passwd"), &none), Probe::Excluded);
        assert_eq!(probe_path(&r, Path::new("nothing.mp4"), &none), Probe::Gone);
        assert!(matches!(probe_path(&r, Path::new("up"), &none), Probe::Rejected(_)));
    }

    #[test]
    fn fifos_are_rejected_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("pipe.mp4"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let l = scan(d.path(), &GlobSet::empty()).unwrap();
        assert!(l.files.is_empty());
        assert!(l.rejected[0].reason.contains("named pipe"));
    }
}
