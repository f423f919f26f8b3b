//! Discovery: finding complete files on docking-station folders.
//!
//! - [`filter`]: names never taken (temporary, hidden).
//! - [`scan`]: listing a station without following links.
//! - [`settle`]: the state machine that decides when a file is complete.
//! - [`events`]: inotify hints (via notify) that make discovery fast; scans
//!   make it reliable.
//!
//! This module knows stations only through their folder and settings; it
//! does not store, describe or index anything.

pub mod dock;
pub mod events;
pub mod filter;
pub mod scan;
pub mod settle;
