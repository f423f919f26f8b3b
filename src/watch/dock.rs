//! Opening and removing dock files safely.
//!
//! **Invariant:** every open and unlink of a dock file resolves its path
//! beneath the station folder with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, so a symlink swapped in at any component after a
//! scan can never lead outside the station (or to `/etc/passwd`). Files are
//! opened `O_NONBLOCK`, so a FIFO put in place of a file cannot hang a worker.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::domain::FileSig;

#[derive(Debug, thiserror::Error)]
pub enum DockError {
    #[error("the file is gone")]
    Gone,
    #[error("{0}")]
    Rejected(String),
    #[error("cannot read the dock file: {0}")]
    Io(#[source] io::Error),
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS);

fn open_beneath(root: &Path, rel: &Path, flags: OFlags) -> Result<OwnedFd, DockError> {
    let dir = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| DockError::Io(e.into()))?;
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    match openat2(&dir, rel, flags | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty(), RESOLVE) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => Err(DockError::Gone),
        Err(Errno::LOOP) | Err(Errno::XDEV) => Err(DockError::Rejected(
            "the path passes through a symbolic link; links in a dock are never followed".into(),
        )),
        // Kernels before 5.6: fall back to O_NOFOLLOW on the last component.
        Err(Errno::NOSYS) => rustix::fs::openat(&dir, rel, flags | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty())
            .map_err(|e| match e {
                Errno::NOENT => DockError::Gone,
                Errno::LOOP => DockError::Rejected("symbolic link; links in a dock are never followed".into()),
                e => DockError::Io(e.into()),
            }),
        Err(e) => Err(DockError::Io(e.into())),
    }
}

fn fsig(fd: &impl std::os::fd::AsFd) -> io::Result<(FileSig, bool)> {
    let st = rustix::fs::fstat(fd)?;
    let regular = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    Ok((
        FileSig {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
        },
        regular,
    ))
}

/// The current signature of an open dock file.
pub fn sig_of_file(f: &File) -> io::Result<FileSig> {
    fsig(f).map(|(sig, _)| sig)
}

/// Open a dock file for reading; returns it with its current signature.
pub fn open(root: &Path, rel: &Path) -> Result<(File, FileSig), DockError> {
    let fd = open_beneath(root, rel, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOATIME).or_else(|e| match e {
        // O_NOATIME is refused for files we do not own.
        DockError::Io(ref io) if io.raw_os_error() == Some(Errno::PERM.raw_os_error()) => {
            open_beneath(root, rel, OFlags::RDONLY | OFlags::NONBLOCK)
        }
        e => Err(e),
    })?;
    let (sig, regular) = fsig(&fd).map_err(DockError::Io)?;
    if !regular {
        return Err(DockError::Rejected("not a regular file".into()));
    }
    // Back to blocking reads (harmless for regular files, but explicit).
    rustix::fs::fcntl_setfl(&fd, OFlags::RDONLY).map_err(|e| DockError::Io(e.into()))?;
    // No FADV_SEQUENTIAL: measured here, it made copy_file_range several
    // times more expensive (see BENCHMARKS.md); the default readahead serves.
    Ok((File::from(fd), sig))
}

/// The current signature of a dock file, without following links.
pub fn stat(root: &Path, rel: &Path) -> Result<FileSig, DockError> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().ok_or(DockError::Gone)?;
    let dir = open_beneath(root, parent, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let st = rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(|e| match e {
        Errno::NOENT => DockError::Gone,
        e => DockError::Io(e.into()),
    })?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(DockError::Rejected("not a regular file".into()));
    }
    Ok(FileSig {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
        ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
    })
}

/// Remove a dock file, but only if it is still exactly the file that was
/// stored (`expected`); a file that changed since is new content and stays.
pub fn remove_if_unchanged(root: &Path, rel: &Path, expected: &FileSig) -> Result<bool, DockError> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name: &OsStr = rel.file_name().ok_or(DockError::Gone)?;
    let dir = open_beneath(root, parent, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let st = rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(|e| match e {
        Errno::NOENT => DockError::Gone,
        e => DockError::Io(e.into()),
    })?;
    let now = FileSig {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
        ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
    };
    if now != *expected {
        return Ok(false);
    }
    rustix::fs::unlinkat(&dir, name.as_bytes(), rustix::fs::AtFlags::empty()).map_err(|e| DockError::Io(e.into()))?;
    let _ = rustix::fs::fsync(&dir);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    #[test]
    fn opens_files_beneath_and_refuses_links_anywhere_on_the_path() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("dock");
        std::fs::create_dir_all(root.join("CAM1")).unwrap();
        std::fs::write(root.join("CAM1/a.mp4"), b"abc").unwrap();
        std::fs::write(d.path().join("secret"), b"s").unwrap();
        symlink(d.path().join("secret"), root.join("CAM1/link.mp4")).unwrap();
        symlink(d.path(), root.join("up")).unwrap();
        let (mut f, sig) = open(&root, Path::new("CAM1/a.mp4")).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), sig.size), ("abc", 3));
        assert!(matches!(open(&root, Path::new("CAM1/link.mp4")), Err(DockError::Rejected(_))));
        assert!(matches!(open(&root, Path::new("up/secret")), Err(DockError::Rejected(_))));
        assert!(matches!(open(&root, Path::new("../secret")), Err(DockError::Rejected(_))));
        assert!(matches!(open(&root, Path::new("CAM1/none.mp4")), Err(DockError::Gone)));
        assert!(matches!(open(&root, Path::new("CAM1")), Err(DockError::Rejected(_))));
    }

    #[test]
    fn removes_only_the_unchanged_file() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("a.mp4"), b"abc").unwrap();
        let sig = stat(root, Path::new("a.mp4")).unwrap();
        std::fs::write(root.join("a.mp4"), b"abcd").unwrap();
        assert!(!remove_if_unchanged(root, Path::new("a.mp4"), &sig).unwrap());
        assert!(root.join("a.mp4").exists());
        let sig = stat(root, Path::new("a.mp4")).unwrap();
        assert!(remove_if_unchanged(root, Path::new("a.mp4"), &sig).unwrap());
        assert!(!root.join("a.mp4").exists());
    }

    #[test]
    fn a_fifo_does_not_hang_the_opener() {
        let d = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("p.mp4"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(matches!(open(d.path(), Path::new("p.mp4")), Err(DockError::Rejected(_))));
    }
}
