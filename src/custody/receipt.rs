//! Signed receipts: what the host attests about one stored original.
//!
//! The signed bytes are the canonical JSON of [`ReceiptBody`] (its fields
//! in declaration order, no whitespace). A receipt file is
//! `{"receipt": {...}, "signature": "<hex>"}`; verifying it needs only the
//! file and the host's public key.

use serde::{Deserialize, Serialize};

use super::key::{parse_public, verify_hex, HostKey};
use crate::views::MediaJson;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// Always `bodycamd-receipt/1`.
    pub format: String,
    /// The original's id: the BLAKE3 of its bytes.
    pub id: String,
    pub size: u64,
    pub station: String,
    pub device: Option<String>,
    pub officer: Option<String>,
    pub recorded_start: Option<String>,
    pub recorded_end: Option<String>,
    pub first_seen: String,
    pub stored_at: String,
    pub deadline: Option<String>,
    pub on_time: Option<bool>,
    /// The public key of the host that signed (hex).
    pub host_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub receipt: ReceiptBody,
    /// Ed25519 signature of the receipt's canonical JSON (hex).
    pub signature: String,
}

pub const FORMAT: &str = "bodycamd-receipt/1";

impl ReceiptBody {
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a receipt serialises")
    }
}

/// The receipt of an original, signed by the host key.
pub fn issue(m: &MediaJson, key: &HostKey) -> Receipt {
    let body = ReceiptBody {
        format: FORMAT.into(),
        id: m.id.clone(),
        size: m.size,
        station: m.station.clone(),
        device: m.device.clone(),
        officer: m.officer.clone(),
        recorded_start: m.recorded_start.clone(),
        recorded_end: m.recorded_end.clone(),
        first_seen: m.first_seen.clone(),
        stored_at: m.ingested_at.clone(),
        deadline: m.deadline.clone(),
        on_time: m.on_time,
        host_key: key.public_hex(),
    };
    let signature = key.sign_hex(&body.canonical());
    Receipt { receipt: body, signature }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReceiptError {
    #[error("not a bodycamd receipt: {0}")]
    Malformed(String),
    #[error("{0}")]
    Key(String),
    #[error("the receipt names host key {named}, not the key given ({given})")]
    OtherKey { named: String, given: String },
    #[error("the signature does not match: the receipt was changed or was not signed by this key")]
    BadSignature,
}

/// Verify a receipt file's text against a public key (hex or a file).
pub fn verify(text: &[u8], pubkey: &str) -> Result<ReceiptBody, ReceiptError> {
    let r: Receipt = serde_json::from_slice(text).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    if r.receipt.format != FORMAT {
        return Err(ReceiptError::Malformed(format!("unknown format {:?}", r.receipt.format)));
    }
    let key = parse_public(pubkey).map_err(|e| ReceiptError::Key(e.to_string()))?;
    let given = hex::encode(key.as_bytes());
    if r.receipt.host_key != given {
        return Err(ReceiptError::OtherKey { named: r.receipt.host_key.clone(), given });
    }
    if !verify_hex(&key, &r.receipt.canonical(), &r.signature) {
        return Err(ReceiptError::BadSignature);
    }
    Ok(r.receipt)
}
