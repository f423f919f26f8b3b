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
            | AlertKind::CaseArchiveDue => Severity::Warning,
            AlertKind::IngestFailed | AlertKind::CaseArchiveOverdue => Severity::Error,
            AlertKind::Overdue | AlertKind::StationUnavailable | AlertKind::StorageLow => Severity::Critical,
            AlertKind::LateDocking | AlertKind::LateProcessing => Severity::Violation,
        }
    }

    /// What the subject names.
    pub fn subject_type(self) -> &'static str {
        match self {
            AlertKind::DeadlineAtRisk | AlertKind::Overdue | AlertKind::IngestFailed => "file",
            AlertKind::LateDocking
            | AlertKind::LateProcessing
            | AlertKind::MediaUnreadable
            | AlertKind::ClockInvalid
            | AlertKind::RenditionFailed => "media",
            AlertKind::SequenceGap => "device",
            AlertKind::StationUnavailable | AlertKind::WatchDegraded => "station",
            AlertKind::StorageLow => "archive",
            AlertKind::CaseArchiveDue | AlertKind::CaseArchiveOverdue => "case",
        }
    }

    /// Violations are permanent records: they never resolve themselves.
    pub fn sticky(self) -> bool {
        matches!(self, AlertKind::LateDocking | AlertKind::LateProcessing)
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
