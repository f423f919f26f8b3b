//! `/metrics`: Prometheus text exposition (format 0.0.4), computed from the
//! index at each scrape, so the figures are those of the evidence, not of
//! this process's memory, and survive restarts.
//!
//! The text is written here rather than with a client library: the one
//! candidate (prometheus-client) writes OpenMetrics, whose counter families
//! `promtool check metrics` from Debian bookworm rejects as lacking help.

use std::fmt::Write as _;

use crate::index::{alerts as ax, query};
use crate::rules::alerts::ALL_KINDS;

/// Everything the metrics are computed from besides the index.
pub struct Inputs {
    pub now_ms: i64,
    pub free_bytes: Option<u64>,
    /// Station ids in the configuration (others in the index are history).
    pub stations: Vec<String>,
    /// Outages this host meets now: (alert kind, since in ms).
    pub outages: Vec<(&'static str, i64)>,
}

/// A metric family being written.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let name = self.name;
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = writeln!(self.out, "{name}{{{}}} {value}", l.join(","));
        }
    }
}

/// What this host knows without the index: whether the index answers, its
/// outages, and the archive's free space.
pub fn render_local(inp: &Inputs, index_up: bool) -> String {
    let mut out = String::new();
    let mut f = Family::new(&mut out, "bodycamd_index_up", "gauge", "1 while the index answers this host.");
    f.sample(&[], if index_up { 1.0 } else { 0.0 });
    let mut f = Family::new(
        &mut out,
        "bodycamd_outage",
        "gauge",
        "1 while this host meets an outage of the archive, the index or the process (files wait on the docks).",
    );
    for kind in ["archive_unwritable", "index_unwritable", "resources_exhausted"] {
        let on = inp.outages.iter().any(|(k, _)| *k == kind);
        f.sample(&[("kind", kind)], if on { 1.0 } else { 0.0 });
    }
    out
}

/// Render the metrics text.
pub fn render(c: &crate::index::db::Db, inp: &Inputs) -> anyhow::Result<String> {
    let mut out = String::new();

    let mut open: std::collections::BTreeMap<(String, String), u64> =
        ALL_KINDS.iter().map(|k| ((k.as_str().to_string(), k.severity().as_str().to_string()), 0)).collect();
    for (kind, severity, n) in ax::open_counts(c, false)? {
        open.insert((kind, severity), n);
    }
    let mut f = Family::new(&mut out, "bodycamd_alerts_open", "gauge", "Open alerts by kind and severity.");
    for ((kind, severity), n) in &open {
        f.sample(&[("kind", kind), ("severity", severity)], *n as f64);
    }

    let pending: Vec<_> =
        query::pending_by_station(c)?.into_iter().filter(|p| inp.stations.contains(&p.station)).collect();
    let mut f = Family::new(&mut out, "bodycamd_pending_files", "gauge", "Files seen on a station and not stored yet.");
    for p in &pending {
        f.sample(&[("station", &p.station)], p.files as f64);
    }
    let mut f = Family::new(
        &mut out,
        "bodycamd_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest file seen on a station and not stored yet (0 when none).",
    );
    for p in &pending {
        let age = p.oldest_first_seen.map_or(0.0, |t| (inp.now_ms - t).max(0) as f64 / 1000.0);
        f.sample(&[("station", &p.station)], age);
    }
    let mut f = Family::new(
        &mut out,
        "bodycamd_nearest_deadline_seconds",
        "gauge",
        "Seconds until the nearest storage deadline of a file not stored yet (negative when overdue; absent when none waits).",
    );
    for p in &pending {
        if let Some(d) = p.nearest_deadline {
            f.sample(&[("station", &p.station)], (d - inp.now_ms) as f64 / 1000.0);
        }
    }

    let mut f = Family::new(
        &mut out,
        "bodycamd_station_available",
        "gauge",
        "1 when the station folder is present and readable.",
    );
    for s in query::stations(c)? {
        if inp.stations.contains(&s.id) {
            f.sample(&[("station", &s.id)], f64::from(u8::from(s.available)));
        }
    }

    let counts = query::counts(c, false)?;
    let mut f = Family::new(&mut out, "bodycamd_files_ingested_total", "counter", "Originals stored and indexed.");
    f.sample(&[], counts.originals as f64);
    let mut f = Family::new(&mut out, "bodycamd_originals", "gauge", "Originals in the archive by kind.");
    for (kind, n) in &counts.by_kind {
        f.sample(&[("kind", kind)], *n as f64);
    }

    let mut late: std::collections::BTreeMap<String, u64> =
        [("late_docking".to_string(), 0), ("late_processing".to_string(), 0)].into();
    for (what, n) in query::lateness_counts(c, false)? {
        if what != "on_time" {
            late.insert(what, n);
        }
    }
    let mut f = Family::new(
        &mut out,
        "bodycamd_files_late_total",
        "counter",
        "Originals stored after their deadline, by whose fault.",
    );
    for (l, n) in &late {
        f.sample(&[("late", l)], *n as f64);
    }

    out.push_str(&render_local(inp, true));
    if let Some(free) = inp.free_bytes {
        let mut f =
            Family::new(&mut out, "bodycamd_archive_free_bytes", "gauge", "Free space on the archive's file system.");
        f.sample(&[], free as f64);
    }
    let n = ax::undelivered(c)?;
    let mut f = Family::new(
        &mut out,
        "bodycamd_webhook_deliveries_pending",
        "gauge",
        "Webhook deliveries not yet accepted by their receiver.",
    );
    f.sample(&[], n as f64);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        let mut f = Family::new(&mut s, "x", "gauge", "help");
        f.sample(&[("station", "a\"b\\c\nd")], 1.0);
        assert!(s.contains(r#"x{station="a\"b\\c\nd"} 1"#), "{s}");
    }
}
