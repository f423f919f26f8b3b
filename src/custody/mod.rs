//! Evidence custody: the host's signing key, signed receipts, the
//! `verify` walk over archive and audit chain, and export archives.
//!
//! - [`key`]: the Ed25519 host key (created at first start, mode 0600).
//! - [`receipt`]: what a receipt says, its canonical bytes, sign and
//!   verify (offline, without the index).
//! - [`verify`]: re-hash objects, walk the audit chain, check the signed
//!   head.
//! - [`export`]: the tar archive of an approved export.

pub mod export;
pub mod key;
pub mod receipt;
pub mod retention;
pub mod verify;
