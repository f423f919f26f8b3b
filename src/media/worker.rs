//! Child processes for everything that parses untrusted media: libav runs
//! in `bodycamd probe-worker` and `bodycamd render-worker` children with an
//! address-space limit, no core dumps, death with the daemon and a time
//! limit per job (render workers also at the lowest CPU and I/O priority).
//! Both kinds are long-lived and share one pool ([`ChildPool`]): each child
//! does many jobs over its pipes, and is replaced after a crash, a time-out,
//! nonsense on its pipe, or `max_jobs` jobs. A job that kills its child
//! costs only that job (it gets the reason); the child is started afresh for
//! the next one, so a hostile file never takes other jobs with it.
//!
//! Protocol: one JSON request per line on the child's stdin, one JSON answer
//! per line on its stdout.

use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::Description;

/// How to run one kind of child.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// The executable, run as `EXE <arg>` (normally bodycamd itself).
    pub exe: PathBuf,
    /// `probe-worker` or `render-worker`.
    pub arg: &'static str,
    /// What the child is called in reasons (`prober`, `render worker`).
    pub name: &'static str,
    pub workers: usize,
    /// Per job.
    pub timeout: Duration,
    pub memory_limit_bytes: u64,
    /// Lowest CPU and I/O priority.
    pub background: bool,
    /// Jobs before a child is replaced (bounds what a leak can grow to).
    pub max_jobs: u32,
}

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

type Reply<A> = oneshot::Sender<Result<A, String>>;

/// A pool of long-lived, confined children answering requests of type `Q`
/// with answers of type `A`. Cheap to clone.
pub struct ChildPool<Q, A> {
    tx: mpsc::Sender<(Q, Reply<A>)>,
}

impl<Q, A> Clone for ChildPool<Q, A> {
    fn clone(&self) -> Self {
        ChildPool { tx: self.tx.clone() }
    }
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    jobs: u32,
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

fn spawn(s: &ChildSpec) -> std::io::Result<Proc> {
    let mut cmd = Command::new(&s.exe);
    cmd.arg(s.arg).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    confine(&mut cmd, s.memory_limit_bytes, s.background);
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    Ok(Proc { child, stdin, stdout, jobs: 0 })
}

/// Why a child stopped answering.
async fn exit_reason(name: &str, mut p: Proc) -> String {
    let status = match tokio::time::timeout(Duration::from_secs(5), p.child.wait()).await {
        Ok(Ok(s)) => s,
        _ => {
            let _ = p.child.kill().await;
            return format!("the {name} stopped answering");
        }
    };
    match (status.signal(), status.code()) {
        (Some(sig), _) => format!("the {name} crashed ({} {sig})", signal_name(sig)),
        (None, Some(code)) => format!("the {name} exited with status {code} (out of memory?)"),
        _ => format!("the {name} stopped"),
    }
}

/// One request to the child in `slot` (started first if there is none).
/// Any failure other than a well-formed answer retires the child.
async fn exchange<Q: Serialize, A: DeserializeOwned>(
    s: &ChildSpec,
    slot: &mut Option<Proc>,
    req: &Q,
) -> Result<A, String> {
    if slot.is_none() {
        *slot = Some(spawn(s).map_err(|e| format!("cannot start the {} {}: {e}", s.name, s.exe.display()))?);
    }
    let p = slot.as_mut().expect("spawned above");
    let mut line = serde_json::to_vec(req).map_err(|e| format!("cannot encode the request: {e}"))?;
    line.push(b'\n');
    let talk = async {
        p.stdin.write_all(&line).await?;
        p.stdin.flush().await?;
        let mut answer = String::new();
        let n = p.stdout.read_line(&mut answer).await?;
        Ok::<_, std::io::Error>((n, answer))
    };
    let result = match tokio::time::timeout(s.timeout, talk).await {
        Ok(Ok((n, answer))) if n > 0 => match serde_json::from_str::<A>(&answer) {
            Ok(a) => {
                let p = slot.as_mut().expect("present");
                p.jobs += 1;
                if p.jobs >= s.max_jobs.max(1) {
                    // Retire it; closing its stdin ends it.
                    drop(slot.take());
                }
                return Ok(a);
            }
            Err(e) => {
                let _ = slot.take().expect("present").child.kill().await;
                format!("the {} answered nonsense: {e}", s.name)
            }
        },
        // End of its output or a broken pipe: it died on this job.
        Ok(_) => exit_reason(s.name, slot.take().expect("present")).await,
        Err(_) => {
            let _ = slot.take().expect("present").child.kill().await;
            format!("the {} timed out after {:.0} s and was killed", s.name, s.timeout.as_secs_f64())
        }
    };
    Err(result)
}

impl<Q, A> ChildPool<Q, A>
where
    Q: Serialize + Send + Sync + 'static,
    A: DeserializeOwned + Send + 'static,
{
    pub fn start(spec: ChildSpec) -> ChildPool<Q, A> {
        let (tx, rx) = mpsc::channel::<(Q, Reply<A>)>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let spec = Arc::new(spec);
        for _ in 0..spec.workers.max(1) {
            let (rx, spec) = (rx.clone(), spec.clone());
            tokio::spawn(async move {
                let mut slot: Option<Proc> = None;
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some((req, reply)) = job else { break };
                    let answer = exchange(&spec, &mut slot, &req).await;
                    let _ = reply.send(answer);
                }
            });
        }
        ChildPool { tx }
    }

    /// Ask a child; `Err` says in words why no answer came.
    pub async fn call(&self, req: Q) -> Result<A, String> {
        let (reply, rx) = oneshot::channel();
        let stopped = || "the worker pool has stopped".to_string();
        self.tx.send((req, reply)).await.map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// A pool of prober processes. Cheap to clone.
#[derive(Clone)]
pub struct ProberPool(ChildPool<Request, Description>);

impl ProberPool {
    pub fn start(s: ProberSettings) -> ProberPool {
        ProberPool(ChildPool::start(ChildSpec {
            exe: s.exe,
            arg: "probe-worker",
            name: "prober",
            workers: s.workers,
            timeout: s.timeout,
            memory_limit_bytes: s.memory_limit_bytes,
            background: false,
            max_jobs: 10_000,
        }))
    }

    /// Describe a file in a prober process. Never fails: a crash, hang or
    /// missing prober becomes the description's `probe_error`.
    pub async fn describe(&self, path: &Path) -> Description {
        let req = Request { path: path.to_string_lossy().into_owned() };
        self.0.call(req).await.unwrap_or_else(|reason| Description::fallback(path, reason))
    }
}

/// Limits of a render worker.
#[derive(Debug, Clone)]
pub struct RenderLimits {
    pub exe: PathBuf,
    pub workers: usize,
    pub timeout: Duration,
    pub memory_limit_bytes: u64,
}

/// A render worker's answer (one JSON line).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenderAnswer {
    Ok(super::render::RenderReport),
    Error(super::render::RenderError),
}

/// Render workers: long-lived `bodycamd render-worker` children (confined,
/// in the background priority classes, killed after the time limit).
#[derive(Clone)]
pub struct RenderPool(ChildPool<super::render::RenderJob, RenderAnswer>);

impl RenderPool {
    /// Jobs a render worker does before it is replaced.
    pub const MAX_JOBS: u32 = 500;

    pub fn start(l: RenderLimits) -> RenderPool {
        RenderPool(ChildPool::start(ChildSpec {
            exe: l.exe,
            arg: "render-worker",
            name: "render worker",
            workers: l.workers,
            timeout: l.timeout,
            memory_limit_bytes: l.memory_limit_bytes,
            background: true,
            max_jobs: Self::MAX_JOBS,
        }))
    }

    /// Make one rendition in a render worker.
    pub async fn render(
        &self,
        job: super::render::RenderJob,
    ) -> Result<super::render::RenderReport, super::render::RenderError> {
        match self.0.call(job).await {
            Ok(RenderAnswer::Ok(r)) => Ok(r),
            Ok(RenderAnswer::Error(e)) => Err(e),
            Err(reason) => Err(reason.into()),
        }
    }
}

/// The render worker's side: one job per line from stdin, its answer on
/// one line of stdout, until stdin closes.
pub fn serve_render(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        let answer = match serde_json::from_str::<super::render::RenderJob>(&line) {
            Ok(job) => match super::render::run_job(&job) {
                Ok(r) => RenderAnswer::Ok(r),
                Err(e) => RenderAnswer::Error(e),
            },
            Err(e) => RenderAnswer::Error(format!("bad request: {e}").into()),
        };
        serde_json::to_writer(&mut output, &answer)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(())
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

    fn pool(exe: PathBuf, max_jobs: u32) -> ChildPool<serde_json::Value, serde_json::Value> {
        ChildPool::start(ChildSpec {
            exe,
            arg: "worker",
            name: "test worker",
            workers: 1,
            timeout: Duration::from_secs(10),
            memory_limit_bytes: 1 << 30,
            background: true,
            max_jobs,
        })
    }

    #[tokio::test]
    async fn one_child_does_many_jobs_and_is_replaced_after_max_jobs() {
        let d = tempfile::tempdir().unwrap();
        let exe = script(d.path(), r#"while read line; do echo "{\"pid\":$$}"; done"#);
        let p = pool(exe, 3);
        let mut pids = Vec::new();
        for _ in 0..6 {
            pids.push(p.call(serde_json::json!({})).await.unwrap()["pid"].as_u64().unwrap());
        }
        assert_eq!(pids[0], pids[1]);
        assert_eq!(pids[1], pids[2]);
        assert_ne!(pids[2], pids[3], "replaced after three jobs: {pids:?}");
        assert_eq!(pids[3], pids[5]);
    }

    #[tokio::test]
    async fn a_job_that_kills_its_child_fails_alone_and_the_next_job_gets_a_new_child() {
        let d = tempfile::tempdir().unwrap();
        let exe = script(
            d.path(),
            r#"while read line; do case "$line" in *crash*) kill -SEGV $$;; esac; echo "{\"pid\":$$}"; done"#,
        );
        let p = pool(exe, 100);
        let first = p.call(serde_json::json!({"file": "a"})).await.unwrap();
        let crash = p.call(serde_json::json!({"file": "crash"})).await.unwrap_err();
        assert!(crash.contains("test worker crashed (SIGSEGV"), "{crash}");
        let after = p.call(serde_json::json!({"file": "b"})).await.unwrap();
        assert_ne!(first["pid"], after["pid"]);
    }

    #[test]
    fn the_render_worker_answers_each_line() {
        let input = "not json\n{\"thumbnail\":{}}\n";
        let mut out = Vec::new();
        serve_render(input.as_bytes(), &mut out).unwrap();
        let lines: Vec<serde_json::Value> =
            out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.get("error").is_some()), "{lines:?}");
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
