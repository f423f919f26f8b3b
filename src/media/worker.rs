//! Prober child processes: libav parses untrusted files, so it runs in
//! `bodycamd probe-worker` children with an address-space limit, no core
//! dumps, and a time limit per file. A child that crashes, hangs or runs out
//! of memory costs only the file it was reading (which gets a `probe_error`)
//! and is replaced for the next one.
//!
//! Protocol: one JSON request per line on the child's stdin
//! (`{"path": "..."}`), one [`Description`] per line on its stdout.

use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::Description;

#[derive(Debug, Clone)]
pub struct ProberSettings {
    /// The executable to run as `EXE probe-worker` (normally bodycamd itself).
    pub exe: PathBuf,
    pub workers: usize,
    pub timeout: Duration,
    pub memory_limit_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Request {
    path: String,
}

struct Job {
    path: PathBuf,
    reply: oneshot::Sender<Description>,
}

/// A pool of prober processes. Cheap to clone.
#[derive(Clone)]
pub struct ProberPool {
    tx: mpsc::Sender<Job>,
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        _ => "signal",
    }
}

/// Confine a child that will parse untrusted media: an address-space
/// limit, no core dumps, death with the daemon; with `background`, the
/// lowest CPU and I/O priority, so that it yields to storing originals.
pub fn confine(cmd: &mut Command, memory_limit: u64, background: bool) {
    // SAFETY: between fork and exec only async-signal-safe system calls are
    // made (setrlimit, prctl, setpriority, ioprio_set), without allocating.
    unsafe {
        cmd.pre_exec(move || {
            use rustix::process::{setrlimit, Resource, Rlimit};
            setrlimit(Resource::As, Rlimit { current: Some(memory_limit), maximum: Some(memory_limit) })?;
            setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) })?;
            // Die with the daemon, even after kill -9.
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if background {
                let _ = rustix::process::setpriority_process(None, 19);
                // IOPRIO_WHO_PROCESS, this process, IOPRIO_CLASS_IDLE << 13.
                let _ = libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13);
            }
            Ok(())
        });
    }
}

fn spawn(s: &ProberSettings) -> std::io::Result<Proc> {
    let mut cmd = Command::new(&s.exe);
    cmd.arg("probe-worker").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    confine(&mut cmd, s.memory_limit_bytes, false);
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    Ok(Proc { child, stdin, stdout })
}

/// Why a child stopped answering.
async fn exit_reason(mut p: Proc) -> String {
    let status = match tokio::time::timeout(Duration::from_secs(5), p.child.wait()).await {
        Ok(Ok(s)) => s,
        _ => {
            let _ = p.child.kill().await;
            return "prober stopped answering".into();
        }
    };
    match (status.signal(), status.code()) {
        (Some(sig), _) => format!("prober crashed ({} {sig})", signal_name(sig)),
        (None, Some(code)) => format!("prober exited with status {code} (out of memory?)"),
        _ => "prober stopped".into(),
    }
}

async fn probe_one(s: &ProberSettings, slot: &mut Option<Proc>, path: &Path) -> Description {
    if slot.is_none() {
        match spawn(s) {
            Ok(p) => *slot = Some(p),
            Err(e) => return Description::fallback(path, format!("cannot start the prober {}: {e}", s.exe.display())),
        }
    }
    let p = slot.as_mut().expect("spawned above");
    let mut line = serde_json::to_string(&Request { path: path.to_string_lossy().into_owned() }).expect("serialisable");
    line.push('\n');
    let exchange = async {
        p.stdin.write_all(line.as_bytes()).await?;
        p.stdin.flush().await?;
        let mut answer = String::new();
        let n = p.stdout.read_line(&mut answer).await?;
        Ok::<_, std::io::Error>((n, answer))
    };
    match tokio::time::timeout(s.timeout, exchange).await {
        Ok(Ok((n, answer))) if n > 0 => match serde_json::from_str::<Description>(&answer) {
            Ok(d) => d,
            Err(e) => {
                let p = slot.take().expect("present");
                let _ = exit_reason_kill(p).await;
                Description::fallback(path, format!("prober answered nonsense: {e}"))
            }
        },
        Ok(_) => {
            let p = slot.take().expect("present");
            Description::fallback(path, exit_reason(p).await)
        }
        Err(_) => {
            let p = slot.take().expect("present");
            exit_reason_kill(p).await;
            Description::fallback(
                path,
                format!("prober timed out after {:.0} s and was killed", s.timeout.as_secs_f64()),
            )
        }
    }
}

async fn exit_reason_kill(mut p: Proc) {
    let _ = p.child.kill().await;
}

impl ProberPool {
    pub fn start(settings: ProberSettings) -> ProberPool {
        let (tx, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let settings = Arc::new(settings);
        for _ in 0..settings.workers.max(1) {
            let rx = rx.clone();
            let settings = settings.clone();
            tokio::spawn(async move {
                let mut slot: Option<Proc> = None;
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some(job) = job else { break };
                    let d = probe_one(&settings, &mut slot, &job.path).await;
                    let _ = job.reply.send(d);
                }
            });
        }
        ProberPool { tx }
    }

    /// Describe a file in a prober process. Never fails: a crash, hang or
    /// missing prober becomes the description's `probe_error`.
    pub async fn describe(&self, path: &Path) -> Description {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Job { path: path.to_path_buf(), reply }).await.is_err() {
            return Description::fallback(path, "the prober pool has stopped".into());
        }
        rx.await.unwrap_or_else(|_| Description::fallback(path, "the prober pool has stopped".into()))
    }
}

/// Limits of a render worker.
#[derive(Debug, Clone)]
pub struct RenderLimits {
    pub exe: PathBuf,
    pub timeout: Duration,
    pub memory_limit_bytes: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RenderAnswer {
    Ok(super::render::RenderReport),
    Error(super::render::RenderError),
}

/// Make one rendition in a `bodycamd render-worker` child (confined, in
/// the background priority classes, killed after the time limit).
pub async fn render(
    l: &RenderLimits,
    job: &super::render::RenderJob,
) -> Result<super::render::RenderReport, super::render::RenderError> {
    let mut cmd = Command::new(&l.exe);
    cmd.arg("render-worker").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    confine(&mut cmd, l.memory_limit_bytes, true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start the render worker {}: {e}", l.exe.display()))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let request = serde_json::to_vec(job).expect("serialisable");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let exchange = async {
        stdin.write_all(&request).await?;
        drop(stdin);
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out).await?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out))
    };
    match tokio::time::timeout(l.timeout, exchange).await {
        Err(_) => {
            Err(format!("the render worker timed out after {:.0} s and was killed", l.timeout.as_secs_f64()).into())
        }
        Ok(Err(e)) => Err(format!("the render worker failed: {e}").into()),
        Ok(Ok((status, out))) => match serde_json::from_slice::<RenderAnswer>(&out) {
            Ok(RenderAnswer::Ok(r)) => Ok(r),
            Ok(RenderAnswer::Error(e)) => Err(e),
            Err(_) => Err(match (status.signal(), status.code()) {
                (Some(sig), _) => format!("the render worker crashed ({} {sig})", signal_name(sig)),
                (None, Some(code)) => format!("the render worker exited with status {code} (out of memory?)"),
                _ => "the render worker stopped".to_string(),
            }
            .into()),
        },
    }
}

/// The render worker's side: one job from stdin, its answer on stdout.
pub fn serve_render(mut input: impl std::io::Read, mut output: impl Write) -> std::io::Result<()> {
    let mut buf = Vec::new();
    input.read_to_end(&mut buf)?;
    let answer = match serde_json::from_slice::<super::render::RenderJob>(&buf) {
        Ok(job) => match super::render::run_job(&job) {
            Ok(r) => RenderAnswer::Ok(r),
            Err(e) => RenderAnswer::Error(e),
        },
        Err(e) => RenderAnswer::Error(format!("bad request: {e}").into()),
    };
    serde_json::to_writer(&mut output, &answer)?;
    output.flush()
}

/// The child side: answer requests from stdin until it closes.
pub fn serve(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        let d = match serde_json::from_str::<Request>(&line) {
            Ok(req) => super::describe_file(Path::new(&req.path)),
            Err(e) => Description {
                kind: "other".into(),
                probe_error: Some(format!("bad request: {e}")),
                ..Default::default()
            },
        };
        serde_json::to_writer(&mut output, &d)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in prober: a shell script that misbehaves on request.
    fn script(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("prober.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn settings(exe: PathBuf, timeout_ms: u64, mem: u64) -> ProberSettings {
        ProberSettings { exe, workers: 1, timeout: Duration::from_millis(timeout_ms), memory_limit_bytes: mem }
    }

    fn media(dir: &Path) -> PathBuf {
        let p = dir.join("x.mp4");
        std::fs::write(&p, [&[0, 0, 0, 24][..], b"ftypisom", &[0; 16]].concat()).unwrap();
        p
    }

    #[tokio::test]
    async fn a_crashing_prober_costs_one_file_and_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        // Crashes on the first request of each process... and answers the
        // second file because a fresh process is started for it.
        let exe = script(
            d.path(),
            r#"read line; case "$line" in *crash*) kill -SEGV $$;; esac; echo '{"kind":"video","probe_error":null}'"#,
        );
        let pool = ProberPool::start(settings(exe, 5000, 1 << 30));
        let crash = d.path().join("crash.mp4");
        std::fs::copy(media(d.path()), &crash).unwrap();
        let desc = pool.describe(&crash).await;
        assert_eq!(desc.kind, "video", "the fall-back still recognises the container");
        assert!(desc.probe_error.as_deref().unwrap().contains("SIGSEGV"), "{desc:?}");
        let ok = pool.describe(&media(d.path())).await;
        assert_eq!(ok.probe_error, None);
    }

    #[tokio::test]
    async fn a_hanging_prober_is_killed_after_the_time_limit() {
        let d = tempfile::tempdir().unwrap();
        let exe = script(d.path(), "read line; exec sleep 30");
        let pool = ProberPool::start(settings(exe, 300, 1 << 30));
        let t0 = std::time::Instant::now();
        let desc = pool.describe(&media(d.path())).await;
        assert!(desc.probe_error.as_deref().unwrap().contains("timed out"), "{desc:?}");
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn the_memory_limit_applies_to_the_prober() {
        let d = tempfile::tempdir().unwrap();
        // dd allocates its 1 GiB buffer up front: refused under a 256 MiB limit.
        let exe = script(
            d.path(),
            r#"read line; dd if=/dev/zero of=/dev/null bs=1G count=1 2>/dev/null || exit 3; echo '{"kind":"other","probe_error":null}'"#,
        );
        let pool = ProberPool::start(settings(exe, 10_000, 256 << 20));
        let desc = pool.describe(&media(d.path())).await;
        assert!(desc.probe_error.as_deref().unwrap().contains("status 3"), "{desc:?}");
    }

    #[tokio::test]
    async fn a_missing_prober_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let pool = ProberPool::start(settings(d.path().join("nope"), 1000, 1 << 30));
        let desc = pool.describe(&media(d.path())).await;
        assert!(desc.probe_error.as_deref().unwrap().contains("cannot start"), "{desc:?}");
    }

    #[test]
    fn serve_answers_each_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("empty");
        std::fs::write(&p, b"").unwrap();
        let input = format!("{{\"path\":{:?}}}\nnot json\n", p.to_str().unwrap());
        let mut out = Vec::new();
        serve(input.as_bytes(), &mut out).unwrap();
        let lines: Vec<Description> =
            out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].probe_error.as_deref(), Some("empty file (0 bytes)"));
        assert!(lines[1].probe_error.as_deref().unwrap().starts_with("bad request"));
    }
}
