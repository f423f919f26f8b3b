//! Media: queries with keyset pagination, one original, and its bytes
//! (streamed from the archive, with `Range` and an `ETag` that is its id).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::auth::{with_note, AuditNote, Caller, Clearance};
use super::cases::items;
use super::custody::visible_media;
use super::error::{media_id_param, time_param, ApiError, ErrorBody, PathParams, QueryParams};
use super::types::{MediaItem, MediaPage, MediaParams};
use super::ApiState;
use crate::clock::to_ms;
use crate::domain::MediaKind;
use crate::index::query::{self, MediaQuery};
use axum::Extension;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn encode_cursor(start_at: i64, id: &str) -> String {
    B64.encode(format!("{start_at}:{id}"))
}

pub fn decode_cursor(c: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "cursor is not one this API gave out");
    let raw = B64.decode(c).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (t, id) = text.split_once(':').ok_or_else(bad)?;
    let t = t.parse().map_err(|_| bad())?;
    let id = id.parse::<crate::domain::MediaId>().map_err(|_| bad())?;
    Ok((t, id.to_hex()))
}

/// Query originals by case, officer, device, station, kind, recording time
/// and timeliness, by recording start.
#[utoipa::path(
    get, path = "/api/v1/media", tag = "media",
    params(MediaParams),
    responses((status = 200, body = MediaPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, description = "No such case", body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    QueryParams(p): QueryParams<MediaParams>,
) -> Result<Response, ApiError> {
    let clearance = Clearance::of(&caller, &headers);
    let mut note = AuditNote::default();
    if let Some(case) = &p.case {
        note = super::custody::visible_case(&s, &caller, &headers, case).await?;
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_request", "limit must be between 1 and 1000"));
    }
    if let Some(k) = &p.kind {
        if MediaKind::parse(k).is_none() {
            return Err(ApiError::bad_request("invalid_request", "kind must be video, audio, photo or other"));
        }
    }
    let q = MediaQuery {
        case: p.case.clone(),
        officer: p.officer,
        device: p.device,
        station: p.station,
        kind: p.kind,
        from: p.from.as_deref().map(|t| time_param("from", t)).transpose()?.map(to_ms),
        to: p.to.as_deref().map(|t| time_param("to", t)).transpose()?.map(to_ms),
        on_time: p.on_time,
        after: p.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
        restricted: clearance.sees_restricted,
    };
    if clearance.sees_restricted {
        note.details = Some(format!("restricted records included; reason: {}", clearance.reason.unwrap_or_default()));
    }
    let (index, archive, see) = (s.index.clone(), s.archive.root().to_path_buf(), clearance.sees_restricted);
    let (rows, media) = tokio::task::spawn_blocking(move || {
        index.read(|c| {
            let rows = query::media_page(c, &q)?;
            let media = items(c, &rows, &archive, see)?;
            Ok((rows, media))
        })
    })
    .await??;
    let next_cursor =
        if rows.len() as u32 == limit { rows.last().map(|r| encode_cursor(r.start_at, &r.id)) } else { None };
    Ok(with_note(Json(MediaPage { media, next_cursor }), note))
}

/// One original, with full metadata and its links.
#[utoipa::path(
    get, path = "/api/v1/media/{id}", tag = "media",
    params(("id" = String, Path, description = "The media id (BLAKE3 of the original, 64 hex)")),
    responses((status = 200, body = MediaItem), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let (id, note) = visible_media(&s, &caller, &headers, &id).await?;
    let see = Clearance::of(&caller, &headers).sees_restricted;
    let (index, archive, id2) = (s.index.clone(), s.archive.root().to_path_buf(), id.clone());
    let item = tokio::task::spawn_blocking(move || {
        index.read(|c| {
            let rows = query::media_by_ids(c, std::slice::from_ref(&id2))?;
            Ok(items(c, &rows, &archive, see)?.pop())
        })
    })
    .await??;
    item.map(|i| with_note(Json(i), note)).ok_or_else(|| ApiError::not_found(format!("no original {id}")))
}

/// The MIME type of an original, from what the describer found.
pub fn content_type(kind: Option<&str>, container: Option<&str>) -> &'static str {
    let c = container.unwrap_or("");
    match (kind.unwrap_or(""), c) {
        ("photo", "jpeg") => "image/jpeg",
        ("photo", "png") => "image/png",
        ("photo", "heif") => "image/heic",
        ("photo", "avif") => "image/avif",
        ("photo", "gif") => "image/gif",
        ("photo", "tiff") => "image/tiff",
        ("audio", c) if c.contains("mp4") || c.contains("m4a") => "audio/mp4",
        ("audio", c) if c.contains("wav") => "audio/wav",
        ("audio", c) if c.contains("mp3") => "audio/mpeg",
        ("audio", c) if c.contains("amr") => "audio/amr",
        ("audio", c) if c.contains("ogg") => "audio/ogg",
        ("audio", c) if c.contains("flac") => "audio/flac",
        ("audio", c) if c.contains("aac") => "audio/aac",
        ("video", c) if c.contains("mp4") => "video/mp4",
        ("video", c) if c.contains("mov") => "video/quicktime",
        ("video", c) if c.contains("avi") => "video/x-msvideo",
        ("video", c) if c.contains("matroska") => "video/x-matroska",
        ("video", c) if c.contains("mpegts") => "video/mp2t",
        _ => "application/octet-stream",
    }
}

/// A parsed `Range: bytes=…` header against a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeReq {
    Full,
    /// Inclusive byte range.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parse a single byte range (`a-b`, `a-`, `-n`). Several ranges are
/// answered with the whole file (allowed by RFC 9110).
pub fn parse_range(h: Option<&str>, size: u64) -> RangeReq {
    let Some(h) = h else { return RangeReq::Full };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let r = match (a.is_empty(), b.is_empty()) {
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeReq::Unsatisfiable;
            };
            let end = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(e) if e >= start => e.min(size.saturating_sub(1)),
                    _ => return RangeReq::Unsatisfiable,
                }
            };
            (start, end)
        }
        (true, false) => {
            let Ok(n) = b.parse::<u64>() else {
                return RangeReq::Unsatisfiable;
            };
            if n == 0 {
                return RangeReq::Unsatisfiable;
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (true, true) => return RangeReq::Unsatisfiable,
    };
    if size == 0 || r.0 >= size {
        RangeReq::Unsatisfiable
    } else {
        RangeReq::Part(r.0, r.1)
    }
}

fn disposition(name: &str) -> HeaderValue {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect();
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>().replace('+', "%20");
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// The original's bytes, exactly as stored, streamed from the archive.
#[utoipa::path(
    get, path = "/api/v1/media/{id}/original", tag = "media",
    params(("id" = String, Path), ("Range" = Option<String>, Header, description = "bytes=START-END")),
    responses(
        (status = 200, description = "The whole original, as its own media type (video/mp4, image/jpeg, …)", content_type = "*/*"),
        (status = 206, description = "The requested byte range", content_type = "*/*"),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 416, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn original(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (hex, note) = visible_media(&s, &caller, &headers, &id).await?;
    let mid = media_id_param(&hex)?;
    let (index, h2) = (s.index.clone(), hex.clone());
    let row = tokio::task::spawn_blocking(move || index.read(|c| query::media_by_ids(c, &[h2]))).await??.pop();
    let row = row.ok_or_else(|| ApiError::not_found(format!("no original {hex}")))?;
    super::custody::not_gone(&s, &hex).await?;
    let name = row.sightings.first().and_then(|s| s.path.file_name()).map(|n| n.to_string_lossy().into_owned());
    let path = crate::store::local_async(&s.archive, mid).await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "archive_unavailable",
            format!("the original cannot be read from the archive now: {e}"),
        )
    })?;
    let obj = Object {
        path,
        etag_id: hex.clone(),
        content_type: content_type(row.kind.as_deref(), row.container.as_deref()).to_string(),
        filename: name.unwrap_or_else(|| hex.clone()),
        what: "original",
    };
    serve(obj, &headers, note).await
}

/// A stored file to send.
pub struct Object {
    pub path: std::path::PathBuf,
    /// Its content address (the ETag).
    pub etag_id: String,
    pub content_type: String,
    pub filename: String,
    pub what: &'static str,
}

/// What a request's conditional headers ask of a file of `size` bytes whose
/// ETag is `etag` (quoted): `None` when `If-None-Match` matches (304), else
/// the range to send (`If-Range` other than this ETag: the whole file).
pub fn conditional(headers: &HeaderMap, etag: &str, size: u64) -> Option<RangeReq> {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if text(header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return None;
    }
    // If-Range: the range applies only to this exact file.
    let if_range_ok = text(header::IF_RANGE).is_none_or(|v| v.trim() == etag);
    Some(if if_range_ok { parse_range(text(header::RANGE), size) } else { RangeReq::Full })
}

/// Stream a stored file with `ETag`, `If-None-Match`, `Range` and `If-Range`.
pub async fn serve(obj: Object, headers: &HeaderMap, mut note: AuditNote) -> Result<Response, ApiError> {
    let mut file = tokio::fs::File::open(&obj.path).await.map_err(|e| {
        ApiError::internal(format!(
            "{} {} is indexed but cannot be opened at {}: {e}",
            obj.what,
            obj.etag_id,
            obj.path.display()
        ))
    })?;
    let size = file.metadata().await.map_err(ApiError::internal)?.len();
    let etag = format!("\"{}\"", obj.etag_id);
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let Some(range) = conditional(headers, &etag, size) else {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a valid header"));
        r.extensions_mut().insert(note);
        return Ok(r);
    };
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, &obj.content_type)
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, no-cache")
        .header(header::CONTENT_DISPOSITION, disposition(&obj.filename));
    let (status, start, len) = match range {
        RangeReq::Full => (StatusCode::OK, 0, size),
        RangeReq::Part(a, b) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{size}"));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        RangeReq::Unsatisfiable => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the {} is {size} bytes; range {:?} is outside it", obj.what, range_header.unwrap_or("")),
            )
            .into_response();
            r.headers_mut()
                .insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"));
            r.extensions_mut().insert(note);
            return Ok(r);
        }
    };
    let bytes = format!("{}: bytes {start}+{len} of {size}", obj.what);
    note.details = Some(match note.details.take() {
        Some(d) => format!("{bytes}; {d}"),
        None => bytes,
    });
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await.map_err(ApiError::internal)?;
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024));
    let mut resp = builder.status(status).header(header::CONTENT_LENGTH, len).body(body).map_err(ApiError::internal)?;
    resp.extensions_mut().insert(note);
    Ok(resp)
}

async fn rendition_of(
    s: ApiState,
    caller: Caller,
    id: String,
    kind: &'static str,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (hex, note) = visible_media(&s, &caller, &headers, &id).await?;
    super::custody::not_gone(&s, &hex).await?;
    let (index, h2) = (s.index.clone(), hex.clone());
    let (exists, row) = tokio::task::spawn_blocking(move || {
        index.read(|c| {
            let exists = !query::media_by_ids(c, std::slice::from_ref(&h2))?.is_empty();
            Ok((exists, crate::index::renditions::get(c, &h2, kind)?))
        })
    })
    .await??;
    if !exists {
        return Err(ApiError::not_found(format!("no original {hex}")));
    }
    let row = row.ok_or_else(|| ApiError::not_found(format!("original {hex} has no {kind} rendition (yet)")))?;
    let rid: crate::domain::MediaId = row.id.parse().map_err(ApiError::internal)?;
    let ext = if kind == "thumbnail" {
        "jpg"
    } else if row.mime.starts_with("audio") {
        "m4a"
    } else {
        "mp4"
    };
    let path = crate::store::local_async(&s.renditions, rid).await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "archive_unavailable",
            format!("the rendition cannot be read from the archive now: {e}"),
        )
    })?;
    let obj = Object {
        path,
        etag_id: row.id.clone(),
        content_type: row.mime.clone(),
        filename: format!("{}-{kind}.{ext}", &hex[..16]),
        what: kind,
    };
    serve(obj, &headers, note).await
}

/// The original's browser-playable rendition (MP4, H.264/AAC, fast start).
#[utoipa::path(
    get, path = "/api/v1/media/{id}/rendition", tag = "media",
    params(("id" = String, Path), ("Range" = Option<String>, Header, description = "bytes=START-END")),
    responses(
        (status = 200, description = "The rendition", content_type = "video/mp4"),
        (status = 206, description = "The requested byte range", content_type = "video/mp4"),
        (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 416, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rendition(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    rendition_of(s, caller, id, "playable", headers).await
}

/// The original's JPEG thumbnail.
#[utoipa::path(
    get, path = "/api/v1/media/{id}/thumbnail", tag = "media",
    params(("id" = String, Path), ("Range" = Option<String>, Header, description = "bytes=START-END")),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/jpeg"),
        (status = 206, description = "The requested byte range", content_type = "image/jpeg"),
        (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 416, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn thumbnail(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    rendition_of(s, caller, id, "thumbnail", headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), RangeReq::Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), RangeReq::Part(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), RangeReq::Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), RangeReq::Part(90, 99));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), RangeReq::Part(50, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=x-3"), 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeReq::Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeReq::Full);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), RangeReq::Unsatisfiable);
    }

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let id = "a".repeat(64);
        let c = encode_cursor(1234, &id);
        assert_eq!(decode_cursor(&c).unwrap(), (1234, id));
        assert!(decode_cursor("zzz").is_err());
        assert!(decode_cursor(&B64.encode("12:not-an-id")).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Some("video"), Some("mov,mp4,m4a,3gp,3g2,mj2")), "video/mp4");
        assert_eq!(content_type(Some("audio"), Some("mov,mp4,m4a,3gp,3g2,mj2")), "audio/mp4");
        assert_eq!(content_type(Some("photo"), Some("jpeg")), "image/jpeg");
        assert_eq!(content_type(Some("other"), None), "application/octet-stream");
    }
}

/// An original's renditions: made, queued, waiting or failed, with a
/// recovered rendition's provenance.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RenditionsJson {
    pub media_id: String,
    pub renditions: Vec<crate::views::RenditionJson>,
}

async fn renditions_json(s: &ApiState, hex: String) -> Result<RenditionsJson, ApiError> {
    let (index, dir, h2) = (s.index.clone(), s.renditions.root().to_path_buf(), hex.clone());
    let renditions = tokio::task::spawn_blocking(move || {
        index.read(|c| {
            let (jobs, made) =
                (crate::index::renditions::jobs_of(c, &h2)?, crate::index::renditions::of_original(c, &h2)?);
            Ok(crate::views::RenditionJson::join(&jobs, &made, &dir))
        })
    })
    .await??;
    Ok(RenditionsJson { media_id: hex, renditions })
}

/// The original's renditions and their state: a recovered rendition of a
/// cut-short recording says what it holds and which recording supplied the
/// codec configuration.
#[utoipa::path(
    get, path = "/api/v1/media/{id}/renditions", tag = "media",
    params(("id" = String, Path)),
    responses((status = 200, body = RenditionsJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn renditions(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let (hex, note) = visible_media(&s, &caller, &headers, &id).await?;
    Ok(with_note(Json(renditions_json(&s, hex).await?), note))
}

/// `POST /api/v1/media/{id}/recover`: which recording supplies the codec
/// configuration (absent or null: the camera's most recent complete one).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    /// The media id of a complete H.264/H.265 recording of the same camera.
    pub reference: Option<String>,
    pub reason: String,
}

/// Recover a cut-short recording again, with a reference an admin names
/// (or the automatic choice): its recovery is queued now.
#[utoipa::path(
    post, path = "/api/v1/media/{id}/recover", tag = "media",
    params(("id" = String, Path)), request_body = RecoverBody,
    responses((status = 200, body = RenditionsJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
               (status = 422, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn recover(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    super::error::JsonBody(body): super::error::JsonBody<RecoverBody>,
) -> Result<Response, ApiError> {
    super::custody::need_reason(&body.reason)?;
    let (hex, mut note) = visible_media(&s, &caller, &headers, &id).await?;
    let reference = match &body.reference {
        Some(r) => {
            let r =
                media_id_param(r).map_err(|_| ApiError::validation(vec!["reference: must be a media id".into()]))?;
            // A reference the caller may not see is as unknown as a missing one.
            let (rhex, _) = visible_media(&s, &caller, &headers, &r.to_hex())
                .await
                .map_err(|_| ApiError::validation(vec![format!("reference: no original {}", r.to_hex())]))?;
            Some(rhex)
        }
        None => None,
    };
    let (now, h2, reason) = (to_ms(s.clock.now()), hex.clone(), body.reason.clone());
    let outcome = s
        .index
        .call(move |c| {
            if let Some(r) = &reference {
                if let Some(why) = crate::index::renditions::unfit_reference(c, r)? {
                    return Ok(Err(why));
                }
            }
            crate::index::renditions::set_reference(c, &h2, reference.as_deref(), now).map(Ok)
        })
        .await?;
    // The audit entry of this request says what was asked, and why.
    let asked = format!("reference {}; reason: {reason}", body.reference.as_deref().unwrap_or("automatic"));
    note.details = Some(match note.details.take() {
        Some(d) => format!("{d}; {asked}"),
        None => asked,
    });
    match outcome {
        Err(why) => Err(ApiError::validation(vec![format!("reference: {why}")])),
        Ok(false) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{hex} is not a cut-short recording with a recovery to run (or its recovery is running now)"),
        )),
        Ok(true) => Ok(with_note(Json(renditions_json(&s, hex).await?), note)),
    }
}
