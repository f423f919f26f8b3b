//! Custody: signed receipts, retention (importance, holds, restore),
//! restriction of media and cases, and exports that need an approver.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{with_note, AuditNote, Caller, Clearance};
use super::error::{media_id_param, ApiError, ErrorBody, JsonBody, PathParams};
use super::media::{serve, Object};
use super::ApiState;
use crate::clock::{from_ms, rfc3339, to_ms};
use crate::custody::{export, receipt, retention};
use crate::index::custody as ixc;
use crate::index::query;
use crate::views::MediaJson;

/// Check that an original exists and that the caller may see it.
pub async fn visible_media(
    s: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
) -> Result<(String, AuditNote), ApiError> {
    let hex = media_id_param(id)?.to_hex();
    let (index, h2) = (s.index.clone(), hex.clone());
    let restricted = tokio::task::spawn_blocking(move || index.read(|c| query::media_restricted(c, &h2))).await??;
    let not_found = || ApiError::not_found(format!("no original {hex}"));
    let Some(restricted) = restricted else { return Err(not_found()) };
    let details = Clearance::of(caller, headers).check(caller, restricted, not_found)?;
    Ok((hex.clone(), AuditNote { media_id: Some(hex), details, ..Default::default() }))
}

/// Check that a case exists and that the caller may see it.
pub async fn visible_case(s: &ApiState, caller: &Caller, headers: &HeaderMap, id: &str) -> Result<AuditNote, ApiError> {
    let (index, i2) = (s.index.clone(), id.to_string());
    let restricted = tokio::task::spawn_blocking(move || index.read(|c| query::case_restricted(c, &i2))).await??;
    let not_found = || ApiError::not_found(format!("no case {id:?}"));
    let Some(restricted) = restricted else { return Err(not_found()) };
    let details = Clearance::of(caller, headers).check(caller, restricted, not_found)?;
    Ok(AuditNote { case_id: Some(id.to_string()), details, ..Default::default() })
}

/// The signed receipt of an original: what this host attests it stored,
/// when, and whether in time. Verify offline with `bodycamd receipt verify`.
#[utoipa::path(
    get, path = "/api/v1/media/{id}/receipt", tag = "custody",
    params(("id" = String, Path)),
    responses((status = 200, body = receipt::Receipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn receipt(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let (hex, note) = visible_media(&s, &caller, &headers, &id).await?;
    not_gone(&s, &hex).await?;
    let (index, archive, h2) = (s.index.clone(), s.archive.root().to_path_buf(), hex.clone());
    let row = tokio::task::spawn_blocking(move || index.read(|c| query::media_get(c, &h2))).await??;
    let row = row.ok_or_else(|| ApiError::not_found(format!("no original {hex}")))?;
    let r = receipt::issue(&MediaJson::from_row(&row, &archive), &s.key);
    Ok(with_note(Json(r), note))
}

/// After a restore has committed, its file goes back to the archive (a
/// crash first is repaired by the next retention pass).
async fn restored_file(s: &ApiState, id: &str, restored: bool) -> Result<(), ApiError> {
    if restored {
        let (state, id) = (s.state_dir.clone(), id.to_string());
        tokio::task::spawn_blocking(move || retention::restored(&state, &id)).await?.map_err(|e| {
            ApiError::internal(format!(
                "restored in the index; moving the file back failed (repaired by the next retention pass): {e}"
            ))
        })?;
    }
    Ok(())
}

/// Bring one original's bucket lock and legal hold in line with the index
/// after an administrator changed why it is kept. A failure is logged; the
/// retention pass tries again.
async fn sync_bucket(s: &ApiState, id: &str) {
    let Some(s3) = s.archive.remote().cloned() else { return };
    let (index, id, span, now) = (s.index.clone(), id.to_string(), s.lock_span, to_ms(s.clock.now()));
    let r = tokio::task::spawn_blocking(move || {
        index.read_any(|c| retention::sync_bucket_locks(c, &s3, span, now, Some(&id)))
    })
    .await;
    if let Ok(Err(e)) = r {
        tracing::warn!(error = %format!("{e:#}"), "cannot update the bucket's lock now; the retention pass tries again");
    }
}

/// Refuse, as the original route does, to serve anything of an original in
/// the trash or purged (410 Gone, with when).
pub async fn not_gone(s: &ApiState, hex: &str) -> Result<(), ApiError> {
    let (index, h) = (s.index.clone(), hex.to_string());
    let gone = tokio::task::spawn_blocking(move || index.read(|c| ixc::gone(c, &h))).await??;
    match gone {
        None => Ok(()),
        Some((t, purged)) => Err(ApiError::new(
            StatusCode::GONE,
            if purged { "purged" } else { "in_trash" },
            format!(
                "original {hex} expired and was {} at {}",
                if purged { "purged (with its renditions)" } else { "moved to the trash" },
                rfc3339(from_ms(t))
            ),
        )),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// Important recordings are kept while they are marked so.
    pub important: bool,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionJson {
    pub id: String,
    pub important: bool,
    pub restricted: bool,
    /// Why it is kept beyond the default retention (importance, holds, cases).
    pub kept_for: Vec<String>,
    pub in_trash_since: Option<String>,
    pub purged_at: Option<String>,
    /// When its default retention ends (from its recording date).
    pub expires: Option<String>,
}

pub(super) fn need_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() || reason.chars().count() > 1000 {
        return Err(ApiError::validation(vec!["reason: must be 1-1000 characters".into()]));
    }
    Ok(())
}

async fn retention_of(s: &ApiState, id: String) -> Result<RetentionJson, ApiError> {
    let (index, keep_ms, i2) = (s.index.clone(), s.retention_default.as_millis() as i64, id.clone());
    let r = tokio::task::spawn_blocking(move || index.read(|c| ixc::retention_state(c, &i2))).await??;
    Ok(RetentionJson {
        id,
        important: r.important,
        restricted: r.restricted,
        kept_for: r.kept_for,
        in_trash_since: r.trashed_at.map(|t| rfc3339(from_ms(t))),
        purged_at: r.purged_at.map(|t| rfc3339(from_ms(t))),
        expires: r.base.map(|t| rfc3339(from_ms(t + keep_ms))),
    })
}

/// Mark an original important (kept while marked) or ordinary again.
#[utoipa::path(
    put, path = "/api/v1/media/{id}/retention", tag = "custody",
    params(("id" = String, Path)), request_body = RetentionBody,
    responses((status = 200, body = RetentionJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn set_retention(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<RetentionBody>,
) -> Result<Response, ApiError> {
    need_reason(&body.reason)?;
    let (hex, mut note) = visible_media(&s, &caller, &headers, &id).await?;
    let (now, by, h2) = (to_ms(s.clock.now()), caller.name.clone(), hex.clone());
    let (important, reason) = (body.important, body.reason.clone());
    let restored = s.index.call(move |c| ixc::set_important(c, &h2, important, &by, &reason, now)).await?;
    restored_file(&s, &hex, restored).await?;
    sync_bucket(&s, &hex).await;
    note.details = Some(format!("important = {}", body.important));
    Ok(with_note(Json(retention_of(&s, hex).await?), note))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// Why (a legal hold's reference, for instance).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoldJson {
    pub hold_id: i64,
    pub media_id: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: String,
    pub lifted_by: Option<String>,
    pub lifted_at: Option<String>,
}

/// Place a legal hold: the original is kept (and taken out of the trash)
/// until every hold on it is lifted.
#[utoipa::path(
    post, path = "/api/v1/media/{id}/holds", tag = "custody",
    params(("id" = String, Path)), request_body = HoldBody,
    responses((status = 201, body = HoldJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn place_hold(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<HoldBody>,
) -> Result<Response, ApiError> {
    need_reason(&body.reason)?;
    let (hex, note) = visible_media(&s, &caller, &headers, &id).await?;
    let (now, by, h2) = (to_ms(s.clock.now()), caller.name.clone(), hex.clone());
    let reason = body.reason.clone();
    let (hold_id, restored) = s.index.call(move |c| ixc::place_hold(c, &h2, &reason, &by, now)).await?;
    restored_file(&s, &hex, restored).await?;
    sync_bucket(&s, &hex).await;
    let hold = HoldJson {
        hold_id,
        media_id: hex,
        reason: body.reason,
        placed_by: caller.name,
        placed_at: rfc3339(from_ms(now)),
        lifted_by: None,
        lifted_at: None,
    };
    Ok(with_note((StatusCode::CREATED, Json(hold)), note))
}

/// Lift a hold.
#[utoipa::path(
    delete, path = "/api/v1/media/{id}/holds/{hold_id}", tag = "custody",
    params(("id" = String, Path), ("hold_id" = i64, Path)),
    responses((status = 200, body = RetentionJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn lift_hold(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams((id, hold_id)): PathParams<(String, i64)>,
) -> Result<Response, ApiError> {
    let (hex, note) = visible_media(&s, &caller, &headers, &id).await?;
    let (now, by, h2) = (to_ms(s.clock.now()), caller.name.clone(), hex.clone());
    let lifted = s.index.call(move |c| ixc::lift_hold(c, &h2, hold_id, &by, now)).await?;
    if !lifted {
        return Err(ApiError::not_found(format!("no active hold {hold_id} on {hex}")));
    }
    sync_bucket(&s, &hex).await;
    Ok(with_note(Json(retention_of(&s, hex).await?), note))
}

/// Take an original back out of the trash (before it is purged).
#[utoipa::path(
    post, path = "/api/v1/media/{id}/restore", tag = "custody",
    params(("id" = String, Path)), request_body = HoldBody,
    responses((status = 200, body = RetentionJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn restore(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<HoldBody>,
) -> Result<Response, ApiError> {
    need_reason(&body.reason)?;
    let (hex, note) = visible_media(&s, &caller, &headers, &id).await?;
    let (now, by, h2) = (to_ms(s.clock.now()), caller.name.clone(), hex.clone());
    let done = s.index.call(move |c| retention::restore(c, &h2, &by, &body.reason, now)).await?;
    if !done {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", format!("{hex} is not in the trash")));
    }
    restored_file(&s, &hex, true).await?;
    Ok(with_note(Json(retention_of(&s, hex).await?), note))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictBody {
    pub restricted: bool,
    pub reason: String,
}

/// Restrict an original (secret, commercial or private matters): only
/// tokens granted restricted access see it, and they must give a reason.
#[utoipa::path(
    put, path = "/api/v1/media/{id}/restriction", tag = "custody",
    params(("id" = String, Path)), request_body = RestrictBody,
    responses((status = 200, body = RetentionJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn restrict_media(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<RestrictBody>,
) -> Result<Response, ApiError> {
    need_reason(&body.reason)?;
    let (hex, note) = visible_media(&s, &caller, &headers, &id).await?;
    let (now, by, h2) = (to_ms(s.clock.now()), caller.name.clone(), hex.clone());
    let (restricted, reason) = (body.restricted, body.reason.clone());
    s.index.call(move |c| ixc::set_media_restricted(c, &h2, restricted, &by, &reason, now)).await?;
    Ok(with_note(Json(retention_of(&s, hex).await?), note))
}

/// Restrict a case: the case and every original linked to it.
#[utoipa::path(
    put, path = "/api/v1/cases/{case_id}/restriction", tag = "custody",
    params(("case_id" = String, Path)), request_body = RestrictBody,
    responses((status = 204, description = "Done"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn restrict_case(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(case_id): PathParams<String>,
    JsonBody(body): JsonBody<RestrictBody>,
) -> Result<Response, ApiError> {
    need_reason(&body.reason)?;
    let note = visible_case(&s, &caller, &headers, &case_id).await?;
    let (now, by) = (to_ms(s.clock.now()), caller.name.clone());
    let (restricted, reason) = (body.restricted, body.reason.clone());
    s.index.call(move |c| ixc::set_case_restricted(c, &case_id, restricted, &by, &reason, now)).await?;
    Ok(with_note(StatusCode::NO_CONTENT, note))
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ArchiveBody {
    pub note: Option<String>,
}

/// Record that a closed case's file was archived (the 30-day rule).
#[utoipa::path(
    post, path = "/api/v1/cases/{case_id}/archive", tag = "custody",
    params(("case_id" = String, Path)), request_body = ArchiveBody,
    responses((status = 204, description = "Archived"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn archive_case(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(case_id): PathParams<String>,
    JsonBody(body): JsonBody<ArchiveBody>,
) -> Result<Response, ApiError> {
    let note = visible_case(&s, &caller, &headers, &case_id).await?;
    let (now, by, k) = (to_ms(s.clock.now()), caller.name.clone(), case_id.clone());
    let how = body.note.clone().unwrap_or_else(|| "archived".into());
    let n = s.index.call(move |c| ixc::archive_case_file(c, &k, &by, &how, now)).await?;
    if !n {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", format!("case {case_id:?} is already archived")));
    }
    Ok(with_note(StatusCode::NO_CONTENT, note))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Export every original linked to this case ...
    pub case_id: Option<String>,
    /// ... or these originals.
    pub media: Option<Vec<String>>,
    /// Why a copy is needed, and for whom.
    pub reason: String,
    /// Who reviewed the selection (named in the record).
    pub reviewer: Option<String>,
    /// This export is the case file (archives the case when approved).
    #[serde(default)]
    pub case_file: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportJson {
    pub id: String,
    /// `pending`, `approved`, `denied` or `expired`.
    pub state: String,
    pub case_id: Option<String>,
    pub media: Vec<String>,
    pub case_file: bool,
    /// The handler: the token that asked.
    pub requester: String,
    pub reviewer: Option<String>,
    pub reason: String,
    pub approver: Option<String>,
    pub decision_note: Option<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
    pub expires_at: Option<String>,
    /// Set when an original in it was purged: it can no longer be downloaded.
    pub void_reason: Option<String>,
}

/// An export as callers see it: approved and past its expiry is `expired`.
fn export_json(e: ixc::ExportRecord, now: i64) -> ExportJson {
    let state =
        if e.state == "approved" && e.expires_at.is_some_and(|t| t <= now) { "expired".into() } else { e.state };
    ExportJson {
        id: e.id,
        state,
        case_id: e.case_id,
        media: e.media,
        case_file: e.case_file,
        requester: e.requester,
        reviewer: e.reviewer,
        reason: e.reason,
        approver: e.approver,
        decision_note: e.decision_note,
        created_at: rfc3339(from_ms(e.created_at)),
        decided_at: e.decided_at.map(|t| rfc3339(from_ms(t))),
        expires_at: e.expires_at.map(|t| rfc3339(from_ms(t))),
        void_reason: e.void_reason,
    }
}

fn load_export(c: &crate::index::db::Db, id: &str, now: i64) -> crate::index::db::Result<Option<ExportJson>> {
    Ok(ixc::export(c, id)?.map(|e| export_json(e, now)))
}

fn export_id_param(id: &str) -> Result<(), ApiError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ApiError::bad_request("invalid_request", "an export id is 32 lowercase hex digits"))
    }
}

/// Ask for a copy of a case or of some originals. It is pending until a
/// token with the `approver` role (not the requester) approves it.
#[utoipa::path(
    post, path = "/api/v1/exports", tag = "custody", request_body = ExportRequest,
    responses((status = 201, body = ExportJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn request_export(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ExportRequest>,
) -> Result<Response, ApiError> {
    need_reason(&body.reason)?;
    let mut problems = Vec::new();
    match (&body.case_id, &body.media) {
        (Some(_), Some(_)) | (None, None) => problems.push("give either case_id or media".to_string()),
        (None, Some(m)) if m.is_empty() || m.len() > 10_000 => problems.push("media: 1-10000 ids".into()),
        _ => {}
    }
    if body.case_file && body.case_id.is_none() {
        problems.push("case_file: only a case's export can be its case file".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let mut note = AuditNote::default();
    let clearance = Clearance::of(&caller, &headers);
    let media: Vec<String> = match (&body.case_id, &body.media) {
        (Some(case), _) => {
            note = visible_case(&s, &caller, &headers, case).await?;
            let (index, k, see) = (s.index.clone(), case.clone(), clearance.sees_restricted);
            tokio::task::spawn_blocking(move || index.read(|c| ixc::exportable_case_media(c, &k, see))).await??
        }
        (None, Some(ids)) => {
            let mut out = Vec::new();
            for id in ids {
                let (hex, n) = visible_media(&s, &caller, &headers, id).await?;
                if n.details.is_some() {
                    note.details = n.details;
                }
                if !out.contains(&hex) {
                    out.push(hex);
                }
            }
            out
        }
        _ => unreachable!("validated above"),
    };
    if media.is_empty() {
        return Err(ApiError::validation(vec!["the case has no media to export".into()]));
    }
    let mut raw = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
    let id = hex::encode(raw);
    let now = to_ms(s.clock.now());
    let (by, id2, m2) = (caller.name.clone(), id.clone(), media.clone());
    let (case_id, reviewer, reason, case_file) =
        (body.case_id.clone(), body.reviewer.clone(), body.reason.clone(), body.case_file);
    let row = s
        .index
        .call(move |c| {
            let e = ixc::NewExport {
                id: &id2,
                case_id: case_id.as_deref(),
                media: &m2,
                case_file,
                requester: &by,
                reviewer: reviewer.as_deref(),
                reason: &reason,
            };
            ixc::insert_export(c, &e, now)?;
            load_export(c, &id2, now)
        })
        .await?
        .ok_or_else(|| ApiError::internal("an export vanished after it was written"))?;
    note.details =
        Some(format!("export {id} requested: {} original(s); {}", media.len(), note.details.unwrap_or_default()));
    Ok(with_note((StatusCode::CREATED, Json(row)), note))
}

/// An export request and its state.
#[utoipa::path(
    get, path = "/api/v1/exports/{export_id}", tag = "custody",
    params(("export_id" = String, Path)),
    responses((status = 200, body = ExportJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_export(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let (e, note) = visible_export(&s, &caller, &headers, &id).await?;
    Ok(with_note(Json(e), note))
}

/// An export the caller may see: one that holds a restricted original or
/// case is "not found" to a caller without the grant (and a reason), as the
/// records themselves are.
async fn visible_export(
    s: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
) -> Result<(ExportJson, AuditNote), ApiError> {
    export_id_param(id)?;
    let (index, now, i2) = (s.index.clone(), to_ms(s.clock.now()), id.to_string());
    let e = tokio::task::spawn_blocking(move || index.read(|c| load_export(c, &i2, now))).await??;
    let not_found = || ApiError::not_found(format!("no export {id}"));
    let e = e.ok_or_else(not_found)?;
    let mut note =
        AuditNote { case_id: e.case_id.clone(), details: Some(format!("export {id}")), ..Default::default() };
    let hidden = |r: Result<AuditNote, ApiError>| match r {
        Ok(n) => Ok(n),
        Err(err) if err.status == StatusCode::NOT_FOUND => Err(not_found()),
        Err(err) => Err(err),
    };
    if let Some(k) = &e.case_id {
        let n = hidden(visible_case(s, caller, headers, k).await)?;
        if n.details.is_some() {
            note.details = n.details;
        }
    }
    for m in &e.media {
        let n = hidden(visible_media(s, caller, headers, m).await.map(|(_, n)| n))?;
        if n.details.is_some() {
            note.details = n.details;
        }
    }
    Ok((e, note))
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub note: Option<String>,
}

async fn decide(
    s: ApiState,
    caller: Caller,
    id: String,
    approve: bool,
    note: Option<String>,
) -> Result<Response, ApiError> {
    export_id_param(&id)?;
    let now = to_ms(s.clock.now());
    let expires = now + s.export_expire.as_millis() as i64;
    let (by, i2) = (caller.name.clone(), id.clone());
    let out = s
        .index
        .call(move |c| {
            let Some(e) = load_export(c, &i2, now)? else {
                return Ok(Err(ApiError::not_found(format!("no export {i2}"))));
            };
            if e.requester == by {
                return Ok(Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("{by:?} asked for export {i2}: a requester cannot approve or deny their own request"),
                )));
            }
            if e.state != "pending" {
                return Ok(Err(ApiError::new(StatusCode::CONFLICT, "conflict", format!("export {i2} is {}", e.state))));
            }
            ixc::decide_export(c, &i2, approve, &by, note.as_deref(), now, approve.then_some(expires))?;
            if approve && e.case_file {
                if let Some(k) = &e.case_id {
                    ixc::archive_case_file(c, k, &by, &format!("case file: export {i2}"), now)?;
                }
            }
            Ok(Ok(load_export(c, &i2, now)?))
        })
        .await??;
    let out = out.ok_or_else(|| ApiError::internal("an export vanished"))?;
    let note = AuditNote { case_id: out.case_id.clone(), details: Some(format!("export {id}")), ..Default::default() };
    Ok(with_note(Json(out), note))
}

/// Approve an export (role approver; not the requester).
#[utoipa::path(
    post, path = "/api/v1/exports/{export_id}/approve", tag = "custody",
    params(("export_id" = String, Path)), request_body = DecisionBody,
    responses((status = 200, body = ExportJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn approve(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, ApiError> {
    visible_export(&s, &caller, &headers, &id).await?;
    decide(s, caller, id, true, body.note).await
}

/// Deny an export (role approver; not the requester).
#[utoipa::path(
    post, path = "/api/v1/exports/{export_id}/deny", tag = "custody",
    params(("export_id" = String, Path)), request_body = DecisionBody,
    responses((status = 200, body = ExportJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn deny(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, ApiError> {
    visible_export(&s, &caller, &headers, &id).await?;
    decide(s, caller, id, false, body.note).await
}

/// The approved export: one tar with the originals, renditions, receipts,
/// a manifest of hashes and the audit entries about them.
#[utoipa::path(
    get, path = "/api/v1/exports/{export_id}/download", tag = "custody",
    params(("export_id" = String, Path)),
    responses((status = 200, description = "The archive", content_type = "application/x-tar"),
               (status = 206, description = "A byte range of it"), (status = 400, body = ErrorBody),
               (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 410, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn download(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    // Restricted items stay invisible to callers without the grant.
    let (e, _) = visible_export(&s, &caller, &headers, &id).await?;
    match e.state.as_str() {
        "approved" => {}
        "expired" => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "expired",
                format!("export {id} expired at {:?}", e.expires_at),
            ))
        }
        other => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_approved",
                format!("export {id} is {other}: only an approved export can be downloaded"),
            ))
        }
    }
    if let Some(why) = &e.void_reason {
        return Err(ApiError::new(
            StatusCode::GONE,
            "voided",
            format!("export {id} can no longer be downloaded: {why}"),
        ));
    }
    let dir = s.state_dir.join("exports");
    let path = retention::export_path(&s.state_dir, &id);
    // One build at a time: concurrent first downloads wait for it and then
    // serve the one archive it made.
    let _building = s.export_builds.lock().await;
    if !path.exists() {
        let (index, state, key, p2) = (s.index.clone(), s.state_dir.clone(), s.key.clone(), path.clone());
        let info = export::ExportInfo {
            id: e.id.clone(),
            case_id: e.case_id.clone(),
            case_file: e.case_file,
            requester: e.requester.clone(),
            reviewer: e.reviewer.clone(),
            approver: e.approver.clone(),
            reason: e.reason.clone(),
            approved_at: e.decided_at.clone(),
            media: e.media.clone(),
        };
        let (archive, renditions) = (s.archive.clone(), s.renditions.clone());
        let built = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            std::fs::create_dir_all(&dir)?;
            index.read_any(|c| {
                // From a bucket, the objects are read into this host's cache
                // first (one that cannot be read fails the build below).
                if archive.remote().is_some() {
                    for id in &info.media {
                        if let Ok(mid) = id.parse() {
                            let _ = archive.local(&mid);
                        }
                        for r in crate::index::renditions::of_original(c, id)? {
                            if let Ok(rid) = r.id.parse() {
                                let _ = renditions.local(&rid);
                            }
                        }
                    }
                }
                export::build(c, &state, &info, &key, &p2).map(|_| ())
            })
        })
        .await?;
        if let Err(err) = built {
            if let Some(d) = err.downcast_ref::<export::Damaged>() {
                let (what, mid, found, now, hooks) =
                    (d.what, d.id.clone(), d.found.clone(), to_ms(s.clock.now()), s.hooks.clone());
                let r = s
                    .index
                    .call(move |c| {
                        let how = format!("export {id} re-hashed the {what} and found {found}");
                        crate::index::alerts::object_damaged(c, &mid, "(left in place)", &how, now, &hooks)
                    })
                    .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "recording a damaged object failed");
                }
                return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "object_damaged", err.to_string()));
            }
            return Err(ApiError::internal(format!("building the export: {err:#}")));
        }
    }
    drop(_building);
    let obj = Object {
        etag_id: id.clone(),
        path,
        content_type: "application/x-tar".into(),
        filename: format!("bodycamd-export-{id}.tar"),
        what: "export",
    };
    let note = AuditNote { case_id: e.case_id.clone(), ..Default::default() };
    serve(obj, &headers, note).await.map(|r| r.into_response())
}
