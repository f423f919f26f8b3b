//! Request and response types of the HTTP API (the boundary: the domain
//! types stay free of serde). Every request type refuses unknown fields.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::clock::{from_ms, rfc3339};
use crate::index::alerts::AlertRow;
use crate::index::audit::AuditEntry;
use crate::index::cases::{CaseRecord, LinkRecord, Relinked};
use crate::views::MediaJson;

/// A time window of a case (RFC 3339).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowBody {
    #[schema(example = "2026-11-26T09:30:00+08:00")]
    pub start: String,
    #[schema(example = "2026-11-26T11:10:00+08:00")]
    pub end: String,
}

/// A case as a case system registers it (`PUT /api/v1/cases/{case_id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseBody {
    pub title: Option<String>,
    /// `open` (default) or `closed`.
    pub status: Option<String>,
    /// When the case was closed (only for a closed case).
    pub closed_at: Option<String>,
    /// Officer numbers.
    #[serde(default)]
    pub officers: Vec<String>,
    /// Device serials.
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub windows: Vec<WindowBody>,
    /// Minutes added before and after every window when matching (0-1440).
    pub buffer_minutes: Option<i64>,
}

/// What registering a case changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RelinkJson {
    pub created: bool,
    /// Rule links added.
    pub linked: usize,
    /// Rule links dropped because the case no longer covers them.
    pub unlinked: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseJson {
    pub case_id: String,
    pub title: Option<String>,
    pub status: String,
    pub closed_at: Option<String>,
    pub officers: Vec<String>,
    pub devices: Vec<String>,
    pub windows: Vec<WindowBody>,
    pub buffer_minutes: i64,
    pub created_at: String,
    pub updated_at: String,
    pub updated_by: String,
    /// Originals linked to the case now.
    pub linked_media: usize,
    /// Present in the answer to a `PUT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relink: Option<RelinkJson>,
}

impl CaseJson {
    pub fn new(r: &CaseRecord, linked_media: usize, relink: Option<Relinked>) -> CaseJson {
        CaseJson {
            case_id: r.case.id.clone(),
            title: r.case.title.clone(),
            status: r.case.status.as_str().into(),
            closed_at: r.case.closed_at.map(rfc3339),
            officers: r.case.officers.clone(),
            devices: r.case.devices.clone(),
            windows: r
                .case
                .windows
                .iter()
                .map(|w| WindowBody { start: rfc3339(w.start), end: rfc3339(w.end) })
                .collect(),
            buffer_minutes: r.case.buffer_minutes,
            created_at: rfc3339(from_ms(r.created_at)),
            updated_at: rfc3339(from_ms(r.updated_at)),
            updated_by: r.updated_by.clone(),
            linked_media,
            relink: relink.map(|x| RelinkJson { created: x.created, linked: x.linked, unlinked: x.unlinked }),
        }
    }
}

/// A link between a case and an original.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkJson {
    pub case_id: String,
    pub media_id: String,
    /// `rule` or `manual`.
    pub how: String,
    /// `linked` or `removed` (removed by hand; the rule does not restore it).
    pub state: String,
    pub linked_by: String,
    pub linked_at: String,
    pub note: Option<String>,
    pub removed_by: Option<String>,
    pub removed_at: Option<String>,
}

impl From<&LinkRecord> for LinkJson {
    fn from(l: &LinkRecord) -> LinkJson {
        LinkJson {
            case_id: l.case_id.clone(),
            media_id: l.media_id.clone(),
            how: l.how.clone(),
            state: l.state.clone(),
            linked_by: l.linked_by.clone(),
            linked_at: rfc3339(from_ms(l.linked_at)),
            note: l.note.clone(),
            removed_by: l.removed_by.clone(),
            removed_at: l.removed_at.map(|t| rfc3339(from_ms(t))),
        }
    }
}

/// `POST /api/v1/cases/{case_id}/media`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    pub media_id: String,
    pub note: Option<String>,
}

/// An original with all its metadata and its case links.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaItem {
    #[serde(flatten)]
    pub media: MediaJson,
    pub links: Vec<LinkJson>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseMedia {
    pub case_id: String,
    /// By recording start.
    pub media: Vec<MediaItem>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaPage {
    pub media: Vec<MediaItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Filters of `GET /api/v1/media`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MediaParams {
    /// Linked to this case.
    pub case: Option<String>,
    pub officer: Option<String>,
    pub device: Option<String>,
    pub station: Option<String>,
    /// `video`, `audio`, `photo` or `other`.
    pub kind: Option<String>,
    /// Recording started at or after (RFC 3339).
    pub from: Option<String>,
    /// Recording started before (RFC 3339).
    pub to: Option<String>,
    /// Stored within its deadline, or not.
    pub on_time: Option<bool>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertJson {
    pub id: i64,
    pub kind: String,
    pub severity: String,
    pub subject_type: String,
    pub subject: String,
    /// `open`, `acked` or `resolved`.
    pub state: String,
    pub opened_at: String,
    pub resolved_at: Option<String>,
    pub acked_by: Option<String>,
    pub acked_at: Option<String>,
    pub ack_note: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<&AlertRow> for AlertJson {
    fn from(a: &AlertRow) -> AlertJson {
        AlertJson {
            id: a.id,
            kind: a.kind.clone(),
            severity: a.severity.clone(),
            subject_type: a.subject_type.clone(),
            subject: a.subject.clone(),
            state: a.state().into(),
            opened_at: rfc3339(from_ms(a.opened_at)),
            resolved_at: a.resolved_at.map(|t| rfc3339(from_ms(t))),
            acked_by: a.acked_by.clone(),
            acked_at: a.acked_at.map(|t| rfc3339(from_ms(t))),
            ack_note: a.ack_note.clone(),
            details: a.details.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// `open` (default), `acked`, `resolved` or `all`.
    pub state: Option<String>,
    pub kind: Option<String>,
    /// At most this many, newest first (default 500, at most 10000).
    pub limit: Option<u32>,
}

/// `POST /api/v1/alerts/{id}/ack`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    pub media: Option<String>,
    pub case: Option<String>,
    /// Token name.
    pub actor: Option<String>,
    /// What was done (`media.original`, `retention.purge`, `http.unauthenticated` …).
    pub action: Option<String>,
    /// At or after (RFC 3339).
    pub from: Option<String>,
    /// Before (RFC 3339).
    pub to: Option<String>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditJson {
    pub id: i64,
    pub at: String,
    /// The token's name.
    pub actor: String,
    pub role: Option<String>,
    /// The client's address.
    pub remote: Option<String>,
    pub action: String,
    pub method: Option<String>,
    pub route: Option<String>,
    pub case_id: Option<String>,
    pub media_id: Option<String>,
    pub status: Option<u16>,
    /// `ok`, `denied`, `not_found`, `rejected` or `error`.
    pub outcome: String,
    pub details: Option<String>,
}

impl From<&AuditEntry> for AuditJson {
    fn from(e: &AuditEntry) -> AuditJson {
        AuditJson {
            id: e.id,
            at: rfc3339(from_ms(e.at)),
            actor: e.actor.clone(),
            role: e.role.clone(),
            remote: e.remote.clone(),
            action: e.action.clone(),
            method: e.method.clone(),
            route: e.route.clone(),
            case_id: e.case_id.clone(),
            media_id: e.media_id.clone(),
            status: e.status,
            outcome: e.outcome.clone(),
            details: e.details.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditJson>,
    pub next_cursor: Option<String>,
}
