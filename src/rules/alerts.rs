//! Alert kinds, their severities and subjects.

/// Every kind of alert bodycamd raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    DeadlineAtRisk,
    Overdue,
    LateDocking,
    LateProcessing,
    IngestFailed,
    MediaUnreadable,
    ClockInvalid,
    SequenceGap,
    StationUnavailable,
    StorageLow,
    WatchDegraded,
    RenditionFailed,
    /// A closed case whose file must still be archived (the 30-day rule).
    CaseArchiveDue,
    /// A closed case not archived in time.
    CaseArchiveOverdue,
    /// The archive is full or cannot be written: files wait on the docks.
    ArchiveUnwritable,
    /// The index cannot commit: files wait on the docks.
    IndexUnwritable,
    /// The process ran out of file descriptors or memory.
    ResourcesExhausted,
    /// A file a station showed disappeared before it was stored: lost
    /// evidence. Never resolves by itself.
    VanishedUnstored,
    /// A station's folder was replaced or unmounted while files it showed
    /// were not stored: they are unaccounted for.
    DockReplaced,
    /// A file on a station that is never taken (a link, a fifo, a folder
    /// nested too deep, one that cannot be examined).
    IngestRejected,
    /// A stored copy's bytes no longer matched its name; it was moved aside
    /// and replaced by a good copy. Never resolves by itself.
    ObjectDamaged,
    /// A caller without the grant tried to change a restricted case; the
    /// change was held, not applied.
    RestrictedCaseWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
    Critical,
    /// A permanent record of a breach of the rule.
    Violation,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
            Severity::Violation => "violation",
        }
    }
}

pub const ALL_KINDS: &[AlertKind] = &[
    AlertKind::DeadlineAtRisk,
    AlertKind::Overdue,
    AlertKind::LateDocking,
    AlertKind::LateProcessing,
    AlertKind::IngestFailed,
    AlertKind::MediaUnreadable,
    AlertKind::ClockInvalid,
    AlertKind::SequenceGap,
    AlertKind::StationUnavailable,
    AlertKind::StorageLow,
    AlertKind::WatchDegraded,
    AlertKind::RenditionFailed,
    AlertKind::CaseArchiveDue,
    AlertKind::CaseArchiveOverdue,
    AlertKind::ArchiveUnwritable,
    AlertKind::IndexUnwritable,
    AlertKind::ResourcesExhausted,
    AlertKind::VanishedUnstored,
    AlertKind::DockReplaced,
    AlertKind::IngestRejected,
    AlertKind::ObjectDamaged,
    AlertKind::RestrictedCaseWrite,
];

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DeadlineAtRisk => "deadline_at_risk",
            AlertKind::Overdue => "overdue",
            AlertKind::LateDocking => "late_docking",
            AlertKind::LateProcessing => "late_processing",
            AlertKind::IngestFailed => "ingest_failed",
            AlertKind::MediaUnreadable => "media_unreadable",
            AlertKind::ClockInvalid => "clock_invalid",
            AlertKind::SequenceGap => "sequence_gap",
            AlertKind::StationUnavailable => "station_unavailable",
            AlertKind::StorageLow => "storage_low",
            AlertKind::WatchDegraded => "watch_degraded",
            AlertKind::RenditionFailed => "rendition_failed",
            AlertKind::CaseArchiveDue => "case_archive_due",
            AlertKind::CaseArchiveOverdue => "case_archive_overdue",
            AlertKind::ArchiveUnwritable => "archive_unwritable",
            AlertKind::IndexUnwritable => "index_unwritable",
            AlertKind::ResourcesExhausted => "resources_exhausted",
            AlertKind::VanishedUnstored => "vanished_unstored",
            AlertKind::DockReplaced => "dock_replaced",
            AlertKind::IngestRejected => "ingest_rejected",
            AlertKind::ObjectDamaged => "object_damaged",
            AlertKind::RestrictedCaseWrite => "restricted_case_write",
        }
    }

    pub fn parse(s: &str) -> Option<AlertKind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == s)
    }

    pub fn severity(self) -> Severity {
        match self {
            AlertKind::DeadlineAtRisk
            | AlertKind::MediaUnreadable
            | AlertKind::ClockInvalid
            | AlertKind::SequenceGap
            | AlertKind::WatchDegraded
            | AlertKind::RenditionFailed
            | AlertKind::CaseArchiveDue
            | AlertKind::IngestRejected
            | AlertKind::RestrictedCaseWrite => Severity::Warning,
            AlertKind::IngestFailed | AlertKind::CaseArchiveOverdue => Severity::Error,
            AlertKind::Overdue
            | AlertKind::StationUnavailable
            | AlertKind::StorageLow
            | AlertKind::ArchiveUnwritable
            | AlertKind::IndexUnwritable
            | AlertKind::ResourcesExhausted
            | AlertKind::VanishedUnstored
            | AlertKind::DockReplaced
            | AlertKind::ObjectDamaged => Severity::Critical,
            AlertKind::LateDocking | AlertKind::LateProcessing => Severity::Violation,
        }
    }

    /// What the subject names.
    pub fn subject_type(self) -> &'static str {
        match self {
            AlertKind::DeadlineAtRisk
            | AlertKind::Overdue
            | AlertKind::IngestFailed
            | AlertKind::VanishedUnstored
            | AlertKind::IngestRejected => "file",
            AlertKind::LateDocking
            | AlertKind::LateProcessing
            | AlertKind::MediaUnreadable
            | AlertKind::ClockInvalid
            | AlertKind::RenditionFailed
            | AlertKind::ObjectDamaged => "media",
            AlertKind::SequenceGap => "device",
            AlertKind::StationUnavailable | AlertKind::WatchDegraded | AlertKind::DockReplaced => "station",
            AlertKind::StorageLow | AlertKind::ArchiveUnwritable | AlertKind::IndexUnwritable => "archive",
            AlertKind::ResourcesExhausted => "process",
            AlertKind::CaseArchiveDue | AlertKind::CaseArchiveOverdue | AlertKind::RestrictedCaseWrite => "case",
        }
    }

    /// Permanent records (violations, lost or damaged evidence): they never
    /// resolve themselves.
    pub fn sticky(self) -> bool {
        matches!(
            self,
            AlertKind::LateDocking | AlertKind::LateProcessing | AlertKind::VanishedUnstored | AlertKind::ObjectDamaged
        )
    }
}

/// An alert that should be open.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSpec {
    pub kind: AlertKind,
    /// Unique per kind among open alerts: `station/path` for a file, a media
    /// id, `DEVICE#seq` for a sequence gap, a station id, `archive`.
    pub subject: String,
    pub details: serde_json::Value,
}

/// The subject of a file on a station.
pub fn file_subject(station: &str, rel: &str) -> String {
    format!("{station}/{rel}")
}

/// The subject of a missing sequence number of a device.
pub fn gap_subject(device: &str, seq: i64) -> String {
    format!("{device}#{seq:04}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_are_classified() {
        for k in ALL_KINDS {
            assert_eq!(AlertKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(AlertKind::Overdue.severity(), Severity::Critical);
        assert_eq!(AlertKind::LateProcessing.severity(), Severity::Violation);
        assert!(AlertKind::LateDocking.sticky() && !AlertKind::Overdue.sticky());
        assert_eq!(gap_subject("CAM1", 8), "CAM1#0008");
    }
}
