//! Sending alert events to webhooks: an HTTP POST of a JSON body, signed
//! with `X-Bodycamd-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//! Delivery bookkeeping (the outbox, retries) lives with the caller.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header's value for `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check a signature header (for receivers, and the tests).
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("bodycamd/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with these settings can be built")
}

/// POST one event. `Ok` only for a 2xx answer.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    key: &str,
    event: &str,
    body: &str,
) -> Result<(), String> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-bodycamd-signature", signature(secret, body.as_bytes()))
        .header("x-bodycamd-event", event)
        .header("idempotency-key", key)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_a_known_vector_and_verify() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify("Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify("Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify("other", b"what do ya want for nothing?", &sig));
        assert!(!verify("Jefe", b"x", "md5=00"));
    }
}
