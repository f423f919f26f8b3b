//! Configuration: TOML text → a validated [`Config`].
//!
//! Two steps, as in ripgrep: a raw parse that mirrors the file (every field
//! remembers where it was written), then a resolved form the rest of the
//! program uses. Every error names the file, the line and the key. Unknown
//! keys are errors: a typo in `after_ingest` must not silently keep files.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use toml::Spanned;

use crate::naming::{NamePattern, DEFAULT_PATTERN};

/// How a station's folder is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// inotify events plus periodic rescans (local disks).
    Events,
    /// Rescans only, every `poll_secs` (network mounts deliver no events).
    Poll,
}

/// What happens to a dock file once its original is stored and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterIngest {
    Keep,
    /// Removed only after the stored copy was re-read and its hash matched,
    /// and the index row is committed.
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON lines otherwise.
    Auto,
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (for messages and reloads).
    pub source: PathBuf,
    /// The archive and the SQLite index live below it.
    pub state_dir: PathBuf,
    pub stations: Vec<StationConfig>,
    pub ingest: IngestConfig,
    pub probe: ProbeConfig,
    pub log: LogConfig,
    pub deadlines: DeadlineConfig,
    pub alerts: AlertConfig,
    pub api: ApiConfig,
    pub cases: CasesConfig,
    pub retention: RetentionConfig,
    pub exports: ExportsConfig,
    pub audit: AuditConfig,
    pub renditions: RenditionConfig,
    /// Where the index is: SQLite below `state_dir` (the default) or a
    /// PostgreSQL database shared by a district.
    pub index: IndexLocation,
    /// This host's name in a district (it claims its stations under it).
    pub host: String,
    pub archive: ArchiveConfig,
}

/// Where originals and renditions are stored.
#[derive(Debug, Clone, Default)]
pub struct ArchiveConfig {
    /// The local archive folder is one every host of a district mounts at
    /// the same path (a shared file system).
    pub shared: bool,
    /// The archive is an S3 bucket (the local folder is then a cache).
    pub s3: Option<S3Config>,
}

/// Object Lock retention mode for originals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Nobody, root included, can delete or shorten before the date.
    Compliance,
    /// Users with a special permission can; for trials only.
    Governance,
}

/// An S3-compatible bucket with Object Lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// `http(s)://host:port` of a non-AWS server (MinIO, Ceph, moto).
    pub endpoint: Option<String>,
    pub path_style: bool,
    /// TOML with access_key_id, secret_access_key (and session_token);
    /// without it, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
    pub credentials_file: Option<PathBuf>,
    pub lock_mode: LockMode,
    /// Run against a bucket without Object Lock (explicit opt-out).
    pub allow_without_object_lock: bool,
    /// Files larger than this go up in parts of this size.
    pub part_size: u64,
    pub parallel_parts: usize,
}

/// Where the index is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexLocation {
    /// SQLite at this path.
    Sqlite(PathBuf),
    /// PostgreSQL at this URL (`postgres://user[:password]@host[:port]/db`).
    Postgres(String),
}

/// The 24-hour rule.
#[derive(Debug, Clone)]
pub struct DeadlineConfig {
    /// Time from the end of a recording to its storage deadline.
    pub storage: Duration,
    /// A file not stored this long before its deadline is at risk.
    pub warn_before: Duration,
}

#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// How often time-based alerts are evaluated (at most a minute).
    pub evaluate: Duration,
    /// How long a station may be missing before `station_unavailable`.
    pub station_grace: Duration,
    /// `storage_low` below this much free space on the archive.
    pub storage_low_bytes: u64,
    /// How long a degraded watch (lost events) stays reported.
    pub degraded_hold: Duration,
    pub webhooks: Vec<WebhookConfig>,
    /// First retry delay of a failed webhook delivery (then doubling).
    pub webhook_retry: Duration,
    pub webhook_retry_max: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    /// Key of the `X-Bodycamd-Signature` HMAC-SHA256.
    pub secret: String,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the HTTP API and `/metrics` listen; `None` when switched off.
    pub listen: Option<std::net::SocketAddr>,
    pub tokens: Vec<TokenConfig>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// A connection that does not send a request's headers within this (an
    /// idle keep-alive connection too) is closed.
    pub header_timeout: Duration,
    /// A request body that stalls this long is refused.
    pub body_timeout: Duration,
    /// Requests without a valid token accepted per remote address and
    /// minute; more are answered 429.
    pub auth_failures_per_minute: u32,
}

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Case management, CAD/RMS: cases, media queries and downloads.
    CaseSystem,
    /// Administrators: stations, alerts, status.
    Admin,
    /// Auditors: the audit log.
    Auditor,
    /// Responsible heads: approve or deny requests for copies (exports).
    Approver,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CaseSystem => "case_system",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Approver => "approver",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// Who this token is, in the audit log.
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token (the token itself is never stored).
    pub sha256: [u8; 32],
    /// Granted access to restricted records.
    pub restricted: bool,
}

/// Playable renditions and thumbnails.
#[derive(Debug, Clone)]
pub struct RenditionConfig {
    pub enabled: bool,
    /// Renditions made at once (each uses the cores through the encoder).
    pub workers: usize,
    /// Encoded video is scaled down to at most this height.
    pub max_height: u32,
    /// libx264 preset and CRF for transcoded video.
    pub preset: String,
    pub crf: u32,
    pub audio_bitrate: u32,
    /// Whether video originals that are not browser-playable are transcoded.
    pub transcode_video: bool,
    /// Whether audio originals that are not browser-playable are transcoded.
    pub transcode_audio: bool,
    pub thumbnails: bool,
    /// Longest side of a thumbnail, in pixels.
    pub thumbnail_size: u32,
    /// Time limit of one rendition (the worker is killed after it).
    pub timeout: Duration,
    /// Address-space limit of a render worker.
    pub memory_limit_bytes: u64,
    pub max_attempts: u32,
    pub retry_base: Duration,
}

/// Cases from case systems.
#[derive(Debug, Clone)]
pub struct CasesConfig {
    /// Longest time window a case may give.
    pub max_window: Duration,
    /// A closed case must be archived within this many days.
    pub archive_days: u32,
}

/// How long evidence is kept.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Ordinary recordings are kept at least this long from their recording date.
    pub default: Duration,
    /// Expired originals stay in the recoverable trash this long.
    pub trash_days: u32,
    /// How often the retention pass runs in the daemon.
    pub every: Duration,
    /// The pass lists what expires within this window.
    pub warn_within: Duration,
}

/// Approved copies.
#[derive(Debug, Clone)]
pub struct ExportsConfig {
    /// An approved export can be downloaded for this long.
    pub expire: Duration,
}

/// The audit chain.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// How often the signed head is written.
    pub head_every: Duration,
}

#[derive(Debug, Clone)]
pub struct StationConfig {
    pub id: String,
    pub path: PathBuf,
    pub pattern: Option<NamePattern>,
    pub timezone: Tz,
    /// How long size, mtime and ctime must stay unchanged.
    pub settle: Duration,
    pub watch: WatchMode,
    pub after_ingest: AfterIngest,
    /// Full rescans in `events` mode, so nothing depends on an event arriving.
    pub rescan: Duration,
    /// Rescan period in `poll` mode (and after a fall-back to polling).
    pub poll: Duration,
    /// Extra names (globs over the path relative to the station) never taken.
    pub ignore: GlobSet,
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Files stored at once (I/O bound).
    pub workers: usize,
    /// Attempts to store one file before it is reported as failed.
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A file whose attempts are used up is tried again this long after its
    /// last attempt (and at once when an administrator asks).
    pub failed_retry: Duration,
    /// How long a stop (or reload) lets in-flight copies finish before they
    /// are abandoned (their dock files stay and are stored at the next run).
    pub shutdown_grace: Duration,
    /// Free space the archive keeps after a copy; a file that would cut into
    /// it is not copied (and is retried later).
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Prober child processes.
    pub workers: usize,
    /// Time limit for describing one file.
    pub timeout: Duration,
    /// Address-space limit of a prober process.
    pub memory_limit_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

/// A configuration error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": `{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// All the errors found in one file (validation goes on after the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Seconds, written as an integer or a float (`settle_secs = 0.5` in tests).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Secs {
    Int(i64),
    Float(f64),
}

impl Secs {
    fn get(self) -> f64 {
        match self {
            Secs::Int(i) => i as f64,
            Secs::Float(f) => f,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Spanned<String>,
    #[serde(default)]
    stations: Vec<Spanned<RawStation>>,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    probe: RawProbe,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    deadlines: RawDeadlines,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    cases: RawCases,
    #[serde(default)]
    renditions: RawRenditions,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    exports: RawExports,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    index: RawIndex,
    #[serde(default)]
    host: RawHost,
    #[serde(default)]
    archive: RawArchive,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    shared: Option<bool>,
    s3: Option<RawS3>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    bucket: Spanned<String>,
    region: Option<String>,
    endpoint: Option<Spanned<String>>,
    path_style: Option<bool>,
    credentials_file: Option<Spanned<String>>,
    lock_mode: Option<Spanned<String>>,
    allow_without_object_lock: Option<bool>,
    part_size_mb: Option<Spanned<i64>>,
    parallel_parts: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    url: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    default: Option<Spanned<String>>,
    trash_days: Option<Spanned<i64>>,
    every: Option<Spanned<String>>,
    warn_within: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExports {
    expire: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    head_every: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDeadlines {
    storage_deadline: Option<Spanned<String>>,
    warn_before: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    evaluate_every: Option<Spanned<String>>,
    station_grace: Option<Spanned<String>>,
    storage_low_mb: Option<Spanned<i64>>,
    degraded_hold: Option<Spanned<String>>,
    webhook_retry: Option<Spanned<String>>,
    webhook_retry_max: Option<Spanned<String>>,
    #[serde(default)]
    webhooks: Vec<Spanned<RawWebhook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    secret: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApi {
    listen: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<i64>>,
    max_connections: Option<Spanned<i64>>,
    header_timeout: Option<Spanned<String>>,
    body_timeout: Option<Spanned<String>>,
    auth_failures_per_minute: Option<Spanned<i64>>,
    #[serde(default)]
    tokens: Vec<Spanned<RawToken>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    role: Role,
    token_sha256: Spanned<String>,
    #[serde(default)]
    restricted: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRenditions {
    enabled: Option<bool>,
    workers: Option<Spanned<i64>>,
    max_height: Option<Spanned<i64>>,
    preset: Option<Spanned<String>>,
    crf: Option<Spanned<i64>>,
    audio_bitrate_kbps: Option<Spanned<i64>>,
    transcode_video: Option<bool>,
    transcode_audio: Option<bool>,
    thumbnails: Option<bool>,
    thumbnail_size: Option<Spanned<i64>>,
    timeout: Option<Spanned<String>>,
    memory_limit_mb: Option<Spanned<i64>>,
    max_attempts: Option<Spanned<i64>>,
    retry_base: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCases {
    max_window: Option<Spanned<String>>,
    archive_days: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStation {
    id: Spanned<String>,
    path: Spanned<String>,
    pattern: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    settle_secs: Option<Spanned<Secs>>,
    watch: Option<WatchMode>,
    after_ingest: Option<AfterIngest>,
    rescan_secs: Option<Spanned<Secs>>,
    poll_secs: Option<Spanned<Secs>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    workers: Option<Spanned<i64>>,
    max_attempts: Option<Spanned<i64>>,
    retry_base_secs: Option<Spanned<Secs>>,
    retry_max_secs: Option<Spanned<Secs>>,
    failed_retry_secs: Option<Spanned<Secs>>,
    shutdown_grace_secs: Option<Spanned<Secs>>,
    min_free_mb: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    workers: Option<Spanned<i64>>,
    timeout_secs: Option<Spanned<Secs>>,
    memory_limit_mb: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<Spanned<String>>,
    format: Option<LogFormat>,
}

/// Collects errors with their positions while resolving.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn line_of(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|b| *b == b'\n').count() + 1
    }

    fn err(&mut self, span: Option<Range<usize>>, key: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_of(s)),
            key: key.into(),
            message: msg.into(),
        });
    }

    fn secs(&mut self, v: &Option<Spanned<Secs>>, key: &str, default: f64, min: f64, max: f64) -> Duration {
        let Some(v) = v else {
            return Duration::from_secs_f64(default);
        };
        let s = v.get_ref().get();
        if !(s.is_finite() && s >= min && s <= max) {
            self.err(Some(v.span()), key, format!("must be between {min} and {max} seconds, got {s}"));
            return Duration::from_secs_f64(default);
        }
        Duration::from_secs_f64(s)
    }

    /// A duration written like `24h`, `90m`, `1h 30m` or `500ms`.
    fn duration(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if d >= min && d <= max => d,
            Ok(_) => {
                self.err(
                    Some(v.span()),
                    key,
                    format!(
                        "must be between {} and {}, got {:?}",
                        humantime::format_duration(min),
                        humantime::format_duration(max),
                        v.get_ref()
                    ),
                );
                default
            }
            Err(e) => {
                self.err(
                    Some(v.span()),
                    key,
                    format!("{:?} is not a duration like \"24h\" or \"90m\": {e}", v.get_ref()),
                );
                default
            }
        }
    }

    fn int(&mut self, v: &Option<Spanned<i64>>, key: &str, default: i64, min: i64, max: i64) -> i64 {
        let Some(v) = v else { return default };
        let i = *v.get_ref();
        if i < min || i > max {
            self.err(Some(v.span()), key, format!("must be between {min} and {max}, got {i}"));
            return default;
        }
        i
    }

    fn path(&mut self, v: &Spanned<String>, key: &str) -> PathBuf {
        let raw = v.get_ref();
        if raw.is_empty() {
            self.err(Some(v.span()), key, "must not be empty");
        }
        let p = PathBuf::from(raw);
        let p = if p.is_absolute() {
            p
        } else {
            // Relative paths are relative to the configuration file.
            self.file.parent().unwrap_or(Path::new(".")).join(p)
        };
        normalize(&p)
    }
}

/// Lexically normalise a path (no symlink resolution: a station folder may
/// not exist yet when the configuration is checked).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Config::parse(path, &text)
    }

    /// Validate configuration text; `file` is used for messages and to
    /// resolve relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let abs_file = if file.is_absolute() {
            file.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(file)
        };
        let mut ctx = Ctx { file: &abs_file, text, errors: Vec::new() };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let mut key = key_from_message(e.message());
                if key.is_empty() {
                    key = key_at(text, e.span());
                }
                ctx.err(e.span(), key, e.message().trim().to_string());
                return Err(ConfigErrors(ctx.errors));
            }
        };
        let cfg = resolve(&mut ctx, raw);
        if ctx.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(ctx.errors))
        }
    }

    /// Where the SQLite index lives.
    /// The SQLite index's path (below `state_dir` unless `index.path` says
    /// otherwise; unused with PostgreSQL).
    pub fn index_path(&self) -> PathBuf {
        match &self.index {
            IndexLocation::Sqlite(p) => p.clone(),
            IndexLocation::Postgres(_) => self.state_dir.join("index.sqlite3"),
        }
    }

    /// Where the content-addressed archive lives.
    pub fn archive_dir(&self) -> PathBuf {
        self.state_dir.join("archive")
    }

    /// Where playable renditions and thumbnails are stored.
    pub fn renditions_dir(&self) -> PathBuf {
        self.state_dir.join("renditions")
    }

    pub fn station(&self, id: &str) -> Option<&StationConfig> {
        self.stations.iter().find(|s| s.id == id)
    }
}

/// serde names the offending field in its messages (``unknown field `x` ``,
/// ``missing field `x` ``); toml gives the span.
fn key_from_message(msg: &str) -> String {
    msg.split('`').nth(1).unwrap_or("").to_string()
}

/// The key written on the line an error points at (`duplicate key` and
/// syntax errors carry no name in their message).
fn key_at(text: &str, span: Option<Range<usize>>) -> String {
    let Some(span) = span else { return String::new() };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((k, _)) if !k.trim().is_empty() && !k.contains('[') => k.trim().trim_matches('"').to_string(),
        _ => String::new(),
    }
}

fn resolve(ctx: &mut Ctx<'_>, raw: RawConfig) -> Config {
    let state_dir = ctx.path(&raw.state_dir, "state_dir");
    let mut stations = Vec::new();
    let mut ids = HashSet::new();
    for (i, st) in raw.stations.iter().enumerate() {
        let st = st.get_ref();
        let k = |name: &str| format!("stations[{i}].{name}");
        let id = st.id.get_ref().clone();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            ctx.err(
                Some(st.id.span()),
                k("id"),
                format!("{id:?} must be 1-64 characters of A-Z a-z 0-9 . _ - (not starting with _)"),
            );
        } else if !ids.insert(id.clone()) {
            ctx.err(Some(st.id.span()), k("id"), format!("station {id:?} is defined twice"));
        }
        let path = ctx.path(&st.path, &k("path"));
        let timezone = match &st.timezone {
            None => chrono_tz::UTC,
            Some(tz) => match tz.get_ref().parse::<Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    ctx.err(
                        Some(tz.span()),
                        k("timezone"),
                        format!("{:?} is not an IANA time zone name (like \"Asia/Shanghai\")", tz.get_ref()),
                    );
                    chrono_tz::UTC
                }
            },
        };
        let pattern_text = st.pattern.as_ref().map(|p| p.get_ref().as_str()).unwrap_or(DEFAULT_PATTERN);
        let pattern = if pattern_text.is_empty() {
            None
        } else {
            match NamePattern::new(pattern_text, timezone) {
                Ok(p) => Some(p),
                Err(e) => {
                    let span = st.pattern.as_ref().map(|p| p.span());
                    ctx.err(span, k("pattern"), e.to_string());
                    None
                }
            }
        };
        let mut ignore = GlobSetBuilder::new();
        for g in &st.ignore {
            match Glob::new(g.get_ref()) {
                Ok(glob) => {
                    ignore.add(glob);
                }
                Err(e) => ctx.err(Some(g.span()), k("ignore"), e.to_string()),
            }
        }
        let settle = ctx.secs(&st.settle_secs, &k("settle_secs"), 5.0, 0.0, 86_400.0);
        let rescan = ctx.secs(&st.rescan_secs, &k("rescan_secs"), 300.0, 0.05, 86_400.0);
        let poll = ctx.secs(&st.poll_secs, &k("poll_secs"), 10.0, 0.05, 86_400.0);
        stations.push(StationConfig {
            id,
            path,
            pattern,
            timezone,
            settle,
            watch: st.watch.unwrap_or(WatchMode::Events),
            after_ingest: st.after_ingest.unwrap_or(AfterIngest::Keep),
            rescan,
            poll,
            ignore: ignore.build().unwrap_or_else(|_| GlobSet::empty()),
        });
    }
    // Folders must not overlap each other or the state directory: bodycamd
    // would otherwise ingest its own archive, or one file twice. Compared by
    // name, and (where they exist) by what they are: links resolved, and the
    // device and inode of every folder above, so that a bind mount or a
    // symbolic link cannot hide the overlap.
    for (i, a) in stations.iter().enumerate() {
        let span = Some(raw.stations[i].get_ref().path.span());
        if a.path.starts_with(&state_dir)
            || state_dir.starts_with(&a.path)
            || fs_contains(&a.path, &state_dir)
            || fs_contains(&state_dir, &a.path)
        {
            ctx.err(
                span.clone(),
                format!("stations[{i}].path"),
                format!(
                    "{} overlaps state_dir {}; a station must not contain the archive",
                    a.path.display(),
                    state_dir.display()
                ),
            );
        }
        for b in &stations[..i] {
            if a.path.starts_with(&b.path)
                || b.path.starts_with(&a.path)
                || fs_contains(&a.path, &b.path)
                || fs_contains(&b.path, &a.path)
            {
                ctx.err(
                    span.clone(),
                    format!("stations[{i}].path"),
                    format!("{} overlaps station {:?} at {}", a.path.display(), b.id, b.path.display()),
                );
            }
        }
    }

    let ingest = IngestConfig {
        workers: ctx.int(&raw.ingest.workers, "ingest.workers", 2, 1, 64) as usize,
        max_attempts: ctx.int(&raw.ingest.max_attempts, "ingest.max_attempts", 5, 1, 1000) as u32,
        retry_base: ctx.secs(&raw.ingest.retry_base_secs, "ingest.retry_base_secs", 2.0, 0.0, 86_400.0),
        retry_max: ctx.secs(&raw.ingest.retry_max_secs, "ingest.retry_max_secs", 600.0, 0.0, 86_400.0),
        failed_retry: ctx.secs(&raw.ingest.failed_retry_secs, "ingest.failed_retry_secs", 3600.0, 0.1, 7.0 * 86_400.0),
        shutdown_grace: ctx.secs(&raw.ingest.shutdown_grace_secs, "ingest.shutdown_grace_secs", 30.0, 0.0, 3600.0),
        min_free_bytes: ctx.int(&raw.ingest.min_free_mb, "ingest.min_free_mb", 256, 0, 1 << 40) as u64 * 1024 * 1024,
    };
    let probe = ProbeConfig {
        workers: ctx.int(&raw.probe.workers, "probe.workers", 2, 1, 64) as usize,
        timeout: ctx.secs(&raw.probe.timeout_secs, "probe.timeout_secs", 60.0, 0.1, 86_400.0),
        memory_limit_bytes: ctx.int(&raw.probe.memory_limit_mb, "probe.memory_limit_mb", 2048, 64, 1 << 30) as u64
            * 1024
            * 1024,
    };
    let level = raw.log.level.as_ref().map(|l| l.get_ref().clone()).unwrap_or_else(|| "info".into());
    if let Some(l) = &raw.log.level {
        if tracing_subscriber::EnvFilter::try_new(l.get_ref()).is_err() {
            ctx.err(Some(l.span()), "log.level", format!("{:?} is not a log level or filter", l.get_ref()));
        }
    }
    const H: u64 = 3600;
    let deadlines = DeadlineConfig {
        storage: ctx.duration(
            &raw.deadlines.storage_deadline,
            "deadlines.storage_deadline",
            Duration::from_secs(24 * H),
            Duration::from_secs(60),
            Duration::from_secs(366 * 24 * H),
        ),
        warn_before: ctx.duration(
            &raw.deadlines.warn_before,
            "deadlines.warn_before",
            Duration::from_secs(2 * H),
            Duration::ZERO,
            Duration::from_secs(366 * 24 * H),
        ),
    };
    let mut webhooks = Vec::new();
    for (i, w) in raw.alerts.webhooks.iter().enumerate() {
        let w = w.get_ref();
        let url = w.url.get_ref().trim().to_string();
        match url::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => ctx.err(
                Some(w.url.span()),
                format!("alerts.webhooks[{i}].url"),
                format!("{url:?} is not an http:// or https:// URL"),
            ),
        }
        if w.secret.get_ref().len() < 16 {
            ctx.err(
                Some(w.secret.span()),
                format!("alerts.webhooks[{i}].secret"),
                "must be at least 16 characters (it keys the HMAC-SHA256 signature)",
            );
        }
        webhooks.push(WebhookConfig { url, secret: w.secret.get_ref().clone() });
    }
    let alerts = AlertConfig {
        evaluate: ctx.duration(
            &raw.alerts.evaluate_every,
            "alerts.evaluate_every",
            Duration::from_secs(60),
            Duration::from_millis(10),
            Duration::from_secs(60),
        ),
        station_grace: ctx.duration(
            &raw.alerts.station_grace,
            "alerts.station_grace",
            Duration::from_secs(600),
            Duration::ZERO,
            Duration::from_secs(30 * 24 * H),
        ),
        storage_low_bytes: ctx.int(&raw.alerts.storage_low_mb, "alerts.storage_low_mb", 10 * 1024, 0, 1 << 40) as u64
            * 1024
            * 1024,
        degraded_hold: ctx.duration(
            &raw.alerts.degraded_hold,
            "alerts.degraded_hold",
            Duration::from_secs(600),
            Duration::ZERO,
            Duration::from_secs(24 * H),
        ),
        webhooks,
        webhook_retry: ctx.duration(
            &raw.alerts.webhook_retry,
            "alerts.webhook_retry",
            Duration::from_secs(5),
            Duration::from_millis(10),
            Duration::from_secs(H),
        ),
        webhook_retry_max: ctx.duration(
            &raw.alerts.webhook_retry_max,
            "alerts.webhook_retry_max",
            Duration::from_secs(H),
            Duration::from_millis(10),
            Duration::from_secs(24 * H),
        ),
    };
    let listen = match &raw.api.listen {
        None => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8640))),
        Some(l) if l.get_ref().is_empty() || l.get_ref() == "off" => None,
        Some(l) => match l.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                ctx.err(
                    Some(l.span()),
                    "api.listen",
                    format!("{:?} is not an address like \"127.0.0.1:8640\" (or \"off\")", l.get_ref()),
                );
                None
            }
        },
    };
    let mut tokens = Vec::new();
    let mut names = HashSet::new();
    for (i, t) in raw.api.tokens.iter().enumerate() {
        let t = t.get_ref();
        let name = t.name.get_ref().trim().to_string();
        if name.is_empty() || name.len() > 64 {
            ctx.err(Some(t.name.span()), format!("api.tokens[{i}].name"), "must be 1-64 characters");
        } else if !names.insert(name.clone()) {
            ctx.err(Some(t.name.span()), format!("api.tokens[{i}].name"), format!("token name {name:?} is used twice"));
        }
        let mut sha = [0u8; 32];
        let hex_ok = t.token_sha256.get_ref().len() == 64
            && hex::decode_to_slice(t.token_sha256.get_ref().to_ascii_lowercase(), &mut sha).is_ok();
        if !hex_ok {
            ctx.err(
                Some(t.token_sha256.span()),
                format!("api.tokens[{i}].token_sha256"),
                "must be the 64 hex digits of the token's SHA-256 (e.g. `printf %s TOKEN | sha256sum`)",
            );
        }
        tokens.push(TokenConfig { name, role: t.role, sha256: sha, restricted: t.restricted });
    }
    let max_body_bytes = ctx.int(&raw.api.max_body_bytes, "api.max_body_bytes", 1 << 20, 1024, 64 << 20) as usize;
    let cases = CasesConfig {
        max_window: ctx.duration(
            &raw.cases.max_window,
            "cases.max_window",
            Duration::from_secs(24 * H),
            Duration::from_secs(60),
            Duration::from_secs(366 * 24 * H),
        ),
        archive_days: ctx.int(&raw.cases.archive_days, "cases.archive_days", 30, 1, 3650) as u32,
    };
    const DAY: u64 = 24 * H;
    let retention = RetentionConfig {
        default: ctx.duration(
            &raw.retention.default,
            "retention.default",
            Duration::from_secs(183 * DAY),
            Duration::from_secs(DAY),
            Duration::from_secs(100 * 366 * DAY),
        ),
        trash_days: ctx.int(&raw.retention.trash_days, "retention.trash_days", 7, 1, 3650) as u32,
        every: ctx.duration(
            &raw.retention.every,
            "retention.every",
            Duration::from_secs(DAY),
            Duration::from_secs(60),
            Duration::from_secs(31 * DAY),
        ),
        warn_within: ctx.duration(
            &raw.retention.warn_within,
            "retention.warn_within",
            Duration::from_secs(7 * DAY),
            Duration::from_secs(0),
            Duration::from_secs(366 * DAY),
        ),
    };
    let exports = ExportsConfig {
        expire: ctx.duration(
            &raw.exports.expire,
            "exports.expire",
            Duration::from_secs(7 * DAY),
            Duration::from_secs(60),
            Duration::from_secs(366 * DAY),
        ),
    };
    let audit = AuditConfig {
        head_every: ctx.duration(
            &raw.audit.head_every,
            "audit.head_every",
            Duration::from_secs(300),
            Duration::from_millis(100),
            Duration::from_secs(DAY),
        ),
    };
    let r = &raw.renditions;
    const PRESETS: &[&str] =
        &["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"];
    let preset = match &r.preset {
        Some(p) if PRESETS.contains(&p.get_ref().as_str()) => p.get_ref().clone(),
        Some(p) => {
            ctx.err(
                Some(p.span()),
                "renditions.preset",
                format!("{:?} is not an x264 preset ({})", p.get_ref(), PRESETS.join(", ")),
            );
            "veryfast".into()
        }
        None => "veryfast".into(),
    };
    let renditions = RenditionConfig {
        enabled: r.enabled.unwrap_or(true),
        workers: ctx.int(&r.workers, "renditions.workers", 1, 1, 16) as usize,
        max_height: ctx.int(&r.max_height, "renditions.max_height", 1080, 120, 4320) as u32,
        preset,
        crf: ctx.int(&r.crf, "renditions.crf", 23, 0, 51) as u32,
        audio_bitrate: ctx.int(&r.audio_bitrate_kbps, "renditions.audio_bitrate_kbps", 128, 16, 512) as u32 * 1000,
        transcode_video: r.transcode_video.unwrap_or(true),
        transcode_audio: r.transcode_audio.unwrap_or(true),
        thumbnails: r.thumbnails.unwrap_or(true),
        thumbnail_size: ctx.int(&r.thumbnail_size, "renditions.thumbnail_size", 320, 16, 4096) as u32,
        timeout: ctx.duration(
            &r.timeout,
            "renditions.timeout",
            Duration::from_secs(2 * H),
            Duration::from_millis(100),
            Duration::from_secs(48 * H),
        ),
        memory_limit_bytes: ctx.int(&r.memory_limit_mb, "renditions.memory_limit_mb", 4096, 256, 1 << 20) as u64
            * 1024
            * 1024,
        max_attempts: ctx.int(&r.max_attempts, "renditions.max_attempts", 3, 1, 100) as u32,
        retry_base: ctx.duration(
            &r.retry_base,
            "renditions.retry_base",
            Duration::from_secs(30),
            Duration::from_millis(10),
            Duration::from_secs(24 * H),
        ),
    };
    let index = match (&raw.index.url, &raw.index.path) {
        (Some(u), None) => {
            let url = u.get_ref().trim().to_string();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                ctx.err(Some(u.span()), "index.url", "must be a PostgreSQL URL (postgres://user@host:port/database)");
            } else if let Err(e) = url.parse::<postgres::Config>() {
                ctx.err(Some(u.span()), "index.url", format!("is not a valid PostgreSQL URL: {e}"));
            }
            IndexLocation::Postgres(url)
        }
        (None, Some(p)) => IndexLocation::Sqlite(ctx.path(p, "index.path")),
        (None, None) => IndexLocation::Sqlite(state_dir.join("index.sqlite3")),
        (Some(u), Some(_)) => {
            ctx.err(Some(u.span()), "index", "give either url (PostgreSQL) or path (SQLite), not both");
            IndexLocation::Sqlite(state_dir.join("index.sqlite3"))
        }
    };
    let s3 = raw.archive.s3.as_ref().map(|r| {
        let bucket = r.bucket.get_ref().clone();
        // S3 bucket naming: 3-63 of a-z 0-9 . -, starting and ending alphanumeric.
        let ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && bucket.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
        if !ok {
            ctx.err(Some(r.bucket.span()), "archive.s3.bucket", format!("{bucket:?} is not a valid S3 bucket name"));
        }
        let endpoint = r.endpoint.as_ref().map(|e| {
            let v = e.get_ref().trim_end_matches('/').to_string();
            match url::Url::parse(&v) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => {
                    ctx.err(Some(e.span()), "archive.s3.endpoint", format!("{v:?} must be an http:// or https:// URL"))
                }
            }
            v
        });
        let lock_mode = match r.lock_mode.as_ref().map(|m| (m.get_ref().to_ascii_lowercase(), m.span())) {
            None => LockMode::Compliance,
            Some((m, _)) if m == "compliance" => LockMode::Compliance,
            Some((m, _)) if m == "governance" => LockMode::Governance,
            Some((m, span)) => {
                ctx.err(Some(span), "archive.s3.lock_mode", format!("{m:?} must be \"compliance\" or \"governance\""));
                LockMode::Compliance
            }
        };
        S3Config {
            bucket,
            region: r.region.clone().unwrap_or_else(|| "us-east-1".into()),
            endpoint,
            path_style: r.path_style.unwrap_or(true),
            credentials_file: r.credentials_file.as_ref().map(|p| ctx.path(p, "archive.s3.credentials_file")),
            lock_mode,
            allow_without_object_lock: r.allow_without_object_lock.unwrap_or(false),
            // S3 parts are 5 MiB to 5 GiB.
            part_size: ctx.int(&r.part_size_mb, "archive.s3.part_size_mb", 16, 5, 5120) as u64 * 1024 * 1024,
            parallel_parts: ctx.int(&r.parallel_parts, "archive.s3.parallel_parts", 4, 1, 64) as usize,
        }
    });
    let host = match &raw.host.name {
        Some(n) => {
            let name = n.get_ref().clone();
            if name.is_empty()
                || name.len() > 64
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                ctx.err(Some(n.span()), "host.name", format!("{name:?} must be 1-64 characters of A-Z a-z 0-9 . _ -"));
            }
            name
        }
        None => rustix::system::uname().nodename().to_string_lossy().into_owned(),
    };
    Config {
        index,
        host,
        archive: ArchiveConfig { shared: raw.archive.shared.unwrap_or(false), s3 },
        deadlines,
        alerts,
        cases,
        renditions,
        retention,
        exports,
        audit,
        api: ApiConfig {
            listen,
            tokens,
            max_body_bytes,
            max_connections: ctx.int(&raw.api.max_connections, "api.max_connections", 4096, 1, 100_000) as usize,
            header_timeout: ctx.duration(
                &raw.api.header_timeout,
                "api.header_timeout",
                Duration::from_secs(10),
                Duration::from_millis(100),
                Duration::from_secs(600),
            ),
            body_timeout: ctx.duration(
                &raw.api.body_timeout,
                "api.body_timeout",
                Duration::from_secs(30),
                Duration::from_millis(100),
                Duration::from_secs(3600),
            ),
            auth_failures_per_minute: ctx.int(
                &raw.api.auth_failures_per_minute,
                "api.auth_failures_per_minute",
                60,
                1,
                1_000_000,
            ) as u32,
        },
        source: ctx.file.to_path_buf(),
        state_dir,
        stations,
        ingest,
        probe,
        log: LogConfig { level, format: raw.log.format.unwrap_or(LogFormat::Auto) },
    }
}

/// Whether the folder `outer` contains `inner` (or is it) on the file
/// system: `inner`'s deepest existing folder is resolved (links followed),
/// and each folder from there up to the root is compared with `outer` by
/// device and inode (a bind mount of `outer` elsewhere is the same folder).
/// False when `outer` does not exist.
pub fn fs_contains(outer: &Path, inner: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(o) = std::fs::metadata(outer) else { return false };
    let id = (o.dev(), o.ino());
    let mut p = inner.to_path_buf();
    let real = loop {
        if let Ok(r) = std::fs::canonicalize(&p) {
            break r;
        }
        if !p.pop() {
            return false;
        }
    };
    real.ancestors().any(|a| std::fs::metadata(a).is_ok_and(|m| (m.dev(), m.ino()) == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(Path::new("/etc/bodycamd/bodycamd.toml"), text)
    }

    #[test]
    fn the_issue_example_parses() {
        let c = parse(
            r#"
state_dir = "/var/lib/bodycamd"
[[stations]]
id = "dock-01"
path = "/srv/docks/dock-01"
pattern = '^(?P<device>[^/]+)/[^/]*_(?P<officer>\d{6})_(?P<start>\d{14})_(?P<seq>\d{4})\.\w+$'
timezone = "Asia/Shanghai"
settle_secs = 5
watch = "events"
after_ingest = "keep"
"#,
        )
        .unwrap();
        let s = &c.stations[0];
        assert_eq!(s.id, "dock-01");
        assert_eq!(s.settle, Duration::from_secs(5));
        assert_eq!(s.watch, WatchMode::Events);
        assert_eq!(s.after_ingest, AfterIngest::Keep);
        assert_eq!(s.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(c.index_path(), Path::new("/var/lib/bodycamd/index.sqlite3"));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = parse("state_dir = \"/x\"\n[[stations]]\nid = \"a\"\npath = \"/d\"\nafter_injest = \"delete\"\n")
            .unwrap_err();
        let e = &e.0[0];
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key, "after_injest");
        let shown = e.to_string();
        assert!(shown.starts_with("/etc/bodycamd/bodycamd.toml:5: `after_injest`"), "{shown}");
    }

    #[test]
    fn bad_enum_value_names_the_line() {
        let e =
            parse("state_dir = \"/x\"\n[[stations]]\nid = \"a\"\npath = \"/d\"\nwatch = \"fanotify\"\n").unwrap_err();
        assert_eq!(e.0[0].line, Some(5));
        assert!(e.0[0].message.contains("fanotify"), "{}", e.0[0].message);
    }

    #[test]
    fn semantic_errors_are_all_reported_with_lines_and_keys() {
        let e = parse(
            "state_dir = \"/srv/docks\"\n\
             [[stations]]\nid = \"a b\"\npath = \"/srv/docks/a\"\ntimezone = \"Mars/Olympus\"\n\
             pattern = \"(?P<badge>x)\"\nsettle_secs = -1\n",
        )
        .unwrap_err();
        let keys: Vec<_> = e.0.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert!(keys.contains(&("stations[0].id", Some(3))), "{keys:?}");
        assert!(keys.contains(&("stations[0].timezone", Some(5))), "{keys:?}");
        assert!(keys.contains(&("stations[0].pattern", Some(6))), "{keys:?}");
        assert!(keys.contains(&("stations[0].settle_secs", Some(7))), "{keys:?}");
        assert!(keys.contains(&("stations[0].path", Some(4))), "{keys:?}");
    }

    #[test]
    fn deadlines_alerts_and_webhooks() {
        let c = parse(
            "state_dir = \"/x\"\n[deadlines]\nstorage_deadline = \"12h\"\nwarn_before = \"90m\"\n\
             [alerts]\nstation_grace = \"5m\"\n[[alerts.webhooks]]\nurl = \"https://soc.example/hook\"\nsecret = \"0123456789abcdef\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        assert_eq!(c.deadlines.storage, Duration::from_secs(12 * 3600));
        assert_eq!(c.deadlines.warn_before, Duration::from_secs(90 * 60));
        assert_eq!(c.alerts.station_grace, Duration::from_secs(300));
        assert_eq!(c.alerts.webhooks[0].url, "https://soc.example/hook");
        assert_eq!(c.api.listen.unwrap().port(), 0);
        let defaults = parse("state_dir = \"/x\"\n").unwrap();
        assert_eq!(defaults.deadlines.storage, Duration::from_secs(24 * 3600));
        assert_eq!(defaults.api.listen.unwrap().to_string(), "127.0.0.1:8640");
        let e = parse(
            "state_dir = \"/x\"\n[deadlines]\nstorage_deadline = \"a day\"\n[[alerts.webhooks]]\nurl = \"ftp://x\"\nsecret = \"short\"\n",
        )
        .unwrap_err();
        let keys: Vec<_> = e.0.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert!(keys.contains(&("deadlines.storage_deadline", Some(3))), "{keys:?}");
        assert!(keys.contains(&("alerts.webhooks[0].url", Some(5))), "{keys:?}");
        assert!(keys.contains(&("alerts.webhooks[0].secret", Some(6))), "{keys:?}");
    }

    #[test]
    fn overlap_behind_a_symbolic_link_is_found() {
        let d = tempfile::tempdir().unwrap();
        let dock = d.path().join("dock");
        std::fs::create_dir_all(dock.join("inner")).unwrap();
        std::os::unix::fs::symlink(dock.join("inner"), d.path().join("state")).unwrap();
        assert!(fs_contains(&dock, &d.path().join("state/archive")), "a state dir that is a link into the dock");
        assert!(!fs_contains(&d.path().join("state/x"), &dock));
        assert!(!fs_contains(&d.path().join("none"), &dock));
    }

    #[test]
    fn duplicate_and_nested_stations_are_rejected() {
        let e = parse(
            "state_dir = \"/var/lib/b\"\n[[stations]]\nid = \"a\"\npath = \"/d\"\n\
             [[stations]]\nid = \"a\"\npath = \"/d/sub\"\n",
        )
        .unwrap_err();
        let msgs = e.to_string();
        assert!(msgs.contains("defined twice"), "{msgs}");
        assert!(msgs.contains("overlaps station"), "{msgs}");
    }

    #[test]
    fn missing_state_dir_and_syntax_errors() {
        let e = parse("[ingest]\nworkers = 2\n").unwrap_err();
        assert!(e.0[0].message.contains("state_dir"), "{}", e);
        let e = parse("state_dir = \n").unwrap_err();
        assert_eq!(e.0[0].line, Some(1));
        let e = parse("state_dir = \"/a\"\n[ingest]\nworkers = 1\nworkers = 2\n").unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].key.as_str()), (Some(4), "workers"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_the_file_and_fractions_work() {
        let c = parse("state_dir = \"state\"\n[[stations]]\nid = \"a\"\npath = \"../docks/a\"\nsettle_secs = 0.25\n")
            .unwrap();
        assert_eq!(c.state_dir, Path::new("/etc/bodycamd/state"));
        assert_eq!(c.stations[0].path, Path::new("/etc/docks/a"));
        assert_eq!(c.stations[0].settle, Duration::from_millis(250));
    }
}
