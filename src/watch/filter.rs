//! Which dock names are never taken: temporary names that copy tools write
//! before renaming a file into place, and hidden files and folders.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Suffixes that copy and download tools use for files still being written.
const TEMP_SUFFIXES: &[&str] = &[
    ".part",       // curl, wget, Firefox, many docking tools
    ".partial",    // Safari, some uploaders
    ".tmp",        // generic
    ".temp",       // generic
    ".crdownload", // Chromium
    ".download",   // Safari bundles
    ".filepart",   // WinSCP
    ".!ut",        // uTorrent
    ".swp",        // vim
    ".writing",    // some docking stations
    ".uploading",  // some docking stations
    ".inprogress", // some docking stations
    ".lock",       // lock files next to a file being written
];

/// Whether a single file or folder name marks something that must not be
/// taken (yet): hidden names (`.*`, which also covers rsync's `.name.XXXXXX`
/// and `.~tmp~`), editor backups (`*~`), Office lock files (`~$*`) and the
/// temporary suffixes above (case-insensitive).
pub fn is_excluded_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b[0] == b'.' || b.ends_with(b"~") || b.starts_with(b"~$") {
        return true;
    }
    let lower = b.to_ascii_lowercase();
    TEMP_SUFFIXES.iter().any(|s| lower.ends_with(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_and_hidden_names_are_excluded() {
        for n in [
            "a.mp4.part",
            "A.MP4.PART",
            "x.tmp",
            ".hidden.mp4",
            ".CAM1.mp4.Xy12ab",
            "clip.mp4~",
            "~$report.docx",
            "f.crdownload",
            "f.filepart",
            "f.partial",
            ".",
            "..",
        ] {
            assert!(is_excluded_name(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn ordinary_names_are_taken() {
        for n in ["CAM0042_004711_20261126093000_0001.mp4", "photo.JPG", "rec part 2.wav", "tmp.mp4", "a~b.mp4"] {
            assert!(!is_excluded_name(OsStr::new(n)), "{n}");
        }
    }
}
