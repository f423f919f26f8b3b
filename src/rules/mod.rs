//! The rules bodycamd watches: the 24-hour storage deadline, lateness and
//! whose fault it is, alert kinds, time-based alert evaluation, sequence
//! gaps and the compliance report. Pure: no IO; callers pass the time.

pub mod alerts;
pub mod cases;
pub mod compliance;
pub mod deadline;
pub mod evaluate;
pub mod renditions;
pub mod sequence;
