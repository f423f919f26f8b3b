//! The content-addressed archive: moves bytes, knows nothing of stations,
//! media metadata or the index.
//!
//! Layout below the archive directory:
//! - `objects/ab/<64 hex>`: an original (or later a rendition), named by the
//!   BLAKE3 hash of its bytes, read-only (0444).
//! - `tmp/`: copies in progress. Anything here at start-up is a copy that a
//!   crash interrupted; its source is still on the dock, so it is removed.
//! - `damaged/`: an object whose bytes no longer matched its name when the
//!   same content arrived again (it is moved aside, never deleted).
//!
//! **Invariant:** an object path only ever holds complete, fsynced bytes whose
//! BLAKE3 hash is its name. Bytes reach it by `rename` from `tmp/` after
//! `fsync`, and the directory is fsynced after the rename, before the copy
//! is reported stored. Small copies are synced, renamed and their
//! directories synced in groups ([`Archive::persist_all`]), in that order.
//! Nothing here ever opens an object for writing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::domain::MediaId;

pub mod s3;
pub use s3::{S3Error, S3Store, Sha256s};

/// Connect to the configured bucket, if any, and check it: a bucket
/// without Object Lock is refused unless the operator opted out.
pub fn open_bucket(cfg: &crate::config::Config) -> anyhow::Result<Option<std::sync::Arc<S3Store>>> {
    let Some(s3cfg) = &cfg.archive.s3 else { return Ok(None) };
    let s3 = S3Store::connect(s3cfg)?;
    let locked = s3.check_bucket()?;
    if !locked {
        if !s3cfg.allow_without_object_lock {
            anyhow::bail!(
                "bucket {} does not have Object Lock enabled: nothing would stop an original from being deleted or \
                 overwritten there. Create the bucket with Object Lock (versioning on), or set \
                 [archive.s3] allow_without_object_lock = true to run without it (not for evidence)",
                s3cfg.bucket
            );
        }
        tracing::warn!(bucket = %s3cfg.bucket, "bucket has no Object Lock; running without it as configured");
    }
    Ok(Some(s3))
}

/// [`Archive::local`] from async code.
pub async fn local_async(a: &Archive, id: MediaId) -> io::Result<PathBuf> {
    let a = a.clone();
    tokio::task::spawn_blocking(move || a.local(&id)).await.map_err(io::Error::other)?
}

/// How long an original is locked in the bucket when it is stored: its
/// retention plus the trash period (the retention pass extends it).
pub fn lock_span(cfg: &crate::config::Config) -> std::time::Duration {
    cfg.retention.default + std::time::Duration::from_secs(u64::from(cfg.retention.trash_days) * 86_400)
}

/// The hashes taken while a copy is made: always BLAKE3 (the address);
/// for an S3 archive also SHA-256 of the whole and of each part.
struct Hashes {
    blake3: blake3::Hasher,
    sha: Option<s3::ShaParts>,
}

impl Hashes {
    fn new(part_size: Option<u64>) -> Hashes {
        Hashes { blake3: blake3::Hasher::new(), sha: part_size.map(s3::ShaParts::new) }
    }

    fn update(&mut self, b: &[u8]) {
        self.blake3.update(b);
        if let Some(s) = &mut self.sha {
            s.update(b);
        }
    }

    fn finish(self) -> (MediaId, Option<Sha256s>) {
        (MediaId::from_hash(self.blake3.finalize()), self.sha.map(s3::ShaParts::finish))
    }
}

/// Size of one read/hash/write step: large enough that BLAKE3 hashes many
/// chunks in parallel (SIMD) and the device sees large writes; small enough
/// to keep the memory of a copy constant whatever the file size.
const BUF_SIZE: usize = 8 << 20;

/// Alignment of `O_DIRECT` buffers, offsets and lengths (a page; covers
/// 512-byte and 4 KiB logical blocks).
const ALIGN: usize = 4096;

/// Files at least this large are written with `O_DIRECT`.
const DIRECT_MIN: u64 = 1 << 20;

/// A copy buffer: page-aligned (an anonymous mapping) for `O_DIRECT`, or
/// a plain vector for small files.
enum Buffer {
    Aligned(memmap2::MmapMut),
    Plain(Vec<u8>),
}

impl Buffer {
    fn new(len: usize, aligned: bool) -> io::Result<Buffer> {
        Ok(if aligned { Buffer::Aligned(memmap2::MmapMut::map_anon(len)?) } else { Buffer::Plain(vec![0; len]) })
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Aligned(m) => m,
            Buffer::Plain(v) => v,
        }
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Buffer::Aligned(m) => m,
            Buffer::Plain(v) => v,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("archive full: {needed} bytes needed plus {reserve} kept free, {available} available")]
    NoSpace { needed: u64, reserve: u64, available: u64 },
    #[error("cannot read the dock file: {0}")]
    Read(#[source] io::Error),
    #[error("cannot write to the archive: {0}")]
    Write(#[source] io::Error),
    #[error("the dock file changed while it was being copied (expected {expected} bytes, read {read})")]
    SizeChanged { expected: u64, read: u64 },
    #[error("cannot store in the bucket: {0}")]
    Remote(#[source] S3Error),
}

impl StoreError {
    /// Whether the failure says something about the archive rather than the
    /// file (retrying other files will not help either).
    pub fn is_archive_side(&self) -> bool {
        matches!(self, StoreError::NoSpace { .. } | StoreError::Write(_) | StoreError::Remote(_))
    }
}

#[derive(Debug, Clone)]
pub struct Archive {
    root: PathBuf,
    objects: PathBuf,
    tmp: PathBuf,
    remote: Option<Remote>,
}

/// The bucket behind a local archive folder (which is then its cache).
#[derive(Debug, Clone)]
struct Remote {
    s3: std::sync::Arc<S3Store>,
    tree: s3::Tree,
    /// Originals are locked for this long from when they are stored (the
    /// retention plus the trash period); the retention pass extends it.
    lock_ms: Option<i64>,
}

/// A complete copy in `tmp/`, not yet visible under its address: fsynced,
/// or (a small file from [`Archive::stage_deferred`]) written with its
/// writeback started and synced by [`Archive::persist_all`] together with
/// others. Dropping it removes the temporary file.
#[derive(Debug)]
pub struct Staged {
    tmp_path: Option<PathBuf>,
    /// Still to be fsynced before it may be renamed into place.
    unsynced: Option<File>,
    pub id: MediaId,
    pub size: u64,
    /// SHA-256 of the whole copy and of each upload part, computed in the
    /// same pass as BLAKE3 when the archive is S3 (the server checks them).
    pub sha256: Option<Sha256s>,
}

/// The result of persisting a staged copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: MediaId,
    pub size: u64,
    /// False when the archive already held these bytes (a duplicate).
    pub new: bool,
    /// The archive held a copy under this name whose bytes no longer matched
    /// it: it was moved here (`damaged/`), and the good copy put in its place.
    pub replaced_damaged: Option<PathBuf>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(p) = self.tmp_path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

impl Archive {
    /// Open (and create) the archive below `root`.
    pub fn open(root: &Path) -> io::Result<Archive> {
        let a =
            Archive { root: root.to_path_buf(), objects: root.join("objects"), tmp: root.join("tmp"), remote: None };
        for d in [&a.root, &a.objects, &a.tmp] {
            fs::create_dir_all(d)?;
        }
        Ok(a)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Put this archive in front of a bucket: every object persisted is
    /// also put there (create-once, checksummed, locked for `lock` from
    /// now when given), objects are read from it when this host lacks
    /// them, and [`Archive::verify`] also confirms the bucket's copy.
    pub fn with_remote(
        mut self,
        s3: std::sync::Arc<S3Store>,
        tree: s3::Tree,
        lock: Option<std::time::Duration>,
    ) -> Archive {
        self.remote = Some(Remote { s3, tree, lock_ms: lock.map(|d| d.as_millis() as i64) });
        self
    }

    /// The bucket, if the archive has one.
    pub fn remote(&self) -> Option<&std::sync::Arc<S3Store>> {
        self.remote.as_ref().map(|r| &r.s3)
    }

    /// A readable local path for an object: the cached copy, or one just
    /// read from the bucket (checked against its hash before it is used).
    pub fn local(&self, id: &MediaId) -> io::Result<PathBuf> {
        let path = self.object_path(id);
        let Some(r) = &self.remote else { return Ok(path) };
        if path.is_file() {
            return Ok(path);
        }
        // The current version, or (hidden by a delete marker or a newer
        // version someone put over it) the version bodycamd wrote: the one
        // whose bytes hash to its name. It goes in as any copy does.
        let fetch = |version: Option<&str>| -> io::Result<Staged> {
            let tmp = self.tmp_path("fetch");
            let staged =
                r.s3.fetch(r.tree, id, &tmp, version).map_err(io::Error::other).and_then(|()| self.adopt(&tmp));
            match staged {
                Ok(st) if st.id == *id => Ok(st),
                Ok(st) => Err(io::Error::other(format!(
                    "the bucket's copy of {id} does not match its hash (BLAKE3 {})",
                    st.id
                ))),
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    Err(e)
                }
            }
        };
        let staged = fetch(None).or_else(|first| {
            let versions = r.s3.versions(r.tree, id).map_err(io::Error::other)?;
            versions.iter().find_map(|v| fetch(Some(v)).ok()).ok_or(first)
        })?;
        self.persist_local(staged).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(path)
    }

    /// Remove copies that a crash left in `tmp/`. Returns what was removed.
    pub fn recover(&self) -> io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for entry in fs::read_dir(&self.tmp)? {
            let p = entry?.path();
            fs::remove_file(&p)?;
            removed.push(p);
        }
        Ok(removed)
    }

    /// Where the object with this id lives (whether or not it exists).
    pub fn object_path(&self, id: &MediaId) -> PathBuf {
        Archive::object_path_in(&self.root, id)
    }

    /// [`Archive::object_path`] for an archive that is not open (the CLI).
    pub fn object_path_in(archive_root: &Path, id: &MediaId) -> PathBuf {
        let hex = id.to_hex();
        archive_root.join("objects").join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, id: &MediaId) -> bool {
        self.object_path(id).is_file()
    }

    /// Bytes available to this process on the archive's file system.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let s = rustix::fs::statvfs(&self.root)?;
        Ok(s.f_bavail.saturating_mul(s.f_frsize))
    }

    /// Copy `src` (which should hold `expected_size` bytes) into `tmp/`,
    /// hashing it in the same pass, and fsync the copy.
    ///
    /// The source is read once into an aligned buffer, hashed there, and
    /// written with `O_DIRECT` where the file system allows it: the device
    /// reads the buffer itself, so each byte is copied by the CPU once (as
    /// `cp` does with `copy_file_range`), and storing a dock full of video
    /// does not evict everything else from the page cache. Where `O_DIRECT`
    /// is refused (tmpfs, some network file systems) the writes are buffered.
    ///
    /// Checks first that the copy leaves `reserve` bytes free. Any failure
    /// removes the temporary file; the source is only ever read.
    pub fn stage(&self, src: &mut dyn Read, expected_size: u64, reserve: u64) -> Result<Staged, StoreError> {
        self.stage_with(src, expected_size, reserve, false)
    }

    /// [`Archive::stage`], except that a small copy is not fsynced here:
    /// its writeback is started, and [`Archive::persist_all`] waits for it
    /// together with the other copies of its group (the file system's
    /// journal then commits them at once instead of once per file). A large
    /// copy is fsynced here, in parallel with other copies, as before.
    pub fn stage_deferred(&self, src: &mut dyn Read, expected_size: u64, reserve: u64) -> Result<Staged, StoreError> {
        self.stage_with(src, expected_size, reserve, expected_size < DIRECT_MIN)
    }

    fn stage_with(
        &self,
        src: &mut dyn Read,
        expected_size: u64,
        reserve: u64,
        defer: bool,
    ) -> Result<Staged, StoreError> {
        let available = self.free_bytes().map_err(StoreError::Write)?;
        if available < expected_size.saturating_add(reserve) {
            return Err(StoreError::NoSpace { needed: expected_size, reserve, available });
        }
        let (tmp_path, out) = self.create_tmp().map_err(StoreError::Write)?;
        let mut staged =
            Staged { tmp_path: Some(tmp_path), unsynced: None, id: MediaId([0; 32]), size: 0, sha256: None };
        // Small files (photos) gain nothing from O_DIRECT and need no large
        // buffer; one byte more than expected shows a file still growing.
        let cap = (expected_size as usize).saturating_add(1).next_multiple_of(ALIGN).clamp(ALIGN, BUF_SIZE);
        let mut hasher = Hashes::new(self.remote.as_ref().map(|r| r.s3.part_size()));
        let total = if expected_size >= DIRECT_MIN {
            copy_pipelined(src, &out, cap, expected_size, reserve, &mut hasher)?
        } else {
            copy_simple(src, &out, cap, expected_size, reserve, &mut hasher)?
        };
        if total != expected_size {
            return Err(StoreError::SizeChanged { expected: expected_size, read: total });
        }
        if defer {
            // Start writing it out now; persist_all waits for it.
            start_writeback(&out);
            staged.unsynced = Some(out);
        } else {
            out.sync_all().map_err(|e| write_error(e, expected_size, reserve))?;
        }
        let (id, sha) = hasher.finish();
        staged.id = id;
        staged.size = total;
        staged.sha256 = sha;
        Ok(staged)
    }

    /// Make a staged copy visible at its content address (read-only), or
    /// discard it if the archive already holds these bytes; with a bucket,
    /// put it there too.
    pub fn persist(&self, staged: Staged) -> Result<Stored, StoreError> {
        let sha = staged.sha256.clone();
        let stored = self.persist_local(staged)?;
        self.upload(&stored, sha.as_ref())?;
        Ok(stored)
    }

    /// [`Archive::persist_all`] for one copy.
    fn persist_local(&self, staged: Staged) -> Result<Stored, StoreError> {
        self.persist_all(vec![staged]).pop().expect("one result per staged copy")
    }

    /// With a bucket, put a locally persisted object there (create-once,
    /// checksummed, locked); without one, nothing to do.
    pub fn upload(&self, stored: &Stored, sha: Option<&Sha256s>) -> Result<(), StoreError> {
        if let Some(r) = &self.remote {
            let lock = r.lock_ms.map(|ms| s3::Lock { until_ms: chrono::Utc::now().timestamp_millis() + ms });
            r.s3.put(r.tree, &stored.id, &self.object_path(&stored.id), stored.size, sha, lock)
                .map_err(StoreError::Remote)?;
        }
        Ok(())
    }

    /// Make a group of staged copies visible at their addresses (locally),
    /// with the same guarantee as one at a time but far fewer journal
    /// commits: first every copy's bytes are made durable (the fsyncs of
    /// copies whose writeback already started mostly find their data written
    /// and their metadata in a journal commit another one forced), then the
    /// renames, then one fsync per directory they touched. A copy is only
    /// reported stored once its bytes and its name are durable. One result
    /// per copy, in order; one copy's failure does not fail the others.
    pub fn persist_all(&self, group: Vec<Staged>) -> Vec<Result<Stored, StoreError>> {
        let mut installed: Vec<Result<(Stored, PathBuf), StoreError>> = Vec::with_capacity(group.len());
        for mut staged in group {
            let synced = match staged.unsynced.take() {
                Some(f) => f.sync_all().map_err(|e| write_error(e, staged.size, 0)),
                None => Ok(()),
            };
            installed.push(synced.and_then(|()| self.install(staged)));
        }
        let mut dirs: Vec<&Path> = installed.iter().filter_map(|r| Some(r.as_ref().ok()?.1.as_path())).collect();
        dirs.sort();
        dirs.dedup();
        let failed: Vec<(PathBuf, io::Error)> =
            dirs.into_iter().filter_map(|d| fsync_dir(d).err().map(|e| (d.to_path_buf(), e))).collect();
        installed
            .into_iter()
            .map(|r| {
                let (stored, dir) = r?;
                match failed.iter().find(|(f, _)| *f == dir) {
                    // The same errno for every copy in that directory, so that
                    // a full disk or exhausted descriptors are told apart.
                    Some((_, e)) => Err(StoreError::Write(match e.raw_os_error() {
                        Some(code) => io::Error::from_raw_os_error(code),
                        None => io::Error::new(e.kind(), e.to_string()),
                    })),
                    None => Ok(stored),
                }
            })
            .collect()
    }

    /// Rename one durable staged copy into place (or find it there already).
    /// Returns the directory whose fsync makes the name durable.
    fn install(&self, mut staged: Staged) -> Result<(Stored, PathBuf), StoreError> {
        let target = self.object_path(&staged.id);
        let shard = target.parent().expect("object paths have a shard directory");
        let new_shard = !shard.exists();
        if new_shard {
            fs::create_dir_all(shard).map_err(StoreError::Write)?;
            fsync_dir(&self.objects).map_err(StoreError::Write)?;
        }
        let mut replaced_damaged = None;
        if let Ok(meta) = fs::symlink_metadata(&target) {
            // The same name: the stored copy must hold these very bytes, not
            // only as many of them. It is read back from the disk and hashed.
            if meta.is_file() && meta.len() == staged.size && self.hash_object(&staged.id).is_ok_and(|h| h == staged.id)
            {
                // Its name may be one another copy renamed a moment ago, not
                // yet fsynced: sync the directory too (cheap in a group).
                let stored = Stored { id: staged.id, size: staged.size, new: false, replaced_damaged: None };
                return Ok((stored, shard.to_path_buf()));
            }
            // Damaged after it was written (or unreadable): keep it aside for
            // investigation, never delete it, and install the good copy.
            let aside = self.quarantine(&staged.id).map_err(StoreError::Write)?;
            tracing::error!(media_id = %staged.id, aside = %aside.display(), "stored object no longer matched its hash; moved aside and replaced by the fresh copy");
            replaced_damaged = Some(aside);
        }
        let tmp_path = staged.tmp_path.take().expect("staged copies have a temporary path");
        let result = (|| {
            fs::set_permissions(&tmp_path, fs::Permissions::from_mode(0o444))?;
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &tmp_path,
                rustix::fs::CWD,
                &target,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => Ok(true),
                // Another worker stored the same bytes a moment ago.
                Err(rustix::io::Errno::EXIST) => {
                    fs::remove_file(&tmp_path)?;
                    Ok(false)
                }
                Err(e) => Err(io::Error::from(e)),
            }
        })();
        match result {
            Ok(new) => Ok((Stored { id: staged.id, size: staged.size, new, replaced_damaged }, shard.to_path_buf())),
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                Err(StoreError::Write(e))
            }
        }
    }

    /// Move a stored object whose bytes do not match its name to `damaged/`
    /// (kept for investigation, never deleted). Returns where it went.
    pub fn quarantine(&self, id: &MediaId) -> io::Result<PathBuf> {
        let damaged = self.root.join("damaged");
        fs::create_dir_all(&damaged)?;
        let aside = damaged.join(format!("{id}.{}", chrono::Utc::now().timestamp_millis()));
        fs::rename(self.object_path(id), &aside)?;
        fsync_dir(&damaged)?;
        if let Some(shard) = self.object_path(id).parent() {
            fsync_dir(shard)?;
        }
        Ok(aside)
    }

    /// Re-read a stored object from the disk and check its hash.
    ///
    /// The object's cached pages are dropped first (they are clean after the
    /// fsync), so the bytes checked are the bytes on the disk.
    ///
    /// With a bucket, its copy must also be there with this hash and size,
    /// and (for originals) under a lock that has not passed; a bucket that
    /// cannot confirm it is an error (the caller keeps the dock file).
    pub fn verify(&self, id: &MediaId) -> io::Result<bool> {
        if self.hash_object(id)? != *id {
            return Ok(false);
        }
        if let Some(r) = &self.remote {
            let size = fs::metadata(self.object_path(id))?.len();
            let head = r.s3.head(r.tree, id).map_err(io::Error::other)?;
            let Some(h) = head else {
                return Err(io::Error::other(format!("{id} is not in bucket {}", r.s3.bucket())));
            };
            if h.size != size || h.blake3.as_deref() != Some(id.to_hex().as_str()) {
                return Err(io::Error::other(format!(
                    "bucket {} holds {} bytes with BLAKE3 {:?} under {id}",
                    r.s3.bucket(),
                    h.size,
                    h.blake3
                )));
            }
            if r.lock_ms.is_some() && h.retain_until_ms.is_none_or(|t| t <= chrono::Utc::now().timestamp_millis()) {
                return Err(io::Error::other(format!("{id} is in bucket {} without a lock in force", r.s3.bucket())));
            }
        }
        Ok(true)
    }

    /// Hash a stored object's bytes as they are on disk now.
    pub fn hash_object(&self, id: &MediaId) -> io::Result<MediaId> {
        let f = File::open(self.object_path(id))?;
        let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        hash_reader(f)
    }

    /// A fresh path in `tmp/` for a file another process writes (a render
    /// worker); it is removed at the next start if never adopted.
    pub fn tmp_path(&self, ext: &str) -> PathBuf {
        self.tmp.join(format!("{:016x}.{ext}", fastrand::u64(..)))
    }

    /// Take a complete file that was written into `tmp/`: fsync it and hash
    /// it, ready to [`Archive::persist`].
    pub fn adopt(&self, tmp_path: &Path) -> io::Result<Staged> {
        if tmp_path.parent() != Some(self.tmp.as_path()) {
            return Err(io::Error::other("only files in the archive's tmp/ can be adopted"));
        }
        let f = File::open(tmp_path)?;
        f.sync_all()?;
        let size = f.metadata()?.len();
        let id = hash_reader(f)?;
        Ok(Staged { tmp_path: Some(tmp_path.to_path_buf()), unsynced: None, id, size, sha256: None })
    }

    fn create_tmp(&self) -> io::Result<(PathBuf, File)> {
        loop {
            let name = format!("{:016x}.tmp", fastrand::u64(..));
            let path = self.tmp.join(name);
            match OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path) {
                Ok(f) => return Ok((path, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Copy through one buffer (small files).
fn copy_simple(
    src: &mut dyn Read,
    out: &File,
    cap: usize,
    expected: u64,
    reserve: u64,
    hasher: &mut Hashes,
) -> Result<u64, StoreError> {
    let mut buf = Buffer::new(cap, false).map_err(StoreError::Write)?;
    let mut total = 0u64;
    let mut direct = false;
    loop {
        let n = fill(src, &mut buf).map_err(StoreError::Read)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > expected {
            // Still growing: stop now instead of copying a moving target.
            return Err(StoreError::SizeChanged { expected, read: total });
        }
        hasher.update(&buf[..n]);
        write_all(out, &buf[..n], &mut direct).map_err(|e| write_error(e, expected, reserve))?;
    }
}

/// Copy through two aligned buffers: this thread reads and hashes one while
/// a writer thread writes the other (`O_DIRECT` where allowed), so the
/// dock's reads and the archive's writes overlap.
fn copy_pipelined(
    src: &mut dyn Read,
    out: &File,
    cap: usize,
    expected: u64,
    reserve: u64,
    hasher: &mut Hashes,
) -> Result<u64, StoreError> {
    use std::sync::mpsc::sync_channel;
    let mut direct = set_direct(out, true);
    let (full_tx, full_rx) = sync_channel::<(Buffer, usize)>(1);
    let (empty_tx, empty_rx) = sync_channel::<Buffer>(2);
    for _ in 0..2 {
        let b = Buffer::new(cap, true).map_err(StoreError::Write)?;
        empty_tx.send(b).expect("the channel holds two buffers");
    }
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> io::Result<()> {
            for (buf, n) in full_rx {
                if direct && n % ALIGN != 0 {
                    // The tail is not a whole number of blocks: buffered.
                    set_direct(out, false);
                    direct = false;
                }
                write_all(out, &buf[..n], &mut direct)?;
                let _ = empty_tx.send(buf);
            }
            Ok(())
        });
        let mut total = 0u64;
        let read = (|| {
            // A closed channel means the writer stopped on an error, which
            // its join below reports.
            while let Ok(mut buf) = empty_rx.recv() {
                let n = fill(src, &mut buf).map_err(StoreError::Read)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > expected {
                    return Err(StoreError::SizeChanged { expected, read: total });
                }
                hasher.update(&buf[..n]);
                if full_tx.send((buf, n)).is_err() {
                    break;
                }
            }
            Ok(())
        })();
        drop(full_tx);
        let written = writer.join().unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked")));
        read?;
        written.map_err(|e| write_error(e, expected, reserve))?;
        Ok(total)
    })
}

/// Switch `O_DIRECT` on or off for a file we write. Returns whether it is
/// on now.
fn set_direct(f: &File, on: bool) -> bool {
    use rustix::fs::OFlags;
    let Ok(flags) = rustix::fs::fcntl_getfl(f) else {
        return false;
    };
    let want = if on { flags | OFlags::DIRECT } else { flags - OFlags::DIRECT };
    rustix::fs::fcntl_setfl(f, want).is_ok() && on
}

/// Read until `buf` is full or the source ends.
fn fill(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Write all of `data`; if the kernel refuses an `O_DIRECT` write (some
/// file systems accept the flag but not every request), go on buffered.
fn write_all(mut f: &File, mut data: &[u8], direct: &mut bool) -> io::Result<()> {
    while !data.is_empty() {
        match f.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                data = &data[n..];
                if *direct && n % ALIGN != 0 {
                    *direct = set_direct(f, false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if *direct && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                *direct = set_direct(f, false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// BLAKE3 of everything a reader yields.
pub fn hash_reader(mut r: impl Read) -> io::Result<MediaId> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(MediaId::from_hash(hasher.finalize()))
}

fn write_error(e: io::Error, needed: u64, reserve: u64) -> StoreError {
    if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
        StoreError::NoSpace { needed, reserve, available: 0 }
    } else {
        StoreError::Write(e)
    }
}

/// Ask the kernel to start writing a file's dirty pages now (not waiting),
/// so that a later fsync finds them written or in flight. Only a hint: the
/// fsync is what makes them durable.
fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on an open descriptor; no memory is passed.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> (tempfile::TempDir, Archive) {
        let d = tempfile::tempdir().unwrap();
        let a = Archive::open(&d.path().join("archive")).unwrap();
        (d, a)
    }

    #[test]
    fn stores_bytes_exactly_under_their_hash_read_only() {
        let (_d, a) = archive();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
        let staged = a.stage(&mut &data[..], data.len() as u64, 0).unwrap();
        let stored = a.persist(staged).unwrap();
        assert!(stored.new);
        assert_eq!(stored.id, MediaId::from_hash(blake3::hash(&data)));
        let p = a.object_path(&stored.id);
        assert_eq!(fs::read(&p).unwrap(), data);
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o444);
        assert!(a.verify(&stored.id).unwrap());
        assert_eq!(fs::read_dir(a.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn files_of_every_size_round_the_blocks_are_stored_exactly() {
        let (d, a) = archive();
        for len in [0usize, 1, 4095, 4096, 4097, 8 * 1024 * 1024, 8 * 1024 * 1024 + 13, 20 * 1024 * 1024] {
            let data: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
            let src = d.path().join("src");
            fs::write(&src, &data).unwrap();
            let staged = a.stage(&mut File::open(&src).unwrap(), len as u64, 0).unwrap();
            assert_eq!(staged.id, MediaId::from_hash(blake3::hash(&data)), "len {len}");
            let stored = a.persist(staged).unwrap();
            assert_eq!(fs::read(a.object_path(&stored.id)).unwrap(), data);
        }
        // Longer or shorter than expected: the file changed.
        let src = d.path().join("src");
        fs::write(&src, b"0123456789").unwrap();
        let e = a.stage(&mut File::open(&src).unwrap(), 5, 0).unwrap_err();
        assert!(matches!(e, StoreError::SizeChanged { expected: 5, read: 10 }), "{e}");
        let e = a.stage(&mut File::open(&src).unwrap(), 20, 0).unwrap_err();
        assert!(matches!(e, StoreError::SizeChanged { expected: 20, read: 10 }), "{e}");
        assert_eq!(fs::read_dir(a.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn file_systems_without_o_direct_get_buffered_writes() {
        let Ok(d) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let a = Archive::open(&d.path().join("archive")).unwrap();
        let data = vec![7u8; 3 * 4096 + 5];
        let s = a.persist(a.stage(&mut &data[..], data.len() as u64, 0).unwrap()).unwrap();
        assert_eq!(fs::read(a.object_path(&s.id)).unwrap(), data);
    }

    #[test]
    fn a_group_is_stored_together_and_one_failure_fails_only_its_copy() {
        let (_d, a) = archive();
        let bodies: [&[u8]; 4] = [b"photo one", b"photo two", b"photo one", b"photo three"];
        let mut group: Vec<Staged> =
            bodies.iter().map(|b| a.stage_deferred(&mut &b[..], b.len() as u64, 0).unwrap()).collect();
        assert!(group.iter().all(|s| s.unsynced.is_some()), "small copies wait for the group's sync");
        // The last copy's temporary file vanishes before the commit.
        fs::remove_file(group[3].tmp_path.as_ref().unwrap()).unwrap();
        let results = a.persist_all(std::mem::take(&mut group));
        assert_eq!(results.len(), 4);
        let ok: Vec<&Stored> = results[..3].iter().map(|r| r.as_ref().unwrap()).collect();
        assert!(ok[0].new && ok[1].new);
        assert!(!ok[2].new, "the same bytes twice in one group are one object");
        assert_eq!(ok[0].id, ok[2].id);
        assert!(matches!(results[3], Err(StoreError::Write(_))));
        for (s, body) in ok.iter().zip(bodies) {
            let p = a.object_path(&s.id);
            assert_eq!(fs::read(&p).unwrap(), body);
            assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o444);
        }
        assert_eq!(fs::read_dir(a.root().join("tmp")).unwrap().count(), 0, "nothing left in tmp/");
        // A large copy is synced when staged, as before.
        let big = vec![7u8; DIRECT_MIN as usize];
        let staged = a.stage_deferred(&mut &big[..], big.len() as u64, 0).unwrap();
        assert!(staged.unsynced.is_none());
        assert!(a.persist(staged).unwrap().new);
    }

    #[test]
    fn same_bytes_twice_is_one_object() {
        let (_d, a) = archive();
        let s1 = a.persist(a.stage(&mut &b"evidence"[..], 8, 0).unwrap()).unwrap();
        let s2 = a.persist(a.stage(&mut &b"evidence"[..], 8, 0).unwrap()).unwrap();
        assert!(s1.new && !s2.new);
        assert_eq!(s1.id, s2.id);
        assert_eq!(fs::read_dir(a.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn growing_or_shrinking_source_is_discarded() {
        let (_d, a) = archive();
        let e = a.stage(&mut &b"0123456789"[..], 5, 0).unwrap_err();
        assert!(matches!(e, StoreError::SizeChanged { .. }), "{e}");
        let e = a.stage(&mut &b"0123"[..], 5, 0).unwrap_err();
        assert!(matches!(e, StoreError::SizeChanged { expected: 5, read: 4 }), "{e}");
        assert_eq!(fs::read_dir(a.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn read_errors_leave_nothing_behind() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("EIO"));
                }
                self.0 -= 1;
                buf[0] = 1;
                Ok(1)
            }
        }
        let (_d, a) = archive();
        let e = a.stage(&mut Failing(3), 10, 0).unwrap_err();
        assert!(matches!(e, StoreError::Read(_)));
        // The same through the two-buffer path for large files.
        let e = a.stage(&mut Failing(3), 64 << 20, 0).unwrap_err();
        assert!(matches!(e, StoreError::Read(_)), "{e}");
        assert_eq!(fs::read_dir(a.root().join("tmp")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(a.root().join("objects")).unwrap().count(), 0);
    }

    #[test]
    fn no_space_is_refused_before_copying() {
        let (_d, a) = archive();
        let e = a.stage(&mut &b"x"[..], 1, u64::MAX / 2).unwrap_err();
        assert!(matches!(e, StoreError::NoSpace { .. }));
        assert!(e.is_archive_side());
        assert_eq!(fs::read_dir(a.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn recover_removes_interrupted_copies_only() {
        let (_d, a) = archive();
        let s = a.persist(a.stage(&mut &b"kept"[..], 4, 0).unwrap()).unwrap();
        fs::write(a.root().join("tmp/abandoned.tmp"), b"half").unwrap();
        assert_eq!(a.recover().unwrap().len(), 1);
        assert!(a.contains(&s.id));
    }

    #[test]
    fn damaged_object_is_moved_aside_when_good_bytes_arrive() {
        let (_d, a) = archive();
        let s = a.persist(a.stage(&mut &b"original"[..], 8, 0).unwrap()).unwrap();
        let p = a.object_path(&s.id);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"trunc").unwrap();
        assert!(!a.verify(&s.id).unwrap());
        let again = a.persist(a.stage(&mut &b"original"[..], 8, 0).unwrap()).unwrap();
        assert!(again.new);
        assert!(again.replaced_damaged.is_some());
        assert!(a.verify(&s.id).unwrap());
        assert_eq!(fs::read_dir(a.root().join("damaged")).unwrap().count(), 1);
    }

    #[test]
    fn a_damaged_object_of_the_right_size_is_found_and_replaced() {
        let (_d, a) = archive();
        let s = a.persist(a.stage(&mut &b"original"[..], 8, 0).unwrap()).unwrap();
        let p = a.object_path(&s.id);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"0riginal").unwrap();
        let again = a.persist(a.stage(&mut &b"original"[..], 8, 0).unwrap()).unwrap();
        let aside = again.replaced_damaged.expect("the flipped byte is found, not trusted for its size");
        assert_eq!(fs::read(aside).unwrap(), b"0riginal", "kept for investigation");
        assert_eq!(fs::read(&p).unwrap(), b"original");
    }
}
