//! Storing one dock file: copy and hash in one pass, check it did not change
//! meanwhile, persist, index, and only then (if configured) remove the dock
//! file after re-reading the stored copy.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::faults::{is_full_error, is_resource_error, Fault, FaultKind};
use super::{Ctx, Stats};
use crate::clock::to_ms;
use crate::config::{AfterIngest, StationConfig};
use crate::domain::{FileSig, MediaId};
use crate::index::alerts as ax;
use crate::index::ingest::{self as ix, Disposition, IngestRecord};
use crate::naming::NameInfo;
use crate::rules::alerts::{file_subject, AlertKind};
use crate::store::{Staged, StoreError, Stored};
use crate::watch::dock::{self, DockError};
use crate::watch::settle::Ready;

/// A complete dock file, ready to be stored.
pub struct StoreJob {
    pub station: Arc<StationConfig>,
    pub ready: Ready,
    pub name: NameInfo,
    /// Where the outcome goes (the station's task).
    pub reply: mpsc::UnboundedSender<Report>,
}

/// An attempt's result, reported to the station that owns the file.
#[derive(Debug)]
pub struct Report {
    pub rel: PathBuf,
    pub gen: u64,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Stored {
        sig: FileSig,
        id: MediaId,
        new: bool,
    },
    /// The file changed (before or during the copy): settle again.
    Changed(Option<FileSig>),
    Gone,
    /// It is not something that may be ingested (became a link or a fifo).
    Rejected(String),
    /// It could not be stored for a reason that belongs to the file (it
    /// cannot be read): counts as an attempt.
    Failed(String),
    /// An outage of the archive, the index or the process: not the file's
    /// fault, so no attempt is counted; the file waits and is tried again.
    Blocked(Fault),
}

/// Run one store worker until shutdown: it takes the most urgent job,
/// copies it into the archive's staging area, and hands the rest (the group
/// commit, the index, the dock) to a task of its own so that it can copy the
/// next file meanwhile. At most [`FINISHING`] files are between their copy
/// and their outcome at once.
pub async fn worker(ctx: Arc<Ctx>) {
    while let Some(job) = ctx.queue.pop(&ctx.shutdown).await {
        ctx.storing.fetch_add(1, Ordering::SeqCst);
        let (reply, rel, gen) = (job.reply.clone(), job.ready.rel.clone(), job.ready.gen);
        let finish = match stage_one(&ctx, &job).await {
            Ok(staged) => match ctx.finishing.clone().acquire_owned().await {
                Ok(permit) => Ok((staged, permit)),
                Err(_) => Err(Outcome::Failed("store worker stopped".into())),
            },
            Err(outcome) => Err(outcome),
        };
        match finish {
            Ok(((staged, sig), permit)) => {
                let ctx = ctx.clone();
                ctx.clone().tasks.spawn(async move {
                    let outcome = finish_one(&ctx, job, staged, sig).await;
                    // The station may be gone (reload); the file is then found again.
                    let _ = reply.send(Report { rel, gen, outcome });
                    ctx.storing.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                });
            }
            Err(outcome) => {
                let _ = reply.send(Report { rel, gen, outcome });
                ctx.storing.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Files between their copy and their outcome at once (each holds its
/// staged copy's open file until the group commit): enough for large
/// groups, few enough for the descriptor limit.
pub const FINISHING: usize = 128;

fn dock_outcome(e: DockError) -> Outcome {
    match e {
        DockError::Gone => Outcome::Gone,
        DockError::Rejected(r) => Outcome::Rejected(r),
        DockError::Io(e) if is_resource_error(&e) => {
            Outcome::Blocked(Fault::new(FaultKind::Resources, format!("cannot open the dock file: {e}")))
        }
        DockError::Io(e) => Outcome::Failed(format!("cannot read the dock file: {e}")),
    }
}

/// Whose fault a failed copy is.
fn store_outcome(e: StoreError) -> Outcome {
    match e {
        StoreError::SizeChanged { .. } => Outcome::Changed(None),
        StoreError::NoSpace { .. } => Outcome::Blocked(Fault::new(FaultKind::Archive, e.to_string())),
        StoreError::Read(ref io) | StoreError::Write(ref io) if is_resource_error(io) => {
            Outcome::Blocked(Fault::new(FaultKind::Resources, e.to_string()))
        }
        StoreError::Write(ref io) if is_full_error(io) => {
            Outcome::Blocked(Fault::new(FaultKind::Archive, format!("archive full: {e}")))
        }
        StoreError::Write(_) | StoreError::Remote(_) => Outcome::Blocked(Fault::new(FaultKind::Archive, e.to_string())),
        StoreError::Read(_) => Outcome::Failed(e.to_string()),
    }
}

/// A dock file read that stops when the run abandons its work (the
/// shutdown grace ran out): the copy then ends within one chunk, its
/// temporary file is removed, and the dock file is stored at the next run.
struct Abandonable<'a> {
    file: &'a std::fs::File,
    abandon: &'a std::sync::atomic::AtomicBool,
}

impl std::io::Read for Abandonable<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.abandon.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("abandoned: the shutdown grace ran out"));
        }
        std::io::Read::read(&mut self.file, buf)
    }
}

/// Copy, hash and check (blocking): the staged copy, not yet persisted.
fn copy_into_archive(ctx: &Ctx, st: &StationConfig, ready: &Ready) -> Result<(Staged, FileSig), Outcome> {
    let (file, sig) = dock::open(&st.path, &ready.rel).map_err(dock_outcome)?;
    if sig != ready.sig {
        return Err(Outcome::Changed(Some(sig)));
    }
    let mut src = Abandonable { file: &file, abandon: &ctx.abandon };
    let staged = ctx.archive.stage_deferred(&mut src, sig.size, ctx.ingest.min_free_bytes).map_err(store_outcome)?;
    // The bytes we copied are the file's only if neither the open file nor
    // the name changed meanwhile (a copy tool may replace the file by rename).
    let after = dock::sig_of_file(&file).map_err(|e| Outcome::Failed(format!("cannot read the dock file: {e}")))?;
    if after != sig {
        return Err(Outcome::Changed(Some(after)));
    }
    match dock::stat(&st.path, &ready.rel) {
        Ok(now) if now == sig => {}
        Ok(now) => return Err(Outcome::Changed(Some(now))),
        Err(e) => return Err(dock_outcome(e)),
    }
    Ok((staged, sig))
}

/// Make a group of staged copies durable and visible (blocking, off the
/// runtime).
async fn persist_group(ctx: &Arc<Ctx>, group: Vec<Staged>) -> Vec<Result<Stored, StoreError>> {
    let c = ctx.clone();
    tokio::task::spawn_blocking(move || c.archive.persist_all(group)).await.unwrap_or_default()
}

/// Copy a job's file into the archive's staging area (blocking, off the
/// runtime).
async fn stage_one(ctx: &Arc<Ctx>, job: &StoreJob) -> Result<(Staged, FileSig), Outcome> {
    let (ctx, st, ready) = (ctx.clone(), job.station.clone(), job.ready.clone());
    match tokio::task::spawn_blocking(move || copy_into_archive(&ctx, &st, &ready)).await {
        Ok(r) => r,
        Err(e) => Err(Outcome::Failed(format!("store worker failed: {e}"))),
    }
}

/// Make a staged copy durable and visible, upload it (with a bucket),
/// index it, and remove the dock file (if configured).
async fn finish_one(ctx: &Arc<Ctx>, job: StoreJob, staged: Staged, sig: FileSig) -> Outcome {
    let st = job.station.clone();
    // Durable and visible in a group with the other copies staged
    // meanwhile; then, with a bucket, uploaded under one of
    // `ingest.workers` permits.
    let sha = staged.sha256.clone();
    let stored = match ctx.commits.submit(staged, |group| persist_group(ctx, group)).await {
        Some(Ok(v)) => v,
        Some(Err(e)) => return store_outcome(e),
        None => return Outcome::Failed("store worker failed: the commit was lost".into()),
    };
    if ctx.archive.remote().is_some() {
        let uploaded = {
            let Ok(_permit) = ctx.persisting.acquire().await else {
                return Outcome::Failed("store worker stopped".into());
            };
            let (ctx, stored) = (ctx.clone(), stored.clone());
            tokio::task::spawn_blocking(move || ctx.archive.upload(&stored, sha.as_ref())).await
        };
        match uploaded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return store_outcome(e),
            Err(e) => return Outcome::Failed(format!("store worker failed: {e}")),
        }
    }
    let delete = st.after_ingest == AfterIngest::Delete;
    let record = IngestRecord {
        media_id: stored.id.to_hex(),
        size: stored.size,
        station: st.id.clone(),
        rel_path: job.ready.rel.as_os_str().as_bytes().to_vec(),
        sig,
        first_seen_ms: to_ms(job.ready.first_seen),
        ingested_at_ms: to_ms(ctx.clock.now()),
        name: job.name,
        disposition: if delete { Disposition::DeletePending } else { Disposition::Keep },
    };
    let item = (record, stored.replaced_damaged.clone());
    let ingest = ctx.ingests.submit(item, |group| index_group(ctx, group)).await;
    let new_row = match ingest {
        Some(Ok(new_row)) => new_row,
        // The bytes are safe in the archive; the next attempt finds them
        // there (a duplicate) and indexes them. Not the file's fault.
        Some(Err(e)) => {
            return Outcome::Blocked(Fault::new(FaultKind::Index, format!("stored, but the index cannot commit: {e}")))
        }
        None => return Outcome::Blocked(Fault::new(FaultKind::Index, "stored, but its index write was lost")),
    };
    // Storing worked: the archive, the index and the process are fine.
    for (kind, since) in ctx.faults.clear(&[FaultKind::Archive, FaultKind::Index, FaultKind::Resources]) {
        tracing::info!(fault = ?kind, since = %since, "outage over: files are being stored again");
        ctx.alerting.poke();
    }
    tracing::info!(
        station = %st.id, media_id = %stored.id, path = %job.ready.rel.display(), bytes = stored.size,
        duplicate = !stored.new, "stored"
    );
    if stored.new {
        Stats::add(&ctx.stats.stored_new, 1);
        Stats::add(&ctx.stats.bytes_stored, stored.size);
    } else {
        Stats::add(&ctx.stats.duplicates, 1);
    }
    if new_row {
        ctx.describe_later(stored.id);
    }
    if delete {
        if let Disposal::Damaged(why) = dispose(ctx, &st, job.ready.rel.clone(), stored.id, sig).await {
            // The copy just stored did not read back right: it was moved
            // aside, the dock file stays, and the file is stored again.
            return Outcome::Blocked(Fault::new(FaultKind::Archive, why));
        }
    }
    Outcome::Stored { sig, id: stored.id, new: stored.new }
}

/// A stored file to index, with the damaged copy its bytes replaced (if any).
pub type IngestItem = (IngestRecord, Option<PathBuf>);

/// Index a group of stored files in one transaction (each in a savepoint
/// of its own, so that one that cannot be indexed fails alone), then bring
/// the sequence gaps of the devices they came from up to date, once per
/// device. Whether each made a new original row, or why it failed.
async fn index_group(ctx: &Arc<Ctx>, group: Vec<IngestItem>) -> Vec<Result<bool, String>> {
    let n = group.len();
    let hooks = ctx.alerting.hooks.clone();
    let written = ctx
        .index
        .call(move |c| {
            let mut out = Vec::with_capacity(group.len());
            let mut transitions = Vec::new();
            let mut devices = std::collections::BTreeMap::new();
            for (record, damaged) in &group {
                c.execute_batch("SAVEPOINT stored")?;
                match index_one(c, record, damaged.as_deref(), &hooks) {
                    Ok((new_row, t)) => {
                        c.execute_batch("RELEASE SAVEPOINT stored")?;
                        transitions.extend(t);
                        if let (Some(device), Some(_)) = (&record.name.device, record.name.seq) {
                            let at = devices.entry(device.as_str()).or_insert(record.ingested_at_ms);
                            *at = (*at).max(record.ingested_at_ms);
                        }
                        out.push(Ok(new_row));
                    }
                    Err(e) => {
                        c.execute_batch("ROLLBACK TO SAVEPOINT stored; RELEASE SAVEPOINT stored")?;
                        out.push(Err(e.to_string()));
                    }
                }
            }
            // Their sequence numbers may open or fill gaps.
            for (device, now) in devices {
                transitions.extend(ax::sync_sequence_gaps(c, device, now, &hooks)?);
            }
            Ok((out, transitions))
        })
        .await;
    match written {
        Ok((out, transitions)) => {
            ctx.alerting.committed(&transitions);
            out
        }
        Err(e) => vec![Err(e.to_string()); n],
    }
}

/// One stored file's index rows: its original and sighting, a damaged copy
/// it replaced, its pending-file alerts resolved, its cases.
fn index_one(
    c: &crate::index::db::Db,
    record: &IngestRecord,
    damaged: Option<&std::path::Path>,
    hooks: &[String],
) -> crate::index::db::Result<(bool, Vec<ax::Transition>)> {
    let new_row = ix::record_ingest(c, record)?;
    let mut transitions = Vec::new();
    if let Some(aside) = damaged {
        transitions.extend(ax::object_damaged(
            c,
            &record.media_id,
            &aside.display().to_string(),
            "the same bytes arrived again and the stored copy no longer matched them",
            record.ingested_at_ms,
            hooks,
        )?);
    }
    // With the file stored, its pending-file alerts resolve.
    let subject = file_subject(&record.station, &String::from_utf8_lossy(&record.rel_path));
    let now = record.ingested_at_ms;
    for kind in [AlertKind::DeadlineAtRisk, AlertKind::Overdue, AlertKind::IngestFailed] {
        transitions.extend(ax::resolve(c, kind, &subject, now, hooks)?);
    }
    // The cases it belongs to (by its name's start, until described).
    crate::index::cases::match_media(c, &record.media_id, now)?;
    Ok((new_row, transitions))
}

/// What became of a dock file that was to be removed after storing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposal {
    Removed,
    /// The dock file is new content now: it stays (and is stored as such).
    Changed,
    AlreadyGone,
    /// The stored copy did not read back with its hash: it was moved aside
    /// (and alerted); the dock file stays and must be stored again.
    Damaged(String),
    /// Not possible now (the copy cannot be re-read, the dock file cannot be
    /// removed): the dock file stays, and removal is tried again later.
    Later(String),
}

/// Remove a stored dock file, after re-reading the stored copy from disk and
/// checking its hash, and only if the dock file is still the one stored.
pub async fn dispose(ctx: &Arc<Ctx>, st: &Arc<StationConfig>, rel: PathBuf, id: MediaId, sig: FileSig) -> Disposal {
    let (ctx2, st2, rel2) = (ctx.clone(), st.clone(), rel.clone());
    let result = tokio::task::spawn_blocking(move || -> Disposal {
        match ctx2.archive.verify(&id) {
            Ok(true) => {}
            Ok(false) => {
                return match ctx2.archive.quarantine(&id) {
                    Ok(aside) => Disposal::Damaged(aside.display().to_string()),
                    Err(e) => Disposal::Later(format!(
                        "the stored copy does not match its hash and cannot be moved aside: {e}"
                    )),
                }
            }
            Err(e) => return Disposal::Later(format!("cannot re-read the stored copy: {e}")),
        }
        match dock::remove_if_unchanged(&st2.path, &rel2, &sig) {
            Ok(true) => Disposal::Removed,
            Ok(false) => Disposal::Changed,
            // Removed already: by us before a crash, or by the station.
            Err(DockError::Gone) => Disposal::AlreadyGone,
            Err(e) => Disposal::Later(format!("cannot remove the dock file: {e}")),
        }
    })
    .await
    .unwrap_or_else(|e| Disposal::Later(format!("disposal failed: {e}")));
    let (station, rel_bytes, media) = (st.id.clone(), rel.as_os_str().as_bytes().to_vec(), id.to_hex());
    let now = to_ms(ctx.clock.now());
    let write = match &result {
        d @ (Disposal::Removed | Disposal::AlreadyGone) => {
            if *d == Disposal::Removed {
                Stats::add(&ctx.stats.deleted_from_dock, 1);
                tracing::info!(station = %st.id, media_id = %id, path = %rel.display(), "removed from the dock after verification");
            }
            ctx.index.call(move |c| ix::mark_deleted(c, &media, &station, &rel_bytes, now)).await
        }
        Disposal::Changed => {
            tracing::info!(station = %st.id, media_id = %id, path = %rel.display(), "dock file changed since it was stored; kept (its new content is stored too)");
            ctx.index.call(move |c| ix::mark_kept(c, &media, &station, &rel_bytes)).await
        }
        Disposal::Damaged(aside) => {
            tracing::error!(station = %st.id, media_id = %id, path = %rel.display(), aside = %aside, "the stored copy did not read back with its hash; moved aside, the dock file is kept and stored again");
            let (hooks, aside) = (ctx.alerting.hooks.clone(), aside.clone());
            let r = ctx
                .index
                .call(move |c| {
                    ix::mark_kept(c, &media, &station, &rel_bytes)?;
                    ax::object_damaged(c, &media, &aside, "re-read before removing the dock file", now, &hooks)
                })
                .await;
            r.map(|t| ctx.alerting.committed(&t.into_iter().collect::<Vec<_>>()))
        }
        Disposal::Later(reason) => {
            let wait = ctx.dispose_retry();
            tracing::warn!(station = %st.id, media_id = %id, path = %rel.display(), %reason, retry_in = ?wait, "dock file kept for now; its removal is tried again later");
            let (reason, at) = (reason.clone(), now + wait.as_millis() as i64);
            ctx.index.call(move |c| ix::mark_dispose_later(c, &media, &station, &rel_bytes, &reason, at)).await
        }
    };
    if let Err(e) = write {
        tracing::error!(error = %e, "recording the disposal failed; it is retried later");
    }
    result
}
