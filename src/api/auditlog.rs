//! For auditors: the access audit log.

use axum::extract::State;
use axum::Json;

use super::error::{time_param, ApiError, ErrorBody, QueryParams};
use super::types::{AuditJson, AuditPage, AuditParams};
use super::ApiState;
use crate::clock::to_ms;
use crate::index::audit::{self, AuditFilter};

/// Audit entries, oldest first, filtered by media, case, actor and time.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
    headers: axum::http::HeaderMap,
    QueryParams(p): QueryParams<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    // Entries about restricted records are for auditors with the grant
    // (and a reason).
    let hide_restricted = !super::auth::Clearance::of(&caller, &headers).sees_restricted;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_request", "limit must be between 1 and 1000"));
    }
    let after = match p.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not one this API gave out"))?,
        ),
    };
    let f = AuditFilter {
        media: p.media,
        case: p.case,
        actor: p.actor,
        action: p.action,
        from: p.from.as_deref().map(|t| time_param("from", t)).transpose()?.map(to_ms),
        to: p.to.as_deref().map(|t| time_param("to", t)).transpose()?.map(to_ms),
        after,
        limit,
        hide_restricted,
        ..Default::default()
    };
    let index = s.index.clone();
    let rows = tokio::task::spawn_blocking(move || index.read(|c| audit::query(c, &f))).await??;
    let next_cursor = if rows.len() as u32 == limit { rows.last().map(|r| r.id.to_string()) } else { None };
    Ok(Json(AuditPage { entries: rows.iter().map(AuditJson::from).collect(), next_cursor }))
}
