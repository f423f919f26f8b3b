//! For administrators: stations and alerts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody, JsonBody, PathParams, QueryParams};
use super::types::{AckBody, AlertJson, AlertParams};
use super::ApiState;
use crate::clock::to_ms;
use crate::index::alerts::{self as ax, AckOutcome, StateFilter};
use crate::index::query;
use crate::views::StationJson;

/// Stations: availability, pending and failed files.
#[utoipa::path(
    get, path = "/api/v1/stations", tag = "admin",
    responses((status = 200, body = Vec<StationJson>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn stations(State(s): State<ApiState>) -> Result<Json<Vec<StationJson>>, ApiError> {
    let (index, ids) = (s.index.clone(), s.stations.clone());
    let rows = tokio::task::spawn_blocking(move || index.read(query::stations)).await??;
    Ok(Json(rows.iter().filter(|r| ids.contains(&r.id)).map(StationJson::from_row).collect()))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// Only this file (its path relative to the station); default: every
    /// failed or waiting file of the station.
    pub path: Option<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RetryJson {
    pub station: String,
    /// Files asked to be tried again now.
    pub requested: u64,
}

/// Try a station's failed files again now (they are also retried by
/// themselves every `ingest.failed_retry_secs`).
#[utoipa::path(
    post, path = "/api/v1/stations/{station}/retry", tag = "admin",
    params(("station" = String, Path)),
    request_body = RetryBody,
    responses((status = 200, body = RetryJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn retry(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    PathParams(station): PathParams<String>,
    JsonBody(body): JsonBody<RetryBody>,
) -> Result<axum::response::Response, ApiError> {
    if !s.stations.contains(&station) {
        return Err(ApiError::not_found(format!("no station {station:?}")));
    }
    if body.path.as_ref().is_some_and(|p| p.is_empty() || p.len() > 4096) {
        return Err(ApiError::validation(vec!["path: 1-4096 bytes".into()]));
    }
    let now = to_ms(s.clock.now());
    let (st, by, rel) = (station.clone(), caller.name.clone(), body.path.clone());
    let n = s
        .index
        .call(move |c| crate::index::ingest::request_retry(c, Some(&st), rel.as_deref().map(str::as_bytes), now))
        .await?;
    s.retry_wake.notify_waiters();
    // The request's own audit entry (written before the answer) says it.
    let what = body.path.map(|p| format!("{station}:{p}")).unwrap_or_else(|| format!("every failed file of {station}"));
    let note = super::auth::AuditNote {
        details: Some(format!("{what}: {n} file(s) asked to be retried by {by}")),
        ..Default::default()
    };
    Ok(super::auth::with_note(Json(RetryJson { station, requested: n as u64 }), note))
}

/// Alerts, newest first.
#[utoipa::path(
    get, path = "/api/v1/alerts", tag = "admin",
    params(AlertParams),
    responses((status = 200, body = Vec<AlertJson>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn alerts(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    QueryParams(p): QueryParams<AlertParams>,
) -> Result<Json<Vec<AlertJson>>, ApiError> {
    // Alerts about restricted records are for those with the grant (and a
    // reason); to everyone else they do not exist, not even in a count.
    let hide = !super::auth::Clearance::of(&caller, &headers).sees_restricted;
    let state = match p.state.as_deref().unwrap_or("open") {
        "open" => StateFilter::Open,
        "acked" => StateFilter::Acked,
        "resolved" => StateFilter::Resolved,
        "all" => StateFilter::All,
        other => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("state {other:?}: open, acked, resolved or all"),
            ))
        }
    };
    if let Some(k) = &p.kind {
        if crate::rules::alerts::AlertKind::parse(k).is_none() {
            return Err(ApiError::bad_request("invalid_request", format!("unknown alert kind {k:?}")));
        }
    }
    let limit = p.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_request", "limit must be between 1 and 10000"));
    }
    let index = s.index.clone();
    let rows = tokio::task::spawn_blocking(move || {
        index.read(|c| ax::list(c, state, p.kind.as_deref(), None, Some(limit), hide))
    })
    .await??;
    Ok(Json(rows.iter().map(AlertJson::from).collect()))
}

/// Acknowledge an alert, as the calling token.
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/ack", tag = "admin",
    params(("id" = i64, Path)),
    request_body = AckBody,
    responses((status = 200, body = AlertJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
               (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn ack(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<i64>,
    JsonBody(body): JsonBody<AckBody>,
) -> Result<Json<AlertJson>, ApiError> {
    let now = to_ms(s.clock.now());
    let hooks = s.hooks.clone();
    let by = caller.name.clone();
    let out = s
        .index
        .call(move |c| {
            let o = ax::ack(c, id, &by, body.note.as_deref(), now, &hooks)?;
            Ok((o, ax::get(c, id)?))
        })
        .await?;
    match out {
        (AckOutcome::Acked(_), Some(row)) => Ok(Json(AlertJson::from(&row))),
        (AckOutcome::AlreadyAcked(r), _) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("alert {} was already acknowledged by {}", r.id, r.acked_by.unwrap_or_default()),
        )),
        _ => Err(ApiError::not_found(format!("no alert {id}"))),
    }
}
