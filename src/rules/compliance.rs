//! The compliance report: per officer, device or station, how many files
//! were stored on time, how many late and whose fault, and the delays.

use std::collections::BTreeMap;

use super::deadline::Lateness;

/// One assessed original.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The group it is counted in (officer, device or station; `(unknown)`).
    pub key: String,
    pub on_time: bool,
    pub late: Option<Lateness>,
    pub clock_invalid: bool,
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

fn row(key: String, items: &[&Item]) -> Row {
    let files = items.len() as u64;
    let on_time = items.iter().filter(|i| i.on_time).count() as u64;
    let mut delays: Vec<f64> = items.iter().filter_map(|i| i.delay_secs).collect();
    delays.sort_by(|a, b| a.total_cmp(b));
    Row {
        key,
        files,
        on_time,
        late_docking: items.iter().filter(|i| i.late == Some(Lateness::LateDocking)).count() as u64,
        late_processing: items.iter().filter(|i| i.late == Some(Lateness::LateProcessing)).count() as u64,
        clock_invalid: items.iter().filter(|i| i.clock_invalid).count() as u64,
        on_time_pct: if files == 0 { 0.0 } else { (on_time as f64 * 10_000.0 / files as f64).round() / 100.0 },
        median_delay_secs: median(&delays),
        max_delay_secs: delays.last().copied(),
    }
}

/// Rows per group (sorted by key), then a `TOTAL` row.
pub fn summarize(items: &[Item]) -> Vec<Row> {
    let mut groups: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    for i in items {
        groups.entry(i.key.as_str()).or_default().push(i);
    }
    let mut out: Vec<Row> = groups.into_iter().map(|(k, v)| row(k.to_string(), &v)).collect();
    let all: Vec<&Item> = items.iter().collect();
    out.push(row("TOTAL".into(), &all));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, late: Option<Lateness>, delay: Option<f64>, clock_invalid: bool) -> Item {
        Item { key: key.into(), on_time: late.is_none(), late, clock_invalid, delay_secs: delay }
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
}
