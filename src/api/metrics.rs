//! `/metrics`: Prometheus text exposition, computed from the index at each
//! scrape (so the figures are those of the evidence, not of this process's
//! memory, and survive restarts).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::index::{alerts as ax, query};
use crate::rules::alerts::ALL_KINDS;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    kind: String,
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StationLabel {
    station: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LateLabel {
    late: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Everything the metrics are computed from.
pub struct Inputs {
    pub now_ms: i64,
    pub free_bytes: Option<u64>,
    /// Station ids in the configuration (others in the index are history).
    pub stations: Vec<String>,
}

/// Render the metrics text.
pub fn render(c: &rusqlite::Connection, inp: &Inputs) -> anyhow::Result<String> {
    let mut reg = Registry::default();

    let alerts = Family::<AlertLabels, Gauge>::default();
    for k in ALL_KINDS {
        let _ = alerts.get_or_create(&AlertLabels {
            kind: k.as_str().into(),
            severity: k.severity().as_str().into(),
        });
    }
    for (kind, severity, n) in ax::open_counts(c)? {
        alerts.get_or_create(&AlertLabels { kind, severity }).set(n as i64);
    }
    reg.register("bodycamd_alerts_open", "Open alerts by kind and severity", alerts);

    let pending = Family::<StationLabel, Gauge>::default();
    let oldest = Family::<StationLabel, FloatGauge>::default();
    let nearest = Family::<StationLabel, FloatGauge>::default();
    for p in query::pending_by_station(c)? {
        if !inp.stations.contains(&p.station) {
            continue;
        }
        let l = StationLabel { station: p.station };
        pending.get_or_create(&l).set(p.files as i64);
        let age = p
            .oldest_first_seen
            .map_or(0.0, |f| (inp.now_ms - f).max(0) as f64 / 1000.0);
        oldest.get_or_create(&l).set(age);
        if let Some(d) = p.nearest_deadline {
            nearest.get_or_create(&l).set((d - inp.now_ms) as f64 / 1000.0);
        }
    }
    reg.register(
        "bodycamd_pending_files",
        "Files seen on a station and not stored yet",
        pending,
    );
    reg.register(
        "bodycamd_oldest_pending_age_seconds",
        "Age of the oldest file seen on a station and not stored yet (0 when none)",
        oldest,
    );
    reg.register(
        "bodycamd_nearest_deadline_seconds",
        "Seconds until the nearest storage deadline of a file not stored yet (negative: overdue)",
        nearest,
    );

    let available = Family::<StationLabel, Gauge>::default();
    for s in query::stations(c)? {
        if inp.stations.contains(&s.id) {
            available
                .get_or_create(&StationLabel { station: s.id })
                .set(i64::from(s.available));
        }
    }
    reg.register(
        "bodycamd_station_available",
        "1 when the station folder is present and readable",
        available,
    );

    let counts = query::counts(c)?;
    let ingested = Counter::<u64>::default();
    ingested.inc_by(counts.originals);
    reg.register("bodycamd_files_ingested", "Originals stored and indexed", ingested);
    let originals = Family::<KindLabel, Gauge>::default();
    for (kind, n) in &counts.by_kind {
        originals
            .get_or_create(&KindLabel { kind: kind.clone() })
            .set(*n as i64);
    }
    reg.register("bodycamd_originals", "Originals in the archive by kind", originals);

    let late = Family::<LateLabel, Counter>::default();
    for l in ["late_docking", "late_processing"] {
        let _ = late.get_or_create(&LateLabel { late: l.into() });
    }
    for (what, n) in query::lateness_counts(c)? {
        if what != "on_time" {
            late.get_or_create(&LateLabel { late: what }).inc_by(n);
        }
    }
    reg.register(
        "bodycamd_files_late",
        "Originals stored after their deadline, by whose fault",
        late,
    );

    if let Some(free) = inp.free_bytes {
        let g = Gauge::<i64>::default();
        g.set(free.min(i64::MAX as u64) as i64);
        reg.register(
            "bodycamd_archive_free_bytes",
            "Free space on the archive's file system",
            g,
        );
    }
    let undelivered = Gauge::<i64>::default();
    let n: i64 = c.query_row(
        "SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    undelivered.set(n);
    reg.register(
        "bodycamd_webhook_deliveries_pending",
        "Webhook deliveries not yet acknowledged by their receiver",
        undelivered,
    );

    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)?;
    Ok(out)
}
