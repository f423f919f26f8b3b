//! inotify (through notify) as a source of hints: "look at these paths
//! now". Hints make discovery fast; they are never trusted to be complete.
//! A lost event costs latency (the next rescan finds the file), never a file.

use std::path::{Path, PathBuf};

use notify::{Config, ErrorKind, Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Something happened at these (absolute) paths.
    Paths(Vec<PathBuf>),
    /// Events were lost (the kernel queue overflowed): rescan everything.
    Overflow,
    /// The per-user inotify watch limit ran out: some folders are unwatched.
    LimitReached,
    /// The watcher reported an error.
    Error(String),
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("the inotify watch limit is reached (fs.inotify.max_user_watches)")]
    LimitReached,
    #[error("cannot watch: {0}")]
    Other(String),
}

/// A recursive watch on one station folder. Dropping it stops watching.
pub struct EventWatcher {
    _watcher: RecommendedWatcher,
}

/// What an event means for discovery. Opens and reads (including
/// bodycamd's own, while copying) change nothing and are dropped.
fn to_hint(res: notify::Result<Event>) -> Option<Hint> {
    Some(match res {
        Ok(ev) if ev.need_rescan() => Hint::Overflow,
        Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => return None,
        Ok(ev) => Hint::Paths(ev.paths),
        Err(e) if matches!(e.kind, ErrorKind::MaxFilesWatch) => Hint::LimitReached,
        Err(e) => Hint::Error(e.to_string()),
    })
}

/// Watch `root` recursively, without following links; hints go to `tx`.
pub fn watch(root: &Path, tx: mpsc::UnboundedSender<Hint>) -> Result<EventWatcher, WatchError> {
    let handler = move |res: notify::Result<Event>| {
        // The receiver is gone only while the station shuts down.
        if let Some(h) = to_hint(res) {
            let _ = tx.send(h);
        }
    };
    let mut w = RecommendedWatcher::new(handler, Config::default().with_follow_symlinks(false)).map_err(classify)?;
    w.watch(root, RecursiveMode::Recursive).map_err(classify)?;
    Ok(EventWatcher { _watcher: w })
}

fn classify(e: notify::Error) -> WatchError {
    match e.kind {
        ErrorKind::MaxFilesWatch => WatchError::LimitReached,
        _ => WatchError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_new_file_in_a_new_subfolder_is_hinted() {
        let d = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _w = watch(d.path(), tx).unwrap();
        std::fs::create_dir(d.path().join("CAM1")).unwrap();
        std::fs::write(d.path().join("top.mp4"), b"x").unwrap();
        let want = d.path().join("top.mp4");
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(Hint::Paths(ps)) = rx.recv().await {
                    if ps.contains(&want) {
                        return true;
                    }
                }
            }
        })
        .await;
        assert_eq!(found, Ok(true));
    }

    #[test]
    fn overflow_and_limit_map_to_their_hints() {
        let ev = Event::new(notify::EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert_eq!(to_hint(Ok(ev)), Some(Hint::Overflow));
        assert_eq!(to_hint(Err(notify::Error::new(ErrorKind::MaxFilesWatch))), Some(Hint::LimitReached));
        let open =
            Event::new(notify::EventKind::Access(notify::event::AccessKind::Open(notify::event::AccessMode::Read)));
        assert_eq!(to_hint(Ok(open)), None, "reads are not changes");
    }

    #[test]
    fn missing_folder_cannot_be_watched() {
        let (tx, _rx) = mpsc::unbounded_channel();
        assert!(matches!(watch(Path::new("/nonexistent/dock"), tx), Err(WatchError::Other(_))));
    }
}
