//! Cases: register (upsert), read, their media, manual links.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::auth::{with_note, AuditNote, Caller, Clearance};
use super::error::{media_id_param, time_param, ApiError, ErrorBody, JsonBody, PathParams};
use super::types::{CaseBody, CaseJson, CaseMedia, LinkBody, LinkJson, MediaItem};
use super::ApiState;
use crate::clock::to_ms;
use crate::index::cases::{self as ix, LinkOutcome};
use crate::index::query;
use crate::rules::alerts::{AlertKind, AlertSpec};
use crate::rules::cases::{valid_case_id, validate, Case, CaseStatus, Window};
use crate::views::MediaJson;

fn case_id_param(id: &str) -> Result<(), ApiError> {
    if valid_case_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request("invalid_id", format!("case id {id:?} must be 1-128 printable characters without /")))
    }
}

fn to_case(id: String, b: CaseBody, max_window: chrono::Duration) -> Result<Case, ApiError> {
    let status = match b.status.as_deref() {
        None => CaseStatus::Open,
        Some(s) => CaseStatus::parse(s)
            .ok_or_else(|| ApiError::validation(vec![format!("status {s:?} must be \"open\" or \"closed\"")]))?,
    };
    let mut windows = Vec::new();
    for (i, w) in b.windows.iter().enumerate() {
        windows.push(Window {
            start: time_param(&format!("windows[{i}].start"), &w.start)?,
            end: time_param(&format!("windows[{i}].end"), &w.end)?,
        });
    }
    let case = Case {
        id,
        title: b.title,
        status,
        closed_at: b.closed_at.as_deref().map(|t| time_param("closed_at", t)).transpose()?,
        officers: b.officers,
        devices: b.devices,
        windows,
        buffer_minutes: b.buffer_minutes.unwrap_or(0),
    };
    validate(&case, max_window).map_err(ApiError::validation)?;
    Ok(case)
}

/// Register or replace a case; its rule links are recomputed.
#[utoipa::path(
    put, path = "/api/v1/cases/{case_id}", tag = "cases",
    params(("case_id" = String, Path, description = "The case system's case number")),
    request_body = CaseBody,
    responses(
        (status = 200, description = "Replaced", body = CaseJson),
        (status = 201, description = "Created", body = CaseJson),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_case(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(case_id): PathParams<String>,
    JsonBody(body): JsonBody<CaseBody>,
) -> Result<Response, ApiError> {
    case_id_param(&case_id)?;
    let clearance = Clearance::of(&caller, &headers);
    let see = clearance.sees_restricted;
    let (index, k) = (s.index.clone(), case_id.clone());
    let restricted =
        tokio::task::spawn_blocking(move || index.read(|c| query::case_restricted(c, &k))).await?? == Some(true);
    if restricted && caller.restricted && clearance.reason.is_none() {
        // Granted, so it may know: it must say why, as for any read.
        super::custody::visible_case(&s, &caller, &headers, &case_id).await?;
    }
    let raw = serde_json::to_string(&body).unwrap_or_default();
    let case = to_case(case_id.clone(), body, s.max_window)?;
    let now = to_ms(s.clock.now());
    let by = caller.name.clone();
    if restricted && !see {
        return held_write(&s, case, by, raw, now).await;
    }
    let (record, relinked) = s
        .index
        .call(move |c| {
            // Counts of what this caller may see: the originals linked
            // before and after, never a restricted one.
            let before: std::collections::HashSet<String> =
                query::visible_case_media(c, &case.id, see)?.into_iter().collect();
            let r = ix::upsert_case(c, &case, &by, now)?;
            let after: std::collections::HashSet<String> =
                query::visible_case_media(c, &case.id, see)?.into_iter().collect();
            let relinked = ix::Relinked {
                created: r.created,
                linked: after.difference(&before).count(),
                unlinked: before.difference(&after).count(),
                total: after.len(),
            };
            Ok((ix::get_case(c, &case.id)?, relinked))
        })
        .await?;
    let record = record.ok_or_else(|| ApiError::internal("a case vanished after it was written"))?;
    let body = CaseJson::new(&record, relinked.total, Some(relinked));
    let status = if relinked.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(body)).into_response())
}

/// A caller without the grant changed a restricted case. Applying it would
/// let someone who may not see the case relink its evidence; refusing it
/// would tell them the case exists. So it is held (an alert for an
/// administrator with the grant, who can apply it; the request itself is
/// in the audit log with what was asked), and the caller gets exactly the
/// answer a new case would have got.
async fn held_write(s: &ApiState, case: Case, by: String, raw: String, now: i64) -> Result<Response, ApiError> {
    let hooks = s.hooks.clone();
    let (case2, by2, raw2) = (case.clone(), by.clone(), raw.clone());
    let (visible, relinked) = s
        .index
        .call(move |c| {
            let (visible, r) = ix::as_if_new(c, &case2, &by2, now)?;
            let spec = AlertSpec {
                kind: AlertKind::RestrictedCaseWrite,
                subject: case2.id.clone(),
                details: serde_json::json!({
                    "requested_by": by2,
                    "requested_at": crate::clock::rfc3339(crate::clock::from_ms(now)),
                    "case": serde_json::from_str::<serde_json::Value>(&raw2).unwrap_or(serde_json::Value::Null),
                    "what_to_do": "a caller without the grant asked to change this restricted case; the change was \
                                   not applied. Apply it with PUT /api/v1/cases/{id} using a granted token and a reason.",
                }),
            };
            let t = crate::index::alerts::open(c, &spec, now, &hooks)?;
            Ok((visible, (r, t)))
        })
        .await?;
    let (r, transition) = relinked;
    if let Some(t) = transition {
        tracing::warn!(case = %t.subject, by = %by, "a change to a restricted case by a caller without the grant was held");
    }
    let record = ix::CaseRecord { case, created_at: now, updated_at: now, updated_by: by };
    let relink = ix::Relinked { created: true, linked: visible, unlinked: 0, total: visible };
    let _ = r;
    let body = CaseJson::new(&record, visible, Some(relink));
    let note = AuditNote {
        case_id: Some(record.case.id.clone()),
        details: Some(format!("held (restricted case; not applied): {raw}")),
        ..Default::default()
    };
    Ok(with_note((StatusCode::CREATED, Json(body)), note))
}

/// A case.
#[utoipa::path(
    get, path = "/api/v1/cases/{case_id}", tag = "cases",
    params(("case_id" = String, Path)),
    responses((status = 200, body = CaseJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_case(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(case_id): PathParams<String>,
) -> Result<Response, ApiError> {
    case_id_param(&case_id)?;
    let note = super::custody::visible_case(&s, &caller, &headers, &case_id).await?;
    let see = Clearance::of(&caller, &headers).sees_restricted;
    let index = s.index.clone();
    let id = case_id.clone();
    let (record, n) = tokio::task::spawn_blocking(move || {
        index.read(|c| Ok((ix::get_case(c, &id)?, query::visible_case_media(c, &id, see)?.len())))
    })
    .await??;
    let record = record.ok_or_else(|| ApiError::not_found(format!("no case {case_id:?}")))?;
    Ok(with_note(Json(CaseJson::new(&record, n, None)), note))
}

/// Media items with their links.
/// Originals with their links, as a caller sees them: without the grant,
/// links to restricted cases (linked or removed) are not shown.
pub fn items(
    c: &crate::index::db::Db,
    rows: &[query::MediaRow],
    archive: &std::path::Path,
    see_restricted: bool,
) -> crate::index::db::Result<Vec<MediaItem>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut links = ix::media_links_many(c, &ids)?;
    // Links to restricted cases are hidden from a caller without the grant
    // (one probe for every case the page names, not one per link).
    let hidden = if !see_restricted && !links.is_empty() && query::any_restricted(c)? {
        let mut cases: Vec<String> = links.values().flatten().map(|l| l.case_id.clone()).collect();
        cases.sort();
        cases.dedup();
        query::restricted_cases_among(c, &cases)?
    } else {
        Default::default()
    };
    Ok(rows
        .iter()
        .map(|r| {
            let links = links.remove(&r.id).unwrap_or_default();
            MediaItem {
                media: MediaJson::from_row(r, archive),
                links: links.iter().filter(|l| !hidden.contains(&l.case_id)).map(LinkJson::from).collect(),
            }
        })
        .collect())
}

/// Every original linked to a case, by recording start, with full metadata.
#[utoipa::path(
    get, path = "/api/v1/cases/{case_id}/media", tag = "cases",
    params(("case_id" = String, Path)),
    responses((status = 200, body = CaseMedia), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn case_media(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(case_id): PathParams<String>,
) -> Result<Response, ApiError> {
    case_id_param(&case_id)?;
    let clearance = Clearance::of(&caller, &headers);
    let see = clearance.sees_restricted;
    let (index, archive, id) = (s.index.clone(), s.archive.root().to_path_buf(), case_id.clone());
    // One read: the case's restriction, its media, and which of those are
    // restricted (usually none: one indexed probe says so).
    let found = tokio::task::spawn_blocking(move || {
        index.read(|c| {
            let Some(restricted) = query::case_restricted(c, &id)? else { return Ok(None) };
            let rows = query::visible_case_rows(c, &id, see)?;
            Ok(Some((restricted, items(c, &rows, &archive, see)?)))
        })
    })
    .await??;
    let not_found = || ApiError::not_found(format!("no case {case_id:?}"));
    let (restricted, media) = found.ok_or_else(not_found)?;
    let details = clearance.check(&caller, restricted, not_found)?;
    let note = AuditNote { case_id: Some(case_id.clone()), details, ..Default::default() };
    let media = Some(media);
    let media = media.ok_or_else(|| ApiError::not_found(format!("no case {case_id:?}")))?;
    Ok(with_note(Json(CaseMedia { case_id, media }), note))
}

/// Link an original to a case by hand.
#[utoipa::path(
    post, path = "/api/v1/cases/{case_id}/media", tag = "cases",
    params(("case_id" = String, Path)),
    request_body = LinkBody,
    responses((status = 201, description = "Linked", body = LinkJson), (status = 200, description = "Already linked", body = LinkJson),
               (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
               (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn link(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams(case_id): PathParams<String>,
    JsonBody(body): JsonBody<LinkBody>,
) -> Result<Response, ApiError> {
    case_id_param(&case_id)?;
    media_id_param(&body.media_id)?;
    super::custody::visible_case(&s, &caller, &headers, &case_id).await?;
    let (media, _) = super::custody::visible_media(&s, &caller, &headers, &body.media_id).await?;
    if body.note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::validation(vec!["note is longer than 2000 characters".into()]));
    }
    let now = to_ms(s.clock.now());
    let (k, m, by, note) = (case_id.clone(), media.clone(), caller.name.clone(), body.note.clone());
    let (outcome, link) = s
        .index
        .call(move |c| {
            let o = ix::link_manual(c, &k, &m, &by, note.as_deref(), now)?;
            let l = ix::media_links(c, &m)?.into_iter().find(|l| l.case_id == k);
            Ok((o, l))
        })
        .await?;
    let status = match outcome {
        LinkOutcome::Linked => StatusCode::CREATED,
        LinkOutcome::AlreadyLinked => StatusCode::OK,
        LinkOutcome::NoSuchCase => return Err(ApiError::not_found(format!("no case {case_id:?}"))),
        LinkOutcome::NoSuchMedia => return Err(ApiError::not_found(format!("no original {media}"))),
    };
    let link = link.ok_or_else(|| ApiError::internal("a link vanished after it was written"))?;
    let mut resp = (status, Json(LinkJson::from(&link))).into_response();
    resp.extensions_mut().insert(AuditNote { media_id: Some(media), ..Default::default() });
    Ok(resp)
}

/// Remove a link by hand. A rule link removed this way stays removed.
#[utoipa::path(
    delete, path = "/api/v1/cases/{case_id}/media/{media_id}", tag = "cases",
    params(("case_id" = String, Path), ("media_id" = String, Path)),
    responses((status = 200, description = "Removed", body = LinkJson), (status = 400, body = ErrorBody),
               (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn unlink(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    PathParams((case_id, media_id)): PathParams<(String, String)>,
) -> Result<Json<LinkJson>, ApiError> {
    case_id_param(&case_id)?;
    media_id_param(&media_id)?;
    super::custody::visible_case(&s, &caller, &headers, &case_id).await?;
    let (media, _) = super::custody::visible_media(&s, &caller, &headers, &media_id).await?;
    let now = to_ms(s.clock.now());
    let (k, m, by) = (case_id.clone(), media.clone(), caller.name.clone());
    let (removed, link) = s
        .index
        .call(move |c| {
            let r = ix::unlink(c, &k, &m, &by, now)?;
            Ok((r, ix::media_links(c, &m)?.into_iter().find(|l| l.case_id == k)))
        })
        .await?;
    match (removed, link) {
        (true, Some(l)) => Ok(Json(LinkJson::from(&l))),
        _ => Err(ApiError::not_found(format!("original {media} is not linked to case {case_id:?}"))),
    }
}
