//! The S3 archive tier: originals and renditions in an S3-compatible bucket
//! with Object Lock, the system of record for a district. The local
//! archive folder stays as this host's cache (and the staging area every
//! copy is hashed into); an object is read from the bucket into it when a
//! host needs one it does not hold.
//!
//! - Keys: `objects/ab/<blake3 hex>` for originals, `renditions/ab/<hex>`
//!   for renditions. The BLAKE3 is also object metadata (`blake3`), with
//!   the whole object's SHA-256 (`sha256`).
//! - Create-once: `If-None-Match: *`; a 412 means the key exists, and the
//!   existing object must then show the same BLAKE3 and size.
//! - Integrity in transit: each PUT (or part) carries its SHA-256, computed
//!   in the same pass as BLAKE3 while the dock file was copied; the server
//!   refuses bytes that do not match.
//! - Large files go up in parts read straight from the staged file (memory
//!   bounded by the SDK's read buffers, whatever the file size).
//! - Originals are written under Object Lock (COMPLIANCE unless configured
//!   GOVERNANCE) until their retention end plus the trash period. Locks are
//!   only ever extended, never shortened or downgraded, whatever the server
//!   would allow (moto allows both).
//!
//! Everything here is blocking (it runs in the store workers' blocking
//! threads and in the CLI): the SDK's futures run on a small runtime of
//! this module's own.

use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::{ByteStream, DateTime, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};
use aws_sdk_s3::Client;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::config::{LockMode, S3Config};
use crate::domain::MediaId;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("S3 {op} {key}: {msg}")]
    Request { op: &'static str, key: String, msg: String },
    #[error("S3 object {key} exists with other content: {msg}")]
    Mismatch { key: String, msg: String },
    #[error("S3 bucket {bucket}: {msg}")]
    Bucket { bucket: String, msg: String },
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
}

/// SHA-256 digests of a copy: of the whole, and of each upload part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256s {
    pub whole: [u8; 32],
    pub parts: Vec<[u8; 32]>,
    pub part_size: u64,
}

/// Running SHA-256 of the whole and of each `part_size` slice.
pub(crate) struct ShaParts {
    whole: Sha256,
    part: Sha256,
    in_part: u64,
    part_size: u64,
    parts: Vec<[u8; 32]>,
}

impl ShaParts {
    pub(crate) fn new(part_size: u64) -> ShaParts {
        ShaParts { whole: Sha256::new(), part: Sha256::new(), in_part: 0, part_size, parts: Vec::new() }
    }

    pub(crate) fn update(&mut self, mut b: &[u8]) {
        self.whole.update(b);
        while !b.is_empty() {
            let take = ((self.part_size - self.in_part) as usize).min(b.len());
            self.part.update(&b[..take]);
            self.in_part += take as u64;
            b = &b[take..];
            if self.in_part == self.part_size {
                self.parts.push(std::mem::take(&mut self.part).finalize().into());
                self.in_part = 0;
            }
        }
    }

    pub(crate) fn finish(mut self) -> Sha256s {
        if self.in_part > 0 || self.parts.is_empty() {
            self.parts.push(self.part.finalize().into());
        }
        Sha256s { whole: self.whole.finalize().into(), parts: self.parts, part_size: self.part_size }
    }
}

fn b64(d: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

/// Which tree of the bucket an object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    Originals,
    Renditions,
}

pub fn key(tree: Tree, id: &MediaId) -> String {
    let hex = id.to_hex();
    let top = match tree {
        Tree::Originals => "objects",
        Tree::Renditions => "renditions",
    };
    format!("{top}/{}/{hex}", &hex[..2])
}

/// What a HEAD of an object says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub size: u64,
    pub blake3: Option<String>,
    pub sha256: Option<String>,
    pub lock_mode: Option<String>,
    pub retain_until_ms: Option<i64>,
    pub legal_hold: bool,
    pub version_id: Option<String>,
}

/// An object's lock as it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub until_ms: i64,
}

pub struct S3Store {
    client: Client,
    bucket: String,
    mode: LockMode,
    part_size: u64,
    parallel: usize,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for S3Store {
    fn drop(&mut self) {
        // Dropped anywhere, even inside the daemon's runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store").field("bucket", &self.bucket).finish()
    }
}

fn sdk_msg<E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    match e {
        SdkError::ServiceError(se) => {
            let m = aws_sdk_s3::error::ProvideErrorMetadata::meta(se.err());
            match (m.code(), m.message()) {
                (Some(c), Some(msg)) => format!("{c}: {msg}"),
                _ => format!("HTTP {}: {}", se.raw().status().as_u16(), aws_sdk_s3::error::DisplayErrorContext(e)),
            }
        }
        other => format!("{}", aws_sdk_s3::error::DisplayErrorContext(other)),
    }
}

fn status<E, R: HasStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(|r| r.status_code())
}

/// The HTTP status of an SDK error's raw response.
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl S3Store {
    /// A client for the configured bucket. Credentials come from the
    /// configured file, or from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
    /// (and `AWS_SESSION_TOKEN`).
    pub fn connect(cfg: &S3Config) -> Result<Arc<S3Store>, S3Error> {
        let bucket_err = |msg: String| S3Error::Bucket { bucket: cfg.bucket.clone(), msg };
        let (id, secret, token) = credentials(cfg).map_err(bucket_err)?;
        let creds = aws_sdk_s3::config::Credentials::new(id, secret, token, None, "bodycamd");
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(cfg.region.clone()))
            .credentials_provider(creds)
            .force_path_style(cfg.path_style)
            .http_client(http)
            // A bucket that hangs must not hold a store worker or an API
            // request for ever: it becomes an outage, retried.
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .read_timeout(std::time::Duration::from_secs(60))
                    .build(),
            )
            // Several S3-compatible servers reject the SDK's default CRC32
            // trailers; bodycamd sends its own SHA-256 where it matters.
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired);
        if let Some(e) = &cfg.endpoint {
            b = b.endpoint_url(e);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3")
            .enable_all()
            .build()
            .map_err(S3Error::Io)?;
        Ok(Arc::new(S3Store {
            client: Client::from_conf(b.build()),
            bucket: cfg.bucket.clone(),
            mode: cfg.lock_mode,
            part_size: cfg.part_size,
            parallel: cfg.parallel_parts.max(1),
            rt: Some(rt),
        }))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        let rt = self.rt.as_ref().expect("the runtime lives as long as the store");
        crate::index::pg::blocking(|| rt.block_on(f))
    }

    /// Whether the bucket has Object Lock enabled (refuse it otherwise).
    pub fn check_bucket(&self) -> Result<bool, S3Error> {
        self.block(async {
            match self.client.get_object_lock_configuration().bucket(&self.bucket).send().await {
                Ok(o) => Ok(o
                    .object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    .is_some_and(|e| *e == ObjectLockEnabled::Enabled)),
                Err(e) if status(&e) == Some(404) && !sdk_msg(&e).contains("NoSuchBucket") => Ok(false),
                Err(e) => Err(S3Error::Bucket { bucket: self.bucket.clone(), msg: sdk_msg(&e) }),
            }
        })
    }

    /// Abort multipart uploads that a crash left behind (begun before
    /// `before_ms`). Returns how many.
    pub fn abort_stale_uploads(&self, before_ms: i64) -> Result<usize, S3Error> {
        self.block(async {
            let mut n = 0;
            let mut marker: Option<(String, String)> = None;
            loop {
                let mut req = self.client.list_multipart_uploads().bucket(&self.bucket);
                if let Some((k, u)) = &marker {
                    req = req.key_marker(k).upload_id_marker(u);
                }
                let out = req.send().await.map_err(|e| S3Error::Request {
                    op: "ListMultipartUploads",
                    key: String::new(),
                    msg: sdk_msg(&e),
                })?;
                for u in out.uploads() {
                    let old = u.initiated().and_then(|t| t.to_millis().ok()).is_none_or(|t| t < before_ms);
                    if let (true, Some(k), Some(id)) = (old, u.key(), u.upload_id()) {
                        self.client
                            .abort_multipart_upload()
                            .bucket(&self.bucket)
                            .key(k)
                            .upload_id(id)
                            .send()
                            .await
                            .map_err(|e| S3Error::Request {
                                op: "AbortMultipartUpload",
                                key: k.to_string(),
                                msg: sdk_msg(&e),
                            })?;
                        tracing::info!(key = k, "aborted an interrupted multipart upload");
                        n += 1;
                    }
                }
                if out.is_truncated() != Some(true) {
                    return Ok(n);
                }
                marker = Some((
                    out.next_key_marker().unwrap_or_default().to_string(),
                    out.next_upload_id_marker().unwrap_or_default().to_string(),
                ));
            }
        })
    }

    /// HEAD an object (None if it does not exist).
    pub fn head(&self, tree: Tree, id: &MediaId) -> Result<Option<Head>, S3Error> {
        let k = key(tree, id);
        self.block(async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&k)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
            {
                Ok(o) => Ok(Some(Head {
                    size: o.content_length().unwrap_or(0).max(0) as u64,
                    blake3: o.metadata().and_then(|m| m.get("blake3").cloned()),
                    sha256: o.metadata().and_then(|m| m.get("sha256").cloned()),
                    lock_mode: o.object_lock_mode().map(|m| m.as_str().to_string()),
                    retain_until_ms: o.object_lock_retain_until_date().and_then(|d| d.to_millis().ok()),
                    legal_hold: o.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On),
                    version_id: o.version_id().map(str::to_string),
                })),
                Err(e) if status(&e) == Some(404) => Ok(None),
                Err(e) => Err(S3Error::Request { op: "HeadObject", key: k.clone(), msg: sdk_msg(&e) }),
            }
        })
    }

    /// Check that an existing object is the one with this id and size.
    fn same(&self, k: &str, id: &MediaId, size: u64, h: &Head) -> Result<(), S3Error> {
        let hex = id.to_hex();
        if h.size != size || h.blake3.as_deref() != Some(hex.as_str()) {
            return Err(S3Error::Mismatch {
                key: k.to_string(),
                msg: format!("{} bytes with BLAKE3 {:?}, expected {size} bytes with {hex}", h.size, h.blake3),
            });
        }
        Ok(())
    }

    /// Put the file at `path` (the bytes with this id) under its key,
    /// create-once. Returns false if the bucket already held it. `lock`:
    /// Object Lock retention (originals).
    pub fn put(
        &self,
        tree: Tree,
        id: &MediaId,
        path: &Path,
        size: u64,
        sha: Option<&Sha256s>,
        lock: Option<Lock>,
    ) -> Result<bool, S3Error> {
        let k = key(tree, id);
        // Known already: nothing to send (a large upload is not repeated
        // only to be refused at its end).
        if let Some(h) = self.head(tree, id)? {
            self.same(&k, id, size, &h)?;
            return Ok(false);
        }
        let owned;
        let sha = match sha {
            Some(s) if s.part_size == self.part_size => s,
            _ => {
                owned = sha_of_file(path, self.part_size)?;
                &owned
            }
        };
        let created = if size <= self.part_size {
            self.put_single(&k, id, path, size, sha, lock)?
        } else {
            self.put_multipart(&k, id, path, size, sha, lock)?
        };
        let multipart = size > self.part_size;
        if let (true, true, Some(l)) = (created, multipart, lock) {
            // Some servers drop the lock given at the start of a multipart
            // upload; make sure the object is locked (extend-only).
            self.extend_lock(id, l.until_ms)?;
        }
        if !created || multipart {
            let h = self.head(tree, id)?.ok_or_else(|| S3Error::Request {
                op: "HeadObject",
                key: k.clone(),
                msg: "refused as existing, but not found".into(),
            })?;
            self.same(&k, id, size, &h)?;
        }
        Ok(created)
    }

    fn lock_mode(&self) -> ObjectLockMode {
        match self.mode {
            LockMode::Compliance => ObjectLockMode::Compliance,
            LockMode::Governance => ObjectLockMode::Governance,
        }
    }

    fn put_single(
        &self,
        k: &str,
        id: &MediaId,
        path: &Path,
        size: u64,
        sha: &Sha256s,
        lock: Option<Lock>,
    ) -> Result<bool, S3Error> {
        self.block(async {
            let body = ByteStream::read_from()
                .path(path)
                .length(Length::Exact(size))
                .build()
                .await
                .map_err(|e| S3Error::Io(std::io::Error::other(e)))?;
            let mut req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(k)
                .body(body)
                .content_length(size as i64)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_sha256(b64(&sha.whole))
                .if_none_match("*")
                .metadata("blake3", id.to_hex())
                .metadata("sha256", hex::encode(sha.whole));
            if let Some(l) = lock {
                req = req
                    .object_lock_mode(self.lock_mode())
                    .object_lock_retain_until_date(DateTime::from_millis(l.until_ms));
            }
            match req.send().await {
                Ok(_) => Ok(true),
                Err(e) if status(&e) == Some(412) => Ok(false),
                Err(e) => Err(S3Error::Request { op: "PutObject", key: k.to_string(), msg: sdk_msg(&e) }),
            }
        })
    }

    fn put_multipart(
        &self,
        k: &str,
        id: &MediaId,
        path: &Path,
        size: u64,
        sha: &Sha256s,
        lock: Option<Lock>,
    ) -> Result<bool, S3Error> {
        let err = |op: &'static str, msg: String| S3Error::Request { op, key: k.to_string(), msg };
        self.block(async {
            let mut req = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(k)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .metadata("blake3", id.to_hex())
                .metadata("sha256", hex::encode(sha.whole));
            if let Some(l) = lock {
                req = req
                    .object_lock_mode(self.lock_mode())
                    .object_lock_retain_until_date(DateTime::from_millis(l.until_ms));
            }
            let up = req.send().await.map_err(|e| err("CreateMultipartUpload", sdk_msg(&e)))?;
            let upload_id = up.upload_id().unwrap_or_default().to_string();
            let r = self.send_parts(k, &upload_id, path, size, sha).await;
            let parts = match r {
                Ok(p) => p,
                Err(e) => {
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(k)
                        .upload_id(&upload_id)
                        .send()
                        .await;
                    return Err(e);
                }
            };
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(k)
                .upload_id(&upload_id)
                .if_none_match("*")
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await;
            match done {
                Ok(_) => Ok(true),
                // A 200 whose body the SDK cannot parse (moto answers a
                // conditional complete with another root element): the
                // upload completed; the HEAD below confirms it. A 200 with
                // an <Error> body has a code and is not taken for success.
                Err(e)
                    if status(&e) == Some(200)
                        && matches!(&e, SdkError::ServiceError(se)
                            if aws_sdk_s3::error::ProvideErrorMetadata::code(se.err()).is_none()) =>
                {
                    Ok(true)
                }
                Err(e) => {
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(k)
                        .upload_id(&upload_id)
                        .send()
                        .await;
                    if status(&e) == Some(412) {
                        Ok(false)
                    } else {
                        Err(err("CompleteMultipartUpload", sdk_msg(&e)))
                    }
                }
            }
        })
    }

    /// Send every part, `parallel` at a time, each read from its slice of
    /// the file as it goes (bounded memory).
    async fn send_parts(
        &self,
        k: &str,
        upload_id: &str,
        path: &Path,
        size: u64,
        sha: &Sha256s,
    ) -> Result<Vec<CompletedPart>, S3Error> {
        let count = size.div_ceil(self.part_size) as usize;
        if sha.parts.len() != count {
            return Err(S3Error::Io(std::io::Error::other("part checksums do not match the file size")));
        }
        let mut set = tokio::task::JoinSet::new();
        let mut done: Vec<CompletedPart> = Vec::with_capacity(count);
        let mut next = 0usize;
        while done.len() < count {
            while next < count && set.len() < self.parallel {
                let (client, bucket, key, uid) =
                    (self.client.clone(), self.bucket.clone(), k.to_string(), upload_id.to_string());
                let (p, digest) = (path.to_path_buf(), sha.parts[next]);
                let offset = next as u64 * self.part_size;
                let len = self.part_size.min(size - offset);
                let number = next as i32 + 1;
                set.spawn(async move {
                    let body = ByteStream::read_from()
                        .path(&p)
                        .offset(offset)
                        .length(Length::Exact(len))
                        .build()
                        .await
                        .map_err(|e| S3Error::Io(std::io::Error::other(e)))?;
                    let out = client
                        .upload_part()
                        .bucket(&bucket)
                        .key(&key)
                        .upload_id(&uid)
                        .part_number(number)
                        .content_length(len as i64)
                        .checksum_sha256(b64(&digest))
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| S3Error::Request { op: "UploadPart", key: key.clone(), msg: sdk_msg(&e) })?;
                    Ok::<_, S3Error>(
                        CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(out.e_tag().map(str::to_string))
                            .checksum_sha256(b64(&digest))
                            .build(),
                    )
                });
                next += 1;
            }
            match set.join_next().await {
                Some(Ok(Ok(p))) => done.push(p),
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => return Err(S3Error::Io(std::io::Error::other(e))),
                None => break,
            }
        }
        done.sort_by_key(|p| p.part_number());
        Ok(done)
    }

    /// Stream an object's bytes (the current version, or `version`) to
    /// `each`, chunk by chunk.
    fn read_each(
        &self,
        tree: Tree,
        id: &MediaId,
        version: Option<&str>,
        mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), S3Error> {
        let k = key(tree, id);
        self.block(async {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&k)
                .set_version_id(version.map(str::to_string))
                .send()
                .await
                .map_err(|e| S3Error::Request { op: "GetObject", key: k.clone(), msg: sdk_msg(&e) })?;
            let mut body = out.body;
            while let Some(chunk) = body.try_next().await.map_err(|e| S3Error::Request {
                op: "GetObject",
                key: k.clone(),
                msg: e.to_string(),
            })? {
                each(&chunk)?;
            }
            Ok(())
        })
    }

    /// Read an object into `dst` (created) and fsync it. The caller checks
    /// its hash. `version`: a given version rather than the current one.
    pub fn fetch(&self, tree: Tree, id: &MediaId, dst: &Path, version: Option<&str>) -> Result<(), S3Error> {
        use std::io::Write;
        let mut f = std::fs::File::create(dst)?;
        self.read_each(tree, id, version, |b| f.write_all(b))?;
        f.sync_all()?;
        Ok(())
    }

    /// BLAKE3 of an object's bytes as the bucket serves them now.
    pub fn hash_remote(&self, tree: Tree, id: &MediaId) -> Result<MediaId, S3Error> {
        let mut h = blake3::Hasher::new();
        self.read_each(tree, id, None, |b| {
            h.update(b);
            Ok(())
        })?;
        Ok(MediaId::from_hash(h.finalize()))
    }

    /// Every version (and delete marker, `true`) under an object's key,
    /// newest first.
    fn list_versions(&self, k: &str) -> Result<Vec<(String, bool)>, S3Error> {
        self.block(async {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(k)
                .send()
                .await
                .map_err(|e| S3Error::Request { op: "ListObjectVersions", key: k.to_string(), msg: sdk_msg(&e) })?;
            let when = |t: Option<&DateTime>| t.and_then(|t| t.to_millis().ok()).unwrap_or(0);
            let mut v: Vec<(i64, String, bool)> = out
                .versions()
                .iter()
                .filter(|v| v.key() == Some(k))
                .filter_map(|v| Some((when(v.last_modified()), v.version_id()?.to_string(), false)))
                .chain(
                    out.delete_markers()
                        .iter()
                        .filter(|m| m.key() == Some(k))
                        .filter_map(|m| Some((when(m.last_modified()), m.version_id()?.to_string(), true))),
                )
                .collect();
            v.sort_by_key(|x| std::cmp::Reverse(x.0));
            Ok(v.into_iter().map(|(_, id, marker)| (id, marker)).collect())
        })
    }

    /// The versions held under an object's key, newest first (delete
    /// markers left out).
    pub fn versions(&self, tree: Tree, id: &MediaId) -> Result<Vec<String>, S3Error> {
        Ok(self.list_versions(&key(tree, id))?.into_iter().filter(|(_, marker)| !marker).map(|(v, _)| v).collect())
    }

    /// Place or lift a legal hold on an original.
    pub fn set_legal_hold(&self, id: &MediaId, on: bool) -> Result<(), S3Error> {
        let k = key(Tree::Originals, id);
        let st = if on { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off };
        self.block(async {
            self.client
                .put_object_legal_hold()
                .bucket(&self.bucket)
                .key(&k)
                .legal_hold(ObjectLockLegalHold::builder().status(st).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| S3Error::Request { op: "PutObjectLegalHold", key: k.clone(), msg: sdk_msg(&e) })
        })
    }

    /// Make an original's lock last at least until `until_ms`. Never
    /// shortens it and never downgrades COMPLIANCE to GOVERNANCE, whatever
    /// the server would allow. Returns the retain-until date in force.
    pub fn extend_lock(&self, id: &MediaId, until_ms: i64) -> Result<i64, S3Error> {
        let k = key(Tree::Originals, id);
        self.block(async {
            // Read from HEAD, which every S3 server answers alike
            // (GetObjectRetention fails on some, moto among them).
            let current = match self.client.head_object().bucket(&self.bucket).key(&k).send().await {
                Ok(o) => Some((
                    o.object_lock_mode().map(|m| ObjectLockRetentionMode::from(m.as_str())),
                    o.object_lock_retain_until_date().and_then(|d| d.to_millis().ok()).unwrap_or(0),
                )),
                Err(e) => return Err(S3Error::Request { op: "HeadObject", key: k.clone(), msg: sdk_msg(&e) }),
            };
            let (cur_mode, cur_until) = current.unwrap_or((None, 0));
            if cur_until >= until_ms {
                return Ok(cur_until);
            }
            // COMPLIANCE stays COMPLIANCE; GOVERNANCE may be raised to it.
            let mode = match (cur_mode, self.mode) {
                (Some(ObjectLockRetentionMode::Compliance), _) | (_, LockMode::Compliance) => {
                    ObjectLockRetentionMode::Compliance
                }
                _ => ObjectLockRetentionMode::Governance,
            };
            self.client
                .put_object_retention()
                .bucket(&self.bucket)
                .key(&k)
                .retention(
                    ObjectLockRetention::builder()
                        .mode(mode)
                        .retain_until_date(DateTime::from_millis(until_ms))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| S3Error::Request { op: "PutObjectRetention", key: k.clone(), msg: sdk_msg(&e) })?;
            Ok(until_ms)
        })
    }

    /// Delete every version of an object (a purge, once the index says so
    /// and its lock has passed: the server refuses a locked version, and
    /// that error is returned). Returns how many versions went.
    pub fn delete_all_versions(&self, tree: Tree, id: &MediaId) -> Result<usize, S3Error> {
        let k = key(tree, id);
        let versions = self.list_versions(&k)?;
        self.block(async {
            for (v, _) in &versions {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&k)
                    .version_id(v)
                    .send()
                    .await
                    .map_err(|e| S3Error::Request { op: "DeleteObject", key: k.clone(), msg: sdk_msg(&e) })?;
            }
            Ok(versions.len())
        })
    }
}

/// SHA-256 digests of a file already on disk (renditions, or a copy staged
/// with another part size).
pub fn sha_of_file(path: &Path, part_size: u64) -> std::io::Result<Sha256s> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut s = ShaParts::new(part_size);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(s.finish());
        }
        s.update(&buf[..n]);
    }
}

/// Access key, secret and session token, from the configured file (TOML
/// keys `access_key_id`, `secret_access_key`, `session_token`) or the
/// environment.
fn credentials(cfg: &S3Config) -> Result<(String, String, Option<String>), String> {
    if let Some(p) = &cfg.credentials_file {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            access_key_id: String,
            secret_access_key: String,
            session_token: Option<String>,
        }
        let text = std::fs::read_to_string(p).map_err(|e| format!("credentials file {}: {e}", p.display()))?;
        let f: File = toml::from_str(&text).map_err(|e| format!("credentials file {}: {e}", p.display()))?;
        return Ok((f.access_key_id, f.secret_access_key, f.session_token));
    }
    match (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
        (Ok(a), Ok(s)) => Ok((a, s, std::env::var("AWS_SESSION_TOKEN").ok())),
        _ => {
            Err("no credentials: set archive.s3.credentials_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_digests_cover_each_slice_and_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = ShaParts::new(4096);
        for c in data.chunks(777) {
            s.update(c);
        }
        let d = s.finish();
        assert_eq!(d.parts.len(), 3);
        assert_eq!(d.whole, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(d.parts[1], <[u8; 32]>::from(Sha256::digest(&data[4096..8192])));
        assert_eq!(d.parts[2], <[u8; 32]>::from(Sha256::digest(&data[8192..])));
        // An exact multiple has no empty last part; an empty file has one.
        let mut s = ShaParts::new(4096);
        s.update(&data[..8192]);
        assert_eq!(s.finish().parts.len(), 2);
        assert_eq!(ShaParts::new(4096).finish().parts.len(), 1);
    }

    #[test]
    fn keys_shard_by_the_first_byte() {
        let id = MediaId([0xab; 32]);
        assert_eq!(key(Tree::Originals, &id), format!("objects/ab/{}", id.to_hex()));
        assert!(key(Tree::Renditions, &id).starts_with("renditions/ab/"));
    }
}
