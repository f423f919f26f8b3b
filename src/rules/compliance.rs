//! The compliance report: per officer, device or station, how many files
//! were stored on time, how many late and whose fault, and the delays.

use super::deadline::Lateness;

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Officer,
    Device,
    Station,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Officer => "officer",
            GroupBy::Device => "device",
            GroupBy::Station => "station",
        }
    }
}

/// The name of a group whose key is unknown.
const UNKNOWN: &str = "(unknown)";

/// A stored original as the report sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessed {
    /// Its officer, device or station (as the report groups).
    pub key: Option<String>,
    pub on_time: bool,
    pub late: Option<String>,
    pub clock_trusted: bool,
    /// From the end of the recording to storage (only with a trusted clock:
    /// otherwise such a delay means nothing).
    pub delay_ms: Option<i64>,
}

/// A file that left a dock before it was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Lost {
    pub key: Option<String>,
}

/// The report's items: every assessed original, and every lost file (which
/// counts as a file, and never as on time). Keys borrow from the rows.
pub fn items<'a>(assessed: &'a [Assessed], lost: &'a [Lost]) -> Vec<Item<&'a str>> {
    let mut out: Vec<Item<&str>> = Vec::with_capacity(assessed.len() + lost.len());
    out.extend(assessed.iter().map(|r| Item {
        key: r.key.as_deref().unwrap_or(UNKNOWN),
        on_time: r.on_time,
        late: r.late.as_deref().and_then(Lateness::parse),
        clock_invalid: !r.clock_trusted,
        vanished: false,
        delay_secs: r.delay_ms.filter(|_| r.clock_trusted).map(|d| d as f64 / 1000.0),
    }));
    out.extend(lost.iter().map(|l| Item {
        key: l.key.as_deref().unwrap_or(UNKNOWN),
        on_time: false,
        late: None,
        clock_invalid: false,
        vanished: true,
        delay_secs: None,
    }));
    out
}

/// One assessed original (or lost file).
#[derive(Debug, Clone, PartialEq)]
pub struct Item<K = String> {
    /// The group it is counted in (officer, device or station; `(unknown)`).
    pub key: K,
    pub on_time: bool,
    pub late: Option<Lateness>,
    pub clock_invalid: bool,
    /// It left a dock before it was stored (lost evidence).
    pub vanished: bool,
    /// Seconds from the end of the recording to storage (`None` when the
    /// recording's clock is invalid: such a delay means nothing).
    pub delay_secs: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub key: String,
    pub files: u64,
    pub on_time: u64,
    pub late_docking: u64,
    pub late_processing: u64,
    /// Of the late files, those whose clock could not be trusted.
    pub clock_invalid: u64,
    /// Files that left a dock before they were stored (lost evidence):
    /// counted in `files`, never on time.
    pub vanished: u64,
    /// `on_time / files * 100`, rounded to two decimals.
    pub on_time_pct: f64,
    pub median_delay_secs: Option<f64>,
    pub max_delay_secs: Option<f64>,
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// One group's counts as they are added up (one pass over the items).
#[derive(Default)]
struct Tally {
    files: u64,
    on_time: u64,
    late_docking: u64,
    late_processing: u64,
    clock_invalid: u64,
    vanished: u64,
    delays: Vec<f64>,
}

impl Tally {
    fn add<K>(&mut self, i: &Item<K>) {
        self.files += 1;
        self.on_time += u64::from(i.on_time);
        self.late_docking += u64::from(i.late == Some(Lateness::LateDocking));
        self.late_processing += u64::from(i.late == Some(Lateness::LateProcessing));
        self.clock_invalid += u64::from(i.clock_invalid);
        self.vanished += u64::from(i.vanished);
        self.delays.extend(i.delay_secs);
    }

    fn row(mut self, key: String) -> Row {
        self.delays.sort_unstable_by(f64::total_cmp);
        let (files, on_time) = (self.files, self.on_time);
        Row {
            key,
            files,
            on_time,
            late_docking: self.late_docking,
            late_processing: self.late_processing,
            clock_invalid: self.clock_invalid,
            vanished: self.vanished,
            on_time_pct: if files == 0 { 0.0 } else { (on_time as f64 * 10_000.0 / files as f64).round() / 100.0 },
            median_delay_secs: median(&self.delays),
            max_delay_secs: self.delays.last().copied(),
        }
    }
}

/// Rows per group (sorted by key), then a `TOTAL` row.
pub fn summarize<K: AsRef<str>>(items: &[Item<K>]) -> Vec<Row> {
    let mut groups: std::collections::HashMap<&str, Tally> = std::collections::HashMap::new();
    let mut total = Tally::default();
    for i in items {
        groups.entry(i.key.as_ref()).or_default().add(i);
        total.add(i);
    }
    let mut groups: Vec<(&str, Tally)> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<Row> = groups.into_iter().map(|(k, t)| t.row(k.to_string())).collect();
    out.push(total.row("TOTAL".into()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, late: Option<Lateness>, delay: Option<f64>, clock_invalid: bool) -> Item {
        Item { key: key.into(), on_time: late.is_none(), late, clock_invalid, vanished: false, delay_secs: delay }
    }

    #[test]
    fn exact_counts_percentages_and_medians() {
        let items = vec![
            item("004711", None, Some(60.0), false),
            item("004711", None, Some(120.0), false),
            item("004711", Some(Lateness::LateProcessing), Some(90_000.0), false),
            item("004712", Some(Lateness::LateDocking), Some(100_000.0), false),
            item("004712", Some(Lateness::LateDocking), None, true),
        ];
        let rows = summarize(&items);
        assert_eq!(rows.len(), 3);
        let a = &rows[0];
        assert_eq!((a.key.as_str(), a.files, a.on_time, a.late_processing), ("004711", 3, 2, 1));
        assert_eq!(a.on_time_pct, 66.67);
        assert_eq!(a.median_delay_secs, Some(120.0));
        assert_eq!(a.max_delay_secs, Some(90_000.0));
        let b = &rows[1];
        assert_eq!((b.late_docking, b.clock_invalid, b.on_time_pct), (2, 1, 0.0));
        assert_eq!(b.median_delay_secs, Some(100_000.0), "an invalid clock has no delay");
        let total = &rows[2];
        assert_eq!((total.key.as_str(), total.files, total.on_time), ("TOTAL", 5, 2));
        assert_eq!(total.median_delay_secs, Some((120.0 + 90_000.0) / 2.0));
    }

    #[test]
    fn lost_files_count_and_are_never_on_time() {
        let a = Assessed {
            key: Some("004711".into()),
            on_time: true,
            late: None,
            clock_trusted: true,
            delay_ms: Some(60_000),
        };
        let lost = Lost { key: Some("004711".into()) };
        let rows = summarize(&items(&[a], &[lost]));
        assert_eq!((rows[0].files, rows[0].on_time, rows[0].vanished, rows[0].on_time_pct), (2, 1, 1, 50.0));
    }
}
