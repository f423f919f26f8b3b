//! Custody commands: `verify`, `key show`, `receipt verify`, `retention run`.

use super::{load_config, ConfigArg};
use crate::clock::{parse_time, to_ms};
use crate::custody::{key::HostKey, receipt, retention, verify};
use crate::index::{open_reader, write_once};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    json: bool,
    /// Check only this many random originals and renditions (the audit
    /// chain is always walked whole).
    #[arg(long)]
    sample: Option<u32>,
}

/// Re-hash stored objects and check the audit chain; exit 1 on any fault.
pub fn verify_main(a: VerifyArgs) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let reader = open_reader(&cfg.index)?;
    let c = reader.db();
    let bucket = crate::store::open_bucket(&cfg)?;
    let r = verify::run(&cfg.state_dir, &c, a.sample, None, bucket.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for f in &r.faults {
            println!("FAULT {} {}: {}", f.what, f.id, f.problem);
        }
        println!(
            "{} original(s) and {} rendition(s) re-hashed, {} audit entries (head {}) checked: {}",
            r.originals_checked,
            r.renditions_checked,
            r.audit_entries,
            r.audit_head.unwrap_or(0),
            if r.faults.is_empty() { "all intact".to_string() } else { format!("{} fault(s)", r.faults.len()) }
        );
    }
    Ok(if r.faults.is_empty() { 0 } else { 1 })
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Print the host's public key (hex), creating the key if there is none.
    Show(ConfigArg),
}

pub fn key_main(c: KeyCommand) -> anyhow::Result<i32> {
    let KeyCommand::Show(a) = c;
    let cfg = match load_config(&a.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match HostKey::load(&cfg.state_dir)? {
        Some(k) => println!("{}", k.public_hex()),
        None => {
            eprintln!(
                "error: no host key in {} yet: the daemon creates it at its first start",
                cfg.state_dir.display()
            );
            return Ok(1);
        }
    }
    Ok(0)
}

#[derive(clap::Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Check a receipt, or an approved export's archive, offline, without
    /// the index: exit 0 if it is intact and signed by KEY (for an archive:
    /// its manifest's signature, every file's size and BLAKE3, nothing
    /// added, and every receipt in it).
    Verify {
        /// The receipt (JSON, as `GET /api/v1/media/{id}/receipt` gives it)
        /// or the export archive (tar, as `GET /api/v1/exports/{id}/download`
        /// gives it).
        file: std::path::PathBuf,
        /// The host's public key: 64 hex digits, or a file holding them.
        #[arg(long)]
        pubkey: String,
    },
}

pub fn receipt_main(c: ReceiptCommand) -> anyhow::Result<i32> {
    let ReceiptCommand::Verify { file, pubkey } = c;
    let open = || std::fs::File::open(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()));
    let mut head = [0u8; 262];
    let n = std::io::Read::read(&mut open()?, &mut head)?;
    if n == head.len() && &head[257..262] == b"ustar" {
        return match crate::custody::export::verify_archive(std::io::BufReader::new(open()?), &pubkey) {
            Ok(a) => {
                println!(
                    "valid: export {}: {} file(s) as the signed manifest lists them, {} original(s), {} receipt(s) verified",
                    a.export_id, a.files, a.originals, a.receipts
                );
                Ok(0)
            }
            Err(e) => {
                println!("INVALID: {e}");
                Ok(1)
            }
        };
    }
    let text = std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    match receipt::verify(&text, &pubkey) {
        Ok(r) => {
            println!(
                "valid: original {} ({} bytes), station {}, stored {}, on time {}",
                r.id,
                r.size,
                r.station,
                r.stored_at,
                r.on_time.map(|b| b.to_string()).unwrap_or_else(|| "unknown".into())
            );
            Ok(0)
        }
        Err(e) => {
            println!("INVALID: {e}");
            Ok(1)
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum RetentionCommand {
    /// Run one retention pass now (the daemon runs one every retention.every).
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Pretend it is this time (RFC 3339): to see what a pass would do then.
        #[arg(long, value_parser = parse_time)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        /// Only list what would move, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Take an original out of the trash.
    Restore {
        id: String,
        #[command(flatten)]
        config: ConfigArg,
        /// Who restores it (for the audit log).
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
    },
}

pub fn retention_main(c: RetentionCommand) -> anyhow::Result<i32> {
    match c {
        RetentionCommand::Run { config, now, dry_run, json } => {
            let cfg = match load_config(&config.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let now = to_ms(now.unwrap_or_else(chrono::Utc::now));
            let (dir, rc) = (cfg.state_dir.clone(), cfg.retention.clone());
            let r = if dry_run {
                // The pass in a transaction that is rolled back: files are
                // moved only by a real pass, so a dry run must not move any.
                let reader = open_reader(&cfg.index)?;
                retention::plan(&reader.db(), &rc, now)?
            } else {
                let r = write_once(&cfg.index, |c| retention::pass(c, &rc, now))?;
                // Committed: the files follow (a crash first is repaired by
                // the next pass).
                retention::carry_out(&dir, &r)?;
                let reader = open_reader(&cfg.index)?;
                let c = reader.db();
                let repaired = retention::repair(&c, &dir)?;
                if let Some(s3) = crate::store::open_bucket(&cfg)? {
                    retention::purge_from_bucket(&s3, &r);
                    let s = retention::sync_bucket_locks(&c, &s3, crate::store::lock_span(&cfg), now, None)?;
                    if !s.failed.is_empty() {
                        eprintln!("warning: {} bucket lock(s) could not be updated: {:?}", s.failed.len(), s.failed);
                    }
                }
                retention::PassReport { repaired, ..r }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let verb = if dry_run { "would move" } else { "moved" };
                println!(
                    "{verb} to the trash: {}; purged: {}; restored: {}; expiring soon: {}",
                    r.trashed.len(),
                    r.purged.len(),
                    r.restored.len(),
                    r.expiring_soon.len()
                );
                for id in &r.trashed {
                    println!("  trash   {id}");
                }
                for id in &r.purged {
                    println!("  purged  {id}");
                }
                for (id, at) in &r.expiring_soon {
                    println!("  expires {id} at {at}");
                }
            }
            Ok(0)
        }
        RetentionCommand::Restore { id, config, by, reason } => {
            let cfg = match load_config(&config.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let dir = cfg.state_dir.clone();
            let now = to_ms(chrono::Utc::now());
            if write_once(&cfg.index, |c| retention::restore(c, &id, &by, &reason, now))? {
                retention::restored(&dir, &id)?;
                println!("restored {id}");
                Ok(0)
            } else {
                eprintln!("error: {id} is not in the trash");
                Ok(1)
            }
        }
    }
}
