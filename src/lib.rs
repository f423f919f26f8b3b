//! bodycamd: ingest body-worn camera media from docking stations into a
//! verified, indexed evidence archive.
//!
//! # Layout
//! - [`domain`]: ids, kinds, signatures, recording-time rules (pure).
//! - [`config`]: TOML → validated configuration.
//! - [`naming`]: station naming patterns (pure).
//! - [`clock`]: injectable wall clock, time formats.
//! - [`watch`]: discovery on station folders (scan, events, settle, safe opens).
//! - [`store`]: the content-addressed archive.
//! - [`media`]: describing media (sniffing, EXIF, libav in child processes).
//! - [`index`]: the SQLite index (and the hash-chained audit log).
//! - [`custody`]: host key, signed receipts, verify, retention, exports.
//! - [`rules`]: the rules watched (deadlines, alerts, cases, renditions; pure).
//! - [`api`]: the HTTP API.
//! - [`pipeline`]: stations → store → index → dispose → describe → renditions; custody chores.
//! - [`app`]: the composition root.
//! - [`views`]: JSON and text shapes shown to users.
//! - [`simulate`]: a simulated docking station.
//! - [`cli`]: the command line.
//! - [`fuzzing`]: the fuzz targets' entry points (arbitrary bytes in).
//!
//! See ARCHITECTURE.md for the invariants.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod custody;
pub mod domain;
pub mod fuzzing;
pub mod index;
pub mod media;
pub mod naming;
pub mod pipeline;
pub mod rules;
pub mod simulate;
pub mod store;
pub mod telemetry;
pub mod views;
pub mod watch;
pub mod webhook;
